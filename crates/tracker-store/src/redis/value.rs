//! The value Rasa 3.6's `RedisTrackerStore` keeps under a tracker key, and how we read and extend it.
//!
//! Rasa writes `json.dumps(tracker.as_dialogue().as_dict())`: `{"events": [<event>, ...], "name": <sender_id>}`
//! with Python's default separators, each event in the form it publishes (our [`Event::to_rasa_json`]). So the
//! value always ends with `], "name": <sender_id as JSON>}`, and appending events is a splice just before that
//! suffix: what a save sends is the serialisation of the new events only.

use colloquy_events::pyjson::{Style, to_string};
use colloquy_events::{Event, StampedEnvelope};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The two parts of the value around the events: `{"events": [` and `], "name": <sender_id>}`.
pub(crate) const HEAD: &str = r#"{"events": ["#;

/// The end of the value of conversation `sender_id`.
pub(crate) fn suffix(sender_id: &str) -> String {
    format!(
        r#"], "name": {}}}"#,
        to_string(
            &serde_json::Value::String(sender_id.to_owned()),
            Style::Rasa
        )
    )
}

/// The new events as they appear inside the value, separated by `", "`. Each event's text is its Rasa body
/// without the leading `sender_id` (the body was written already to stamp its id, so it is not written again).
pub(crate) fn events_fragment(stamped: &[StampedEnvelope]) -> Result<String> {
    let mut fragment = String::new();
    for (i, event) in stamped.iter().enumerate() {
        if i > 0 {
            fragment.push_str(", ");
        }
        let body = event.envelope.to_rasa_json();
        let head = format!(
            r#"{{"sender_id": {}, "#,
            to_string(
                &serde_json::Value::String(event.envelope.sender_id.clone()),
                Style::Rasa
            )
        );
        match body.strip_prefix(&head) {
            Some(rest) => {
                fragment.push('{');
                fragment.push_str(rest);
            }
            None => fragment.push_str(&event.envelope.event.to_rasa_json()),
        }
    }
    Ok(fragment)
}

/// The whole value of a conversation holding `events`, byte for byte as Rasa writes it.
pub(crate) fn whole_value(sender_id: &str, events: &[Event]) -> Result<String> {
    let mut value = String::from(HEAD);
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            value.push_str(", ");
        }
        value.push_str(&event.to_rasa_json());
    }
    value.push_str(&suffix(sender_id));
    Ok(value)
}

/// Rasa's `Dialogue.as_dict()`: the events, and the name we do not need.
#[derive(Deserialize)]
struct Dialogue {
    events: Vec<serde_json::Value>,
}

/// Every event of the value stored under `key`, or [`Error::NotATracker`] naming the key.
pub(crate) fn parse(key: &str, value: &[u8]) -> Result<Vec<Event>> {
    let not_a_tracker = |reason: String| Error::NotATracker {
        key: key.to_owned(),
        reason,
    };
    let dialogue: Dialogue = serde_json::from_slice(value).map_err(|error| {
        not_a_tracker(format!(
            "not the JSON of a Rasa dialogue (`{{\"events\": [...], \"name\": ...}}`): {error}"
        ))
    })?;
    dialogue
        .events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            Event::from_value(event).map_err(|error| not_a_tracker(format!("event {i}: {error}")))
        })
        .collect()
}

/// Where the latest session of `events` begins, by the rule of Rasa's `RedisTrackerStore.retrieve`
/// (`get_trackers_for_conversation_sessions`): at the last `action_session_start` action, by position, or
/// at 0 when there is none.
pub(crate) fn latest_session_start(events: &[Event]) -> usize {
    events
        .iter()
        .rposition(|event| {
            event.type_name() == "action" && event.action_name() == Some("action_session_start")
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_events::Tracker;

    fn event(json: &str) -> Event {
        Event::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_fragment_is_each_event_as_rasa_writes_it() {
        let mut tracker = Tracker::new("é \"x\"");
        tracker.apply(event(
            r#"{"event": "user", "timestamp": 1.5, "text": "h\u00e9", "metadata": {}}"#,
        ));
        tracker.apply(event(
            r#"{"event": "slot", "timestamp": 2, "name": "n", "value": 1e-05}"#,
        ));
        let stamped = tracker.stamped_since_last_save();
        let expected: Vec<String> = tracker.events().iter().map(|e| e.to_rasa_json()).collect();
        assert_eq!(events_fragment(&stamped).unwrap(), expected.join(", "));
        let whole = whole_value("é \"x\"", tracker.events()).unwrap();
        assert_eq!(
            whole,
            format!(
                r#"{{"events": [{}], "name": "\u00e9 \"x\""}}"#,
                expected.join(", ")
            )
        );
        // Read back, the events are what Rasa would write for them.
        let read: Vec<String> = parse("k", whole.as_bytes())
            .unwrap()
            .iter()
            .map(|e| e.to_rasa_json())
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn what_is_not_a_tracker_is_named() {
        let check = |value: &[u8], needle: &str| {
            let error = parse("tracker:x", value).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("tracker:x") && format!("{error:?}").contains(needle),
                "{error:?}"
            );
        };
        check(b"not json", "not the JSON");
        check(br#"{"name": "x"}"#, "missing field");
        check(
            br#"{"events": [{"no": "event key"}], "name": "x"}"#,
            "event 0",
        );
        assert!(
            parse("k", br#"{"events": [], "name": "x"}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_latest_session_starts_at_the_last_action_session_start() {
        let start = r#"{"event": "action", "timestamp": 9.0, "name": "action_session_start"}"#;
        let events = [
            event(start),
            event(r#"{"event": "session_started", "timestamp": 1.0}"#),
            event(start),
            event(r#"{"event": "session_started", "timestamp": 0.5}"#),
            event(r#"{"event": "user", "timestamp": 3.0, "text": "x"}"#),
        ];
        assert_eq!(latest_session_start(&events), 2);
        assert_eq!(latest_session_start(&events[3..]), 0);
    }
}
