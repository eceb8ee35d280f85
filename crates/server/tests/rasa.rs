//! Rasa's tracker endpoints against the real databases and RabbitMQ: reads of stored conversations, appends
//! saved through the SQL tracker store and streamed through the broker, the append-only PUT, Rasa's error
//! bodies. (Their JSON is compared with genuine Rasa 3.6.21's trackers in `compat/rasa/tests/test_tracker_api.py`.)

mod common;

use std::time::Duration;

use colloquy_server::ServerConfig;
use colloquy_testkit::broker::{TopologyGuard, config as broker_config, drain};
use colloquy_testkit::{TestDialect, unique_name};
use common::{action, config, get, send, slot, start, store, user};
use serde_json::{Value, json};

const TOKEN: &str = "rasa-token";

fn assert_rasa_error(answer: &common::Answer, status: u16, reason: &str) {
    assert_eq!(answer.status, status, "{:?}", answer.json);
    let keys: Vec<&String> = answer
        .json
        .as_object()
        .expect("an error body")
        .keys()
        .collect();
    assert_eq!(
        keys,
        [
            "version", "status", "message", "reason", "details", "help", "code"
        ]
    );
    assert_eq!(answer.json["status"], json!("failure"));
    assert_eq!(answer.json["reason"], json!(reason));
    assert_eq!(answer.json["code"], json!(status));
}

fn event_types(state: &Value) -> Vec<&str> {
    state["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["event"].as_str().expect("a type"))
        .collect()
}

async fn check_tracker_endpoints(dialect: TestDialect) {
    let database = dialect.fresh_database().await.guard();
    let exchange = unique_name("rasa-api-exchange");
    let queue = unique_name("rasa-api-queue");
    let _topology = TopologyGuard {
        exchange: exchange.clone(),
        queue: queue.clone(),
    };
    store(
        &database.url,
        &[
            user("alice", 100.0, "hi", "greet", 0.9, "rest"),
            action("alice", 101.0, "utter_greet"),
            slot("alice", 102.0, "city", "Berlin"),
        ],
        &[],
    )
    .await;
    let broker = broker_config(&exchange, &queue, "rasa-api-test").await;
    let server = start(ServerConfig {
        auth_token: Some(TOKEN.into()),
        tracker_store: Some(database.url.clone()),
        broker: Some(broker.clone()),
        ..config(&database.url)
    })
    .await;
    let url = |path: &str| {
        let separator = if path.contains('?') { '&' } else { '?' };
        server.url(&format!("{path}{separator}token={TOKEN}"))
    };

    // Reads: Rasa's default verbosity, each verbosity, `until`, a refusal without the token.
    let tracker = get(&url("/conversations/alice/tracker")).await;
    assert_eq!(tracker.status, 200, "{:?}", tracker.json);
    assert_eq!(event_types(&tracker.json), ["user", "action", "slot"]);
    assert_eq!(tracker.json["slots"], json!({"city": "Berlin"}));
    assert_eq!(
        tracker.json["latest_message"]["intent"]["name"],
        json!("greet")
    );
    let none = get(&url("/conversations/alice/tracker?include_events=none")).await;
    assert_eq!(none.json["events"], Value::Null);
    let past = get(&url("/conversations/alice/tracker?until=101")).await;
    assert_eq!(event_types(&past.json), ["user", "action"]);
    assert_eq!(past.json["slots"], json!({}));
    let bad = get(&url("/conversations/alice/tracker?include_events=most")).await;
    assert_rasa_error(&bad, 400, "BadRequest");
    assert_eq!(
        bad.json["details"],
        json!({"parameter": "include_events", "in": "query"})
    );
    let anonymous = get(&server.url("/conversations/alice/tracker")).await;
    assert_rasa_error(&anonymous, 401, "NotAuthenticated");

    // A conversation without events: Rasa's session start, not saved by a GET.
    let fresh = get(&url("/conversations/nobody/tracker")).await;
    assert_eq!(
        event_types(&fresh.json),
        ["action", "session_started", "action"]
    );
    assert_eq!(
        fresh.json["events"][0]["name"],
        json!("action_session_start")
    );
    assert_eq!(fresh.json["latest_action_name"], json!("action_listen"));

    // POST: one event, then a list; saved and streamed.
    let one = send(
        "POST",
        &url("/conversations/alice/tracker/events"),
        &[],
        Some(r#"{"event": "slot", "name": "city", "value": "Paris", "timestamp": 103.0}"#),
    )
    .await;
    assert_eq!(one.status, 200, "{:?}", one.json);
    assert_eq!(one.json["slots"], json!({"city": "Paris"}));
    let new_conversation = send(
        "POST",
        &url("/conversations/bob/tracker/events?include_events=ALL"),
        &[],
        Some(r#"[{"event": "user", "text": "hello", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}}}, {"event": "bot", "text": "Hi!"}]"#),
    )
    .await;
    assert_eq!(new_conversation.status, 200, "{:?}", new_conversation.json);
    assert_eq!(
        event_types(&new_conversation.json),
        ["action", "session_started", "action", "user", "bot"]
    );
    assert!(
        new_conversation.json["events"][3]["timestamp"].is_f64(),
        "stamped now"
    );
    let stored = get(&url("/conversations/bob/tracker?include_events=ALL")).await;
    assert_eq!(stored.json["events"], new_conversation.json["events"]);
    let streamed = drain(
        broker,
        6,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await;
    let bodies: Vec<Value> = streamed
        .iter()
        .map(|delivery| serde_json::from_slice(&delivery.body).expect("a JSON body"))
        .collect();
    let senders: Vec<&str> = bodies
        .iter()
        .map(|b| b["sender_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(senders, ["alice", "bob", "bob", "bob", "bob", "bob"]);

    // Refused appends: Rasa's checks, nothing saved.
    for body in [
        "",
        "not json",
        r#"{"event": "no_such_event"}"#,
        r#"{"event": "slot", "value": 1}"#,
        r#"[{"event": "bot"}, {"timestamp": 1.0}]"#,
        "[]",
    ] {
        let refused = send(
            "POST",
            &url("/conversations/bob/tracker/events"),
            &[],
            Some(body),
        )
        .await;
        assert_rasa_error(&refused, 400, "BadRequest");
    }
    let cookie_only = send(
        "POST",
        &server.url("/conversations/bob/tracker/events"),
        &[("cookie", &format!("colloquy_token={TOKEN}"))],
        Some(r#"{"event": "pause"}"#),
    )
    .await;
    assert_rasa_error(&cookie_only, 403, "NotAuthorized");

    // PUT: the stored events followed by more are appended; anything else is a 409 that changes nothing.
    let mut events = stored.json["events"].as_array().expect("events").clone();
    events.push(json!({"event": "action", "name": "action_listen", "timestamp": 200.0}));
    let extended = send(
        "PUT",
        &url("/conversations/bob/tracker/events?include_events=ALL"),
        &[],
        Some(&Value::Array(events.clone()).to_string()),
    )
    .await;
    assert_eq!(extended.status, 200, "{:?}", extended.json);
    assert_eq!(extended.json["events"].as_array().map(Vec::len), Some(6));
    let rewritten = send(
        "PUT",
        &url("/conversations/bob/tracker/events"),
        &[],
        Some(r#"[{"event": "restart", "timestamp": 1.0}]"#),
    )
    .await;
    assert_rasa_error(&rewritten, 409, "Conflict");
    let after = get(&url("/conversations/bob/tracker?include_events=ALL")).await;
    assert_eq!(after.json["events"].as_array().map(Vec::len), Some(6));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_endpoints_on_postgres() {
    check_tracker_endpoints(TestDialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_endpoints_on_sqlite() {
    check_tracker_endpoints(TestDialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_endpoints_on_mariadb() {
    check_tracker_endpoints(TestDialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_tracker_store_answer_503_in_rasas_shape() {
    let database = TestDialect::Sqlite.fresh_database().await.guard();
    store(&database.url, &[action("carol", 1.0, "action_listen")], &[]).await;
    let server = start(ServerConfig {
        auth_token: Some(TOKEN.into()),
        ..config(&database.url)
    })
    .await;
    let refused = send(
        "POST",
        &server.url(&format!(
            "/conversations/carol/tracker/events?token={TOKEN}"
        )),
        &[],
        Some(r#"{"event": "pause"}"#),
    )
    .await;
    assert_rasa_error(&refused, 503, "ServiceUnavailable");
    server.stop().await;
}
