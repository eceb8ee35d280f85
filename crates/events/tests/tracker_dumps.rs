//! Whole Rasa conversations (`fixtures/trackers/*.json`, tracker dumps from Rasa's repository and a Rasa
//! deployment) replayed into a [`Tracker`] and compared with the dump's own state.

use colloquy_events::pyjson::{self, Style};
use colloquy_events::{Event, Tracker};
use serde_json::Value;

/// The value as Python reads it back: numbers compare by value (`0.60` is `0.6`), as they do for Rasa.
fn as_python(value: &Value) -> Value {
    serde_json::from_str(&pyjson::to_string(value, Style::Rasa)).unwrap()
}

fn check(dump_text: &str) {
    let dump: Value = as_python(&serde_json::from_str(dump_text).unwrap());
    let sender = dump["sender_id"].as_str().unwrap();
    let events: Vec<Event> = dump["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Event::from_value(e.clone()).unwrap())
        .collect();
    // Every event writes back to the value it was read from.
    for (event, raw) in events.iter().zip(dump["events"].as_array().unwrap()) {
        assert_eq!(&event.to_value(), raw);
    }
    let tracker = Tracker::restore(sender, 0, events);
    let state = tracker.current_state();
    let keys: Vec<&str> = state
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "sender_id",
            "slots",
            "latest_message",
            "latest_event_time",
            "followup_action",
            "paused",
            "events",
            "latest_input_channel",
            "active_loop",
            "latest_action",
            "latest_action_name"
        ]
    );
    for (key, want) in dump.as_object().unwrap() {
        if key == "slots" {
            // No domain here: only slots set by events are known; the dump lists the domain's slots too.
            for (slot, value) in state["slots"].as_object().unwrap() {
                assert_eq!(Some(value), want.get(slot), "slot {slot}");
            }
            continue;
        }
        assert_eq!(&state[key], want, "{key}");
    }
}

#[test]
fn rasa_moodbot() {
    check(include_str!("fixtures/trackers/rasa_tracker_moodbot.json"));
}

#[test]
fn rasa_webchat_session() {
    check(include_str!("fixtures/trackers/rasa_webchat_session.json"));
}
