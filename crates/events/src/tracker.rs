//! PROVISIONAL tracker: the public API is final, the state rules are being filled in.

use serde_json::{Map, Value};

use crate::{Envelope, Event, EventId, Result, StampedEnvelope};

/// The state of one conversation, rebuilt from its events as Rasa's `DialogueStateTracker` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    sender_id: String,
    first_seq: u64,
    events: Vec<Event>,
    saved_len: usize,
}

impl Tracker {
    /// An empty tracker: no events, nothing saved.
    pub fn new(sender_id: impl Into<String>) -> Self {
        Self {
            sender_id: sender_id.into(),
            first_seq: 0,
            events: Vec::new(),
            saved_len: 0,
        }
    }
    /// A tracker loaded from a store: all `events` count as saved; `first_seq` is the position of `events[0]`.
    pub fn restore(sender_id: impl Into<String>, first_seq: u64, events: Vec<Event>) -> Self {
        let saved_len = events.len();
        Self {
            sender_id: sender_id.into(),
            first_seq,
            events,
            saved_len,
        }
    }
    /// The conversation id.
    pub fn sender_id(&self) -> &str {
        &self.sender_id
    }
    /// Appends an event and applies it to the state.
    pub fn apply(&mut self, event: Event) {
        self.events.push(event);
    }
    /// Applies events in order.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.apply(event);
        }
    }
    /// All events held, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
    /// The conversation position of `events()[0]`.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }
    /// How many of `events()` are saved.
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
    /// The new events, stamped with their position and stable id.
    pub fn stamped_since_last_save(&self) -> Result<Vec<StampedEnvelope>> {
        self.stamp_range(self.saved_len)
    }
    /// All events, stamped with their position and stable id.
    pub fn stamp_all(&self) -> Result<Vec<StampedEnvelope>> {
        self.stamp_range(0)
    }
    fn stamp_range(&self, from: usize) -> Result<Vec<StampedEnvelope>> {
        self.events[from..]
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let seq = self.first_seq + (from + i) as u64;
                let envelope = Envelope {
                    sender_id: self.sender_id.clone(),
                    event: event.clone(),
                };
                let body = envelope.to_rasa_json()?;
                Ok(StampedEnvelope {
                    id: EventId::for_tracked(&self.sender_id, seq, body.as_bytes()),
                    envelope,
                    seq: Some(seq),
                })
            })
            .collect()
    }
    /// Rasa's `current_state(EventVerbosity.ALL)`.
    pub fn current_state(&self) -> Value {
        let mut m = Map::new();
        m.insert("sender_id".into(), Value::String(self.sender_id.clone()));
        m.insert(
            "events".into(),
            Value::Array(self.events.iter().map(Event::to_value).collect()),
        );
        Value::Object(m)
    }
}
