//! The rows of Rasa Pro's public analytics tables, one struct per table, fields named exactly like the
//! columns. Ids are UUID strings ([`crate::ids`]); timestamps are unix seconds (UTC) as the events carry
//! them — the SQL converts them to the dialect's timestamp type; `sequence_number` is the event's 0-based
//! position in its conversation.

use serde::{Deserialize, Serialize};

/// `rasa_sender`: one conversation partner (Rasa's `sender_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderRow {
    /// `id`: UUID v5 of `sender_key`.
    pub id: String,
    /// `sender_key`: Rasa's `sender_id`.
    pub sender_key: String,
    /// `channel`: the `input_channel` of the sender's first user message that names one.
    pub channel: Option<String>,
    /// `first_seen`: the timestamp of the sender's first event that has one.
    pub first_seen: Option<f64>,
    /// `last_seen`: the timestamp of the sender's latest event (in stored order) that has one.
    pub last_seen: Option<f64>,
}

/// `rasa_session`: one conversation session of a sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    /// `id`: UUID v5 of (sender, start position).
    pub id: String,
    /// `sender_id`: [`SenderRow::id`].
    pub sender_id: String,
    /// `timestamp`: when the session started (its first event that has a timestamp).
    pub timestamp: Option<f64>,
    /// `start_sequence_number`: position of the session's first event.
    pub start_sequence_number: u64,
    /// `end_sequence_number`: position of the session's last event so far (inclusive).
    pub end_sequence_number: u64,
}

/// `rasa_turn`: from a user message to the event before the next user message or the session's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRow {
    /// `id`: UUID v5 of (sender, position of the user message).
    pub id: String,
    /// `sender_id`: [`SenderRow::id`].
    pub sender_id: String,
    /// `session_id`: [`SessionRow::id`].
    pub session_id: String,
    /// `start_sequence_number`: position of the user message.
    pub start_sequence_number: u64,
    /// `end_sequence_number`: position of the turn's last event so far (inclusive).
    pub end_sequence_number: u64,
}

/// `rasa_event`: every event, whatever its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// `id`: UUID v5 of (sender, position).
    pub id: String,
    /// `sender_id`: [`SenderRow::id`].
    pub sender_id: String,
    /// `session_id`: [`SessionRow::id`].
    pub session_id: String,
    /// `timestamp`: the event's.
    pub timestamp: Option<f64>,
    /// `model_id`: the event's `metadata.model_id` (Rasa 3.x stamps it on every event it creates).
    pub model_id: Option<String>,
    /// `environment`: from [`crate::Settings::environment`].
    pub environment: Option<String>,
    /// `sequence_number`: the event's position in its conversation.
    pub sequence_number: u64,
    /// `event_type`: the event's type name as stored (`user`, `bot`, `action`, `slot`, ...).
    pub event_type: String,
}

/// The columns every row derived from one event carries besides its own id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventColumns {
    /// `sender_id`: [`SenderRow::id`].
    pub sender_id: String,
    /// `session_id`: [`SessionRow::id`].
    pub session_id: String,
    /// `event_id`: [`EventRow::id`].
    pub event_id: String,
    /// `timestamp`: the event's.
    pub timestamp: Option<f64>,
    /// `model_id`: the event's `metadata.model_id`.
    pub model_id: Option<String>,
    /// `sequence_number`: the event's position in its conversation.
    pub sequence_number: u64,
}

/// `rasa_user_message`: a `user` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessageRow {
    /// `id`: UUID v5 of (sender, position), distinct from the event's id.
    pub id: String,
    /// The columns shared by event-derived rows.
    pub event: EventColumns,
    /// `intent`: `parse_data.intent.name`.
    pub intent: Option<String>,
    /// `retrieval_intent`: `parse_data.intent.full_retrieval_intent_name` (e.g. `faq/ask_hours`).
    pub retrieval_intent: Option<String>,
    /// `confidence`: `parse_data.intent.confidence`.
    pub confidence: Option<f64>,
    /// `text`.
    pub text: Option<String>,
    /// `message_id`: the event's `message_id` (else `parse_data.message_id`).
    pub message_id: Option<String>,
}

/// `rasa_bot_message`: a `bot` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotMessageRow {
    /// `id`: UUID v5 of (sender, position).
    pub id: String,
    /// The columns shared by event-derived rows.
    pub event: EventColumns,
    /// `template_name`: the response that was uttered (`metadata.utter_action`, e.g. `utter_greet`); `None`
    /// for messages a custom action sent.
    pub template_name: Option<String>,
    /// `text`.
    pub text: Option<String>,
}

/// `rasa_action`: an `action` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    /// `id`: UUID v5 of (sender, position).
    pub id: String,
    /// The columns shared by event-derived rows.
    pub event: EventColumns,
    /// `name`: the action's name (its `action_text` for end-to-end predictions without a name).
    pub name: Option<String>,
    /// `confidence`: of the policy's prediction.
    pub confidence: Option<f64>,
    /// `policy`: that predicted the action.
    pub policy: Option<String>,
}

/// `rasa_slot`: a `slot` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotRow {
    /// `id`: UUID v5 of (sender, position).
    pub id: String,
    /// The columns shared by event-derived rows.
    pub event: EventColumns,
    /// `slot_path`: `<rasa_sender.id>/<rasa_session.id>/<slot name>`.
    pub slot_path: String,
    /// `name`: the slot's name.
    pub name: String,
    /// `value`: the value as compact JSON text (`null` when unset).
    pub value: String,
}

/// `rasa_session_slot_state`: the last value of each slot set in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSlotStateRow {
    /// `id`: the slot path ([`SlotRow::slot_path`]).
    pub id: String,
    /// `sender_id`: [`SenderRow::id`].
    pub sender_id: String,
    /// `session_id`: [`SessionRow::id`].
    pub session_id: String,
    /// `name`: the slot's name.
    pub name: String,
    /// `value`: the last value set in the session, compact JSON text.
    pub value: String,
    /// `timestamp`: of the event that set it.
    pub timestamp: Option<f64>,
}

/// Rows for every table, as derived from some events.
///
/// Applying them with "insert, or replace the row with the same `id`" is all a store has to do: rows of
/// `rasa_sender`, `rasa_session`, `rasa_turn` and `rasa_session_slot_state` are the latest version of a row
/// that may have been written before (each appears at most once here); all other rows are new and never
/// change (inserting one again is a no-op).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// `rasa_sender` (replace).
    pub senders: Vec<SenderRow>,
    /// `rasa_session` (replace).
    pub sessions: Vec<SessionRow>,
    /// `rasa_turn` (replace).
    pub turns: Vec<TurnRow>,
    /// `rasa_event` (insert once).
    pub events: Vec<EventRow>,
    /// `rasa_user_message` (insert once).
    pub user_messages: Vec<UserMessageRow>,
    /// `rasa_bot_message` (insert once).
    pub bot_messages: Vec<BotMessageRow>,
    /// `rasa_action` (insert once).
    pub actions: Vec<ActionRow>,
    /// `rasa_slot` (insert once).
    pub slots: Vec<SlotRow>,
    /// `rasa_session_slot_state` (replace).
    pub session_slot_states: Vec<SessionSlotStateRow>,
}

impl Rows {
    /// `true` when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
            && self.sessions.is_empty()
            && self.turns.is_empty()
            && self.events.is_empty()
            && self.session_slot_states.is_empty()
    }

    /// Appends `other`'s rows, to write several conversations in one statement per table. Only rows of
    /// *different* conversations: one statement must not carry two versions of the same row.
    pub fn extend(&mut self, other: Rows) {
        self.senders.extend(other.senders);
        self.sessions.extend(other.sessions);
        self.turns.extend(other.turns);
        self.events.extend(other.events);
        self.user_messages.extend(other.user_messages);
        self.bot_messages.extend(other.bot_messages);
        self.actions.extend(other.actions);
        self.slots.extend(other.slots);
        self.session_slot_states.extend(other.session_slot_states);
    }
}
