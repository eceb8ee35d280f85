//! From a conversation's events to the rows of the analytics tables, incrementally.
//!
//! [`Conversation`] is everything that must be remembered between two batches of one conversation; it is
//! [`serde`]-serialisable (compactly: ids are not stored, they follow from the sender key and positions) so a
//! store can keep it next to the tables. Feeding it the events in stored order — in one go, or split into
//! batches in any way, with events it has already seen given again — yields rows that, applied as [`Rows`]
//! says, leave exactly the same tables. A call returns only rows that differ from what the previous calls
//! returned (a turn closed by a new user message is not written again when its end did not move).

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
    #[serde(rename = "n", alias = "None")]
    None,
    /// The previous event was a `restart`: the next event starts a session.
    #[serde(rename = "r", alias = "AfterRestart")]
    AfterRestart,
    /// The previous event was the `session_started_metadata` slot, which started a session: an
    /// `action_session_start` right after it belongs to that session.
    #[serde(rename = "m", alias = "AfterSessionMetadata")]
    AfterSessionMetadata,
}

impl Boundary {
    fn is_none(&self) -> bool {
        *self == Boundary::None
    }
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
#[serde(into = "Stored", try_from = "Stored")]
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

    /// Reads a state written by [`Conversation::to_json`] (also the longer form of earlier versions, which
    /// stored every id).
    pub fn from_json(text: &str) -> Result<Self> {
        match serde_json::from_str::<Self>(text) {
            Ok(conversation) => Ok(conversation),
            Err(error) => serde_json::from_str::<Legacy>(text)
                .map(Self::from)
                .map_err(|_| Error::State(error.to_string())),
        }
    }

    /// The state as compact JSON text (about 120 bytes: positions, timestamps, channel; no ids), to be stored
    /// with the tables in the same transaction.
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
        let mut batch = Batch {
            prior_session: before.session.clone(),
            prior_turn: before.turn.clone(),
            ..Batch::default()
        };
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
        Ok(self.finish(batch, &before))
    }

    fn derive_one(&mut self, settings: &Settings, position: u64, event: &Event, batch: &mut Batch) {
        let timestamp = event.timestamp();
        if self.starts_session(event) {
            batch.close_turn(self.turn.take());
            batch.close_session(self.session.take());
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

    /// The rows of the batch: besides the event rows, the open session's, turn's and sender's latest
    /// version where it differs from the one `before` (the state the previous call left, whose rows were
    /// written then).
    fn finish(&self, mut batch: Batch, before: &Conversation) -> Rows {
        if batch.touched {
            if self.sender != before.sender {
                batch.rows.senders.push(self.sender.clone());
            }
            if self.session != before.session {
                batch.rows.sessions.extend(self.session.clone());
            }
            if self.turn != before.turn {
                batch.rows.turns.extend(self.turn.clone());
            }
        }
        batch.rows.session_slot_states = batch.slot_states;
        batch.rows
    }
}

/// The stored form of a [`Conversation`]: what cannot be recomputed. Ids follow from the sender key and
/// positions; the open turn always belongs to the open session.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Rasa's `sender_id`.
    k: String,
    /// The next position expected.
    n: u64,
    /// The sender's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    /// The sender's first_seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<f64>,
    /// The sender's last_seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<f64>,
    /// The open session: start and end position, timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<(u64, u64, Option<f64>)>,
    /// The open turn: start and end position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<(u64, u64)>,
    /// The pending session boundary.
    #[serde(default, skip_serializing_if = "Boundary::is_none")]
    b: Boundary,
}

impl From<Conversation> for Stored {
    fn from(conversation: Conversation) -> Self {
        let Conversation {
            sender,
            next_position,
            session,
            turn,
            boundary,
        } = conversation;
        Stored {
            k: sender.sender_key,
            n: next_position,
            c: sender.channel,
            f: sender.first_seen,
            l: sender.last_seen,
            s: session.map(|s| (s.start_sequence_number, s.end_sequence_number, s.timestamp)),
            t: turn.map(|t| (t.start_sequence_number, t.end_sequence_number)),
            b: boundary,
        }
    }
}

impl TryFrom<Stored> for Conversation {
    type Error = String;

    fn try_from(stored: Stored) -> std::result::Result<Self, String> {
        let mut conversation = Conversation::new(&stored.k);
        conversation.next_position = stored.n;
        conversation.sender.channel = stored.c;
        conversation.sender.first_seen = stored.f;
        conversation.sender.last_seen = stored.l;
        conversation.boundary = stored.b;
        let sender_id = conversation.sender.id.clone();
        conversation.session = stored.s.map(|(start, end, timestamp)| SessionRow {
            id: ids::at_position("rasa_session", &stored.k, start),
            sender_id: sender_id.clone(),
            timestamp,
            start_sequence_number: start,
            end_sequence_number: end,
        });
        conversation.turn = match (stored.t, &conversation.session) {
            (None, _) => None,
            (Some((start, end)), Some(session)) => Some(TurnRow {
                id: ids::at_position("rasa_turn", &stored.k, start),
                sender_id,
                session_id: session.id.clone(),
                start_sequence_number: start,
                end_sequence_number: end,
            }),
            (Some(_), None) => return Err("an open turn without an open session".to_owned()),
        };
        Ok(conversation)
    }
}

/// The form earlier versions stored (every row whole, ids included).
#[derive(Deserialize)]
struct Legacy {
    sender: SenderRow,
    next_position: u64,
    session: Option<SessionRow>,
    turn: Option<TurnRow>,
    boundary: Boundary,
}

impl From<Legacy> for Conversation {
    fn from(legacy: Legacy) -> Self {
        Conversation {
            sender: legacy.sender,
            next_position: legacy.next_position,
            session: legacy.session,
            turn: legacy.turn,
            boundary: legacy.boundary,
        }
    }
}

fn is_session_metadata(event: &Event) -> bool {
    matches!(&event.kind, EventKind::Slot(slot) if slot.name == SESSION_STARTED_METADATA)
}

/// The rows of one call to [`Conversation::apply`] while they are being derived.
#[derive(Default)]
struct Batch {
    rows: Rows,
    /// The session and turn open before this batch, as written then: closing them unchanged writes nothing.
    prior_session: Option<SessionRow>,
    prior_turn: Option<TurnRow>,
    /// Latest value per slot path, in the order the paths were first set in this batch.
    slot_states: Vec<SessionSlotStateRow>,
    slot_state_index: HashMap<String, usize>,
    touched: bool,
}

impl Batch {
    fn close_turn(&mut self, turn: Option<TurnRow>) {
        if turn != self.prior_turn {
            self.rows.turns.extend(turn);
        }
    }

    fn close_session(&mut self, session: Option<SessionRow>) {
        if session != self.prior_session {
            self.rows.sessions.extend(session);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        let mut user = EventKind::user("hi");
        if let EventKind::User(u) = &mut user {
            u.input_channel = Some("rest".into());
        }
        vec![
            Event::new(EventKind::action(ACTION_SESSION_START))
                .with_timestamp(1.0)
                .unwrap(),
            Event::new(user.clone()).with_timestamp(2.0).unwrap(),
            Event::new(EventKind::bot("hey"))
                .with_timestamp(3.0)
                .unwrap(),
            Event::new(EventKind::Restart),
            Event::new(user).with_timestamp(5.0).unwrap(),
        ]
    }

    fn positioned(events: &[Event], range: std::ops::Range<usize>) -> Vec<(u64, &Event)> {
        range.map(|i| (i as u64, &events[i])).collect()
    }

    #[test]
    fn the_stored_state_is_compact_and_reads_back_equal() {
        let events = events();
        let settings = Settings::default();
        for end in 0..=events.len() {
            let mut conversation = Conversation::new("alice");
            conversation
                .apply(&settings, positioned(&events, 0..end))
                .unwrap();
            let json = conversation.to_json();
            assert!(json.len() < 120, "{json}");
            assert!(!json.contains(&conversation.sender.id), "{json}");
            assert_eq!(Conversation::from_json(&json).unwrap(), conversation);
        }
    }

    #[test]
    fn the_long_form_of_earlier_versions_still_reads() {
        let events = events();
        let mut conversation = Conversation::new("alice");
        conversation
            .apply(&Settings::default(), positioned(&events, 0..3))
            .unwrap();
        let legacy = serde_json::json!({
            "sender": conversation.sender,
            "next_position": conversation.next_position,
            "session": conversation.session,
            "turn": conversation.turn,
            "boundary": "AfterRestart",
        });
        let read = Conversation::from_json(&legacy.to_string()).unwrap();
        assert_eq!(read.boundary, Boundary::AfterRestart);
        assert_eq!(
            (read.session, read.turn),
            (conversation.session, conversation.turn)
        );
        assert!(matches!(
            Conversation::from_json(r#"{"k": "a", "n": 1, "t": [0, 0]}"#),
            Err(Error::State(_))
        ));
    }

    #[test]
    fn rows_that_did_not_change_are_not_written_again() {
        let events = events();
        let settings = Settings::default();
        let mut conversation = Conversation::new("alice");
        let first = conversation
            .apply(&settings, positioned(&events, 0..3))
            .unwrap();
        assert_eq!(
            (first.senders.len(), first.sessions.len(), first.turns.len()),
            (1, 1, 1)
        );
        // The restart changes nothing but the session's end and the turn's end.
        let second = conversation
            .apply(&settings, positioned(&events, 3..4))
            .unwrap();
        assert_eq!(
            (
                second.senders.len(),
                second.sessions.len(),
                second.turns.len()
            ),
            (0, 1, 1)
        );
        // A new session: the closed session and turn ended where the last batch left them.
        let third = conversation
            .apply(&settings, positioned(&events, 4..5))
            .unwrap();
        assert_eq!(third.sessions.len(), 1);
        assert_eq!(third.sessions[0].start_sequence_number, 4);
        assert_eq!(third.turns.len(), 1);
        assert_eq!(third.turns[0].start_sequence_number, 4);
        assert_eq!(third.senders.len(), 1);
    }
}
