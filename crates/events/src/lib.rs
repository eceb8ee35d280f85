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
//! assert_eq!(envelope.to_rasa_json()?.as_bytes(), body);
//!
//! let mut tracker = Tracker::new(envelope.sender_id.clone());
//! tracker.apply(envelope.event);
//! assert_eq!(tracker.current_state()["latest_message"]["intent"]["name"], "request_restaurant");
//! # Ok::<(), colloquy_events::Error>(())
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
pub use tracker::{ActiveLoopState, LatestAction, Tracker};
