//! `colloquy-events`: Rasa's conversation events as Rust values — the pure model every other Colloquy crate
//! stands on.
//!
//! - [`Event`] / [`EventKind`]: every Rasa 3.6 event type, typed, plus anything else (Rasa Pro and future
//!   types, unknown keys) kept losslessly — reading then writing gives the same JSON value, key order
//!   included (rules in [`event`]).
//! - [`Envelope`]: the broker message body (`sender_id` + event); [`StampedEnvelope`] adds the stable
//!   [`EventId`] and the event's position.
//! - [`pyjson`]: the writer that produces exactly Python's `json.dumps` bytes, i.e. what Rasa publishes.
//! - [`Tracker`]: one conversation's state, as Rasa's `DialogueStateTracker` computes it, and the
//!   bookkeeping a tracker store needs (what is new since the last save).
//!
//! Where to start: read a broker body with [`Envelope::from_json`], build events with [`EventKind`]'s
//! constructors and [`Event::at`] (below), keep a conversation in a [`Tracker`]. To store and stream
//! conversations, depend on `colloquy-tracker-store`, which re-exports these types.
//!
//! **Invariant:** no I/O, no async, no clock, no global state. Input is bytes or `serde_json::Value`, output
//! is strings and values; every malformed input is an [`Error`] that says what and where, never a panic.
//!
//! ```
//! use colloquy_events::{Envelope, Tracker};
//!
//! let body = br#"{"sender_id": "default", "event": "user", "timestamp": 1700000000.75, "metadata": {"source": "web"}, "text": "I want indian food", "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.94}, "entities": [{"entity": "cuisine", "value": "indian", "start": 7, "end": 13}], "text": "I want indian food", "message_id": "6f1b", "metadata": {"source": "web"}}, "input_channel": "rest", "message_id": "6f1b"}"#;
//! let envelope = Envelope::from_json(body)?;
//! assert_eq!(envelope.event.intent_name(), Some("request_restaurant"));
//! // Byte-identical to what Rasa published.
//! assert_eq!(envelope.to_rasa_json().as_bytes(), body);
//!
//! let mut tracker = Tracker::new(envelope.sender_id.clone());
//! tracker.apply(envelope.event);
//! assert_eq!(tracker.current_state()["latest_message"]["intent"]["name"], "request_restaurant");
//! # Ok::<(), colloquy_events::Error>(())
//! ```
//!
//! Building a conversation in code: [`EventKind`]'s constructors ([`EventKind::user`], [`EventKind::bot`],
//! [`EventKind::action`], [`EventKind::slot`], [`EventKind::blank`] for any type by name, or a variant such
//! as [`EventKind::SessionStarted`]) and [`Event::at`], which stamps the time you pass and cannot fail.
//! ([`Event::new`] makes an event without a timestamp: see there what that means for a store's `retrieve`.)
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use colloquy_events::{Event, EventKind, Tracker};
//!
//! let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let second = |n| t0 + Duration::from_secs(n);
//! let mut tracker = Tracker::new("ada");
//! tracker.apply_all([
//!     Event::at(EventKind::action("action_session_start"), second(0)),
//!     Event::at(EventKind::SessionStarted, second(0)),
//!     Event::at(EventKind::action("action_listen"), second(0)),
//!     Event::at(EventKind::user("my name is Ada"), second(1)),
//!     Event::at(EventKind::slot("name", "Ada"), second(2)),
//!     Event::at(EventKind::bot("Hi Ada!"), second(2)),
//!     Event::at(EventKind::blank("pause"), second(3)),
//! ]);
//! assert_eq!(tracker.slot("name"), Some(&"Ada".into()));
//! assert!(tracker.paused());
//!
//! // What a tracker store publishes for the new events: stable ids, positions, Rasa's bytes.
//! let stamped = tracker.stamped_since_last_save();
//! assert_eq!(stamped[4].seq, Some(4));
//! assert_eq!(
//!     stamped[4].envelope.to_rasa_json(),
//!     r#"{"sender_id": "ada", "event": "slot", "timestamp": 1700000002.0, "name": "name", "value": "Ada"}"#
//! );
//! ```

mod envelope;
mod error;
pub mod event;
mod id;
pub mod parse_data;
pub mod pyjson;
mod record;
mod tracker;

pub use envelope::{Envelope, StampedEnvelope};
pub use error::{Error, Result};
pub use event::{
    ActionExecuted, ActionExecutionRejected, AgentUttered, BotUttered, Event, EventKind,
    ReminderScheduled, SlotSet, UserUttered,
};
pub use id::EventId;
pub use parse_data::{BotData, Button, Entity, Intent, ParseData};
pub use tracker::{ActiveLoopState, EventVerbosity, LatestAction, Tracker};
