//! `colloquy dead-letters list | requeue`.

use std::io::Write;

use anyhow::{Context, Result};
use colloquy_broker::EventBroker;
use colloquy_storage::{ConnectOptions, StoredDeadLetter};

use crate::cli::DeadLettersCommand;
use crate::settings::{Endpoints, amqp_config};

/// How many dead letters are read per query.
const PAGE: i64 = 500;

/// Runs a `dead-letters` subcommand.
pub async fn run(command: DeadLettersCommand, endpoints: Option<&Endpoints>) -> Result<()> {
    match command {
        DeadLettersCommand::List {
            database,
            limit,
            json,
        } => {
            // Read only: a mistyped path or URL is an error, never a new empty database.
            let (database, _) =
                super::open_database(&database, endpoints, &ConnectOptions::read_only())?;
            database
                .require_dead_letters_table()
                .await
                .map_err(super::storage_error)?;
            let letters = database
                .dead_letters(0, limit, (!json).then_some(PREVIEW_BYTES))
                .await
                .map_err(super::storage_error)?;
            let mut out = std::io::stdout().lock();
            for letter in &letters {
                if json {
                    writeln!(out, "{}", as_json(letter))?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        letter.id,
                        letter.received_at,
                        printable(&letter.source),
                        printable(&letter.error),
                        preview(&letter.body, letter.body_len)
                    )?;
                }
            }
            if !json {
                writeln!(out, "{} dead letter(s)", letters.len())?;
            }
            Ok(())
        }
        DeadLettersCommand::Requeue {
            database,
            broker,
            ids,
        } => {
            let (database, _) =
                super::open_database(&database, endpoints, &ConnectOptions::default())?;
            database
                .require_dead_letters_table()
                .await
                .map_err(super::storage_error)?;
            let config = amqp_config(&broker, endpoints)
                .map_err(|error| super::ConfigError(format!("{error:#}")))?;
            let broker = super::connect_broker(config).await?;
            let mut requeued = 0u64;
            let mut after = 0;
            // Only the letters present now: a requeued message that fails again comes back as a new letter
            // (a higher id) while we page, and must not be requeued again by this run.
            let ceiling = database
                .last_dead_letter_id()
                .await
                .map_err(super::storage_error)?;
            loop {
                let page = database
                    .dead_letters(after, PAGE, None)
                    .await
                    .map_err(super::storage_error)?;
                let Some(last) = page.last() else { break };
                if page[0].id > ceiling {
                    break;
                }
                after = last.id;
                let chosen: Vec<&StoredDeadLetter> = page
                    .iter()
                    .filter(|letter| letter.id <= ceiling)
                    .filter(|letter| ids.is_empty() || ids.contains(&letter.id))
                    .collect();
                // The one requeue (shared with `colloquy serve`): publish, wait for the confirms, then delete.
                requeued += colloquy_server::dead_letters::requeue(&database, &broker, &chosen)
                    .await
                    .map_err(|error| match error {
                        colloquy_server::Error::Storage(error) => super::storage_error(error),
                        other => anyhow::Error::new(other).context("requeueing failed"),
                    })?;
            }
            broker
                .close()
                .await
                .context("closing the broker connection failed")?;
            tracing::info!(requeued, "Requeued dead letters.");
            println!("requeued {requeued} dead letter(s)");
            Ok(())
        }
    }
}

fn as_json(letter: &StoredDeadLetter) -> serde_json::Value {
    let body = match std::str::from_utf8(&letter.body) {
        Ok(text) => serde_json::json!({ "text": text }),
        Err(_) => serde_json::json!({ "hex": hex(&letter.body) }),
    };
    serde_json::json!({
        "id": letter.id,
        "received_at": letter.received_at,
        "source": letter.source,
        "error": letter.error,
        "properties": serde_json::from_str::<serde_json::Value>(&letter.properties).unwrap_or(serde_json::Value::Null),
        "body": body,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How many bytes of each body `list` reads: enough for 80 characters of any script.
const PREVIEW_BYTES: usize = 320;

/// The first 80 characters of a body (`body` may be its first bytes only; `body_len` is the whole length),
/// printable.
fn preview(body: &[u8], body_len: i64) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(240)]);
    let start: String = text.chars().take(80).collect();
    let mut preview = printable(&start);
    if usize::try_from(body_len).unwrap_or(usize::MAX) > start.len() {
        preview.push('…');
    }
    preview
}

/// `text` safe to print on a terminal: tabs and line breaks become spaces, and every other character that
/// acts instead of showing (controls such as ESC, format characters such as the bidirectional overrides
/// U+202E and U+2066, zero-width characters, line and paragraph separators) is written as its `\u{…}` escape.
fn printable(text: &str) -> String {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let mut printable = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => printable.push(' '),
            _ if matches!(
                c.general_category(),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            ) =>
            {
                printable.extend(c.escape_unicode())
            }
            _ => printable.push(c),
        }
    }
    printable
}

#[cfg(test)]
mod tests {
    use super::{preview, printable};

    #[test]
    fn printable_escapes_what_would_act_on_the_terminal() {
        for (text, expected) in [
            (
                "plain text, émoji 🙂, 日本語",
                "plain text, émoji 🙂, 日本語",
            ),
            ("a\tb\nc\r", "a b c "),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("\u{7}\u{0}\u{7f}\u{85}", "\\u{7}\\u{0}\\u{7f}\\u{85}"),
            ("abc\u{202e}cba", "abc\\u{202e}cba"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}x\u{2067}y\u{2068}z\u{2069}",
                "\\u{2066}x\\u{2067}y\\u{2068}z\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
        ] {
            assert_eq!(printable(text), expected, "{text:?}");
        }
    }

    #[test]
    fn previews_are_printable_and_short() {
        assert_eq!(
            preview(b"{\"text\": \"\xe2\x80\xae\"}", 15),
            "{\"text\": \"\\u{202e}\"}"
        );
        let long = "x".repeat(300);
        assert_eq!(
            preview(long.as_bytes(), 300),
            format!("{}…", "x".repeat(80))
        );
    }
}
