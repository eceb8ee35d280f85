//! Every kind of bad input becomes a dead letter with a reason; the consumer stays alive and loses nothing.

use colloquy_testkit::consumer as support;

use colloquy_testkit::rasa_conversation;
use support::{Harness, TestStore};

#[tokio::test]
async fn bad_messages_become_dead_letters_and_the_consumer_carries_on() {
    let mut harness = Harness::new(TestStore::postgres().await).await;
    harness.start().await;
    let deep = format!(
        r#"{{"sender_id": "s", "event": "user", "x": {}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let huge = format!(
        r#"{{"sender_id": "s", "event": "bot", "timestamp": 1.0, "text": "{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"this is not json".to_vec(), "JSON"),
        (
            "invalid UTF-8",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'],
            "UTF-8",
        ),
        (
            "a JSON array",
            br#"[{"sender_id": "s", "event": "user"}]"#.to_vec(),
            "object",
        ),
        ("a JSON string", br#""hello""#.to_vec(), "object"),
        (
            "missing sender_id",
            br#"{"event": "user", "timestamp": 1.0, "text": "hi"}"#.to_vec(),
            "sender_id",
        ),
        (
            "sender_id not a string",
            br#"{"sender_id": 42, "event": "user", "timestamp": 1.0}"#.to_vec(),
            "sender_id",
        ),
        (
            "missing event",
            br#"{"sender_id": "s", "timestamp": 1.0}"#.to_vec(),
            "event",
        ),
        ("empty body", Vec::new(), "empty"),
        ("a 10 MB body", huge.into_bytes(), "limit"),
        ("a deeply nested body", deep.into_bytes(), ""),
    ];
    let bodies: Vec<Vec<u8>> = cases.iter().map(|(_, body, _)| body.clone()).collect();
    harness.publish_like_rasa(&bodies).await;
    harness.wait_for_dead_letters(cases.len() as i64).await;

    // A valid conversation after the bad input is stored: the consumer is alive.
    let good = rasa_conversation("after-bad-input", 2);
    harness.publish_like_rasa(&good).await;
    harness.wait_for_events(good.len() as i64).await;
    assert!(!harness.consumer_finished());

    let letters = harness.database.dead_letters(0, 100, None).await.unwrap();
    assert_eq!(letters.len(), cases.len());
    for ((name, body, reason), letter) in cases.iter().zip(&letters) {
        assert_eq!(&letter.body, body, "{name}: the raw bytes are kept");
        assert_eq!(
            letter.source, harness.queue,
            "{name}: the source queue is recorded"
        );
        assert!(!letter.error.is_empty(), "{name}: a reason is given");
        assert!(
            letter.error.contains(reason),
            "{name}: reason {:?} should mention {reason:?}",
            letter.error
        );
        let properties: serde_json::Value =
            serde_json::from_str(&letter.properties).expect("properties are JSON");
        assert!(properties.is_object(), "{name}: properties kept");
    }
    let summary = harness.stop().await;
    assert_eq!(summary.dead_letters, cases.len() as u64);
    harness.cleanup().await;
}
