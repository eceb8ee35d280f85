//! The dialogue tracker: one conversation's events and the state Rasa's `DialogueStateTracker` derives
//! from them (Rasa 3.6 `rasa/shared/core/trackers.py`), plus what the tracker store needs: which events are
//! new since the last save (by count) and their stable ids and positions.
//!
//! Slots: without a domain, the slots are the ones `slot` events have set, in the order they were first set
//! (Rasa's `AnySlotDict`). `reset_slots`, `restart`, `session_started`, `rewind` and `undo` reset every known
//! slot to `null` (an `AnySlot`'s initial value): the slot stays listed, with `null`. With a domain's slots
//! ([`Tracker::with_domain_slots`]) the tracker has exactly those, in the domain's order, starting from (and
//! reset to) their initial values; a `slot` event for a slot the domain does not have changes nothing, as in
//! Rasa (which logs "Tried to set non existent slot").

use serde_json::{Map, Value};

use crate::envelope::{Envelope, StampedEnvelope};
use crate::event::{Event, EventKind};
use crate::parse_data::Entity;
use crate::record::{Record, write_record};

const ACTION_LISTEN: &str = "action_listen";
const ACTION_SESSION_START: &str = "action_session_start";
const SHOULD_NOT_BE_SET: &str = "should_not_be_set";

/// The latest action: its name, or the text of an end-to-end prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestAction {
    /// `{"action_name": ...}`.
    Name(String),
    /// `{"action_text": ...}`.
    Text(String),
}

/// The active loop (form) and its flags (Rasa's `TrackerActiveLoop`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveLoopState {
    /// The loop's name.
    pub name: String,
    /// The loop was interrupted (an unhappy path).
    pub is_interrupted: bool,
    /// The loop's action was rejected.
    pub rejected: bool,
    /// The `parse_data` of the user message that was latest when the loop was activated.
    pub trigger_message: Option<Value>,
}

/// Which events [`Tracker::current_state_with`] includes: Rasa's `EventVerbosity`, whose names are what the
/// `include_events` query parameter of Rasa's HTTP API takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventVerbosity {
    /// No events (`"events": null`).
    None,
    /// The events that make up the current state ([`Tracker::applied_events`]).
    Applied,
    /// The events after the latest `restart` ([`Tracker::events_after_latest_restart`]).
    AfterRestart,
    /// Every event.
    All,
}

impl EventVerbosity {
    /// Every verbosity, in Rasa's declaration order (the order its error message lists them in).
    pub const ALL_NAMES: [&'static str; 4] = ["NONE", "APPLIED", "AFTER_RESTART", "ALL"];

    /// Reads Rasa's name of a verbosity, in any case (Rasa upper-cases the parameter); `None` when unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "NONE" => Some(Self::None),
            "APPLIED" => Some(Self::Applied),
            "AFTER_RESTART" => Some(Self::AfterRestart),
            "ALL" => Some(Self::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct State {
    slots: Map<String, Value>,
    /// The domain's slots and their initial values; `None` = slots are whatever events set.
    domain_slots: Option<Map<String, Value>>,
    /// Index of the latest `user` event; `None` = Rasa's empty `UserUttered`.
    latest_message: Option<usize>,
    /// The latest message's entities plus those added by `entities` events.
    latest_entities: Vec<Entity>,
    latest_bot_utterance: Option<usize>,
    latest_action: Option<LatestAction>,
    paused: bool,
    followup_action: Option<String>,
    active_loop: Option<ActiveLoopState>,
}

impl State {
    fn new() -> Self {
        Self {
            slots: Map::new(),
            domain_slots: None,
            latest_message: None,
            latest_entities: Vec::new(),
            latest_bot_utterance: None,
            latest_action: None,
            paused: false,
            followup_action: Some(ACTION_LISTEN.to_owned()),
            active_loop: None,
        }
    }

    /// Rasa's `_reset`: state back to initial, slots to their initial values; events are kept.
    fn reset(&mut self) {
        let slots = std::mem::take(&mut self.slots);
        let domain_slots = self.domain_slots.take();
        *self = Self::new();
        self.slots = slots;
        self.domain_slots = domain_slots;
        self.reset_slots();
    }

    /// Rasa's `_reset_slots`: every slot back to its initial value (`null` without a domain).
    fn reset_slots(&mut self) {
        match &self.domain_slots {
            Some(initial) => self.slots = initial.clone(),
            None => self
                .slots
                .values_mut()
                .for_each(|value| *value = Value::Null),
        }
    }

    fn active_loop_name(&self) -> Option<&str> {
        self.active_loop
            .as_ref()
            .map(|l| l.name.as_str())
            .filter(|n| *n != SHOULD_NOT_BE_SET)
    }

    fn latest_action_name(&self) -> Option<&str> {
        match &self.latest_action {
            Some(LatestAction::Name(n) | LatestAction::Text(n)) => Some(n),
            None => None,
        }
    }
}

/// The state of one conversation, rebuilt from its events as Rasa's `DialogueStateTracker` does.
///
/// ```
/// use colloquy_events::{Event, EventKind, Tracker};
/// let mut tracker = Tracker::new("alice");
/// tracker.apply(Event::new(EventKind::action("action_listen")));
/// tracker.apply(Event::new(EventKind::slot("cuisine", "indian")));
/// assert_eq!(tracker.slot("cuisine"), Some(&"indian".into()));
/// assert_eq!(tracker.events_since_last_save().len(), 2);
/// let stamped = tracker.stamped_since_last_save();
/// assert_eq!(stamped[1].seq, Some(1));
/// tracker.mark_saved();
/// assert!(tracker.events_since_last_save().is_empty());
/// # Ok::<(), colloquy_events::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    sender_id: String,
    first_seq: u64,
    events: Vec<Event>,
    saved_len: usize,
    state: State,
}

impl Tracker {
    /// An empty tracker: no events, nothing saved.
    pub fn new(sender_id: impl Into<String>) -> Self {
        Self {
            sender_id: sender_id.into(),
            first_seq: 0,
            events: Vec::new(),
            saved_len: 0,
            state: State::new(),
        }
    }

    /// A tracker loaded from a store: `events` are applied and all count as saved; `first_seq` is the
    /// conversation position of `events[0]` (a store may load only the latest session).
    pub fn restore(sender_id: impl Into<String>, first_seq: u64, events: Vec<Event>) -> Self {
        let mut tracker = Self::new(sender_id);
        tracker.first_seq = first_seq;
        tracker.apply_all(events);
        tracker.mark_saved();
        tracker
    }

    /// The same tracker (events, positions, what is saved) with a domain's slots: `initial` names them, in
    /// the domain's order, with their initial values (Rasa's `Slot.initial_value`; include the slots Rasa's
    /// `Domain` adds itself, such as `session_started_metadata`). The state is derived again from the events.
    pub fn with_domain_slots(mut self, initial: Map<String, Value>) -> Self {
        let mut state = State::new();
        state.slots = initial.clone();
        state.domain_slots = Some(initial);
        self.state = state;
        for index in 0..self.events.len() {
            self.apply_at(index);
        }
        self
    }

    /// The tracker as it was at `time`: a new tracker with the same slots that applies the events up to the
    /// first one with a later timestamp (Rasa's `travel_back_in_time`: events at exactly `time` are included;
    /// an event without a timestamp does not stop the replay). Nothing of it counts as saved.
    pub fn travel_back_in_time(&self, time: f64) -> Self {
        let mut past = Self::new(self.sender_id.clone());
        if let Some(initial) = &self.state.domain_slots {
            past = past.with_domain_slots(initial.clone());
        }
        past.first_seq = self.first_seq;
        let until = self
            .events
            .iter()
            .position(|event| event.timestamp().is_some_and(|t| t > time))
            .unwrap_or(self.events.len());
        past.apply_all(self.events[..until].iter().cloned());
        past
    }

    /// The conversation id.
    pub fn sender_id(&self) -> &str {
        &self.sender_id
    }

    /// Appends an event and applies it to the state.
    pub fn apply(&mut self, event: Event) {
        self.events.push(event);
        self.apply_at(self.events.len() - 1);
    }

    /// Applies events in order.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.apply(event);
        }
    }

    /// All events held, oldest first (never deleted: `restart`, `rewind`... only change the state).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The conversation position of `events()[0]`.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// How many of `events()` are saved (a count, never a comparison of contents or timestamps).
    pub fn saved_len(&self) -> usize {
        self.saved_len
    }

    /// The events applied since the last save.
    pub fn events_since_last_save(&self) -> &[Event] {
        &self.events[self.saved_len..]
    }

    /// Marks every event as saved.
    pub fn mark_saved(&mut self) {
        self.saved_len = self.events.len();
    }

    /// The events applied since the last save, each stamped with its position
    /// (`seq = first_seq + index`) and [`crate::EventId::for_tracked`] of its Rasa body.
    pub fn stamped_since_last_save(&self) -> Vec<StampedEnvelope> {
        self.stamp_from(self.saved_len)
    }

    /// Every event held, stamped like [`Tracker::stamped_since_last_save`].
    pub fn stamp_all(&self) -> Vec<StampedEnvelope> {
        self.stamp_from(0)
    }

    fn stamp_from(&self, from: usize) -> Vec<StampedEnvelope> {
        (from..self.events.len())
            .map(|i| {
                let envelope = Envelope {
                    sender_id: self.sender_id.clone(),
                    event: self.events[i].clone(),
                };
                StampedEnvelope::sequenced(envelope, self.first_seq + i as u64)
            })
            .collect()
    }

    /// The slot values (slots known from `slot` events, see the module doc).
    pub fn slots(&self) -> &Map<String, Value> {
        &self.state.slots
    }

    /// One slot's value.
    pub fn slot(&self, name: &str) -> Option<&Value> {
        self.state.slots.get(name)
    }

    /// The latest `user` event that is still applied (`None` after a reset).
    pub fn latest_message(&self) -> Option<&Event> {
        self.state.latest_message.map(|i| &self.events[i])
    }

    /// The entities of the latest message, including those added by `entities` events.
    pub fn latest_entities(&self) -> &[Entity] {
        &self.state.latest_entities
    }

    /// The latest `bot` event that is still applied.
    pub fn latest_bot_utterance(&self) -> Option<&Event> {
        self.state.latest_bot_utterance.map(|i| &self.events[i])
    }

    /// The latest action.
    pub fn latest_action(&self) -> Option<&LatestAction> {
        self.state.latest_action.as_ref()
    }

    /// The latest action's name, or its text for end-to-end predictions.
    pub fn latest_action_name(&self) -> Option<&str> {
        self.state.latest_action_name()
    }

    /// Whether the conversation is paused.
    pub fn paused(&self) -> bool {
        self.state.paused
    }

    /// The action to run next, if one is forced.
    pub fn followup_action(&self) -> Option<&str> {
        self.state.followup_action.as_deref()
    }

    /// The active loop, if any.
    pub fn active_loop(&self) -> Option<&ActiveLoopState> {
        self.state.active_loop.as_ref()
    }

    /// The events that make up the current state: without events undone by `rewind`/`undo`, nothing
    /// before the latest `restart`/`session_started`, and loop re-executions folded (Rasa's
    /// `applied_events`).
    pub fn applied_events(&self) -> Vec<&Event> {
        applied_indices(&self.events)
            .into_iter()
            .map(|i| &self.events[i])
            .collect()
    }

    /// The events after the latest `restart` (all events if there is none).
    pub fn events_after_latest_restart(&self) -> &[Event] {
        let start = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Restart))
            .map_or(0, |i| i + 1);
        &self.events[start..]
    }

    /// The events split into sessions: a new session begins at each `session_started` (included in it).
    /// Events before the first `session_started` form a session of their own.
    pub fn sessions(&self) -> Vec<&[Event]> {
        let mut sessions = Vec::new();
        let mut start = 0;
        for (i, event) in self.events.iter().enumerate() {
            if matches!(event.kind, EventKind::SessionStarted) && i > start {
                sessions.push(&self.events[start..i]);
                start = i;
            }
        }
        if start < self.events.len() {
            sessions.push(&self.events[start..]);
        }
        sessions
    }

    /// The events from the latest `session_started` on (all events if there is none): what Rasa's SQL
    /// tracker store loads for `retrieve`.
    pub fn latest_session(&self) -> &[Event] {
        let start = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::SessionStarted))
            .unwrap_or(0);
        &self.events[start..]
    }

    /// Rasa's `DialogueStateTracker.current_state(EventVerbosity.ALL)`, key for key.
    pub fn current_state(&self) -> Value {
        self.current_state_with(EventVerbosity::All)
    }

    /// Rasa's `DialogueStateTracker.current_state(verbosity)`, key for key: what Rasa's HTTP API returns for
    /// a tracker (`events` holds the events `verbosity` selects, or `null` for [`EventVerbosity::None`]).
    pub fn current_state_with(&self, verbosity: EventVerbosity) -> Value {
        let s = &self.state;
        let mut out = Map::new();
        out.insert("sender_id".into(), Value::String(self.sender_id.clone()));
        out.insert("slots".into(), Value::Object(s.slots.clone()));
        let mut latest = self.latest_parse_data();
        if let Value::Object(m) = &mut latest {
            m.insert(
                "entities".into(),
                Value::Array(s.latest_entities.iter().map(record_value).collect()),
            );
        }
        out.insert("latest_message".into(), latest);
        let time = self
            .events
            .last()
            .and_then(|e| e.timestamp.clone())
            .map_or(Value::Null, Value::Number);
        out.insert("latest_event_time".into(), time);
        out.insert(
            "followup_action".into(),
            s.followup_action.clone().map_or(Value::Null, Value::String),
        );
        out.insert("paused".into(), Value::Bool(s.paused));
        let events = match verbosity {
            EventVerbosity::None => None,
            EventVerbosity::Applied => Some(self.applied_events()),
            EventVerbosity::AfterRestart => {
                Some(self.events_after_latest_restart().iter().collect())
            }
            EventVerbosity::All => Some(self.events.iter().collect()),
        };
        out.insert(
            "events".into(),
            events.map_or(Value::Null, |events| {
                Value::Array(events.into_iter().map(Event::to_value).collect())
            }),
        );
        let channel = self.events.iter().rev().find_map(|e| match &e.kind {
            EventKind::User(u) => Some(u.input_channel.clone().map_or(Value::Null, Value::String)),
            _ => None,
        });
        out.insert(
            "latest_input_channel".into(),
            channel.unwrap_or(Value::Null),
        );
        let mut active_loop = Map::new();
        if let Some(l) = &s.active_loop {
            active_loop.insert("name".into(), Value::String(l.name.clone()));
            active_loop.insert("is_interrupted".into(), Value::Bool(l.is_interrupted));
            active_loop.insert("rejected".into(), Value::Bool(l.rejected));
            active_loop.insert(
                "trigger_message".into(),
                l.trigger_message.clone().unwrap_or(Value::Null),
            );
        }
        out.insert("active_loop".into(), Value::Object(active_loop));
        let mut latest_action = Map::new();
        match &s.latest_action {
            Some(LatestAction::Name(n)) => {
                latest_action.insert("action_name".into(), Value::String(n.clone()));
            }
            Some(LatestAction::Text(t)) => {
                latest_action.insert("action_text".into(), Value::String(t.clone()));
            }
            None => {}
        }
        out.insert("latest_action".into(), Value::Object(latest_action));
        out.insert(
            "latest_action_name".into(),
            s.latest_action_name()
                .map_or(Value::Null, |n| Value::String(n.to_owned())),
        );
        Value::Object(out)
    }

    /// Rasa's `UserUttered.parse_data` of the latest message: `intent`, `entities`, `text`, `message_id`,
    /// `metadata` from the event, overridden by the keys of the event's own `parse_data`.
    fn latest_parse_data(&self) -> Value {
        let mut m = Map::new();
        let user = self.latest_message().and_then(|e| match &e.kind {
            EventKind::User(u) => Some((e, u)),
            _ => None,
        });
        let input = user
            .and_then(|(_, u)| u.parse_data.as_ref())
            .map(|p| p.to_value());
        let input = match input {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let truthy = |v: Option<&Value>| match v {
            Some(Value::Object(o)) if !o.is_empty() => v.cloned(),
            _ => None,
        };
        m.insert(
            "intent".into(),
            truthy(input.get("intent")).unwrap_or_else(|| Value::Object(Map::new())),
        );
        let entities = match input.get("entities") {
            Some(Value::Array(a)) => Value::Array(a.clone()),
            _ => Value::Array(Vec::new()),
        };
        m.insert("entities".into(), entities);
        let (text, message_id, metadata) = match user {
            Some((e, u)) => (
                u.text.clone().map_or(Value::Null, Value::String),
                u.message_id.clone().map_or(Value::Null, Value::String),
                Value::Object(e.metadata.clone().unwrap_or_default()),
            ),
            None => (Value::Null, Value::Null, Value::Object(Map::new())),
        };
        m.insert("text".into(), text);
        m.insert("message_id".into(), message_id);
        m.insert("metadata".into(), metadata);
        for (k, v) in input {
            m.insert(k, v);
        }
        Value::Object(m)
    }

    fn apply_at(&mut self, index: usize) {
        if let EventKind::ActiveLoop { name, .. } = &self.events[index].kind {
            let active = name.as_ref().map(|name| ActiveLoopState {
                name: name.clone(),
                is_interrupted: false,
                rejected: false,
                trigger_message: Some(self.trigger_message()),
            });
            self.state.active_loop = active;
            return;
        }
        let event = &self.events[index];
        let state = &mut self.state;
        match &event.kind {
            EventKind::User(u) => {
                state.latest_message = Some(index);
                state.latest_entities = u
                    .parse_data
                    .as_ref()
                    .and_then(|p| p.entities.clone())
                    .unwrap_or_default();
                state.followup_action = None;
            }
            EventKind::Bot(_) => state.latest_bot_utterance = Some(index),
            EventKind::Action(a) => {
                let latest = match &a.name {
                    Some(name) if !name.is_empty() => LatestAction::Name(name.clone()),
                    _ => LatestAction::Text(a.action_text.clone().unwrap_or_default()),
                };
                let action_name = match &latest {
                    LatestAction::Name(n) => Some(n.as_str()),
                    LatestAction::Text(_) => None,
                };
                let loop_name = state.active_loop_name().map(str::to_owned);
                if let Some(active) = &mut state.active_loop {
                    if loop_name.as_deref().is_some_and(|n| !n.is_empty()) {
                        active.is_interrupted = false;
                    }
                    if action_name == loop_name.as_deref() {
                        active.rejected = false;
                    }
                }
                state.latest_action = Some(latest);
                state.followup_action = None;
            }
            EventKind::Slot(s) => {
                let known = state
                    .domain_slots
                    .as_ref()
                    .is_none_or(|domain| domain.contains_key(&s.name));
                if known {
                    state.slots.insert(s.name.clone(), s.value.clone());
                }
            }
            EventKind::ResetSlots => state.reset_slots(),
            EventKind::Restart => {
                state.reset();
                state.followup_action = Some(ACTION_SESSION_START.to_owned());
            }
            EventKind::SessionStarted => state.reset(),
            EventKind::Rewind | EventKind::Undo => {
                state.reset();
                for i in applied_indices(&self.events[..=index]) {
                    self.apply_at(i);
                }
            }
            EventKind::Followup { name } => state.followup_action = Some(name.clone()),
            EventKind::Pause => state.paused = true,
            EventKind::Resume => state.paused = false,
            EventKind::LoopInterrupted { is_interrupted, .. } => {
                if let Some(active) = &mut state.active_loop {
                    active.is_interrupted = *is_interrupted;
                }
            }
            EventKind::ActionExecutionRejected(r) => {
                let matches = r.name.as_deref() == state.active_loop_name();
                if let Some(active) = &mut state.active_loop
                    && matches
                {
                    active.rejected = true;
                }
            }
            EventKind::EntitiesAdded { entities }
                if state.latest_action_name() == Some(ACTION_LISTEN) =>
            {
                for entity in entities {
                    if !state.latest_entities.contains(entity) {
                        state.latest_entities.push(entity.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// The latest message's `parse_data` as Rasa holds it (its own entities, not the added ones).
    fn trigger_message(&self) -> Value {
        self.latest_parse_data()
    }
}

fn record_value<R: Record>(record: &R) -> Value {
    let mut w = crate::pyjson::Writer::new(crate::pyjson::Style::Compact);
    write_record(record, &mut w);
    serde_json::from_str(&w.finish()).unwrap_or(Value::Null)
}

fn is_action(event: &Event) -> bool {
    matches!(event.kind, EventKind::Action(_))
}

fn action_name(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::Action(a) => a.name.as_deref(),
        _ => None,
    }
}

/// Rasa's `applied_events` over `events`, as indices.
fn applied_indices(events: &[Event]) -> Vec<usize> {
    let loop_names: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActiveLoop {
                name: Some(name), ..
            } if !name.is_empty() => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut applied: Vec<usize> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match &event.kind {
            EventKind::Restart | EventKind::SessionStarted => applied.clear(),
            EventKind::Undo => undo_till_previous(events, &mut applied, is_action),
            EventKind::Rewind => {
                undo_till_previous(events, &mut applied, |e| {
                    matches!(e.kind, EventKind::User(_))
                });
                undo_till_previous(events, &mut applied, is_action);
            }
            EventKind::Action(a)
                if a.name.as_deref().is_some_and(|n| loop_names.contains(&n))
                    && !first_loop_execution_or_unhappy_path(
                        events,
                        a.name.as_deref(),
                        &applied,
                    ) =>
            {
                undo_till_previous_loop_execution(events, a.name.as_deref(), &mut applied);
            }
            _ => applied.push(i),
        }
    }
    applied
}

/// Drops applied events from the end up to and including the first that matches.
fn undo_till_previous(
    events: &[Event],
    applied: &mut Vec<usize>,
    matches: impl Fn(&Event) -> bool,
) {
    while let Some(i) = applied.pop() {
        if matches(&events[i]) {
            break;
        }
    }
}

fn first_loop_execution_or_unhappy_path(
    events: &[Event],
    loop_action: Option<&str>,
    applied: &[usize],
) -> bool {
    let mut next_action: Option<Option<&str>> = None;
    for &i in applied.iter().rev() {
        let event = &events[i];
        match &event.kind {
            EventKind::ActiveLoop { name: None, .. } => return true,
            EventKind::ActionExecutionRejected(r) if r.name.as_deref() == loop_action => {
                return true;
            }
            EventKind::User(_) if next_action.is_some_and(|next| next != loop_action) => {
                return true;
            }
            EventKind::Action(a) => {
                if a.name.as_deref() == loop_action {
                    return false;
                }
                next_action = Some(a.name.as_deref());
            }
            _ => {}
        }
    }
    true
}

fn undo_till_previous_loop_execution(
    events: &[Event],
    loop_action: Option<&str>,
    applied: &mut Vec<usize>,
) {
    let mut offset = 0;
    let snapshot = applied.clone();
    for &i in snapshot.iter().rev() {
        let event = &events[i];
        if action_name(event).is_some() && action_name(event) == loop_action {
            break;
        }
        if matches!(
            event.kind,
            EventKind::Action(_) | EventKind::User(_) | EventKind::UserFeaturization { .. }
        ) {
            let at = applied.len() - 1 - offset;
            applied.remove(at);
        } else {
            offset += 1;
        }
    }
}
