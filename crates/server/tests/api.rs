//! Colloquy's JSON API against the real databases: every filter, pagination, a conversation's events in pages,
//! dead letters, auth, the index following new events, a database Rasa wrote.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use colloquy_server::{Server, ServerConfig};
use colloquy_storage::DeadLetterRow;
use colloquy_testkit::{TestDialect, wait_until};
use common::{action, bot, config, get, send, slot, start, store, user};
use serde_json::{Value, json};

/// Three conversations and a dead letter that names one of them.
fn sample() -> (Vec<String>, Vec<DeadLetterRow>) {
    let mut bodies = vec![
        user(
            "alice",
            100.0,
            "Hello <script>alert(1)</script>",
            "greet",
            0.9,
            "rest",
        ),
        action("alice", 101.0, "utter_greet"),
        bot("alice", 102.0, "Hi there, Alice!"),
        slot("alice", 103.0, "city", "Berlin"),
        user("bob", 200.0, "asdf qwer", "nlu_fallback", 0.3, "socketio"),
        action("bob", 201.0, "action_default_fallback"),
    ];
    // carol: the newest, 30 events.
    for i in 0..15 {
        let ts = 300.0 + f64::from(i) * 2.0;
        bodies.push(user(
            "carol",
            ts,
            &format!("question {i}"),
            "ask",
            0.8,
            "rest",
        ));
        bodies.push(bot("carol", ts + 1.0, &format!("answer {i}")));
    }
    let letters = vec![DeadLetterRow {
        source: "rasa_core_events".into(),
        body: br#"{"sender_id": "bob", "event": "user", "timestamp": "not a number"}"#.to_vec(),
        properties: r#"{"content_type": "application/json", "headers": {}}"#.into(),
        error: "invalid event: timestamp".into(),
    }];
    (bodies, letters)
}

fn senders(answer: &Value) -> Vec<String> {
    answer["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| c["sender_id"].as_str().expect("sender_id").to_owned())
        .collect()
}

async fn check_api(dialect: TestDialect) {
    let database = dialect.fresh_database().await.guard();
    let (bodies, letters) = sample();
    store(&database.url, &bodies, &letters).await;
    let server = start(config(&database.url)).await;

    let info = get(&server.url("/api/server")).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json["auth"], json!(false));
    assert_eq!(info.json["writes"], json!(false));
    assert_eq!(info.json["analytics"], json!(false));
    let expected_dialect = match dialect {
        TestDialect::Postgres => "postgres",
        TestDialect::MySql => "mysql",
        TestDialect::Sqlite => "sqlite",
    };
    assert_eq!(info.json["dialect"], json!(expected_dialect));

    let all = get(&server.url("/api/conversations")).await;
    assert_eq!(all.status, 200, "{:?}", all.json);
    assert_eq!(senders(&all.json), ["carol", "bob", "alice"]);
    assert_eq!(all.json["matches"], json!(3));
    assert_eq!(all.json["next_cursor"], Value::Null);
    let alice = &all.json["conversations"][2];
    assert_eq!(alice["events"], json!(4));
    assert_eq!(alice["channel"], json!("rest"));
    assert_eq!(alice["first_activity"].as_f64(), Some(100.0));
    assert_eq!(alice["last_activity"].as_f64(), Some(103.0));
    assert_eq!(alice["last_text"], json!("Hi there, Alice!"));
    assert_eq!(alice["intents"], json!(["greet"]));
    assert_eq!(alice["fallback"], json!(false));

    for (query, expected) in [
        ("channel=socketio", vec!["bob"]),
        ("intent=greet", vec!["alice"]),
        ("intent=unknown", vec![]),
        ("action=utter_greet", vec!["alice"]),
        ("slot=city", vec!["alice"]),
        ("min_events=5", vec!["carol"]),
        ("confidence_below=0.5", vec!["bob"]),
        ("confidence_below=0.85", vec!["carol", "bob"]),
        ("text=%3CSCRIPT%3E", vec!["alice"]),
        ("text=answer%2014", vec!["carol"]),
        ("fallback=true", vec!["bob"]),
        ("fallback=false", vec!["carol", "alice"]),
        ("since=200", vec!["carol", "bob"]),
        ("until=201", vec!["bob", "alice"]),
        ("since=150&until=250", vec!["bob"]),
        ("channel=rest&intent=ask", vec!["carol"]),
        ("channel=", vec!["carol", "bob", "alice"]),
    ] {
        let answer = get(&server.url(&format!("/api/conversations?{query}"))).await;
        assert_eq!(answer.status, 200, "{query}: {:?}", answer.json);
        assert_eq!(senders(&answer.json), expected, "{query}");
        assert_eq!(answer.json["matches"], json!(expected.len()), "{query}");
    }
    let bad = get(&server.url("/api/conversations?since=yesterday")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json["error"].as_str().is_some());
    let bad = get(&server.url("/api/conversations?cursor=nonsense")).await;
    assert_eq!(bad.status, 400);

    // One at a time through the cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let url = match &cursor {
            Some(cursor) => server.url(&format!("/api/conversations?limit=1&cursor={cursor}")),
            None => server.url("/api/conversations?limit=1"),
        };
        let page = get(&url).await;
        assert_eq!(page.json["matches"], json!(3));
        seen.extend(senders(&page.json));
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["carol", "bob", "alice"]);

    // carol's 30 events, 7 at a time, in stored order.
    let mut texts = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let page = get(&server.url(&format!(
            "/api/conversations/carol/events?limit=7&after={after}"
        )))
        .await;
        assert_eq!(page.status, 200, "{:?}", page.json);
        assert_eq!(page.json["total"], json!(30));
        for event in page.json["events"].as_array().expect("events") {
            assert!(event["id"].as_i64().expect("id") > after);
            assert!(event["type"].as_str().is_some());
            texts.push(event["event"]["text"].as_str().expect("text").to_owned());
        }
        match page.json["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(texts.len(), 30);
    assert_eq!(texts[0], "question 0");
    assert_eq!(texts[29], "answer 14");
    let missing = get(&server.url("/api/conversations/nobody/events")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.json["error"].as_str().is_some());
    // A sender id that needs escaping in a path.
    let odd = get(&server.url("/api/conversations/a%2Fb%20c/events")).await;
    assert_eq!(odd.status, 404);

    let letters = get(&server.url("/api/dead-letters")).await;
    assert_eq!(letters.status, 200, "{:?}", letters.json);
    let list = letters.json["dead_letters"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sender_id"], json!("bob"));
    assert_eq!(list[0]["source"], json!("rasa_core_events"));
    let id = list[0]["id"].as_i64().expect("id");
    let one = get(&server.url(&format!("/api/dead-letters/{id}"))).await;
    assert_eq!(one.status, 200);
    assert!(
        one.json["body"]
            .as_str()
            .expect("body")
            .contains("not a number")
    );
    assert!(one.json["body_base64"].as_str().is_some());
    assert_eq!(
        one.json["properties"]["content_type"],
        json!("application/json")
    );
    assert_eq!(
        get(&server.url("/api/dead-letters/999999")).await.status,
        404
    );
    let bobs = get(&server.url("/api/conversations/bob/dead-letters")).await;
    assert_eq!(bobs.json["dead_letters"].as_array().expect("list").len(), 1);
    let alices = get(&server.url("/api/conversations/alice/dead-letters")).await;
    assert_eq!(alices.json["dead_letters"], json!([]));

    // Without a token every write is refused.
    let requeue = send(
        "POST",
        &server.url(&format!("/api/dead-letters/{id}/requeue")),
        &[],
        None,
    )
    .await;
    assert_eq!(requeue.status, 403);
    assert_eq!(requeue.json["error"], json!("writes need --auth-token"));

    assert_eq!(
        get(&server.url("/api/metrics")).await.json,
        json!({"available": false})
    );
    assert_eq!(
        get(&server.url("/api/consumer")).await.json,
        json!({"available": false})
    );
    let openapi = get(&server.url("/api/openapi.json")).await;
    assert_eq!(openapi.json["openapi"], json!("3.0.3"));
    assert_eq!(get(&server.url("/api/nothing")).await.status, 404);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_postgres() {
    check_api(TestDialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_sqlite() {
    check_api(TestDialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_mariadb() {
    check_api(TestDialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_takes_the_token_three_ways_and_writes_only_two() {
    let database = TestDialect::Sqlite.fresh_database().await.guard();
    let (bodies, letters) = sample();
    store(&database.url, &bodies, &letters).await;
    let server = start(ServerConfig {
        auth_token: Some("s3cret token".into()),
        ..config(&database.url)
    })
    .await;

    let refused = get(&server.url("/api/conversations")).await;
    assert_eq!(refused.status, 401);
    assert!(refused.json["error"].as_str().is_some());
    let rasa = get(&server.url("/conversations/alice/tracker")).await;
    assert_eq!(rasa.status, 401);
    assert_eq!(rasa.json["status"], json!("failure"));
    assert_eq!(rasa.json["code"], json!(401));
    assert_eq!(rasa.json["reason"], json!("NotAuthenticated"));
    let wrong = get(&server.url("/api/conversations?token=s3cret")).await;
    assert_eq!(wrong.status, 401);

    let by_query = get(&server.url("/api/conversations?token=s3cret%20token")).await;
    assert_eq!(by_query.status, 200);
    let cookie = by_query.header("set-cookie").expect("a cookie").to_owned();
    assert!(cookie.starts_with("colloquy_token="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );
    let cookie_pair = cookie.split(';').next().expect("pair").to_owned();

    let bearer = [("authorization", "Bearer s3cret token")];
    assert_eq!(
        send("GET", &server.url("/api/server"), &bearer, None)
            .await
            .status,
        200
    );
    let by_cookie = send(
        "GET",
        &server.url("/api/server"),
        &[("cookie", &cookie_pair)],
        None,
    )
    .await;
    assert_eq!(by_cookie.status, 200);
    assert_eq!(by_cookie.json["auth"], json!(true));
    assert_eq!(by_cookie.json["writes"], json!(true));
    assert!(by_cookie.header("set-cookie").is_none());

    // Writes: never with the cookie alone; with the bearer header, they reach the handler (no broker: 503).
    let requeue = server.url("/api/dead-letters/1/requeue");
    let with_cookie = send("POST", &requeue, &[("cookie", &cookie_pair)], None).await;
    assert_eq!(with_cookie.status, 403);
    let rasa_write = send(
        "POST",
        &server.url("/conversations/alice/tracker/events"),
        &[("cookie", &cookie_pair)],
        Some("{}"),
    )
    .await;
    assert_eq!(rasa_write.status, 403);
    assert_eq!(rasa_write.json["reason"], json!("NotAuthorized"));
    let with_bearer = send("POST", &requeue, &bearer, None).await;
    assert_eq!(with_bearer.status, 503, "{:?}", with_bearer.json);
    let with_query = send(
        "POST",
        &format!("{requeue}?token=s3cret%20token"),
        &[],
        None,
    )
    .await;
    assert_eq!(with_query.status, 503);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_server_stays_on_loopback() {
    let database = TestDialect::Sqlite.fresh_database().await.guard();
    let (bodies, letters) = sample();
    store(&database.url, &bodies, &letters).await;
    let refused = Server::bind(ServerConfig {
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        ..config(&database.url)
    })
    .await
    .expect_err("a non-loopback address without a token is refused");
    assert!(refused.is_config());
    assert!(refused.to_string().contains("--auth-token"), "{refused}");
    let allowed = Server::bind(ServerConfig {
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        auth_token: Some("t".into()),
        ..config(&database.url)
    })
    .await;
    assert!(allowed.is_ok());
    // A database without Rasa's table is a configuration error, and nothing is created.
    let empty = TestDialect::Sqlite.fresh_database().await.guard();
    let error = Server::bind(config(&empty.url))
        .await
        .expect_err("no events table");
    assert!(error.is_config(), "{error}");
    assert!(!std::path::Path::new(empty.url.trim_start_matches("sqlite://")).exists());
}

/// Pages read while events arrive list every conversation once; the index picks up new events.
async fn check_stable_paging(dialect: TestDialect) {
    let database = dialect.fresh_database().await.guard();
    let bodies: Vec<String> = (0..12)
        .map(|i| bot(&format!("c{i:02}"), 1000.0 + f64::from(i), "hello"))
        .collect();
    store(&database.url, &bodies, &[]).await;
    let server = start(config(&database.url)).await;

    let first = get(&server.url("/api/conversations?limit=4")).await;
    let mut seen = senders(&first.json);
    assert_eq!(seen, ["c11", "c10", "c09", "c08"]);
    let mut cursor = first.json["next_cursor"].as_str().expect("more").to_owned();

    // c00 (on a later page) moves to the top, and a new conversation starts.
    store(
        &database.url,
        &[
            bot("c00", 5000.0, "again"),
            bot("new", 6000.0, "first words"),
        ],
        &[],
    )
    .await;
    wait_until("the index sees the new events", Duration::from_secs(20), || async {
        get(&server.url("/api/conversations?limit=1")).await.json["conversations"][0]["sender_id"]
            == json!("new")
    })
    .await;
    for _ in 0..10 {
        let page = get(&server.url(&format!("/api/conversations?limit=4&cursor={cursor}"))).await;
        assert_eq!(page.status, 200);
        seen.extend(senders(&page.json));
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates: {seen:?}");
    assert_eq!(
        seen.len(),
        12,
        "every conversation of the snapshot: {seen:?}"
    );
    let fresh = get(&server.url("/api/conversations?limit=2")).await;
    assert_eq!(senders(&fresh.json), ["new", "c00"]);
    assert_eq!(fresh.json["matches"], json!(13));
    assert_eq!(fresh.json["conversations"][1]["events"], json!(2));
    assert_eq!(fresh.json["conversations"][1]["last_text"], json!("again"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_while_events_arrive_on_postgres() {
    check_stable_paging(TestDialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_while_events_arrive_on_sqlite() {
    check_stable_paging(TestDialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_while_events_arrive_on_mariadb() {
    check_stable_paging(TestDialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_requeued_through_rabbitmq_then_deleted() {
    use colloquy_testkit::broker::{
        TopologyGuard, config as broker_config, queue_len, raw_channel,
    };
    let exchange = colloquy_testkit::unique_name("serve-exchange");
    let queue = colloquy_testkit::unique_name("serve-queue");
    let _topology = TopologyGuard {
        exchange: exchange.clone(),
        queue: queue.clone(),
    };
    let database = TestDialect::Postgres.fresh_database().await.guard();
    let body = br#"{"sender_id": "bob", "event": "restart", "timestamp": 1700000000.0}"#.to_vec();
    let (bodies, _) = sample();
    store(
        &database.url,
        &bodies,
        &[DeadLetterRow {
            source: queue.clone(),
            body: body.clone(),
            properties: r#"{"message_id": "requeued-1", "content_type": "application/json", "headers": {"x-test": "yes"}}"#.into(),
            error: "the database refused it".into(),
        }],
    )
    .await;
    let server = start(ServerConfig {
        auth_token: Some("token".into()),
        broker: Some(broker_config(&exchange, &queue, "serve-requeue-test").await),
        ..config(&database.url)
    })
    .await;
    let listed = get(&server.url("/api/dead-letters?token=token")).await;
    let id = listed.json["dead_letters"][0]["id"]
        .as_i64()
        .expect("a dead letter");
    let bearer = [("authorization", "Bearer token")];
    let missing = send(
        "POST",
        &server.url("/api/dead-letters/424242/requeue"),
        &bearer,
        None,
    )
    .await;
    assert_eq!(missing.status, 404);

    let requeued = send(
        "POST",
        &server.url(&format!("/api/dead-letters/{id}/requeue")),
        &bearer,
        None,
    )
    .await;
    assert_eq!(requeued.status, 200, "{:?}", requeued.json);
    assert_eq!(requeued.json, json!({ "requeued": id }));
    let gone = send(
        "GET",
        &server.url(&format!("/api/dead-letters/{id}")),
        &bearer,
        None,
    )
    .await;
    assert_eq!(gone.status, 404);

    let (connection, channel) = raw_channel().await;
    wait_until(
        "the requeued message is in its queue",
        Duration::from_secs(20),
        || async { queue_len(&channel, &queue).await == 1 },
    )
    .await;
    let delivery = channel
        .basic_get(
            queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic_get")
        .expect("a message");
    assert_eq!(delivery.delivery.data, body);
    assert_eq!(
        delivery
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str()),
        Some("requeued-1")
    );
    let _ = connection.close(200, "OK".into()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_rasa_wrote_is_served_as_it_is() {
    for dialect in [
        TestDialect::Sqlite,
        TestDialect::Postgres,
        TestDialect::MySql,
    ] {
        let database = dialect.fresh_database().await.guard();
        rasa_rows(dialect, &database.url).await;
        let server = start(config(&database.url)).await;
        let all = get(&server.url("/api/conversations")).await;
        assert_eq!(all.status, 200, "{dialect:?}: {:?}", all.json);
        assert_eq!(senders(&all.json), ["rasa-b", "rasa-a"], "{dialect:?}");
        assert_eq!(all.json["conversations"][1]["intents"], json!(["greet"]));
        let events = get(&server.url("/api/conversations/rasa-a/events")).await;
        assert_eq!(events.status, 200, "{dialect:?}");
        assert_eq!(events.json["total"], json!(2));
        assert_eq!(events.json["events"][0]["event"]["text"], json!("hi"));
        // No dead_letters table: none, not an error.
        let letters = get(&server.url("/api/dead-letters")).await;
        assert_eq!(letters.json["dead_letters"], json!([]), "{dialect:?}");
        server.stop().await;
    }
}

/// Rasa's `events` table (Rasa 3.6's DDL) with rows as its `SQLTrackerStore` writes them.
async fn rasa_rows(dialect: TestDialect, url: &str) {
    use sqlx::Connection as _;
    let ddl = "CREATE TABLE events (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT_PLACEHOLDER,
	sender_id VARCHAR(255) NOT NULL,
	type_name VARCHAR(255) NOT NULL,
	timestamp FLOAT,
	intent_name VARCHAR(255),
	action_name VARCHAR(255),
	data TEXT
)";
    let rows = [
        (
            "rasa-a",
            "user",
            10.0,
            Some("greet"),
            None,
            r#"{"event": "user", "timestamp": 10.0, "text": "hi", "parse_data": {"intent": {"name": "greet", "confidence": 0.99}}, "input_channel": "rest"}"#,
        ),
        (
            "rasa-a",
            "action",
            11.0,
            None,
            Some("utter_greet"),
            r#"{"event": "action", "timestamp": 11.0, "name": "utter_greet"}"#,
        ),
        (
            "rasa-b",
            "bot",
            20.0,
            None,
            None,
            r#"{"event": "bot", "timestamp": 20.0, "text": "hello"}"#,
        ),
    ];
    let insert = "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data) VALUES ";
    match dialect {
        TestDialect::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            let mut connection = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("sqlite");
            sqlx::query(sqlx::AssertSqlSafe(
                ddl.replace(" PRIMARY KEY AUTOINCREMENT_PLACEHOLDER", " PRIMARY KEY"),
            ))
            .execute(&mut connection)
            .await
            .expect("ddl");
            for row in rows {
                sqlx::query(sqlx::AssertSqlSafe(format!("{insert}(?, ?, ?, ?, ?, ?)")))
                    .bind(row.0)
                    .bind(row.1)
                    .bind(row.2)
                    .bind(row.3)
                    .bind(row.4)
                    .bind(row.5)
                    .execute(&mut connection)
                    .await
                    .expect("insert");
            }
            connection.close().await.expect("close");
        }
        TestDialect::Postgres => {
            let mut connection = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query(sqlx::AssertSqlSafe(ddl.replace(
                "INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT_PLACEHOLDER",
                "SERIAL PRIMARY KEY",
            )))
            .execute(&mut connection)
            .await
            .expect("ddl");
            for row in rows {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{insert}($1, $2, $3, $4, $5, $6)"
                )))
                .bind(row.0)
                .bind(row.1)
                .bind(row.2)
                .bind(row.3)
                .bind(row.4)
                .bind(row.5)
                .execute(&mut connection)
                .await
                .expect("insert");
            }
            connection.close().await.expect("close");
        }
        TestDialect::MySql => {
            let mut connection = sqlx::MySqlConnection::connect(url).await.expect("mysql");
            sqlx::query(sqlx::AssertSqlSafe(
                ddl.replace("AUTOINCREMENT_PLACEHOLDER", "AUTO_INCREMENT"),
            ))
            .execute(&mut connection)
            .await
            .expect("ddl");
            for row in rows {
                sqlx::query(sqlx::AssertSqlSafe(format!("{insert}(?, ?, ?, ?, ?, ?)")))
                    .bind(row.0)
                    .bind(row.1)
                    .bind(row.2)
                    .bind(row.3)
                    .bind(row.4)
                    .bind(row.5)
                    .execute(&mut connection)
                    .await
                    .expect("insert");
            }
            connection.close().await.expect("close");
        }
    }
}

/// `/api/metrics` reads the analytics views once the tables exist; before, it says they are not there.
async fn check_metrics(dialect: TestDialect) {
    use colloquy_storage::{AnalyticsSettings, ConnectOptions, Database};
    let database = dialect.fresh_database().await.guard();
    let (bodies, letters) = sample();
    store(&database.url, &bodies, &letters).await;
    let server = start(config(&database.url)).await;
    assert_eq!(
        get(&server.url("/api/metrics")).await.json,
        json!({"available": false})
    );
    let storage =
        Database::connect_lazy(&database.url, &ConnectOptions::default()).expect("database");
    storage.migrate_analytics().await.expect("analytics tables");
    let senders = vec!["alice".to_owned(), "bob".to_owned(), "carol".to_owned()];
    storage
        .derive_analytics(&senders, &AnalyticsSettings::default())
        .await
        .expect("derive");
    storage.close().await;
    let metrics = get(&server.url("/api/metrics")).await;
    assert_eq!(metrics.status, 200, "{dialect:?}: {:?}", metrics.json);
    assert_eq!(metrics.json["available"], json!(true), "{dialect:?}");
    assert_eq!(
        metrics.json["senders"],
        json!(3),
        "{dialect:?}: {:?}",
        metrics.json
    );
    let intents = metrics.json["top_intents"].as_array().expect("top intents");
    assert_eq!(
        intents[0],
        json!({"intent": "ask", "count": 15}),
        "{dialect:?}"
    );
    assert!(metrics.json["sessions_per_day"].as_array().is_some());
    assert!(metrics.json["turns_per_session"].as_array().is_some());
    for rate in ["escalation", "abandonment", "containment", "fallback"] {
        let value = &metrics.json["rates"][rate];
        assert!(
            value.is_null() || value.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
            "{dialect:?} {rate}: {value}"
        );
    }
    assert_eq!(
        get(&server.url("/api/server")).await.json["analytics"],
        json!(true)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_every_dialect() {
    for dialect in TestDialect::ALL {
        check_metrics(dialect).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_metrics_are_scraped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A stand-in for the consumer's /metrics: the counter grows by 10 on each scrape.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut total = 100u64;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer).await;
            let body = format!(
                "# TYPE events_stored counter\nevents_stored_total {total}\nconsumer_active 1\n"
            );
            total += 10;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let database = TestDialect::Sqlite.fresh_database().await.guard();
    let (bodies, letters) = sample();
    store(&database.url, &bodies, &letters).await;
    let server = start(ServerConfig {
        consumer_metrics: Some(format!("http://{metrics_addr}/metrics")),
        ..config(&database.url)
    })
    .await;
    let first = get(&server.url("/api/consumer")).await;
    assert_eq!(first.json["available"], json!(true), "{:?}", first.json);
    assert_eq!(first.json["role"], json!("active"));
    assert_eq!(first.json["events_total"], json!(100));
    wait_until(
        "a rate from two scrapes",
        Duration::from_secs(20),
        || async {
            get(&server.url("/api/consumer")).await.json["events_per_second"]
                .as_f64()
                .is_some_and(|rate| rate > 0.0)
        },
    )
    .await;
    assert_eq!(
        get(&server.url("/api/server")).await.json["consumer_metrics"],
        json!(true)
    );
    server.stop().await;
}
