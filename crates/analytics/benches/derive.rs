//! Derivation throughput: events per second through `derive_conversation` (rows for every table).
//!
//! `cargo bench -p colloquy-analytics --bench derive`; the time per million events is
//! 1e6 / (elements per second). Baseline in the same run: reading the same events from their JSON.

use colloquy_analytics::{Settings, derive_conversation};
use colloquy_events::{Event, EventKind, Intent};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A realistic conversation of `turns` turns: session start, then per turn a user message with intent
/// and channel, an action, a slot, a bot message, action_listen.
fn conversation(turns: usize) -> Vec<Event> {
    let mut events = vec![
        Event::new(EventKind::action("action_session_start")),
        Event::new(EventKind::SessionStarted),
        Event::new(EventKind::action("action_listen")),
    ];
    for turn in 0..turns {
        let mut user = EventKind::user(format!("message number {turn}"));
        if let EventKind::User(u) = &mut user {
            u.input_channel = Some("rest".into());
            u.parse_data
                .as_mut()
                .expect("user() sets parse_data")
                .intent = Some(Intent::new("inform", serde_json::Number::from_f64(0.93)));
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert("model_id".into(), "5e3f9a".into());
        events.push(Event::new(user).with_metadata(metadata.clone()));
        events.push(Event::new(EventKind::action("action_search")).with_metadata(metadata.clone()));
        events.push(Event::new(EventKind::slot("cuisine", "indian")));
        let mut bot_metadata = metadata.clone();
        bot_metadata.insert("utter_action".into(), "utter_results".into());
        events.push(Event::new(EventKind::bot("Here you go")).with_metadata(bot_metadata));
        events.push(Event::new(EventKind::action("action_listen")).with_metadata(metadata));
    }
    events
}

fn derive(c: &mut Criterion) {
    let settings = Settings {
        environment: Some("production".into()),
    };
    let events = conversation(200);
    let stored: Vec<String> = events.iter().map(|e| e.to_rasa_json()).collect();
    let mut group = c.benchmark_group("derive");
    group.throughput(Throughput::Elements(events.len() as u64));
    // Baseline: reading the same events from their stored JSON (what a rebuild does before deriving).
    group.bench_function("baseline_read_1003_events", |b| {
        b.iter(|| {
            stored
                .iter()
                .map(|json| Event::from_json(json.as_bytes()).expect("valid event"))
                .collect::<Vec<Event>>()
        })
    });
    group.bench_function("conversation_of_1003_events", |b| {
        b.iter(|| derive_conversation(&settings, "bench-sender", &events))
    });
    group.finish();
}

criterion_group!(benches, derive);
criterion_main!(benches);
