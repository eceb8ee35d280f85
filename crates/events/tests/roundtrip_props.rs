//! Property tests: anything we read (and so anything we can produce) round-trips through both writers, and
//! reading is lossless for every JSON object with a string `event` that is a valid event.

use colloquy_events::{Envelope, Event};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Numbers as JSON text reads them (serde_json keeps the literal): written the way Python writes floats.
        any::<f64>().prop_filter_map("finite", |f| {
            let text = colloquy_events::pyjson::float_repr(f).ok()?;
            serde_json::from_str::<Number>(&text)
                .ok()
                .map(Value::Number)
        }),
        "-?[1-9][0-9]{19,40}"
            .prop_map(|digits| Value::Number(serde_json::from_str(&digits).expect("an integer"))),
        "\\PC{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Objects with a string `event` (known types, legacy excluded, and unknown ones) and keys from Rasa's
/// vocabulary as well as arbitrary ones, in any order.
fn event_object() -> impl Strategy<Value = Value> {
    let types = prop_oneof![
        Just("user"),
        Just("bot"),
        Just("action"),
        Just("slot"),
        Just("reset_slots"),
        Just("restart"),
        Just("session_started"),
        Just("rewind"),
        Just("undo"),
        Just("followup"),
        Just("pause"),
        Just("resume"),
        Just("cancel_reminder"),
        Just("export"),
        Just("agent"),
        Just("active_loop"),
        Just("loop_interrupted"),
        Just("action_execution_rejected"),
        Just("user_featurization"),
        Just("entities"),
        Just("stack"),
        Just("flow_started"),
        Just("x_future"),
    ];
    let keys = prop_oneof![
        Just("timestamp".to_owned()),
        Just("metadata".to_owned()),
        Just("text".to_owned()),
        Just("name".to_owned()),
        Just("value".to_owned()),
        Just("policy".to_owned()),
        Just("confidence".to_owned()),
        Just("action_text".to_owned()),
        Just("input_channel".to_owned()),
        Just("data".to_owned()),
        Just("is_interrupted".to_owned()),
        "[a-z]{1,6}",
    ];
    (
        types,
        prop::collection::vec((keys, json()), 0..6),
        0usize..6,
    )
        .prop_map(|(kind, fields, at)| {
            let mut map = Map::new();
            let at = at.min(fields.len());
            for (i, (k, v)) in fields.into_iter().enumerate() {
                if i == at {
                    map.insert("event".into(), Value::String(kind.into()));
                }
                map.insert(k, v);
            }
            map.entry("event").or_insert(Value::String(kind.into()));
            Value::Object(map)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reading_is_lossless_and_writers_round_trip(input in event_object()) {
        // Invalid events are errors, never panics; valid ones must be lossless.
        if let Ok(event) = Event::from_value(input.clone()) {
            prop_assert_eq!(event.to_value(), input.clone());
            let rasa = event.to_rasa_json();
            let compact = event.to_compact_json();
            prop_assert!(rasa.is_ascii());
            prop_assert_eq!(serde_json::from_str::<Value>(&rasa).unwrap(), input.clone());
            prop_assert_eq!(serde_json::from_str::<Value>(&compact).unwrap(), input.clone());
            let again = Event::from_json(rasa.as_bytes()).unwrap();
            prop_assert_eq!(again.to_rasa_json(), rasa.clone());
            prop_assert_eq!(Event::from_json(compact.as_bytes()).unwrap().to_rasa_json(), rasa);
            prop_assert_eq!(&again, &event);
        }
    }

    #[test]
    fn envelopes_round_trip(input in event_object(), sender in any::<String>()) {
        let Value::Object(mut map) = input else { unreachable!() };
        map.insert("sender_id".into(), Value::String(sender.clone()));
        if let Ok(envelope) = Envelope::from_value(Value::Object(map)) {
            prop_assert_eq!(&envelope.sender_id, &sender);
            let rasa = envelope.to_rasa_json();
            prop_assert!(rasa.starts_with(r#"{"sender_id": "#), "sender_id first");
            let back = Envelope::from_json(rasa.as_bytes()).unwrap();
            prop_assert_eq!(back.to_rasa_json(), rasa);
            let compact = envelope.to_compact_json();
            prop_assert_eq!(Envelope::from_json(compact.as_bytes()).unwrap(), back);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Event::from_json(&bytes);
        let _ = Envelope::from_json(&bytes);
    }
}
