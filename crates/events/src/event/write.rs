//! Writing events: the Rasa form and the compact form (see the module documentation of [`crate::event`]).

use serde_json::{Map, Value};

use super::{
    BotField, EVENT, Event, EventKind, FIRST_OWN, METADATA, TIMESTAMP, UserField, UserUttered,
};
use crate::parse_data::{BotData, ParseData, ParseDataDefaults};
use crate::pyjson::{Style, Writer};
use crate::record::{
    Added, Ids, Layout, Payload, Record, write_opt_map, write_opt_records, write_record,
    write_record_with,
};

impl Event {
    /// Exactly the bytes Rasa writes for this event (Python `json.dumps` of its `as_dict()`), without
    /// `sender_id`: Rasa's SQL `data` column. An event of an older shape comes out in Rasa 3.6's form (see
    /// the [module documentation](crate::event)).
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
}

impl EventKind {
    /// The keys of the type's own fields, in Rasa's order; field id = `FIRST_OWN` + index.
    pub(super) fn keys(&self) -> &'static [&'static str] {
        match self {
            EventKind::User(_) => <super::UserUttered as Payload>::KEYS,
            EventKind::Bot(_) => <super::BotUttered as Payload>::KEYS,
            EventKind::Agent(_) => <super::AgentUttered as Payload>::KEYS,
            EventKind::Action(_) => <super::ActionExecuted as Payload>::KEYS,
            EventKind::Slot(_) => <super::SlotSet as Payload>::KEYS,
            EventKind::Reminder(_) => <super::ReminderScheduled as Payload>::KEYS,
            EventKind::ActionExecutionRejected(_) => {
                <super::ActionExecutionRejected as Payload>::KEYS
            }
            EventKind::Followup { .. } | EventKind::ActiveLoop { .. } => &["name"],
            EventKind::LoopInterrupted { .. } => &["is_interrupted"],
            EventKind::UserFeaturization { .. } => &["use_text_for_featurization"],
            EventKind::EntitiesAdded { .. } => &["entities"],
            EventKind::ResetSlots
            | EventKind::Restart
            | EventKind::SessionStarted
            | EventKind::Rewind
            | EventKind::Undo
            | EventKind::Pause
            | EventKind::Resume
            | EventKind::CancelReminder
            | EventKind::Export
            | EventKind::Other(_) => &[],
        }
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
        for own in 0..self.kind.keys().len() {
            ids.push(FIRST_OWN + own as u8);
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
                let own = usize::from(id - FIRST_OWN);
                match &self.kind {
                    EventKind::User(u) => u.is_set_own(own),
                    EventKind::Bot(b) => b.is_set_own(own),
                    EventKind::Agent(a) => a.is_set_own(own),
                    EventKind::Action(a) => a.is_set_own(own),
                    EventKind::Slot(s) => s.is_set_own(own),
                    EventKind::Reminder(r) => r.is_set_own(own),
                    EventKind::ActionExecutionRejected(r) => r.is_set_own(own),
                    EventKind::Followup { .. } => true,
                    EventKind::ActiveLoop { name, .. } => name.is_some(),
                    EventKind::LoopInterrupted { is_interrupted, .. } => *is_interrupted,
                    EventKind::UserFeaturization {
                        use_text_for_featurization,
                    } => *use_text_for_featurization,
                    EventKind::EntitiesAdded { entities } => !entities.is_empty(),
                    EventKind::ResetSlots
                    | EventKind::Restart
                    | EventKind::SessionStarted
                    | EventKind::Rewind
                    | EventKind::Undo
                    | EventKind::Pause
                    | EventKind::Resume
                    | EventKind::CancelReminder
                    | EventKind::Export
                    | EventKind::Other(_) => false,
                }
            }
        }
    }

    fn key(&self, id: u8) -> &'static str {
        match id {
            EVENT => "event",
            TIMESTAMP => "timestamp",
            METADATA => "metadata",
            _ => self
                .kind
                .keys()
                .get(usize::from(id - FIRST_OWN))
                .copied()
                .unwrap_or_default(),
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
                let own = usize::from(id - FIRST_OWN);
                match &self.kind {
                    EventKind::User(u) if rasa && own == UserField::ParseData.own() => {
                        ParseData::write_rasa(u.parse_data.as_ref(), self.rasa_user_defaults(u), w)
                    }
                    // Rasa writes `data or {}`.
                    EventKind::Bot(b) if rasa && own == BotField::Data.own() => {
                        write_record(b.data.as_ref().unwrap_or(&BotData::default()), w)
                    }
                    EventKind::User(u) => u.write_own(own, w),
                    EventKind::Bot(b) => b.write_own(own, w),
                    EventKind::Agent(a) => a.write_own(own, w),
                    EventKind::Action(a) => a.write_own(own, w),
                    EventKind::Slot(s) => s.write_own(own, w),
                    EventKind::Reminder(r) => r.write_own(own, w),
                    EventKind::ActionExecutionRejected(r) => r.write_own(own, w),
                    EventKind::Followup { name } => w.str(name),
                    EventKind::ActiveLoop { name, .. } => w.opt_str(name.as_deref()),
                    EventKind::LoopInterrupted { is_interrupted, .. } => w.bool(*is_interrupted),
                    EventKind::UserFeaturization {
                        use_text_for_featurization,
                    } => w.bool(*use_text_for_featurization),
                    EventKind::EntitiesAdded { entities } => {
                        write_opt_records(Some(entities.as_slice()), w)
                    }
                    EventKind::ResetSlots
                    | EventKind::Restart
                    | EventKind::SessionStarted
                    | EventKind::Rewind
                    | EventKind::Undo
                    | EventKind::Pause
                    | EventKind::Resume
                    | EventKind::CancelReminder
                    | EventKind::Export
                    | EventKind::Other(_) => w.null(),
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
