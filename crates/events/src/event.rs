//! One Rasa event as a typed value: every Rasa 3.6 event type, the legacy aliases, and anything else.
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

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::parse_data::{BotData, Entity, ParseData, ParseDataDefaults};
use crate::pyjson::{Style, Writer};
use crate::record::{
    Added, Codec, Cx, EXTRA, FromMap, FromValue, Ids, KeySeed, Layout, OptList, OptRecord, Path,
    Record, RecordListSeed, Source, any, kind_of, leaf, to_bool, to_number, to_opt_number,
    to_opt_object, to_opt_string, to_string, write_opt_map, write_opt_record, write_opt_records,
    write_record, write_record_with,
};

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

    /// The keys of the type's own fields, in Rasa's order; field id = 3 + index.
    fn keys(&self) -> &'static [&'static str] {
        match self {
            EventKind::User(_) => &["text", "parse_data", "input_channel", "message_id"],
            EventKind::Bot(_) | EventKind::Agent(_) => &["text", "data"],
            EventKind::Action(_) => &[
                "name",
                "policy",
                "confidence",
                "action_text",
                "hide_rule_turn",
            ],
            EventKind::Slot(_) => &["name", "value"],
            EventKind::Followup { .. } | EventKind::ActiveLoop { .. } => &["name"],
            EventKind::Reminder(_) => &[
                "intent",
                "date_time",
                "entities",
                "name",
                "kill_on_user_msg",
            ],
            EventKind::LoopInterrupted { .. } => &["is_interrupted"],
            EventKind::ActionExecutionRejected(_) => &["name", "policy", "confidence"],
            EventKind::UserFeaturization { .. } => &["use_text_for_featurization"],
            EventKind::EntitiesAdded { .. } => &["entities"],
            _ => &[],
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

    /// Reads an event from a JSON value.
    pub fn from_value(value: Value) -> Result<Self> {
        let cx = Cx::default();
        EventSeed { cx: &cx }
            .deserialize(value)
            .map_err(|e| cx.into_error(&e))
    }

    /// Reads an event from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let cx = Cx::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let event = EventSeed { cx: &cx }
            .deserialize(&mut de)
            .map_err(|e| cx.into_error(&e))?;
        de.end().map_err(|e| Error::from_json(&e))?;
        Ok(event)
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

    /// Exactly the bytes Rasa writes for this event (Python `json.dumps` of its `as_dict()`), without
    /// `sender_id`: Rasa's SQL `data` column. An event of an older shape comes out in Rasa 3.6's form (see
    /// the [module documentation](self)).
    pub fn to_rasa_json(&self) -> String {
        self.write(Style::Rasa, Added::None)
    }

    /// Compact UTF-8 JSON (no spaces), lossless: the keys as read, in their order.
    pub fn to_compact_json(&self) -> String {
        self.write(Style::Compact, Added::None)
    }

    /// Forgets the key order as read, so that the compact writer too uses Rasa's order (keys Rasa always
    /// writes appear, as `null` when unset).
    pub fn normalize_key_order(&mut self) {
        self.layout = Layout::Canonical;
    }

    pub(crate) fn write(&self, style: Style, added: Added<'_>) -> String {
        let mut w = Writer::new(style);
        write_record_with(self, &mut w, added);
        w.finish()
    }

    /// What Rasa's `UserUttered` puts in a `parse_data` where the input's lacks a key.
    fn rasa_user_defaults<'a>(&'a self, user: &'a UserUttered) -> ParseDataDefaults<'a> {
        ParseDataDefaults {
            text: user.text.as_deref(),
            message_id: user.message_id.as_deref(),
            metadata: self.metadata.as_ref(),
        }
    }

    fn field_id(&self, key: &str) -> Option<u8> {
        match key {
            "timestamp" => Some(TIMESTAMP),
            "metadata" => Some(METADATA),
            "validate" if matches!(self.kind, EventKind::LoopInterrupted { legacy: true, .. }) => {
                Some(FIRST_OWN)
            }
            "is_interrupted"
                if matches!(self.kind, EventKind::LoopInterrupted { legacy: true, .. }) =>
            {
                None
            }
            _ => self
                .kind
                .keys()
                .iter()
                .position(|k| *k == key)
                .map(|i| FIRST_OWN + i as u8),
        }
    }

    fn read_field<'de, S: Source<'de>>(&mut self, id: u8, src: S, cx: &Cx) -> Result<(), S::Error> {
        let root = Path::Root;
        if id == TIMESTAMP {
            self.timestamp = Some(leaf(src, cx, root.key("timestamp"), to_number)?);
            return Ok(());
        }
        if id == METADATA {
            self.metadata = leaf(src, cx, root.key("metadata"), to_opt_object)?;
            return Ok(());
        }
        let own = (id - FIRST_OWN) as usize;
        let key = self.kind.keys()[own];
        let p = root.key(key);
        match &mut self.kind {
            EventKind::User(u) => match own {
                0 => u.text = leaf(src, cx, p, to_opt_string)?,
                1 => u.parse_data = OptRecord::read(src, cx, p)?,
                2 => u.input_channel = leaf(src, cx, p, to_opt_string)?,
                _ => u.message_id = leaf(src, cx, p, to_opt_string)?,
            },
            EventKind::Bot(b) => match own {
                0 => b.text = leaf(src, cx, p, to_opt_string)?,
                _ => b.data = OptRecord::read(src, cx, p)?,
            },
            EventKind::Agent(a) => match own {
                0 => a.text = leaf(src, cx, p, to_opt_string)?,
                _ => a.data = any(src, cx, p)?,
            },
            EventKind::Action(a) => match own {
                0 => a.name = leaf(src, cx, p, to_opt_string)?,
                1 => a.policy = leaf(src, cx, p, to_opt_string)?,
                2 => a.confidence = leaf(src, cx, p, to_opt_number)?,
                3 => a.action_text = leaf(src, cx, p, to_opt_string)?,
                _ => a.hide_rule_turn = leaf(src, cx, p, to_bool)?,
            },
            EventKind::Slot(s) => match own {
                0 => s.name = leaf(src, cx, p, to_string)?,
                _ => s.value = any(src, cx, p)?,
            },
            EventKind::Followup { name } => *name = leaf(src, cx, p, to_string)?,
            EventKind::ActiveLoop { name, .. } => *name = leaf(src, cx, p, to_opt_string)?,
            EventKind::Reminder(r) => match own {
                0 => r.intent = leaf(src, cx, p, to_opt_string)?,
                1 => r.date_time = leaf(src, cx, p, to_date_time)?,
                2 => r.entities = OptList::read(src, cx, p)?,
                3 => r.name = leaf(src, cx, p, to_opt_string)?,
                _ => r.kill_on_user_msg = leaf(src, cx, p, to_bool)?,
            },
            EventKind::LoopInterrupted {
                is_interrupted,
                legacy,
            } => {
                let p = if *legacy { root.key("validate") } else { p };
                let flag = leaf(src, cx, p, to_bool)?;
                *is_interrupted = if *legacy { !flag } else { flag };
            }
            EventKind::ActionExecutionRejected(r) => match own {
                0 => r.name = leaf(src, cx, p, to_opt_string)?,
                1 => r.policy = leaf(src, cx, p, to_opt_string)?,
                _ => r.confidence = leaf(src, cx, p, to_opt_number)?,
            },
            EventKind::UserFeaturization {
                use_text_for_featurization,
            } => *use_text_for_featurization = leaf(src, cx, p, to_bool)?,
            EventKind::EntitiesAdded { entities } => {
                *entities = src
                    .seed(RecordListSeed::<Entity> {
                        cx,
                        path: p,
                        expected: "an array of entity objects",
                        element: "an entity object",
                        marker: PhantomData,
                    })?
                    .ok_or_else(|| {
                        cx.fail(Error::WrongType {
                            path: p.to_string(),
                            expected: "an array of entity objects",
                            found: "null",
                        })
                    })?
            }
            _ => {}
        }
        Ok(())
    }

    fn check_complete(&self, seen: u64) -> Result<()> {
        let missing = |key: &'static str| Error::MissingKey {
            path: "$".into(),
            key,
        };
        let has = |own: u8| seen & (1 << (FIRST_OWN + own)) != 0;
        match &self.kind {
            EventKind::Action(a) if a.name.is_none() && a.action_text.is_none() => {
                Err(Error::ActionWithoutName { path: "$".into() })
            }
            EventKind::Slot(_) | EventKind::Followup { .. } if !has(0) => Err(missing("name")),
            EventKind::Reminder(_) if !has(1) => Err(missing("date_time")),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Event {
    /// The compact JSON form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.write(Style::Compact, Added::None))
    }
}

fn metadata_is_set(m: &Option<Map<String, Value>>) -> bool {
    m.as_ref().is_some_and(|m| !m.is_empty())
}

impl Record for Event {
    fn canonical(&self) -> Ids {
        let mut ids = Ids::new().with(EVENT);
        if self.timestamp.is_some() {
            ids.push(TIMESTAMP);
        }
        let meta_set = metadata_is_set(&self.metadata);
        if meta_set {
            ids.push(METADATA);
        }
        for i in 0..self.kind.keys().len() {
            ids.push(FIRST_OWN + i as u8);
        }
        if !meta_set && matches!(self.kind, EventKind::User(_) | EventKind::Bot(_)) {
            ids.push(METADATA);
        }
        ids
    }

    fn is_set(&self, id: u8) -> bool {
        match id {
            EVENT => true,
            TIMESTAMP => self.timestamp.is_some(),
            METADATA => metadata_is_set(&self.metadata),
            _ => {
                let own = id - FIRST_OWN;
                match &self.kind {
                    EventKind::User(u) => match own {
                        0 => u.text.is_some(),
                        1 => u.parse_data.is_some(),
                        2 => u.input_channel.is_some(),
                        _ => u.message_id.is_some(),
                    },
                    EventKind::Bot(b) => {
                        if own == 0 {
                            b.text.is_some()
                        } else {
                            b.data.is_some()
                        }
                    }
                    EventKind::Agent(a) => {
                        if own == 0 {
                            a.text.is_some()
                        } else {
                            !a.data.is_null()
                        }
                    }
                    EventKind::Action(a) => match own {
                        0 => a.name.is_some(),
                        1 => a.policy.is_some(),
                        2 => a.confidence.is_some(),
                        3 => a.action_text.is_some(),
                        _ => a.hide_rule_turn,
                    },
                    EventKind::Slot(s) => {
                        if own == 0 {
                            true
                        } else {
                            !s.value.is_null()
                        }
                    }
                    EventKind::Followup { .. } => true,
                    EventKind::ActiveLoop { name, .. } => name.is_some(),
                    EventKind::Reminder(r) => match own {
                        0 => r.intent.is_some(),
                        1 => true,
                        2 => r.entities.is_some(),
                        3 => r.name.is_some(),
                        _ => !r.kill_on_user_msg,
                    },
                    EventKind::LoopInterrupted { is_interrupted, .. } => *is_interrupted,
                    EventKind::ActionExecutionRejected(r) => match own {
                        0 => r.name.is_some(),
                        1 => r.policy.is_some(),
                        _ => r.confidence.is_some(),
                    },
                    EventKind::UserFeaturization {
                        use_text_for_featurization,
                    } => *use_text_for_featurization,
                    EventKind::EntitiesAdded { entities } => !entities.is_empty(),
                    _ => false,
                }
            }
        }
    }

    fn key(&self, id: u8) -> &'static str {
        match id {
            EVENT => "event",
            TIMESTAMP => "timestamp",
            METADATA => "metadata",
            _ => self.kind.keys()[(id - FIRST_OWN) as usize],
        }
    }

    fn write_value(&self, id: u8, w: &mut Writer) {
        // Rasa's form of an event Rasa rebuilds (see the module doc); others are written as read.
        let rasa = w.style() == Style::Rasa && self.rasa_rebuilds();
        match id {
            EVENT => w.str(self.kind.written_type_name()),
            TIMESTAMP => w.opt_number(self.timestamp.as_ref()),
            // Rasa writes `metadata or {}`.
            METADATA if rasa => w.map(self.metadata.as_ref().unwrap_or(&Map::new())),
            METADATA => write_opt_map(self.metadata.as_ref(), w),
            _ => {
                let own = id - FIRST_OWN;
                match &self.kind {
                    EventKind::User(u) => match own {
                        0 => w.opt_str(u.text.as_deref()),
                        1 if rasa => ParseData::write_rasa(
                            u.parse_data.as_ref(),
                            self.rasa_user_defaults(u),
                            w,
                        ),
                        1 => write_opt_record(u.parse_data.as_ref(), w),
                        2 => w.opt_str(u.input_channel.as_deref()),
                        _ => w.opt_str(u.message_id.as_deref()),
                    },
                    EventKind::Bot(b) => {
                        if own == 0 {
                            w.opt_str(b.text.as_deref())
                        } else if rasa {
                            // Rasa writes `data or {}`.
                            write_record(b.data.as_ref().unwrap_or(&BotData::default()), w)
                        } else {
                            write_opt_record(b.data.as_ref(), w)
                        }
                    }
                    EventKind::Agent(a) => {
                        if own == 0 {
                            w.opt_str(a.text.as_deref())
                        } else {
                            w.value(&a.data)
                        }
                    }
                    EventKind::Action(a) => match own {
                        0 => w.opt_str(a.name.as_deref()),
                        1 => w.opt_str(a.policy.as_deref()),
                        2 => w.opt_number(a.confidence.as_ref()),
                        3 => w.opt_str(a.action_text.as_deref()),
                        _ => w.bool(a.hide_rule_turn),
                    },
                    EventKind::Slot(s) => {
                        if own == 0 {
                            w.str(&s.name)
                        } else {
                            w.value(&s.value)
                        }
                    }
                    EventKind::Followup { name } => w.str(name),
                    EventKind::ActiveLoop { name, .. } => w.opt_str(name.as_deref()),
                    EventKind::Reminder(r) => match own {
                        0 => w.opt_str(r.intent.as_deref()),
                        1 => w.str(&r.date_time),
                        2 => write_opt_records(r.entities.as_deref(), w),
                        3 => w.opt_str(r.name.as_deref()),
                        _ => w.bool(r.kill_on_user_msg),
                    },
                    EventKind::LoopInterrupted { is_interrupted, .. } => w.bool(*is_interrupted),
                    EventKind::ActionExecutionRejected(r) => match own {
                        0 => w.opt_str(r.name.as_deref()),
                        1 => w.opt_str(r.policy.as_deref()),
                        _ => w.opt_number(r.confidence.as_ref()),
                    },
                    EventKind::UserFeaturization {
                        use_text_for_featurization,
                    } => w.bool(*use_text_for_featurization),
                    EventKind::EntitiesAdded { entities } => {
                        write_opt_records(Some(entities.as_slice()), w)
                    }
                    _ => w.null(),
                }
            }
        }
    }

    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn rasa_rebuilds(&self) -> bool {
        !matches!(self.kind, EventKind::Other(_))
    }
}

/// Reads one event; used for events (`sender_id` is an ordinary key there) and inside envelopes.
#[derive(Default)]
pub(crate) struct EventReader {
    event: Option<Event>,
    pending: Vec<(String, Value)>,
    order: Vec<u8>,
    seen: u64,
}

impl EventReader {
    pub(crate) fn entry<'de, S: Source<'de>>(
        &mut self,
        key: Cow<'_, str>,
        src: S,
        cx: &Cx,
    ) -> Result<(), S::Error> {
        if key == "event" {
            let name = leaf(src, cx, Path::Root.key("event"), to_string)?;
            if let Some(event) = &self.event {
                if event.type_name() != name {
                    return Err(cx.fail(Error::ConflictingEventType {
                        path: "$".into(),
                        first: event.type_name().to_owned(),
                        second: name,
                    }));
                }
                return Ok(());
            }
            let mut event = Event::new(EventKind::blank(&name));
            event.metadata = None;
            self.event = Some(event);
            for (k, v) in std::mem::take(&mut self.pending) {
                self.known_entry(Cow::Owned(k), FromValue::<S::Error>(v, PhantomData), cx)?;
            }
            self.mark(EVENT);
            return Ok(());
        }
        if self.event.is_none() {
            let value = src.value()?;
            self.pending.push((key.into_owned(), value));
            return Ok(());
        }
        self.known_entry(key, src, cx)
    }

    fn mark(&mut self, id: u8) {
        if self.seen & (1 << id) == 0 {
            self.seen |= 1 << id;
            self.order.push(id);
        }
    }

    fn known_entry<'de, S: Source<'de>>(
        &mut self,
        key: Cow<'_, str>,
        src: S,
        cx: &Cx,
    ) -> Result<(), S::Error> {
        let Some(event) = self.event.as_mut() else {
            return Ok(());
        };
        match event.field_id(&key) {
            Some(id) => {
                event.read_field(id, src, cx)?;
                self.mark(id);
            }
            None => {
                let value = any(src, cx, Path::Root.key(&key))?;
                if event.extra.insert(key.into_owned(), value).is_none() {
                    self.order.push(EXTRA);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Event> {
        let mut event = self.event.ok_or(Error::MissingKey {
            path: "$".into(),
            key: "event",
        })?;
        event.check_complete(self.seen)?;
        event.layout = Layout::from_read(self.order, event.canonical().as_slice());
        Ok(event)
    }
}

struct EventSeed<'c> {
    cx: &'c Cx,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Event;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Event, D::Error> {
        d.deserialize_any(self)
    }
}

pub(crate) fn not_an_object<E: de::Error>(cx: &Cx, found: &'static str) -> E {
    cx.fail(Error::WrongType {
        path: "$".into(),
        expected: "a JSON object",
        found,
    })
}

macro_rules! refuse_top_level {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(not_an_object(self.cx, "a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(not_an_object(self.cx, "a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(not_an_object(self.cx, "a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(not_an_object(self.cx, "a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(not_an_object(self.cx, "a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(not_an_object(self.cx, "null"))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(not_an_object(self.cx, "an array"))
        }
    };
}
pub(crate) use refuse_top_level;

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = Event;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut reader = EventReader::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            reader.entry(key, FromMap(&mut map), self.cx)?;
        }
        reader.finish().map_err(|e| self.cx.fail(e))
    }
    refuse_top_level!();
}

/// Validates an ISO-8601 date-time as Python's `datetime.isoformat()` writes it (and a little more).
fn to_date_time(v: Value, path: Path<'_>) -> Result<String, Error> {
    let s = to_string_or(v, path)?;
    if is_iso_date_time(&s) {
        Ok(s)
    } else {
        Err(Error::InvalidDateTime {
            path: path.to_string(),
            value: s,
        })
    }
}

fn to_string_or(v: Value, path: Path<'_>) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(Error::WrongType {
            path: path.to_string(),
            expected: "an ISO-8601 string",
            found: kind_of(&other),
        }),
    }
}

pub(crate) fn is_iso_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    // Date: YYYY-MM-DD, then 'T' or ' ', then HH:MM.
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10))
    {
        return false;
    }
    if !(matches!(b.get(10), Some(b'T' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16))
    {
        return false;
    }
    let (month, day, hour, minute) = (num(5..7), num(8..10), num(11..13), num(14..16));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return false;
    }
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        if !digits(i + 1..i + 3) || num(i + 1..i + 3) > 59 {
            return false;
        }
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            let start = i + 1;
            i = start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return false;
            }
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let rest = &s[i + 1..];
            let ok_hm = |h: &str, m: &str| {
                h.len() == 2
                    && m.len() == 2
                    && h.bytes().all(|c| c.is_ascii_digit())
                    && m.bytes().all(|c| c.is_ascii_digit())
                    && h < "24"
                    && m < "60"
            };
            match rest.len() {
                5 => rest.as_bytes()[2] == b':' && ok_hm(&rest[..2], &rest[3..]),
                4 => ok_hm(&rest[..2], &rest[2..]),
                2 => ok_hm(rest, "00"),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_date_times() {
        for ok in [
            "2024-01-31T10:00:00+00:00",
            "2024-01-31T10:00:00.123456+02:00",
            "2024-01-31 10:00",
            "2024-01-31T10:00:00Z",
            "2024-01-31T10:00:00",
            "2024-01-31T10:00:00-0530",
        ] {
            assert!(is_iso_date_time(ok), "{ok}");
        }
        for bad in [
            "",
            "tomorrow",
            "2024-13-01T10:00:00",
            "2024-01-31",
            "2024-01-31T25:00",
            "2024-01-31T10:00:00+5",
        ] {
            assert!(!is_iso_date_time(bad), "{bad}");
        }
    }

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
