//! `colloquy dead-letters list | requeue`.

use std::io::Write;

use anyhow::{Context, Result};
use colloquy_broker::{EventBroker, MessageProperties};
use colloquy_consumer::{Database, StoredDeadLetter};

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
            let (database, _) = super::open_database(&database, endpoints)?;
            database
                .migrate()
                .await
                .context("cannot open the database")?;
            let letters = database
                .dead_letters(0, limit)
                .await
                .context("cannot read dead letters")?;
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
                        letter.source,
                        letter.error,
                        preview(&letter.body)
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
            let (database, _) = super::open_database(&database, endpoints)?;
            database
                .migrate()
                .await
                .context("cannot open the database")?;
            let config = amqp_config(&broker, endpoints)
                .map_err(|error| super::ConfigError(format!("{error:#}")))?;
            let broker = super::connect_broker(config).await?;
            let mut requeued = 0u64;
            let mut after = 0;
            // Only the letters present now: a requeued message that fails again comes back as a new letter
            // (a higher id) while we page, and must not be requeued again by this run.
            let ceiling = max_dead_letter_id(&database).await?;
            loop {
                let page = database
                    .dead_letters(after, PAGE)
                    .await
                    .context("cannot read dead letters")?;
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
                for letter in &chosen {
                    let properties = MessageProperties::from_json(
                        &serde_json::from_str(&letter.properties).unwrap_or_default(),
                    );
                    broker
                        .publish_raw(letter.body.clone(), &properties)
                        .await
                        .context("publishing failed")?;
                }
                // Delete only what the broker confirmed.
                broker
                    .flush()
                    .await
                    .context("the broker did not confirm the requeued messages")?;
                for letter in chosen {
                    database
                        .delete_dead_letter(letter.id)
                        .await
                        .context("cannot delete a requeued dead letter")?;
                    requeued += 1;
                }
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

/// The highest dead-letter id (0 when there is none).
async fn max_dead_letter_id(database: &Database) -> Result<i64> {
    const QUERY: &str = "SELECT COALESCE(MAX(id), 0) FROM dead_letters";
    let max: i64 = match database {
        Database::Postgres(pool) => sqlx::query_scalar(QUERY).fetch_one(pool).await,
        Database::Sqlite(pool) => sqlx::query_scalar(QUERY).fetch_one(pool).await,
    }
    .context("cannot read dead letters")?;
    Ok(max)
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

/// The first 80 characters of a body, printable.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(240)]);
    let mut preview: String = text
        .chars()
        .take(80)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > preview.len() {
        preview.push('…');
    }
    preview
}
