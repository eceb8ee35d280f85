//! `colloquy-analytics`: the tables of Rasa Pro's Analytics Data Pipeline, derived from Rasa's events
//! exactly once and in order, and Rasa's conversation markers.
//!
//! # The tables
//! Rasa Pro's public schema (3.x) with the same table and column names, so that dashboards and queries
//! written for it run unchanged: `rasa_sender`, `rasa_session`, `rasa_turn`, `rasa_event`,
//! `rasa_user_message`, `rasa_bot_message`, `rasa_action`, `rasa_slot`, `rasa_session_slot_state` — one row
//! type each in [`rows`]. The SQL (tables, upserts, metric views; PostgreSQL, SQLite, MySQL) lives in the
//! storage crate (`crates/storage/migrations/<dialect>/analytics`, `crates/storage/sql/analytics`), which
//! applies [`Rows`] and keeps each [`Conversation`]'s state in the consumer's batch transaction; this crate
//! itself runs no SQL.
//!
//! # The rules (Rasa's, written down here)
//! Positions are 0-based indices of the events in their conversation, in stored order (Rasa's
//! `SQLTrackerStore` reads `ORDER BY id`); `sequence_number` is that position.
//! - **Sessions.** Rasa starts a session by running `action_session_start` (its `action` event); when the
//!   message that starts the session carries metadata, Rasa first sets the slot `session_started_metadata`
//!   (`MessageProcessor._update_tracker_session`). So a session starts at: the conversation's first event;
//!   a `slot` event of `session_started_metadata`; an `action` event of `action_session_start` unless the
//!   event just before it was that slot (then both are the same session start); and the event after a
//!   `restart` (after a restart Rasa runs `action_session_start` at the next message, because the tracker
//!   has no applied events; a restart thus always ends its session). A conversation without any of these
//!   is one session. A session's `timestamp` is that of its first event with a timestamp; it ends at the
//!   event before the next session's start, or at the latest event.
//! - **Turns.** A turn starts at a `user` event and ends at the event before the next `user` event or at
//!   the end of its session. Events of a session before its first `user` event belong to no turn.
//! - **Senders.** `channel` is the `input_channel` of the first `user` event that has one;
//!   `first_seen`/`last_seen` the timestamps of the first and the latest event (in stored order, not by
//!   value: timestamps never order anything here).
//! - **Event columns.** `model_id` is `metadata.model_id` of the event (Rasa 3.x stamps it); `environment`
//!   is configured ([`Settings`]); `event_type` is the type name as stored (legacy `form` stays `form`).
//!   Why configured, not derived: Rasa takes the environment from its server's `RASA_ENVIRONMENT` variable
//!   and puts it on the broker message, not in the event — the AMQP `app_id` (`PikaEventBroker._message`)
//!   or a `RASA_ENVIRONMENT` Kafka header (`KafkaEventBroker._publish`, which Rasa Pro's pipeline reads).
//!   Rasa's `events` table does not keep it, so a rebuild, an imported `rasa export` or an event a tracker
//!   store wrote could not give it back: taking it from each message would break "incremental = rebuild".
//!   One deployment has one environment, which a setting gives both paths alike.
//!   A bot message's `template_name` is its `metadata.utter_action` (set by Rasa for responses, absent for
//!   custom actions' messages); a slot's `value` is compact JSON text.
//! - **Ids.** UUID v5 ([`ids`]) over the table name, the sender and the position of what the row
//!   describes (a session: its first event; a turn: its user message; the others: their event);
//!   `rasa_sender.id` over the sender key; `rasa_session_slot_state.id` is the slot path
//!   `<sender id>/<session id>/<slot name>`.
//!
//! # Exactly once
//! [`Conversation`] is a conversation's resumable state. [`Conversation::apply`] takes events with their
//! positions, skips positions already seen, and returns [`Rows`] to upsert; storing the state with the rows
//! in one transaction makes any split into batches, and any redelivery, give the rows a one-go
//! [`derive_conversation`] gives (property-tested in `tests/incremental.rs`).
//!
//! # Markers
//! [`markers`]: Rasa 3.6's marker language, evaluated per session as Rasa 3.6.21 does, and the same CSV and
//! statistics files as `rasa evaluate markers all`.
//!
//! **Invariant:** no I/O but writing to a given `io::Write`, no async, no clock, no SQL client, no lapin:
//! the same events always give the same rows and ids.
//!
//! ```
//! use colloquy_analytics::{derive_conversation, Settings};
//! use colloquy_events::Envelope;
//!
//! let bodies = [
//!     r#"{"sender_id": "alice", "event": "action", "timestamp": 1700000000.0, "name": "action_session_start"}"#,
//!     r#"{"sender_id": "alice", "event": "user", "timestamp": 1700000001.0, "text": "hi", "parse_data": {"intent": {"name": "greet", "confidence": 0.98}}, "input_channel": "rest"}"#,
//!     r#"{"sender_id": "alice", "event": "bot", "timestamp": 1700000001.5, "metadata": {"utter_action": "utter_greet"}, "text": "Hey!"}"#,
//! ];
//! let events: Vec<_> = bodies.iter().map(|b| Envelope::from_json(b.as_bytes()).map(|e| e.event)).collect::<Result<_, _>>()?;
//! let settings = Settings { environment: Some("production".into()) };
//! let rows = derive_conversation(&settings, "alice", &events);
//! assert_eq!(rows.senders[0].channel.as_deref(), Some("rest"));
//! assert_eq!(rows.user_messages[0].intent.as_deref(), Some("greet"));
//! assert_eq!(rows.bot_messages[0].template_name.as_deref(), Some("utter_greet"));
//! assert_eq!((rows.turns[0].start_sequence_number, rows.turns[0].end_sequence_number), (1, 2));
//! // A rebuild gives the same ids.
//! assert_eq!(rows, derive_conversation(&settings, "alice", &events));
//! # Ok::<(), colloquy_events::Error>(())
//! ```

mod derive;
mod error;
pub mod ids;
pub mod markers;
pub mod rows;

pub use derive::{
    ACTION_SESSION_START, Conversation, SESSION_STARTED_METADATA, Settings, derive_conversation,
};
pub use error::{Error, Result};
pub use rows::Rows;
