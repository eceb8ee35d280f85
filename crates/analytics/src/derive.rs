//! From a conversation's events to the rows of the analytics tables, incrementally.
//!
//! [`Conversation`] is everything that must be remembered between two batches of one conversation; it is
//! [`serde`]-serialisable so a store can keep it next to the tables. Feeding it the events in stored order —
//! in one go, or split into batches in any way, with events it has already seen given again — yields rows
//! that, applied as [`Rows`] says, leave exactly the same tables.

use std::collections::HashMap;

use colloquy_events::{Event, EventKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids;
use crate::rows::{
    ActionRow, BotMessageRow, EventColumns, EventRow, Rows, SenderRow, SessionRow,
    SessionSlotStateRow, SlotRow, TurnRow, UserMessageRow,
};

/// The action Rasa runs to start a session.
pub const ACTION_SESSION_START: &str = "action_session_start";
/// The slot Rasa sets, just before [`ACTION_SESSION_START`], to the metadata of the message that started
/// the session.
pub const SESSION_STARTED_METADATA: &str = "session_started_metadata";

/// What the derivation takes besides the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Written to `rasa_event.environment` (Rasa Pro takes it from the deployment, e.g. `production`).
    pub environment: Option<String>,
}

/// Why the next event may start a session even though it is no session start itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Boundary {
    /// Nothing pending.
    #[default]
    None,
    /// The previous event was a `restart`: the next event starts a session.
    AfterRestart,
    /// The previous event was the `session_started_metadata` slot, which started a session: an
    /// `action_session_start` right after it belongs to that session.
    AfterSessionMetadata,
}

/// The resumable state of one conversation's derivation.
///
/// ```
/// use colloquy_analytics::{Conversation, Settings};
/// use colloquy_events::{Event, EventKind};
///
/// let events = [Event::new(EventKind::action("action_session_start")), Event::new(EventKind::user("hi"))];
/// let mut conversation = Conversation::new("alice");
/// let rows = conversation.apply(&Settings::default(), events.iter().enumerate().map(|(i, e)| (i as u64, e)))?;
/// assert_eq!((rows.sessions.len(), rows.turns.len(), rows.events.len()), (1, 1, 2));
/// // Stored as JSON between batches; an event seen before changes nothing.
/// let mut resumed = Conversation::from_json(&conversation.to_json())?;
/// assert!(resumed.apply(&Settings::default(), [(1, &events[1])])?.is_empty());
/// # Ok::<(), colloquy_analytics::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    sender: SenderRow,
    next_position: u64,
    session: Option<SessionRow>,
    turn: Option<TurnRow>,
    boundary: Boundary,
}

impl Conversation {
    /// The state of a conversation of which no event was seen yet.
    pub fn new(sender_key: &str) -> Self {
        Self {
            sender: SenderRow {
                id: ids::uuid_of(&["rasa_sender", sender_key]),
                sender_key: sender_key.to_owned(),
                channel: None,
                first_seen: None,
                last_seen: None,
            },
            next_position: 0,
            session: None,
            turn: None,
            boundary: Boundary::None,
        }
    }

    /// Reads a state written by [`Conversation::to_json`].
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::State(e.to_string()))
    }

    /// The state as JSON text, to be stored with the tables in the same transaction.
    pub fn to_json(&self) -> String {
        // tidy: allow(unwrap) a conversation state always serialises.
        serde_json::to_string(self).expect("a conversation state always serialises")
    }

    /// Rasa's `sender_id` of this conversation.
    pub fn sender_key(&self) -> &str {
        &self.sender.sender_key
    }

    /// The position of the next event this state expects (= the number of events seen).
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Derives the rows for `events`, given as (0-based position in the conversation, event) in stored order.
    ///
    /// Events at positions already seen are skipped (a redelivery changes nothing). A position beyond the
    /// next one expected is an [`Error::Gap`], and then the state is left as it was.
    pub fn apply<'a>(
        &mut self,
        settings: &Settings,
        events: impl IntoIterator<Item = (u64, &'a Event)>,
    ) -> Result<Rows> {
        let before = self.clone();
        let mut batch = Batch::default();
        for (position, event) in events {
            if position < self.next_position {
                continue;
            }
            if position > self.next_position {
                let error = Error::Gap {
                    sender_id: self.sender.sender_key.clone(),
                    expected: self.next_position,
                    got: position,
                };
                *self = before;
                return Err(error);
            }
            self.derive_one(settings, position, event, &mut batch);
            self.next_position += 1;
        }
        Ok(self.finish(batch))
    }

    fn derive_one(&mut self, settings: &Settings, position: u64, event: &Event, batch: &mut Batch) {
        let timestamp = event.timestamp();
        if self.starts_session(event) {
            batch.close_turn(self.turn.take());
            if let Some(session) = self.session.take() {
                batch.rows.sessions.push(session);
            }
            self.session = Some(SessionRow {
                id: ids::at_position("rasa_session", &self.sender.sender_key, position),
                sender_id: self.sender.id.clone(),
                timestamp: None,
                start_sequence_number: position,
                end_sequence_number: position,
            });
        }
        // tidy: allow(unwrap) a session was opened above.
        let session = self.session.as_mut().expect("a session was opened above");
        session.end_sequence_number = position;
        session.timestamp = session.timestamp.or(timestamp);
        let session_id = session.id.clone();

        if let EventKind::User(user) = &event.kind {
            batch.close_turn(self.turn.take());
            self.turn = Some(TurnRow {
                id: ids::at_position("rasa_turn", &self.sender.sender_key, position),
                sender_id: self.sender.id.clone(),
                session_id: session_id.clone(),
                start_sequence_number: position,
                end_sequence_number: position,
            });
            if self.sender.channel.is_none() {
                self.sender.channel.clone_from(&user.input_channel);
            }
        } else if let Some(turn) = &mut self.turn {
            turn.end_sequence_number = position;
        }
        self.sender.first_seen = self.sender.first_seen.or(timestamp);
        if timestamp.is_some() {
            self.sender.last_seen = timestamp;
        }

        let sender_key = &self.sender.sender_key;
        let model_id = event
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.get("model_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let columns = EventColumns {
            sender_id: self.sender.id.clone(),
            session_id,
            event_id: ids::at_position("rasa_event", sender_key, position),
            timestamp,
            model_id,
            sequence_number: position,
        };
        batch.rows.events.push(EventRow {
            id: columns.event_id.clone(),
            sender_id: columns.sender_id.clone(),
            session_id: columns.session_id.clone(),
            timestamp,
            model_id: columns.model_id.clone(),
            environment: settings.environment.clone(),
            sequence_number: position,
            event_type: event.type_name().to_owned(),
        });
        match &event.kind {
            EventKind::User(user) => {
                let intent = user.parse_data.as_ref().and_then(|p| p.intent.as_ref());
                batch.rows.user_messages.push(UserMessageRow {
                    id: ids::at_position("rasa_user_message", sender_key, position),
                    intent: intent.and_then(|i| i.name.clone()),
                    retrieval_intent: intent.and_then(|i| i.full_retrieval_intent_name.clone()),
                    confidence: intent
                        .and_then(|i| i.confidence.as_ref())
                        .and_then(|c| c.as_f64()),
                    text: user.text.clone(),
                    message_id: user
                        .message_id
                        .clone()
                        .or_else(|| user.parse_data.as_ref().and_then(|p| p.message_id.clone())),
                    event: columns,
                });
            }
            EventKind::Bot(bot) => {
                let template_name = event
                    .metadata
                    .as_ref()
                    .and_then(|metadata| metadata.get("utter_action"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                batch.rows.bot_messages.push(BotMessageRow {
                    id: ids::at_position("rasa_bot_message", sender_key, position),
                    template_name,
                    text: bot.text.clone(),
                    event: columns,
                });
            }
            EventKind::Action(action) => {
                batch.rows.actions.push(ActionRow {
                    id: ids::at_position("rasa_action", sender_key, position),
                    name: action.name.clone().or_else(|| action.action_text.clone()),
                    confidence: action.confidence.as_ref().and_then(|c| c.as_f64()),
                    policy: action.policy.clone(),
                    event: columns,
                });
            }
            EventKind::Slot(slot) => {
                let slot_path =
                    format!("{}/{}/{}", columns.sender_id, columns.session_id, slot.name);
                let value =
                    // tidy: allow(unwrap) a JSON value always serialises.
                    serde_json::to_string(&slot.value).expect("a JSON value always serialises");
                batch.slot_state(SessionSlotStateRow {
                    id: slot_path.clone(),
                    sender_id: columns.sender_id.clone(),
                    session_id: columns.session_id.clone(),
                    name: slot.name.clone(),
                    value: value.clone(),
                    timestamp,
                });
                batch.rows.slots.push(SlotRow {
                    id: ids::at_position("rasa_slot", sender_key, position),
                    slot_path,
                    name: slot.name.clone(),
                    value,
                    event: columns,
                });
            }
            _ => {}
        }
        self.boundary = match &event.kind {
            EventKind::Restart => Boundary::AfterRestart,
            _ if is_session_metadata(event) => Boundary::AfterSessionMetadata,
            _ => Boundary::None,
        };
        batch.touched = true;
    }

    /// Rasa's session rule (see the crate documentation).
    fn starts_session(&self, event: &Event) -> bool {
        if self.session.is_none()
            || self.boundary == Boundary::AfterRestart
            || is_session_metadata(event)
        {
            return true;
        }
        event.action_name() == Some(ACTION_SESSION_START)
            && matches!(event.kind, EventKind::Action(_))
            && self.boundary != Boundary::AfterSessionMetadata
    }

    fn finish(&self, mut batch: Batch) -> Rows {
        if batch.touched {
            batch.rows.senders.push(self.sender.clone());
            batch.rows.sessions.extend(self.session.clone());
            batch.rows.turns.extend(self.turn.clone());
        }
        batch.rows.session_slot_states = batch.slot_states;
        batch.rows
    }
}

fn is_session_metadata(event: &Event) -> bool {
    matches!(&event.kind, EventKind::Slot(slot) if slot.name == SESSION_STARTED_METADATA)
}

/// The rows of one call to [`Conversation::apply`] while they are being derived.
#[derive(Default)]
struct Batch {
    rows: Rows,
    /// Latest value per slot path, in the order the paths were first set in this batch.
    slot_states: Vec<SessionSlotStateRow>,
    slot_state_index: HashMap<String, usize>,
    touched: bool,
}

impl Batch {
    fn close_turn(&mut self, turn: Option<TurnRow>) {
        self.rows.turns.extend(turn);
    }

    fn slot_state(&mut self, row: SessionSlotStateRow) {
        match self.slot_state_index.get(&row.id) {
            Some(&index) => self.slot_states[index] = row,
            None => {
                self.slot_state_index
                    .insert(row.id.clone(), self.slot_states.len());
                self.slot_states.push(row);
            }
        }
    }
}

/// All rows of one conversation, derived in one go (what `colloquy analytics rebuild` writes).
pub fn derive_conversation<'a>(
    settings: &Settings,
    sender_key: &str,
    events: impl IntoIterator<Item = &'a Event>,
) -> Rows {
    let positioned = events.into_iter().enumerate().map(|(i, e)| (i as u64, e));
    Conversation::new(sender_key)
        .apply(settings, positioned)
        // tidy: allow(unwrap) consecutive positions from 0 never leave a gap.
        .expect("consecutive positions from 0 never leave a gap")
}
