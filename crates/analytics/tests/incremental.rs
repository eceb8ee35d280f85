//! The exactly-once property: for any stream of events, any split into batches and any redelivery of
//! events already seen (with the state stored as JSON and read back between batches, as a store does),
//! upserting the rows of every batch gives exactly the tables a one-go rebuild gives.

use std::collections::BTreeMap;

use colloquy_analytics::rows::{
    ActionRow, BotMessageRow, EventRow, SenderRow, SessionRow, SessionSlotStateRow, SlotRow,
    TurnRow, UserMessageRow,
};
use colloquy_analytics::{Conversation, Rows, Settings, derive_conversation};
use colloquy_events::{Event, EventKind, Intent};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The tables, keyed by id: what a database holds after upserting rows.
#[derive(Debug, Default, PartialEq)]
struct Tables {
    senders: BTreeMap<String, SenderRow>,
    sessions: BTreeMap<String, SessionRow>,
    turns: BTreeMap<String, TurnRow>,
    events: BTreeMap<String, EventRow>,
    user_messages: BTreeMap<String, UserMessageRow>,
    bot_messages: BTreeMap<String, BotMessageRow>,
    actions: BTreeMap<String, ActionRow>,
    slots: BTreeMap<String, SlotRow>,
    session_slot_states: BTreeMap<String, SessionSlotStateRow>,
}

/// Replace by id (sender, session, turn, slot state).
fn replace<R>(table: &mut BTreeMap<String, R>, rows: Vec<R>, id: impl Fn(&R) -> &str) {
    for row in rows {
        table.insert(id(&row).to_owned(), row);
    }
}

/// Insert once: a row written again must be identical (`ON CONFLICT DO NOTHING` would keep the first).
fn insert_once<R: PartialEq + std::fmt::Debug>(
    table: &mut BTreeMap<String, R>,
    rows: Vec<R>,
    id: impl Fn(&R) -> &str,
) {
    for row in rows {
        match table.get(id(&row)) {
            Some(existing) => assert_eq!(existing, &row, "an immutable row changed"),
            None => {
                table.insert(id(&row).to_owned(), row);
            }
        }
    }
}

impl Tables {
    fn upsert(&mut self, rows: Rows) {
        replace(&mut self.senders, rows.senders, |r| &r.id);
        replace(&mut self.sessions, rows.sessions, |r| &r.id);
        replace(&mut self.turns, rows.turns, |r| &r.id);
        replace(
            &mut self.session_slot_states,
            rows.session_slot_states,
            |r| &r.id,
        );
        insert_once(&mut self.events, rows.events, |r| &r.id);
        insert_once(&mut self.user_messages, rows.user_messages, |r| &r.id);
        insert_once(&mut self.bot_messages, rows.bot_messages, |r| &r.id);
        insert_once(&mut self.actions, rows.actions, |r| &r.id);
        insert_once(&mut self.slots, rows.slots, |r| &r.id);
    }
}

fn with_metadata(kind: EventKind, model: Option<&str>, utter: Option<&str>) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(model) = model {
        metadata.insert("model_id".into(), model.into());
    }
    if let (EventKind::Bot(_), Some(utter)) = (&kind, utter) {
        metadata.insert("utter_action".into(), utter.into());
    }
    metadata
}

fn event() -> impl Strategy<Value = Event> {
    let kind = prop_oneof![
        3 => (prop::sample::select(vec!["greet", "nlu_fallback", "inform"]), prop::option::of(prop::sample::select(vec!["rest", "socketio"])))
            .prop_map(|(intent, channel)| {
                let mut kind = EventKind::user(format!("text {intent}"));
                if let EventKind::User(user) = &mut kind {
                    user.input_channel = channel.map(str::to_owned);
                    user.parse_data.as_mut().unwrap().intent = Some(Intent::new(intent, serde_json::Number::from_f64(0.5)));
                }
                kind
            }),
        2 => prop::sample::select(vec!["action_session_start", "action_listen", "action_default_fallback", "utter_greet"]).prop_map(EventKind::action),
        2 => Just(EventKind::bot("hello")),
        1 => (prop::sample::select(vec!["session_started_metadata", "cuisine", "requested_slot"]), prop::sample::select(vec![json!(null), json!("indian"), json!({"a": [1, 2.5]})]))
            .prop_map(|(name, value)| EventKind::slot(name, value)),
        1 => Just(EventKind::Restart),
        1 => Just(EventKind::SessionStarted),
    ];
    (
        kind,
        prop::option::of(1_600_000_000.0..1_700_000_000.0f64),
        prop::option::of(prop::sample::select(vec!["m1", "m2"])),
        prop::option::of(Just("utter_greet")),
    )
        .prop_map(|(kind, timestamp, model, utter)| {
            let metadata = with_metadata(kind.clone(), model, utter);
            let mut event = Event::new(kind).with_metadata(metadata);
            if let Some(timestamp) = timestamp {
                event = event.with_timestamp(timestamp).unwrap();
            }
            event
        })
}

/// Batches as (first position, end position exclusive): a split into consecutive ranges, each possibly
/// starting earlier than the previous end (redelivery).
fn batches(len: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..=len, 0usize..4), 0..8).prop_map(move |cuts| {
        let mut ends: Vec<usize> = cuts.iter().map(|(end, _)| *end).collect();
        ends.push(len);
        ends.sort_unstable();
        let mut batches = Vec::new();
        let mut start: usize = 0;
        for (i, end) in ends.into_iter().enumerate() {
            let redeliver = cuts.get(i).map_or(0, |(_, back)| *back);
            batches.push((start.saturating_sub(redeliver), end));
            start = end;
        }
        batches
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn incremental_equals_rebuild(
        (events, batches) in prop::collection::vec(event(), 0..40).prop_flat_map(|events| {
            let len = events.len();
            (Just(events), batches(len))
        })
    ) {
        let settings = Settings { environment: Some("staging".into()) };
        let mut rebuilt = Tables::default();
        rebuilt.upsert(derive_conversation(&settings, "sender-1", &events));

        let mut incremental = Tables::default();
        let mut stored_state = Conversation::new("sender-1").to_json();
        for (start, end) in batches {
            let mut conversation = Conversation::from_json(&stored_state).unwrap();
            let batch = (start..end).map(|i| (i as u64, &events[i]));
            incremental.upsert(conversation.apply(&settings, batch).unwrap());
            stored_state = conversation.to_json();
        }
        prop_assert_eq!(incremental, rebuilt);
    }
}
