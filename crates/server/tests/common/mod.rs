//! What the server's integration tests share: filling a database through the storage layer, starting a
//! server in process, and HTTP requests.

#![allow(dead_code)]

use std::net::SocketAddr;

use colloquy_events::{Envelope, EventId};
use colloquy_server::{Server, ServerConfig};
use colloquy_storage::{ConnectOptions, Database, DeadLetterRow, EventRow, Schema};
use serde_json::Value;

/// Stores Rasa-shaped bodies (each with its `sender_id`) through the storage layer, as the consumer does.
pub async fn store(url: &str, bodies: &[String], dead_letters: &[DeadLetterRow]) {
    let database = Database::connect_lazy(url, &ConnectOptions::default()).expect("database");
    database.migrate(Schema::Events).await.expect("migrate");
    let rows: Vec<EventRow> = bodies
        .iter()
        .map(|body| {
            let envelope = Envelope::from_json(body.as_bytes()).expect("a Rasa body");
            let id = EventId::from(uuid_like(body));
            EventRow::new(&envelope.sender_id, &envelope.event, &id).expect("a row")
        })
        .collect();
    database
        .store_batch(&rows, dead_letters)
        .await
        .expect("store");
    database.close().await;
}

/// A stable id per body (the dedupe key of the consumer).
fn uuid_like(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("{:016x}-{}", hasher.finish(), body.len())
}

/// A user message.
pub fn user(
    sender: &str,
    ts: f64,
    text: &str,
    intent: &str,
    confidence: f64,
    channel: &str,
) -> String {
    serde_json::json!({
        "sender_id": sender, "event": "user", "timestamp": ts, "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": confidence}, "entities": []},
        "input_channel": channel, "message_id": format!("m{ts}")
    })
    .to_string()
}

/// A bot message.
pub fn bot(sender: &str, ts: f64, text: &str) -> String {
    serde_json::json!({"sender_id": sender, "event": "bot", "timestamp": ts, "text": text, "data": {}, "metadata": {}})
        .to_string()
}

/// An action.
pub fn action(sender: &str, ts: f64, name: &str) -> String {
    serde_json::json!({"sender_id": sender, "event": "action", "timestamp": ts, "name": name,
                       "policy": "RulePolicy", "confidence": 1.0})
    .to_string()
}

/// A slot being set.
pub fn slot(sender: &str, ts: f64, name: &str, value: &str) -> String {
    serde_json::json!({"sender_id": sender, "event": "slot", "timestamp": ts, "name": name, "value": value})
        .to_string()
}

/// A running server and how to stop it.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<colloquy_server::Result<()>>>,
}

impl Running {
    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

/// Binds and runs a server in process.
pub async fn start(config: ServerConfig) -> Running {
    let server = Server::bind(config).await.expect("server binds");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Settings for `url` on a free loopback port, polling fast.
pub fn config(url: &str) -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_interval: std::time::Duration::from_millis(50),
        ..ServerConfig::new(url)
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Null` when it is not).
    pub json: Value,
}

impl Answer {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends a request (`body` as JSON when given).
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = body.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match body {
            Some(body) => agent.run(builder.body(body).expect("a request")),
            None => agent.run(builder.body(()).expect("a request")),
        }
        .expect("an HTTP answer");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        Answer {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    })
    .await
    .expect("request thread")
}

/// GET `url` without headers.
pub async fn get(url: &str) -> Answer {
    send("GET", url, &[], None).await
}
