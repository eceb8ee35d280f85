//! `colloquy demo`: the newcomer's tour, in one process. It runs the consumer (as `colloquy consume` does)
//! into a fresh SQLite database, imports the bundled sample conversations through RabbitMQ (as
//! `colloquy import` does), waits until every event is stored, prints a summary and stops the consumer. The
//! consumer derives the analytics tables as `colloquy consume --analytics` does, so that the tour ends with the
//! inbox and the dashboard over the demo's database (served until Ctrl-C on a terminal).
//!
//! The demo uses its own exchange and queue ([`DEMO_EXCHANGE`], [`DEMO_QUEUE`]), so it never mixes with a Rasa
//! deployment on the same broker. Events keep their ids from run to run, so running it twice against the
//! same database stores nothing twice.

use std::fmt::Write as _;
use std::io::Cursor;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use colloquy_broker::{AmqpConfig, AmqpSubscription, DEFAULT_URL};
use colloquy_consumer::{AnalyticsSink, Consumer, ConsumerOptions};
use colloquy_storage::{AnalyticsSettings, ConnectOptions, Database, Schema};

use super::import::{StoreChoice, import};
use crate::cli::{DemoArgs, ProgressMode};
use crate::input::InputReader;
use crate::progress::{Progress, Unit};

/// How often the demo counts the stored events while it waits for all of them.
const STORED_POLL: Duration = Duration::from_millis(50);

/// The bundled sample: realistic Rasa 3.6 conversations, one broker body per line, as Rasa publishes them.
pub const SAMPLE: &str = include_str!("../../data/sample_conversations.jsonl");
/// The exchange the demo publishes to.
pub const DEMO_EXCHANGE: &str = "colloquy-demo";
/// The queue the demo consumes.
pub const DEMO_QUEUE: &str = "colloquy-demo-events";
/// The conversation shown as a transcript.
const SHOWN_CONVERSATION: &str = "3f1c0b7e-restaurant-alice";

/// Runs `colloquy demo`.
pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let url = args.amqp_url.unwrap_or_else(|| DEFAULT_URL.to_owned());
    let amqp = AmqpConfig::from_url(&url)
        .and_then(|config| config.with_exchange(DEMO_EXCHANGE))
        .and_then(|config| config.with_queues([DEMO_QUEUE]))
        .map_err(|error| super::ConfigError(format!("invalid --amqp-url: {error}")))?;
    ensure_rabbitmq(&url)?;

    let database_path = match args.database {
        Some(path) => path,
        None => {
            let dir = std::env::temp_dir().join(format!("colloquy-demo-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.join("colloquy-demo.db")
        }
    };
    let database_url = format!("sqlite://{}", database_path.display());
    let database = Database::connect_lazy(&database_url, &ConnectOptions::default())
        .map_err(|error| super::ConfigError(error.to_string()))?;
    database.migrate(Schema::Events).await.with_context(|| {
        format!(
            "cannot create the demo database {}",
            database_path.display()
        )
    })?;
    database
        .migrate_analytics()
        .await
        .context("cannot create the demo's analytics tables")?;

    println!("Colloquy demo");
    println!(
        "  broker:   {} (exchange `{DEMO_EXCHANGE}`, queue `{DEMO_QUEUE}`)",
        amqp.target()
    );
    println!("  database: {}", database_path.display());

    // 1. The consumer, exactly as `colloquy consume` runs it.
    let subscription = AmqpSubscription::connect(amqp.clone())
        .await
        .map_err(|error| super::broker_error_with_advice(&error, &amqp.target(), DEMO_EXCHANGE))?;
    let sink = AnalyticsSink::new(database.clone(), AnalyticsSettings::default());
    let consumer = Consumer::new(Arc::new(sink), ConsumerOptions::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer_task = tokio::spawn(consumer.run(Box::new(subscription), async move {
        let _ = stopped.await;
    }));

    // 2. The import, exactly as `colloquy import` runs it.
    let broker = super::connect_broker(amqp.clone().with_fail_when_full(true)).await?;
    let reader = InputReader::new(
        "the bundled sample",
        Box::new(Cursor::new(SAMPLE.as_bytes())),
    );
    let progress = Progress::new(ProgressMode::None, "Imported", Unit::Events, None);
    let imported = import(reader, StoreChoice::Memory, Arc::new(broker), &progress).await?;
    println!(
        "  imported {} events of {} conversations; RabbitMQ confirmed every one",
        imported.events, imported.conversations
    );

    // 3. Wait (bounded) until the consumer stored them all.
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let stored = loop {
        let (stored, _) = database
            .table_counts()
            .await
            .context("cannot count the stored events")?;
        if stored >= imported.events {
            break stored;
        }
        if Instant::now() > deadline {
            let _ = stop.send(());
            bail!(
                "only {stored} of {} events were stored after {} s; is another consumer reading queue \
                 `{DEMO_QUEUE}`? Try again with a longer --timeout-secs",
                imported.events,
                args.timeout_secs
            );
        }
        tokio::time::sleep(STORED_POLL).await;
    };
    let _ = stop.send(());
    let summary = consumer_task
        .await
        .map_err(|error| anyhow!("the consumer task failed: {error}"))?
        .context("the consumer failed")?;
    tracing::debug!(?summary, "Demo consumer stopped.");

    // 4. The summary.
    print!(
        "{}",
        summary_text(&database, stored, started.elapsed()).await?
    );
    println!(
        // tidy: allow(sql) a query for the user to type, not one the program runs.
        "\nThe rows are in Rasa's `events` schema: try `sqlite3 {} \"SELECT sender_id, type_name, data FROM \
         events LIMIT 5\"`.\nNext: `colloquy consume --help`, `colloquy import --help`, `colloquy export --help`.",
        database_path.display()
    );
    database.close().await;

    // 5. The inbox over the demo's database.
    serve_inbox(&database_url).await
}

/// Ends the tour with the inbox over the demo's database: on a terminal, serves it (on `colloquy serve`'s
/// address, or a free port when that one is taken) until Ctrl-C; otherwise prints the command that does.
async fn serve_inbox(database_url: &str) -> Result<()> {
    use std::io::IsTerminal as _;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        println!(
            "Inbox: run `colloquy serve --database-url {database_url}`, then open http://{}/",
            colloquy_server::DEFAULT_LISTEN
        );
        return Ok(());
    }
    let mut config = colloquy_server::ServerConfig::new(database_url);
    let server = match colloquy_server::Server::bind(config.clone()).await {
        Ok(server) => server,
        Err(_) => {
            config.listen.set_port(0);
            colloquy_server::Server::bind(config).await?
        }
    };
    println!(
        "Inbox: http://{}/ (serving until Ctrl-C)",
        server.local_addr()
    );
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The printed summary: conversations, events by type, and one conversation as a transcript.
async fn summary_text(database: &Database, stored: u64, elapsed: Duration) -> Result<String> {
    let (by_type, conversations) = database.event_counts().await?;
    let rows: Vec<(String, String)> = database
        .conversation_rows(SHOWN_CONVERSATION)
        .await?
        .into_iter()
        .map(|row| (row.type_name, row.data))
        .collect();

    let mut out = String::new();
    writeln!(
        out,
        "\nStored {stored} events of {conversations} conversations in {:.1} s.\n\nEvents by type:",
        elapsed.as_secs_f64()
    )?;
    for (type_name, count) in by_type {
        writeln!(out, "  {type_name:<28}{count:>5}")?;
    }
    writeln!(out, "\nConversation `{SHOWN_CONVERSATION}`:")?;
    out.push_str(&transcript(&rows));
    Ok(out)
}

/// A readable transcript of a conversation's rows (`type_name`, `data`): what the user and the bot said, and
/// the slots and forms in between.
pub fn transcript(rows: &[(String, String)]) -> String {
    let mut out = String::new();
    for (type_name, data) in rows {
        let data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
        };
        let line = match type_name.as_str() {
            "user" => format!("  user: {}", text("text")),
            "bot" => format!("  bot:  {}", text("text")),
            "slot" if text("name") != "requested_slot" => {
                format!("        (slot {} = {})", text("name"), data["value"])
            }
            "active_loop" if data["name"].is_string() => {
                format!("        (form {} starts)", text("name"))
            }
            "active_loop" => "        (form done)".to_owned(),
            "restart" => "        (restart)".to_owned(),
            "session_started" => "        (session starts)".to_owned(),
            _ => continue,
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Makes sure a RabbitMQ answers at `url`: starts the local one when it is the default address and
/// `rabbitmq-server` is installed, or says exactly how to get one.
fn ensure_rabbitmq(url: &str) -> Result<()> {
    let (host, port) = host_and_port(url);
    if answers(&host, port) {
        return Ok(());
    }
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") && port == 5672;
    let how_to = format!(
        "No RabbitMQ answers at {host}:{port}. Start one, then run the demo again:\n  \
         - Debian/Ubuntu: `sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached`\n  \
         - macOS: `brew install rabbitmq && brew services start rabbitmq`\n  \
         - Docker: `docker run -d --name rabbitmq -p 5672:5672 rabbitmq:3-management`\n\
         or point the demo at a running one with --amqp-url (or AMQP_URL)."
    );
    if !local || which("rabbitmq-server").is_none() {
        bail!(how_to);
    }
    eprintln!(
        "No RabbitMQ answers at {host}:{port}; starting the local one (`rabbitmq-server -detached`)."
    );
    let started = Command::new("rabbitmq-server")
        .arg("-detached")
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if !started {
        bail!("`rabbitmq-server -detached` failed. {how_to}");
    }
    // The port opens before the broker accepts work; `await_startup` waits for the application itself.
    let ready = Command::new("rabbitmqctl")
        .args(["--timeout", "120", "await_startup"])
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if !ready || !answers(&host, port) {
        bail!("RabbitMQ was started but did not become ready within 120 s. {how_to}");
    }
    Ok(())
}

/// Host and port of an AMQP URL (port 5672, or 5671 for `amqps`, when absent).
fn host_and_port(url: &str) -> (String, u16) {
    let default_port = if url.starts_with("amqps://") {
        5671
    } else {
        5672
    };
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
            host.trim_matches(['[', ']']).to_owned(),
            port.parse().unwrap_or(default_port),
        ),
        _ => (host_port.trim_matches(['[', ']']).to_owned(), default_port),
    }
}

fn answers(host: &str, port: u16) -> bool {
    let Ok(addresses) = (host, port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_urls() {
        let check = |url: &str, host: &str, port: u16| {
            assert_eq!(host_and_port(url), (host.to_owned(), port), "{url}")
        };
        check("amqp://guest:guest@127.0.0.1:5672/%2f", "127.0.0.1", 5672);
        check("amqp://localhost", "localhost", 5672);
        check(
            "amqps://u:p@rabbit.example:5999/vhost?x=1",
            "rabbit.example",
            5999,
        );
        check("amqps://rabbit.example", "rabbit.example", 5671);
    }

    #[test]
    fn the_sample_reads_as_events() {
        let mut reader = InputReader::new("sample", Box::new(Cursor::new(SAMPLE.as_bytes())));
        let records = reader.next_chunk(100_000).expect("the sample is valid");
        assert!(records.len() > 300);
        let conversations: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.sender_id.as_str()).collect();
        assert!(conversations.len() >= 19);
        // Byte-identical to Rasa: reading then writing gives the same line.
        for (record, line) in records.iter().zip(SAMPLE.lines()) {
            let envelope = colloquy_events::Envelope {
                sender_id: record.sender_id.clone(),
                event: record.event.clone(),
            };
            assert_eq!(envelope.to_rasa_json(), line);
        }
    }
}
