//! The pages tested as a person uses them: a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` over WebDriver) against the server started in-process on a fresh database of each dialect.
//!
//! Each test seeds its own database with the storage layer (ordinary conversations, hostile content, one
//! conversation of 5,000 events, dead letters, the analytics tables), starts `colloquy_server::Server` with
//! an auth token and a RabbitMQ queue of its own for requeue, then opens the inbox, filters, reads
//! conversations, pages through the 5,000 events, requeues a dead letter (and finds it on the queue), and
//! looks at the dashboard. Screenshots go to `target/browser-screenshots/`. Everything a test creates (the
//! database, the queue and exchange, chromedriver and its browser) is removed when it ends, also on failure.
//!
//! Chromium and chromedriver must be installed (`cargo xtask ci` installs them when missing; by hand:
//! `apt-get install chromium chromium-driver`): without them the tests fail saying so, they never skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use colloquy_events::{Envelope, EventId};
use colloquy_server::{Server, ServerConfig};
use colloquy_storage::{
    AnalyticsSettings, ConnectOptions, Database, DeadLetterRow, EventRow, Schema,
};
use colloquy_testkit::broker::TopologyGuard;
use colloquy_testkit::{TestDialect, unique_name, wait_until};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often the cleanup asks whether chromedriver's process group has exited (bounded by a deadline).
const EXIT_POLL: Duration = Duration::from_millis(50);

/// How long any one thing a person would wait for may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(90);
/// The token the server is started with.
const TOKEN: &str = "browser-test-token";
/// The long conversation's length.
const LONG_EVENTS: usize = 5000;
/// Small conversations besides the named ones (more than one inbox page of 50).
const GUESTS: usize = 70;
/// A user message that would run script, inject markup, colour a terminal and reverse text if it were
/// rendered as anything but text.
const HOSTILE: &str = "<script>window.__pwned = 1; alert(1)</script><img src=x onerror=\"window.__pwned = 2\">\
<b>bold?</b> \u{1b}[31mred\u{1b}[0m \u{202e}gnp.exe \u{200f}שלום";

/// A conversation id that is markup, and holds characters a URL path must escape.
const HOSTILE_SENDER: &str = "<img src=x onerror=\"window.__pwned = 5\">ü/x?y#z %";

/// `text` percent-encoded as one URL path segment (as the pages' `encodeURIComponent` does).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------------------------------------

/// The rows of one conversation from Rasa-shaped bodies (without `sender_id`), stamped in order.
fn rows(sender: &str, bodies: Vec<Value>) -> Vec<EventRow> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(seq, mut body)| {
            body["sender_id"] = json!(sender);
            let envelope = Envelope::from_json(body.to_string().as_bytes()).expect("a Rasa body");
            EventRow::new(
                sender,
                &envelope.event,
                &EventId::from(format!("{sender}/{seq}")),
            )
            .expect("a storable row")
        })
        .collect()
}

fn user(t: f64, text: &str, intent: &str, confidence: f64, channel: &str) -> Value {
    json!({"event": "user", "timestamp": t, "text": text, "input_channel": channel, "message_id": format!("m{t}"),
           "parse_data": {"intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text}})
}

fn bot(t: f64, text: &str, utter: &str) -> Value {
    json!({"event": "bot", "timestamp": t, "text": text, "data": {"buttons": null}, "metadata": {"utter_action": utter}})
}

fn action(t: f64, name: &str, policy: Option<&str>, confidence: f64) -> Value {
    json!({"event": "action", "timestamp": t, "name": name, "policy": policy, "confidence": confidence})
}

fn session_start(t: f64) -> Vec<Value> {
    vec![
        action(t, "action_session_start", None, 1.0),
        json!({"event": "session_started", "timestamp": t + 0.01}),
        action(t + 0.02, "action_listen", None, 1.0),
    ]
}

/// A restaurant booking with a form, slots, a restart, a rewind and an undo.
fn alice(t: f64) -> Vec<Value> {
    let mut events = session_start(t);
    events.extend([
        user(t + 5.0, "Hi! I'd like a table for two tonight", "request_restaurant", 0.97, "rest"),
        action(t + 5.1, "restaurant_form", Some("RulePolicy"), 1.0),
        json!({"event": "active_loop", "timestamp": t + 5.2, "name": "restaurant_form"}),
        json!({"event": "slot", "timestamp": t + 5.3, "name": "num_people", "value": 2}),
        json!({"event": "slot", "timestamp": t + 5.4, "name": "requested_slot", "value": "cuisine"}),
        bot(t + 5.5, "What cuisine would you like?", "utter_ask_cuisine"),
        action(t + 5.6, "action_listen", Some("RulePolicy"), 1.0),
        user(t + 12.0, "hmm, something spicy maybe", "inform", 0.42, "rest"),
        json!({"event": "rewind", "timestamp": t + 12.1}),
        user(t + 20.0, "Indian food please", "inform", 0.91, "rest"),
        action(t + 20.1, "restaurant_form", Some("RulePolicy"), 1.0),
        json!({"event": "slot", "timestamp": t + 20.2, "name": "cuisine", "value": "indian"}),
        json!({"event": "active_loop", "timestamp": t + 20.3, "name": null}),
        action(t + 20.4, "utter_submit", Some("TEDPolicy"), 0.88),
        bot(t + 20.5, "All done! A table for 2, Indian food. 🍛", "utter_submit"),
        json!({"event": "undo", "timestamp": t + 21.0}),
        action(t + 21.1, "action_listen", Some("TEDPolicy"), 0.99),
        user(t + 40.0, "/restart", "restart", 1.0, "rest"),
        json!({"event": "restart", "timestamp": t + 40.1}),
    ]);
    events
}

/// A support conversation on another channel where the bot falls back.
fn bob(t: f64) -> Vec<Value> {
    let mut events = session_start(t);
    events.extend([
        user(
            t + 3.0,
            "my parcel never arrived and nobody answers",
            "nlu_fallback",
            0.31,
            "telegram",
        ),
        action(t + 3.1, "action_default_fallback", Some("RulePolicy"), 0.3),
        bot(
            t + 3.2,
            "Sorry, I didn't get that. Could you rephrase?",
            "utter_default",
        ),
        action(t + 3.3, "action_listen", Some("RulePolicy"), 1.0),
    ]);
    events
}

/// Hostile content: markup, ANSI escapes, bidi overrides, and a 1 MB message.
fn hostile(t: f64, huge_chars: usize) -> Vec<Value> {
    let mut events = session_start(t);
    let huge = format!("{}{}", "<i>long</i> ".repeat(10), "x".repeat(huge_chars));
    events.extend([
        user(t + 1.0, HOSTILE, "greet", 0.9, "rest"),
        bot(t + 1.5, "<img src=x onerror=\"window.__pwned = 3\">I answer <b>in markup</b>", "utter_greet"),
        json!({"event": "slot", "timestamp": t + 1.6, "name": "<script>", "value": "<img src=x onerror=\"window.__pwned = 4\">"}),
        user(t + 2.0, &huge, "chitchat", 0.8, "rest"),
        bot(t + 2.5, "That was long.", "utter_long"),
    ]);
    events
}

/// 5,000 events: turns of user, action, bot and listen, one session a day's worth apart every 500 events.
fn long(t: f64) -> Vec<Value> {
    (0..LONG_EVENTS)
        .map(|i| {
            let at = t + i as f64;
            match i % 4 {
                0 => user(
                    at,
                    &format!("message number {i}"),
                    "ask_question",
                    0.5 + (i % 50) as f64 / 100.0,
                    "rest",
                ),
                1 => action(at, "utter_answer", Some("TEDPolicy"), 0.95),
                2 => bot(at, &format!("answer number {i}"), "utter_answer"),
                _ => action(at, "action_listen", Some("TEDPolicy"), 0.99),
            }
        })
        .collect()
}

/// A short conversation: a greeting and an answer, on one of three channels.
fn guest(t: f64, n: usize) -> Vec<Value> {
    let channels = ["rest", "socketio", "slack"];
    let intents = ["greet", "ask_hours", "goodbye", "thank_you", "ask_price"];
    let channel = channels[n % channels.len()];
    let intent = intents[n % intents.len()];
    let mut events = session_start(t);
    events.extend([
        user(
            t + 2.0,
            &format!("hello from guest {n}"),
            intent,
            0.6 + (n % 4) as f64 / 10.0,
            channel,
        ),
        action(t + 2.1, &format!("utter_{intent}"), Some("TEDPolicy"), 0.9),
        bot(
            t + 2.2,
            &format!("Answer for {intent}"),
            &format!("utter_{intent}"),
        ),
        action(t + 2.3, "action_listen", Some("TEDPolicy"), 0.99),
    ]);
    if n.is_multiple_of(3) {
        events.extend([
            user(t + 30.0, "and one more thing", "ask_price", 0.75, channel),
            bot(t + 30.5, "Sure, what is it?", "utter_ask_more"),
        ]);
    }
    events
}

/// What the test seeded: the conversation ids and the dead letter ids.
struct Seeded {
    conversations: usize,
    requeue_id: i64,
    requeue_body: Vec<u8>,
    hostile_letter_id: i64,
}

async fn seed(database: &Database, queue: &str, huge_chars: usize) -> Seeded {
    database.migrate(Schema::Events).await.expect("migrate");
    database
        .migrate_analytics()
        .await
        .expect("analytics tables");
    let end = now();
    let day = 86_400.0;
    let mut conversations: Vec<(String, Vec<Value>)> = (0..GUESTS)
        .map(|n| {
            (
                format!("guest-{n:03}"),
                guest(end - (n as f64 / GUESTS as f64) * 14.0 * day - 7200.0, n),
            )
        })
        .collect();
    conversations.push(("long".to_owned(), long(end - 5.0 * day)));
    conversations.push((HOSTILE_SENDER.to_owned(), hostile(end - 1800.0, huge_chars)));
    conversations.push(("bob".to_owned(), bob(end - 1200.0)));
    conversations.push(("alice".to_owned(), alice(end - 600.0)));
    for (sender, bodies) in &conversations {
        database
            .store_batch(&rows(sender, bodies.clone()), &[])
            .await
            .expect("store a conversation");
    }
    let senders: Vec<String> = conversations
        .iter()
        .map(|(sender, _)| sender.clone())
        .collect();
    database
        .derive_analytics(&senders, &AnalyticsSettings::default())
        .await
        .expect("derive analytics");

    let properties = json!({"content_type": "application/json", "delivery_mode": 2, "headers": {"x-test": "requeue"}});
    let requeue_body =
        json!({"sender_id": "alice", "event": "bot", "timestamp": end, "text": "requeued"})
            .to_string()
            .into_bytes();
    let letter = |body: Vec<u8>, error: &str| DeadLetterRow {
        source: queue.to_owned(),
        body,
        properties: properties.to_string(),
        error: error.to_owned(),
    };
    let mut hostile_body = HOSTILE.as_bytes().to_vec();
    hostile_body.extend_from_slice(b" \xff\xfe not UTF-8");
    let first = database
        .last_dead_letter_id()
        .await
        .expect("last dead letter id");
    database
        .store_batch(
            &[],
            &[
                letter(
                    hostile_body,
                    "body is not JSON: expected value at line 1 column 1 <script>alert(2)</script>",
                ),
                letter(
                    requeue_body.clone(),
                    "the database refused the row: value too long (simulated)",
                ),
            ],
        )
        .await
        .expect("store dead letters");
    Seeded {
        conversations: conversations.len(),
        hostile_letter_id: first + 1,
        requeue_id: first + 2,
        requeue_body,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------------------

/// chromedriver (in a process group of its own, with the Chromium it starts), ended when dropped.
struct Driver {
    child: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group holds chromedriver and the browser it started: end them all, wait (bounded) until the
        // group is gone so that no browser still writes to its profile, then reap our child and remove the
        // profile.
        let group = format!("-{}", self.child.id());
        let signal = |name: &str| {
            Command::new("kill")
                .args([name, "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        signal("-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while signal("-0") && std::time::Instant::now() < deadline {
            let _ = self.child.try_wait();
            std::thread::sleep(EXIT_POLL);
        }
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Starts chromedriver and opens a headless Chromium session through it.
async fn browser() -> (Driver, Client) {
    assert!(
        installed("chromium") && installed("chromedriver"),
        "the browser tests need Debian's chromium and chromedriver: `apt-get install chromium chromium-driver` \
         (`cargo xtask ci` installs them when missing)"
    );
    let port = colloquy_testkit::free_port();
    let profile = std::env::temp_dir().join(unique_name("colloquy-chromium"));
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting chromedriver")
    };
    let driver = Driver { child, profile };
    let url = format!("http://127.0.0.1:{port}");
    wait_until("chromedriver to answer", PATIENCE, move || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--hide-scrollbars", "--force-device-scale-factor=1",
                     "--no-first-run", "--disable-extensions", "--lang=en-US",
                     format!("--user-data-dir={}", driver.profile.display())],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a WebDriver session with headless Chromium");
    (driver, client)
}

/// Evaluates a JS expression in the page.
async fn js(client: &Client, expression: &str) -> Value {
    client
        .execute(&format!("return ({expression});"), vec![])
        .await
        .unwrap_or_else(|error| panic!("evaluating `{expression}`: {error}"))
}

/// Waits until the JS expression is true in the page (a person waiting for the page to show something).
async fn wait_for(client: &Client, what: &str, expression: &str) {
    wait_until(what, PATIENCE, move || async move {
        matches!(
            client
                .execute(&format!("return Boolean({expression});"), vec![])
                .await,
            Ok(Value::Bool(true))
        )
    })
    .await;
}

/// Scrolls to the end of the page again and again, as a person reading on would, until the JS expression
/// is true.
async fn scroll_until(client: &Client, what: &str, expression: &str) {
    wait_until(what, PATIENCE, move || async move {
        let _ = client
            .execute("window.scrollTo(0, document.body.scrollHeight);", vec![])
            .await;
        matches!(
            client
                .execute(&format!("return Boolean({expression});"), vec![])
                .await,
            Ok(Value::Bool(true))
        )
    })
    .await;
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("finding {css}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("finding {css}: {error}"))
        .text()
        .await
        .unwrap_or_else(|error| panic!("reading {css}: {error}"))
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-screenshots")
}

/// Saves a screenshot of the window as `target/browser-screenshots/{name}.png`. With
/// `COLLOQUY_UPDATE_SCREENSHOTS=1`, the PostgreSQL run also writes the README's pictures (`docs/screenshots/`).
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    std::fs::write(dir.join(format!("{name}.png")), &png).expect("writing a screenshot");
    let for_readme = ["inbox", "conversation", "dashboard", "dead-letters"]
        .iter()
        .find(|page| name == format!("postgres-{page}"));
    if let Some(page) = for_readme
        && std::env::var_os("COLLOQUY_UPDATE_SCREENSHOTS").is_some_and(|value| value == "1")
    {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        std::fs::write(docs.join(format!("{page}.png")), &png)
            .expect("writing a README screenshot");
    }
}

/// Checks that nothing a hostile message holds ran or became markup.
async fn assert_inert(client: &Client, page: &str) {
    assert_eq!(
        js(client, "typeof window.__pwned").await,
        json!("undefined"),
        "script ran on {page}"
    );
    assert_eq!(
        js(
            client,
            "document.querySelectorAll('main img, main script, main b, main i').length"
        )
        .await,
        json!(0),
        "markup from user content became elements on {page}"
    );
    assert!(
        client.get_alert_text().await.is_err(),
        "a dialog opened on {page}"
    );
}

/// The response headers of one GET (HTTP/1.1 over a plain socket: the test needs only the head).
async fn response_head(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the server");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send a request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read the response");
    let text = String::from_utf8_lossy(&response);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------------------------

async fn a_person_reads_conversations(dialect: TestDialect) {
    let label = format!("{dialect:?}").to_lowercase();
    let database_guard = dialect.fresh_database().await.guard();
    let topology = TopologyGuard {
        exchange: unique_name("browser-exchange"),
        queue: unique_name("browser-queue"),
    };
    let (connection, channel) = colloquy_testkit::broker::raw_channel().await;
    channel
        .queue_declare(
            topology.queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare the test queue");

    let database = Database::connect(&database_guard.url, &ConnectOptions::default(), 3)
        .await
        .expect("connect");
    // MySQL keeps an event in Rasa's TEXT column (64 KB, its text twice in the JSON): a long message, not 1 MB.
    let huge_chars = if dialect == TestDialect::MySql {
        30_000
    } else {
        1_000_000
    };
    let seeded = seed(&database, &topology.queue, huge_chars).await;

    let server = start_server(&database_guard.url, &topology).await;
    let base = format!("http://{}", server.address);
    let (_driver, client) = browser().await;

    // The inbox: newest activity first, one page of 50, more as the list scrolls.
    client
        .goto(&format!("{base}/?token={TOKEN}"))
        .await
        .expect("open the inbox");
    wait_for(
        &client,
        "the inbox's first page",
        "document.querySelectorAll('#conversations li').length >= 50",
    )
    .await;
    assert_eq!(
        text_of(&client, "#count").await,
        format!("{} conversations", seeded.conversations),
        "the count of matches"
    );
    assert_eq!(
        js(&client, "new URL(location.href).searchParams.has('token')").await,
        json!(false),
        "the token leaves the address bar"
    );
    assert_eq!(
        text_of(&client, "#conversations li:first-child .sender").await,
        "alice",
        "newest first"
    );
    screenshot(&client, &format!("{label}-inbox")).await;
    scroll_until(
        &client,
        "the rest of the inbox to load as it scrolls",
        &format!(
            "document.querySelectorAll('#conversations li').length === {}",
            seeded.conversations
        ),
    )
    .await;
    assert_inert(&client, "the inbox").await;

    // Filter by channel: only bob wrote on telegram; the filter lands in the address.
    client
        .find(Locator::Css("input[name=channel]"))
        .await
        .expect("channel filter")
        .send_keys("telegram")
        .await
        .expect("type");
    click(&client, "form.filters button[type=submit]").await;
    wait_for(
        &client,
        "the filtered inbox",
        "document.querySelector('#count').textContent === '1 conversation'",
    )
    .await;
    assert_eq!(text_of(&client, "#conversations li .sender").await, "bob");
    assert!(
        client
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains("channel=telegram")
    );
    screenshot(&client, &format!("{label}-inbox-filtered")).await;

    // A conversation, from the inbox: bubbles with intent and confidence, actions with their policy, slots,
    // the form starting and ending, the session, the rewind, undo and restart marked; its dead letter linked.
    click(&client, "form.filters button[type=reset]").await;
    wait_for(
        &client,
        "the unfiltered inbox",
        &format!(
            "document.querySelector('#count').textContent === '{} conversations'",
            seeded.conversations
        ),
    )
    .await;
    click(&client, "#conversations li:first-child a").await;
    wait_for(
        &client,
        "alice's transcript",
        "document.querySelector('#status').textContent === 'End of the conversation.'",
    )
    .await;
    let transcript = text_of(&client, "#transcript").await;
    for expected in [
        "Hi! I'd like a table for two tonight",
        "request_restaurant",
        "0.97",
        "restaurant_form",
        "RulePolicy",
        "Form started",
        "Form ended",
        "num_people",
        "Session started",
        "Rewound",
        "Undo",
        "Conversation restarted",
        "All done! A table for 2, Indian food. 🍛",
        "TEDPolicy",
        "0.88",
    ] {
        assert!(
            transcript.contains(expected),
            "the transcript shows {expected:?}:\n{transcript}"
        );
    }
    assert_eq!(
        js(
            &client,
            "document.querySelectorAll('.ev.user.low-confidence').length"
        )
        .await,
        json!(1),
        "the 0.42 message is marked"
    );
    wait_for(
        &client,
        "the link to alice's dead letter",
        "document.querySelector('a.dead-letter-link') !== null",
    )
    .await;
    click(&client, ".ev.user .raw-toggle").await;
    wait_for(
        &client,
        "the raw JSON of an event",
        "(document.querySelector('pre.raw') || {}).textContent?.includes('\"parse_data\"')",
    )
    .await;
    click(&client, ".ev.user .raw-toggle").await;
    screenshot(&client, &format!("{label}-conversation")).await;

    // Hostile content is text: nothing runs, no element is injected, the 1 MB message is clipped and expands.
    client
        .goto(&format!(
            "{base}/conversations/{}",
            path_segment(HOSTILE_SENDER)
        ))
        .await
        .expect("open the hostile conversation");
    wait_for(
        &client,
        "the hostile transcript",
        "document.querySelector('#status').textContent === 'End of the conversation.'",
    )
    .await;
    assert!(
        text_of(&client, "#title")
            .await
            .contains("<img src=x onerror="),
        "the conversation id is shown as text"
    );
    let shown = text_of(&client, "#transcript").await;
    assert!(
        shown.contains("<script>window.__pwned = 1; alert(1)</script>"),
        "markup shown as text: {shown}"
    );
    assert!(
        shown.contains("<b>in markup</b>"),
        "the bot's markup shown as text"
    );
    assert_eq!(
        js(
            &client,
            "document.querySelectorAll('#transcript .ctl').length >= 3"
        )
        .await,
        json!(true),
        "ESC and U+202E shown as markers"
    );
    assert_inert(&client, "the hostile conversation").await;
    assert_eq!(
        js(
            &client,
            "document.querySelector('#transcript').textContent.length < 20000"
        )
        .await,
        json!(true),
        "the 1 MB message is clipped"
    );
    screenshot(&client, &format!("{label}-hostile")).await;
    click(&client, "#transcript .expander").await;
    wait_for(
        &client,
        "the whole 1 MB message",
        &format!("document.querySelector('#transcript').textContent.length > {huge_chars}"),
    )
    .await;
    assert_eq!(js(&client, "document.querySelector('#transcript .ev:last-child') !== null && document.body.scrollHeight > 0").await, json!(true));
    assert_inert(&client, "the expanded hostile message").await;

    // 5,000 events: the first screen comes with the first page; the rest loads as a person scrolls.
    client
        .goto(&format!("{base}/conversations/long"))
        .await
        .expect("open the long conversation");
    wait_for(
        &client,
        "the first page of the long conversation",
        "document.querySelectorAll('#transcript .ev[data-id]').length >= 500",
    )
    .await;
    let first_screen = js(
        &client,
        "document.querySelectorAll('#transcript .ev[data-id]').length",
    )
    .await;
    assert!(
        first_screen
            .as_u64()
            .is_some_and(|n| n < LONG_EVENTS as u64),
        "lazy: {first_screen} events at first"
    );
    scroll_until(
        &client,
        "all 5,000 events as the transcript scrolls",
        &format!("document.querySelectorAll('#transcript .ev[data-id]').length === {LONG_EVENTS}"),
    )
    .await;
    assert_eq!(
        text_of(&client, "#facts").await.split(" · ").next(),
        Some("5,000 of 5,000 events shown")
    );
    screenshot(&client, &format!("{label}-long-end")).await;

    // Dead letters: the reason, the body as text, and requeue after a confirmation; the body reaches the queue.
    client
        .goto(&format!("{base}/dead-letters?id={}", seeded.requeue_id))
        .await
        .expect("open dead letters");
    wait_for(
        &client,
        "the dead letters",
        "document.querySelectorAll('.letter').length === 2",
    )
    .await;
    click(
        &client,
        &format!("#letter-{} .show-body", seeded.hostile_letter_id),
    )
    .await;
    wait_for(&client, "the hostile body", &format!("(document.querySelector('#letter-{} pre.body') || {{}}).textContent?.includes('<script>')", seeded.hostile_letter_id)).await;
    assert_inert(&client, "the dead letters").await;
    screenshot(&client, &format!("{label}-dead-letters")).await;
    click(&client, &format!("#letter-{} .requeue", seeded.requeue_id)).await;
    wait_for(
        &client,
        "the confirmation step",
        "document.querySelector('.confirm-requeue') !== null",
    )
    .await;
    assert_eq!(
        colloquy_testkit::broker::queue_len(&channel, &topology.queue).await,
        0,
        "nothing is requeued before the confirmation"
    );
    screenshot(&client, &format!("{label}-dead-letters-confirm")).await;
    click(&client, ".confirm-requeue").await;
    wait_for(
        &client,
        "the requeue to be reported",
        &format!(
            "document.querySelector('#letter-{} .ok-notice') !== null",
            seeded.requeue_id
        ),
    )
    .await;
    let delivered = channel
        .basic_get(
            topology.queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
        .expect("the requeued message on the queue");
    assert_eq!(
        delivered.delivery.data, seeded.requeue_body,
        "the raw body is published again"
    );

    // The dashboard draws its charts from the analytics tables.
    client
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("open the dashboard");
    wait_for(
        &client,
        "the dashboard's charts",
        "document.querySelectorAll('svg.chart rect.bar').length >= 10",
    )
    .await;
    let dashboard = text_of(&client, "#content").await;
    for expected in [
        "Sessions over time",
        "Sessions by channel",
        "Top intents",
        "Turns per session",
        "Containment",
        "Escalation",
        "Abandonment",
        "Fallback",
    ] {
        assert!(
            dashboard.contains(expected),
            "the dashboard shows {expected}:\n{dashboard}"
        );
    }
    wait_for(
        &client,
        "the consumer panel",
        "document.querySelector('#live').textContent.includes('--consumer-metrics')",
    )
    .await;
    screenshot(&client, &format!("{label}-dashboard")).await;

    // The headers that make all of the above hold even if a page had a flaw.
    let hostile_page = format!("/conversations/{}", path_segment(HOSTILE_SENDER));
    for path in [
        "/",
        hostile_page.as_str(),
        "/dashboard",
        "/dead-letters",
        "/assets/inbox.js",
    ] {
        let head = response_head(server.address, path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{path}: {head}"
        );
        assert!(!head.contains("unsafe-inline"), "{path}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
    }

    client.close().await.expect("close the browser session");
    let _ = connection.close(200, "OK".into()).await;
    server.stop().await;
    database.close().await;
}

/// Without analytics tables the dashboard says so, and how to get them.
async fn dashboard_without_analytics(dialect: TestDialect) {
    let database_guard = dialect.fresh_database().await.guard();
    let database = Database::connect(&database_guard.url, &ConnectOptions::default(), 3)
        .await
        .expect("connect");
    database.migrate(Schema::Events).await.expect("migrate");
    database
        .store_batch(&rows("carol", bob(now() - 60.0)), &[])
        .await
        .expect("store");
    let topology = TopologyGuard {
        exchange: unique_name("browser-exchange"),
        queue: unique_name("browser-queue"),
    };
    let server = start_server(&database_guard.url, &topology).await;
    let (_driver, client) = browser().await;
    client
        .goto(&format!(
            "http://{}/dashboard?token={TOKEN}",
            server.address
        ))
        .await
        .expect("open the dashboard");
    wait_for(
        &client,
        "the message about missing analytics",
        "document.querySelector('#no-analytics') !== null",
    )
    .await;
    assert!(
        text_of(&client, "#no-analytics")
            .await
            .contains("colloquy analytics rebuild")
    );
    screenshot(
        &client,
        &format!(
            "{}-dashboard-no-analytics",
            format!("{dialect:?}").to_lowercase()
        ),
    )
    .await;
    client.close().await.expect("close the browser session");
    server.stop().await;
    database.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_person_reads_conversations() {
    a_person_reads_conversations(TestDialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_person_reads_conversations() {
    a_person_reads_conversations(TestDialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_person_reads_conversations() {
    a_person_reads_conversations(TestDialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dashboard_without_analytics() {
    dashboard_without_analytics(TestDialect::Sqlite).await;
}

// ---------------------------------------------------------------------------------------------------------
// The server, in process
// ---------------------------------------------------------------------------------------------------------

/// The server running on a task, and how to stop it.
struct Running {
    address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds the server on a free loopback port with the test's token and broker (requeue publishes to the test's
/// exchange, with the dead letter's source queue — the test's queue — bound to it), and runs it on a task.
async fn start_server(database_url: &str, topology: &TopologyGuard) -> Running {
    let mut config = ServerConfig::new(database_url);
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.auth_token = Some(TOKEN.to_owned());
    config.broker = Some(
        colloquy_testkit::broker::config(
            &topology.exchange,
            &topology.queue,
            &unique_name("browser-serve"),
        )
        .await,
    );
    let server = Server::bind(config).await.expect("bind the server");
    let address = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs until stopped");
    });
    Running {
        address,
        stop,
        task,
    }
}
