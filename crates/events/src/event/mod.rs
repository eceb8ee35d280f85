//! One Rasa event as a typed value: every Rasa 3.6 event type, the legacy aliases, and anything else.
//!
//! The types and their constructors are here; reading is in `read`, writing (both forms) in `write`. Each
//! event type's fields are declared once, with their keys and codecs (`payload!`).
//!
//! # Two writers: Rasa's form and the lossless compact form
//! Any JSON object whose `event` is a string reads into an [`Event`]: unknown event types become
//! [`EventKind::Other`], unknown keys go to `extra` (at every level that is typed), and the key order of the
//! input is remembered.
//!
//! **Compact form** ([`Event::to_compact_json`], [`Event::to_value`]): lossless. Writing gives the same JSON
//! value with the same key order: keys absent from the input stay absent, `null` stays `null`. Fields set
//! in code that were not in the input are appended (in Rasa's order) after the keys as read, and only when
//! they differ from their absent default.
//!
//! **Rasa form** ([`Event::to_rasa_json`]): what Rasa 3.6 writes after reading the event
//! (`Event.from_parameters(..).as_dict()` + `json.dumps`), so that an event of an older shape (a Rasa 1.x/2.x
//! tracker dump: other key orders, an `action` without `action_text`/`hide_rule_turn`, `null` metadata, a
//! short `parse_data`) comes out as the bytes Rasa stores and publishes for it. Rasa's key order (`event`,
//! `timestamp`, `metadata` if non-empty — last and always for `user`/`bot` —, then the type's keys) and its
//! defaults for the keys it always writes (`hide_rule_turn: false`, `kill_on_user_msg: true`, `metadata`
//! and `bot.data` `{}`, `null` otherwise; a `user`'s `parse_data` rebuilt as Rasa's `UserUttered` does, see
//! [`crate::ParseData`]). Unknown keys, which Rasa drops, are kept after Rasa's, in the order read. Nested
//! objects (intents, entities, buttons, `bot.data`) and unknown event types are written as read, as Rasa
//! keeps them. For what Rasa writes (which is already in its form) both writers agree with the input byte
//! for byte. Events built in code use Rasa's order in both.
//!
//! Where Rasa's result is not reproducible the event is written from what it holds: no `timestamp` stays
//! without one (Rasa stamps the current time, also for `0`), a `reminder` without `name` stays without one
//! (Rasa invents a UUID), `use_text_for_featurization` absent is `false` (Rasa writes `null`), `date_time`
//! is kept as read.
//!
//! The legacy types `form` and `form_validation` are read as `active_loop` and `loop_interrupted` (with
//! `is_interrupted = !validate`) and are written under the new names by both writers, as Rasa's
//! `LegacyForm.as_dict` does; [`Event::type_name`] still reports the legacy name, like Rasa's `type_name`
//! (and hence its SQL `type_name` column).
//!
//! # Lenient readings (decided here)
//! - `timestamp` absent: accepted, kept absent ([`Event::timestamp`] is `None`). Rasa would stamp "now";
//!   this crate reads no clock. `timestamp` present must be a number (integer or float, kept as is);
//!   `null` or anything else is an error.
//! - `metadata`: an object or `null` (kept), anything else is an error.
//! - `user` without `parse_data`: accepted and kept without it (Rasa itself fails on it); its Rasa form
//!   has the `parse_data` Rasa builds for a message without one.
//! - `action` with neither `name` nor `action_text` (both absent or null): error, as in Rasa.
//! - `slot` and `followup` need a string `name`; `reminder` needs a `date_time` that is an ISO-8601
//!   date-time (`YYYY-MM-DD` + `T` or space + `HH:MM[:SS[.fraction]]` + optional `Z`/`±HH:MM`/`±HHMM`),
//!   kept as read (Rasa re-formats it with `isoformat()`, which is the same string for what Rasa wrote).
//! - `cancel_reminder`'s `name`/`intent`/`entities` and `export`'s `path` are kept as unknown keys (Rasa
//!   drops them when it writes; we do not drop data). Rasa 1.x's `topic` is an [`EventKind::Other`].
//! - Booleans (`hide_rule_turn`, `kill_on_user_msg`, `is_interrupted`, `validate`,
//!   `use_text_for_featurization`) must be booleans when present; absent means Rasa's default.

mod read;
mod write;

use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::parse_data::{BotData, Entity, ParseData};
use crate::pyjson::Style;
use crate::record::{
    Added, AnyValue, Flag, Layout, OptList, OptNum, OptRecord, OptStr, Str, payload,
};

pub(crate) use read::{EventReader, IsoDateTime, not_an_object, refuse_top_level};

/// A `user` event: the user said something.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserUttered {
    /// `text`.
    pub text: Option<String>,
    /// `parse_data` (the NLU result).
    pub parse_data: Option<ParseData>,
    /// `input_channel`.
    pub input_channel: Option<String>,
    /// `message_id`.
    pub message_id: Option<String>,
}

/// A `bot` event: the assistant said something.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotUttered {
    /// `text`.
    pub text: Option<String>,
    /// `data` (buttons, images, ...).
    pub data: Option<BotData>,
}

/// An `action` event: an action ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionExecuted {
    /// `name`.
    pub name: Option<String>,
    /// `policy`.
    pub policy: Option<String>,
    /// `confidence`.
    pub confidence: Option<Number>,
    /// `action_text` (end-to-end predictions).
    pub action_text: Option<String>,
    /// `hide_rule_turn` (absent = `false`).
    pub hide_rule_turn: bool,
}

/// A `slot` event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotSet {
    /// `name`.
    pub name: String,
    /// `value` (any JSON; absent reads as `null`).
    pub value: Value,
}

/// A `reminder` event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReminderScheduled {
    /// `intent` to trigger.
    pub intent: Option<String>,
    /// `date_time`, ISO-8601, as read.
    pub date_time: String,
    /// `entities` to trigger with.
    pub entities: Option<Vec<Entity>>,
    /// `name` of the reminder.
    pub name: Option<String>,
    /// `kill_on_user_msg` (absent = `true`).
    pub kill_on_user_msg: bool,
}

/// An `agent` event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentUttered {
    /// `text`.
    pub text: Option<String>,
    /// `data` (any JSON).
    pub data: Value,
}

/// An `action_execution_rejected` event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionExecutionRejected {
    /// `name` of the rejected action.
    pub name: Option<String>,
    /// `policy`.
    pub policy: Option<String>,
    /// `confidence`.
    pub confidence: Option<Number>,
}

payload! {
    /// The fields of a [`UserUttered`].
    UserUttered, UserField {
        Text = "text" => text: OptStr;
        ParseData = "parse_data" => parse_data: OptRecord;
        InputChannel = "input_channel" => input_channel: OptStr;
        MessageId = "message_id" => message_id: OptStr;
    }
}

payload! {
    /// The fields of a [`BotUttered`].
    BotUttered, BotField {
        Text = "text" => text: OptStr;
        Data = "data" => data: OptRecord;
    }
}

payload! {
    /// The fields of an [`ActionExecuted`].
    ActionExecuted, ActionField {
        Name = "name" => name: OptStr;
        Policy = "policy" => policy: OptStr;
        Confidence = "confidence" => confidence: OptNum;
        ActionText = "action_text" => action_text: OptStr;
        HideRuleTurn = "hide_rule_turn" => hide_rule_turn: Flag<false>;
    }
}

payload! {
    /// The fields of a [`SlotSet`].
    SlotSet, SlotField {
        Name = "name" => name: Str;
        Value = "value" => value: AnyValue;
    }
}

payload! {
    /// The fields of a [`ReminderScheduled`].
    ReminderScheduled, ReminderField {
        Intent = "intent" => intent: OptStr;
        DateTime = "date_time" => date_time: IsoDateTime;
        Entities = "entities" => entities: OptList;
        Name = "name" => name: OptStr;
        KillOnUserMsg = "kill_on_user_msg" => kill_on_user_msg: Flag<true>;
    }
}

payload! {
    /// The fields of an [`AgentUttered`].
    AgentUttered, AgentField {
        Text = "text" => text: OptStr;
        Data = "data" => data: AnyValue;
    }
}

payload! {
    /// The fields of an [`ActionExecutionRejected`].
    ActionExecutionRejected, RejectedField {
        Name = "name" => name: OptStr;
        Policy = "policy" => policy: OptStr;
        Confidence = "confidence" => confidence: OptNum;
    }
}

/// What happened: the event's type and its type-specific fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// `user`.
    User(UserUttered),
    /// `bot`.
    Bot(BotUttered),
    /// `action`.
    Action(ActionExecuted),
    /// `slot`.
    Slot(SlotSet),
    /// `reset_slots`.
    ResetSlots,
    /// `restart`.
    Restart,
    /// `session_started`.
    SessionStarted,
    /// `rewind` (undo the last user turn).
    Rewind,
    /// `undo` (undo the last action).
    Undo,
    /// `followup` with the action's `name`.
    Followup {
        /// `name`.
        name: String,
    },
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `reminder`.
    Reminder(ReminderScheduled),
    /// `cancel_reminder`.
    CancelReminder,
    /// `export`.
    Export,
    /// `agent`.
    Agent(AgentUttered),
    /// `active_loop` (read also from legacy `form`); `name: None` deactivates.
    ActiveLoop {
        /// `name`.
        name: Option<String>,
        /// Read from the legacy type `form`.
        legacy: bool,
    },
    /// `loop_interrupted` (read also from legacy `form_validation`).
    LoopInterrupted {
        /// `is_interrupted` (absent = `false`; legacy: `!validate`).
        is_interrupted: bool,
        /// Read from the legacy type `form_validation`.
        legacy: bool,
    },
    /// `action_execution_rejected`.
    ActionExecutionRejected(ActionExecutionRejected),
    /// `user_featurization`.
    UserFeaturization {
        /// `use_text_for_featurization`.
        use_text_for_featurization: bool,
    },
    /// `entities`: entities added to the latest user message.
    EntitiesAdded {
        /// `entities`.
        entities: Vec<Entity>,
    },
    /// Any other type (Rasa Pro, future versions, `topic`): all its keys are in the `extra` field of [`Event`].
    Other(String),
}

impl EventKind {
    /// A `user` event with `text` and an empty `parse_data`.
    pub fn user(text: impl Into<String>) -> Self {
        let text = text.into();
        let parse_data = ParseData {
            text: Some(text.clone()),
            ..ParseData::default()
        };
        EventKind::User(UserUttered {
            text: Some(text),
            parse_data: Some(parse_data),
            ..Default::default()
        })
    }
    /// A `bot` event with `text` and `data: {}`.
    pub fn bot(text: impl Into<String>) -> Self {
        EventKind::Bot(BotUttered {
            text: Some(text.into()),
            data: Some(BotData::default()),
        })
    }
    /// An `action` event for the named action.
    pub fn action(name: impl Into<String>) -> Self {
        EventKind::Action(ActionExecuted {
            name: Some(name.into()),
            ..Default::default()
        })
    }
    /// A `slot` event.
    pub fn slot(name: impl Into<String>, value: impl Into<Value>) -> Self {
        EventKind::Slot(SlotSet {
            name: name.into(),
            value: value.into(),
        })
    }
    /// The event of type `type_name` with default fields ([`EventKind::Other`] for unknown names).
    pub fn blank(type_name: &str) -> Self {
        match type_name {
            "user" => EventKind::User(UserUttered::default()),
            "bot" => EventKind::Bot(BotUttered::default()),
            "action" => EventKind::Action(ActionExecuted::default()),
            "slot" => EventKind::Slot(SlotSet::default()),
            "reset_slots" => EventKind::ResetSlots,
            "restart" => EventKind::Restart,
            "session_started" => EventKind::SessionStarted,
            "rewind" => EventKind::Rewind,
            "undo" => EventKind::Undo,
            "followup" => EventKind::Followup {
                name: String::new(),
            },
            "pause" => EventKind::Pause,
            "resume" => EventKind::Resume,
            "reminder" => EventKind::Reminder(ReminderScheduled {
                kill_on_user_msg: true,
                ..Default::default()
            }),
            "cancel_reminder" => EventKind::CancelReminder,
            "export" => EventKind::Export,
            "agent" => EventKind::Agent(AgentUttered::default()),
            "active_loop" => EventKind::ActiveLoop {
                name: None,
                legacy: false,
            },
            "form" => EventKind::ActiveLoop {
                name: None,
                legacy: true,
            },
            "loop_interrupted" => EventKind::LoopInterrupted {
                is_interrupted: false,
                legacy: false,
            },
            "form_validation" => EventKind::LoopInterrupted {
                is_interrupted: false,
                legacy: true,
            },
            "action_execution_rejected" => {
                EventKind::ActionExecutionRejected(ActionExecutionRejected::default())
            }
            "user_featurization" => EventKind::UserFeaturization {
                use_text_for_featurization: false,
            },
            "entities" => EventKind::EntitiesAdded {
                entities: Vec::new(),
            },
            other => EventKind::Other(other.to_owned()),
        }
    }

    /// The type name as read (`form`/`form_validation` for legacy events).
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::ActiveLoop { legacy: true, .. } => "form",
            EventKind::LoopInterrupted { legacy: true, .. } => "form_validation",
            EventKind::Other(name) => name,
            other => other.written_type_name(),
        }
    }

    /// The type name written (legacy types under their current names).
    pub fn written_type_name(&self) -> &str {
        match self {
            EventKind::User(_) => "user",
            EventKind::Bot(_) => "bot",
            EventKind::Action(_) => "action",
            EventKind::Slot(_) => "slot",
            EventKind::ResetSlots => "reset_slots",
            EventKind::Restart => "restart",
            EventKind::SessionStarted => "session_started",
            EventKind::Rewind => "rewind",
            EventKind::Undo => "undo",
            EventKind::Followup { .. } => "followup",
            EventKind::Pause => "pause",
            EventKind::Resume => "resume",
            EventKind::Reminder(_) => "reminder",
            EventKind::CancelReminder => "cancel_reminder",
            EventKind::Export => "export",
            EventKind::Agent(_) => "agent",
            EventKind::ActiveLoop { .. } => "active_loop",
            EventKind::LoopInterrupted { .. } => "loop_interrupted",
            EventKind::ActionExecutionRejected(_) => "action_execution_rejected",
            EventKind::UserFeaturization { .. } => "user_featurization",
            EventKind::EntitiesAdded { .. } => "entities",
            EventKind::Other(name) => name,
        }
    }
}

/// One Rasa event (without the conversation id). See the module documentation for the lossless rules.
///
/// ```
/// use colloquy_events::{Event, EventKind};
/// let body = br#"{"event": "slot", "timestamp": 1700000002.0, "name": "cuisine", "value": "indian"}"#;
/// let event = Event::from_json(body)?;
/// assert!(matches!(event.kind, EventKind::Slot(_)));
/// assert_eq!(event.action_name(), Some("cuisine"));
/// assert_eq!(event.to_rasa_json().as_bytes(), body);
/// # Ok::<(), colloquy_events::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The type and its fields.
    pub kind: EventKind,
    /// `timestamp`, unix seconds, integer or float as read (`None` = absent).
    pub timestamp: Option<Number>,
    /// `metadata` (`None` = absent or `null`).
    pub metadata: Option<Map<String, Value>>,
    /// Keys this crate does not know, in input order.
    pub extra: Map<String, Value>,
    layout: Layout,
}

/// The ids of the keys every event has; the type's own keys follow from `FIRST_OWN` on, in Rasa's order.
const EVENT: u8 = 0;
const TIMESTAMP: u8 = 1;
const METADATA: u8 = 2;
const FIRST_OWN: u8 = 3;

impl Event {
    /// A new event of `kind` **without a timestamp**; `metadata` `{}` for `user` and `bot` (Rasa always
    /// writes it), absent otherwise. Prefer [`Event::at`] for events of a live conversation.
    ///
    /// Without a timestamp the event is written without one (Rasa would stamp "now"; this crate reads no
    /// clock). It is stored and published like any other, but a tracker store's `retrieve`, which loads the
    /// latest session as Rasa does (the events whose timestamp is at least that of the latest
    /// `session_started`), leaves it out as soon as the conversation has a timestamped `session_started`:
    /// it then appears only in `retrieve_full`. Rasa's own SQL tracker store reads the same rows the same way.
    pub fn new(kind: EventKind) -> Self {
        let metadata = matches!(kind, EventKind::User(_) | EventKind::Bot(_)).then(Map::new);
        Self {
            kind,
            timestamp: None,
            metadata,
            extra: Map::new(),
            layout: Layout::Canonical,
        }
    }

    /// A new event of `kind` that happened at `time` (a `SystemTime` the caller read, e.g.
    /// `SystemTime::now()`), written as Rasa writes `time.time()`: float unix seconds (negative before 1970).
    /// Cannot fail. Otherwise as [`Event::new`].
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use colloquy_events::{Event, EventKind};
    /// let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
    /// let event = Event::at(EventKind::action("action_listen"), at);
    /// assert_eq!(event.timestamp(), Some(1_700_000_000.25));
    /// ```
    pub fn at(kind: EventKind, time: SystemTime) -> Self {
        let seconds = match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => after.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        };
        let mut event = Self::new(kind);
        // A duration in seconds is always finite.
        event.timestamp = Number::from_f64(seconds);
        event
    }

    /// Sets the timestamp (unix seconds); infinities and NaN are refused ([`Event::at`] cannot fail).
    pub fn with_timestamp(mut self, timestamp: f64) -> Result<Self> {
        self.timestamp = Some(Number::from_f64(timestamp).ok_or(Error::NonFiniteNumber {
            path: "$.timestamp".into(),
            value: timestamp,
        })?);
        Ok(self)
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The event as a JSON value (same keys, same order as written).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.write(Style::Compact, Added::None)).unwrap_or(Value::Null)
    }

    /// Rasa's `type_name`: the `event` key as read (`form`/`form_validation` for legacy events, which are
    /// written under their current names).
    pub fn type_name(&self) -> &str {
        self.kind.type_name()
    }

    /// `timestamp` as unix seconds.
    pub fn timestamp(&self) -> Option<f64> {
        self.timestamp.as_ref().and_then(Number::as_f64)
    }

    /// `parse_data.intent.name` of a `user` event (Rasa's SQL `intent_name`).
    pub fn intent_name(&self) -> Option<&str> {
        match &self.kind {
            EventKind::User(u) => u.parse_data.as_ref()?.intent_name(),
            _ => None,
        }
    }

    /// The string under the event's `name` key, for any event that has one (Rasa's SQL `action_name`).
    pub fn action_name(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Action(a) => a.name.as_deref(),
            EventKind::Slot(s) => Some(&s.name),
            EventKind::Followup { name } => Some(name),
            EventKind::Reminder(r) => r.name.as_deref(),
            EventKind::ActiveLoop { name, .. } => name.as_deref(),
            EventKind::ActionExecutionRejected(r) => r.name.as_deref(),
            _ => self.extra.get("name").and_then(Value::as_str),
        }
    }
}

impl fmt::Display for Event {
    /// The compact JSON form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.write(Style::Compact, Added::None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_events_use_rasa_order() {
        let e = Event::new(EventKind::action("action_listen"))
            .with_timestamp(1.5)
            .unwrap();
        assert_eq!(
            e.to_rasa_json(),
            r#"{"event": "action", "timestamp": 1.5, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}"#
        );
        let e = Event::new(EventKind::bot("hi"))
            .with_timestamp(2.0)
            .unwrap();
        assert_eq!(
            e.to_rasa_json(),
            r#"{"event": "bot", "timestamp": 2.0, "text": "hi", "data": {}, "metadata": {}}"#
        );
        assert!(
            Event::new(EventKind::Pause)
                .with_timestamp(f64::NAN)
                .is_err()
        );
    }

    #[test]
    fn fields_set_later_are_appended() {
        let mut e =
            Event::from_json(br#"{"timestamp": 1, "event": "action", "name": "a"}"#).unwrap();
        if let EventKind::Action(a) = &mut e.kind {
            a.policy = Some("p".into());
        }
        assert_eq!(
            e.to_compact_json(),
            r#"{"timestamp":1,"event":"action","name":"a","policy":"p"}"#
        );
        // Rasa's form: Rasa's order and defaults.
        assert_eq!(
            e.to_rasa_json(),
            r#"{"event": "action", "timestamp": 1, "name": "a", "policy": "p", "confidence": null, "action_text": null, "hide_rule_turn": false}"#
        );
    }
}
