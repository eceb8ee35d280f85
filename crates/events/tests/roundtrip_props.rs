//! Property tests. Valid events (generated with each type's keys holding values of the right JSON type, in any
//! order, among unknown keys) must be read, and then:
//! - the compact form is lossless: the same keys in the same order with the same values;
//! - the Rasa form is Rasa's fixed point: read back, it is written again byte for byte, by both writers;
//! - unknown keys survive the Rasa form, in the order read.
//!
//! Arbitrary objects with a string `event` are read or refused with an error (never a panic), and whatever is
//! read is lossless in the compact form.

use colloquy_events::pyjson::{self, Style};
use colloquy_events::{Envelope, Event};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Numbers as JSON text reads them (serde_json keeps the literal), written the way Python writes floats.
        any::<f64>().prop_filter_map("finite", |f| {
            let text = pyjson::float_repr(f).ok()?;
            serde_json::from_str::<Number>(&text)
                .ok()
                .map(Value::Number)
        }),
        "-?[1-9][0-9]{19,40}"
            .prop_map(|digits| Value::Number(serde_json::from_str(&digits).expect("an integer"))),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,12}", any::<String>()]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
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

fn or_null<S: Strategy<Value = Value> + 'static>(s: S) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 3 => s].boxed()
}

fn opt_string() -> BoxedStrategy<Value> {
    or_null(string().prop_map(Value::String))
}

fn opt_number() -> BoxedStrategy<Value> {
    or_null(number())
}

fn object() -> BoxedStrategy<Value> {
    prop::collection::vec(("[a-z_]{1,8}", json()), 0..4)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
        .boxed()
}

/// Unknown keys (never one a record knows: they start with `x_`).
fn unknown_keys() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("x_[a-z]{1,6}", json()), 0..3)
}

/// An object of some of `fields` (each with a valid value), the `required` ones always, plus unknown keys,
/// in any order.
fn record(
    fields: Vec<(&'static str, BoxedStrategy<Value>)>,
    required: Vec<&'static str>,
) -> BoxedStrategy<Vec<(String, Value)>> {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| {
            let keep = if required.contains(&key) {
                Just(true).boxed()
            } else {
                any::<bool>().boxed()
            };
            (keep, value).prop_map(move |(keep, value)| keep.then(|| (key.to_owned(), value)))
        })
        .collect();
    (fields, unknown_keys())
        .prop_map(|(fields, unknown)| {
            fields
                .into_iter()
                .flatten()
                .chain(unknown)
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
        .boxed()
}

fn as_object(entries: Vec<(String, Value)>) -> Value {
    Value::Object(entries.into_iter().collect())
}

fn intent() -> BoxedStrategy<Value> {
    record(
        vec![
            ("name", opt_string()),
            ("confidence", opt_number()),
            ("full_retrieval_intent_name", opt_string()),
        ],
        vec![],
    )
    .prop_map(as_object)
    .boxed()
}

fn entity() -> BoxedStrategy<Value> {
    record(
        vec![
            ("entity", opt_string()),
            ("start", opt_number()),
            ("end", opt_number()),
            ("confidence_entity", opt_number()),
            ("role", opt_string()),
            ("group", opt_string()),
            ("value", json().boxed()),
            ("extractor", opt_string()),
        ],
        vec![],
    )
    .prop_map(as_object)
    .boxed()
}

fn list_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..3)
        .prop_map(Value::Array)
        .boxed()
}

fn parse_data() -> BoxedStrategy<Value> {
    record(
        vec![
            ("intent", or_null(intent())),
            ("entities", or_null(list_of(entity()))),
            ("text", opt_string()),
            ("message_id", opt_string()),
            ("metadata", or_null(object())),
            ("intent_ranking", or_null(list_of(intent()))),
        ],
        vec![],
    )
    .prop_map(as_object)
    .boxed()
}

fn bot_data() -> BoxedStrategy<Value> {
    let button = record(
        vec![("title", opt_string()), ("payload", opt_string())],
        vec![],
    )
    .prop_map(as_object)
    .boxed();
    record(
        vec![
            ("elements", json().boxed()),
            ("quick_replies", json().boxed()),
            ("buttons", or_null(list_of(button))),
            ("attachment", json().boxed()),
            ("image", json().boxed()),
            ("custom", json().boxed()),
        ],
        vec![],
    )
    .prop_map(as_object)
    .boxed()
}

fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}

/// An event type, its own keys with a strategy for each, and the keys it cannot do without.
type TypedEvent = (
    &'static str,
    Vec<(&'static str, BoxedStrategy<Value>)>,
    &'static [&'static str],
);

/// A valid event of every type Rasa 3.6 knows (legacy aliases aside) and of unknown types, its keys in any order.
fn valid_event() -> impl Strategy<Value = Value> {
    let string = || string().prop_map(Value::String).boxed();
    let date_time = prop_oneof![
        Just("2024-05-01T10:00:00+02:00"),
        Just("2024-05-01T10:00:00.123456"),
        Just("2024-05-01 10:00Z"),
    ]
    .prop_map(Value::from)
    .boxed();
    let typed: Vec<TypedEvent> = vec![
        (
            "user",
            vec![
                ("text", opt_string()),
                ("parse_data", or_null(parse_data())),
                ("input_channel", opt_string()),
                ("message_id", opt_string()),
            ],
            &[],
        ),
        (
            "bot",
            vec![("text", opt_string()), ("data", or_null(bot_data()))],
            &[],
        ),
        (
            "action",
            vec![
                ("name", string()),
                ("policy", opt_string()),
                ("confidence", opt_number()),
                ("action_text", opt_string()),
                ("hide_rule_turn", boolean()),
            ],
            &["name"],
        ),
        (
            "slot",
            vec![("name", string()), ("value", json().boxed())],
            &["name"],
        ),
        ("followup", vec![("name", string())], &["name"]),
        (
            "reminder",
            vec![
                ("intent", opt_string()),
                ("date_time", date_time),
                ("entities", or_null(list_of(entity()))),
                ("name", opt_string()),
                ("kill_on_user_msg", boolean()),
            ],
            &["date_time"],
        ),
        (
            "agent",
            vec![("text", opt_string()), ("data", json().boxed())],
            &[],
        ),
        ("active_loop", vec![("name", opt_string())], &[]),
        ("loop_interrupted", vec![("is_interrupted", boolean())], &[]),
        (
            "action_execution_rejected",
            vec![
                ("name", opt_string()),
                ("policy", opt_string()),
                ("confidence", opt_number()),
            ],
            &[],
        ),
        (
            "user_featurization",
            vec![("use_text_for_featurization", boolean())],
            &[],
        ),
        ("entities", vec![("entities", list_of(entity()))], &[]),
    ];
    let bare = [
        "reset_slots",
        "restart",
        "session_started",
        "rewind",
        "undo",
        "pause",
        "resume",
        "cancel_reminder",
        "export",
        "stack",
        "flow_started",
        "x_future",
    ];
    let kinds: Vec<_> = typed
        .into_iter()
        .chain(bare.into_iter().map(|kind| (kind, vec![], &[][..])))
        .map(|(kind, mut fields, required)| {
            fields.push(("timestamp", number().boxed()));
            fields.push(("metadata", or_null(object())));
            fields.push(("event", Just(Value::from(kind)).boxed()));
            let mut required = required.to_vec();
            required.push("event");
            record(fields, required)
        })
        .collect();
    prop::strategy::Union::new(kinds).prop_map(as_object)
}

/// Any object with a string `event`: keys from Rasa's vocabulary and arbitrary ones, values of any type.
fn event_object() -> impl Strategy<Value = Value> {
    let types = prop_oneof![
        Just("user"),
        Just("bot"),
        Just("action"),
        Just("slot"),
        Just("restart"),
        Just("followup"),
        Just("agent"),
        Just("active_loop"),
        Just("loop_interrupted"),
        Just("action_execution_rejected"),
        Just("user_featurization"),
        Just("entities"),
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

/// The compact form of `value`, keys in the order the value holds them.
fn compact(value: &Value) -> String {
    pyjson::to_string(value, Style::Compact)
}

/// The unknown keys (`x_...`) of an object, in order.
fn unknown(value: &Value) -> Vec<(String, Value)> {
    value
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("x_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_events_are_read_and_both_writers_hold_their_promises(input in valid_event()) {
        let event = Event::from_value(input.clone());
        prop_assert!(event.is_ok(), "a valid event was refused: {:?}\n{}", event, compact(&input));
        let event = event.unwrap();
        // Lossless, key order included.
        prop_assert_eq!(event.to_compact_json(), compact(&input));
        prop_assert_eq!(Event::from_json(compact(&input).as_bytes()).unwrap(), event.clone());
        // Rasa's fixed point.
        let rasa = event.to_rasa_json();
        prop_assert!(rasa.is_ascii());
        let again = Event::from_json(rasa.as_bytes()).unwrap();
        prop_assert_eq!(again.to_rasa_json(), rasa.clone());
        let rasa_value: Value = serde_json::from_str(&rasa).unwrap();
        prop_assert_eq!(again.to_compact_json(), compact(&rasa_value));
        // Unknown keys survive, in order, after Rasa's (types Rasa knows) or where they were (other types).
        let known = !matches!(event.kind, colloquy_events::EventKind::Other(_));
        prop_assert_eq!(unknown(&rasa_value), unknown(&input));
        if known {
            let keys: Vec<&String> = rasa_value.as_object().unwrap().keys().collect();
            let first_unknown = keys.iter().position(|k| k.starts_with("x_")).unwrap_or(keys.len());
            prop_assert!(keys[first_unknown..].iter().all(|k| k.starts_with("x_")), "{}", rasa);
            prop_assert_eq!(keys[0], "event");
        } else {
            prop_assert_eq!(&rasa_value, &input);
        }
    }

    #[test]
    fn any_event_object_is_read_losslessly_or_refused(input in event_object()) {
        // Invalid events are errors, never panics; what is read is lossless.
        let event = Event::from_value(input.clone());
        prop_assume!(event.is_ok());
        let event = event.unwrap();
        prop_assert_eq!(event.to_compact_json(), compact(&input));
        let rasa = event.to_rasa_json();
        prop_assert_eq!(Event::from_json(rasa.as_bytes()).unwrap().to_rasa_json(), rasa);
    }

    #[test]
    fn envelopes_round_trip(input in valid_event(), sender in any::<String>(), last in any::<bool>()) {
        let Value::Object(mut map) = input else { unreachable!() };
        if last {
            map.insert("sender_id".into(), Value::String(sender.clone()));
        } else {
            map.shift_insert(0, "sender_id".into(), Value::String(sender.clone()));
        }
        let envelope = Envelope::from_value(Value::Object(map.clone()));
        prop_assert!(envelope.is_ok(), "{:?}", envelope);
        let envelope = envelope.unwrap();
        prop_assert_eq!(&envelope.sender_id, &sender);
        let rasa = envelope.to_rasa_json();
        prop_assert!(rasa.starts_with(r#"{"sender_id": "#), "sender_id first");
        prop_assert_eq!(&rasa[1..], &format!(r#""sender_id": {}, {}"#, pyjson::to_string(&Value::String(sender.clone()), Style::Rasa), &envelope.event.to_rasa_json()[1..]));
        let back = Envelope::from_json(rasa.as_bytes()).unwrap();
        prop_assert_eq!(back.to_rasa_json(), rasa.clone());
        // `rasa export`'s form: the same keys, `sender_id` last; it reads back to the same bytes.
        let export = envelope.to_rasa_export_json();
        let export_value: Value = serde_json::from_str(&export).unwrap();
        prop_assert_eq!(export_value.as_object().unwrap().keys().next_back().map(String::as_str), Some("sender_id"));
        prop_assert_eq!(Envelope::from_json(export.as_bytes()).unwrap().to_rasa_json(), rasa);
        let compact_body = envelope.to_compact_json();
        prop_assert_eq!(Envelope::from_json(compact_body.as_bytes()).unwrap().to_compact_json(), compact_body);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Event::from_json(&bytes);
        let _ = Envelope::from_json(&bytes);
    }
}
