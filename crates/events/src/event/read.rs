//! Reading events: from bytes or a `Value`, straight through serde, with errors that say where (see the
//! module documentation of [`crate::event`] for the lenient readings).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;

use super::{EVENT, Event, EventKind, FIRST_OWN, METADATA, ReminderField, SlotField, TIMESTAMP};
use crate::error::{Error, Result};
use crate::parse_data::Entity;
use crate::pyjson::Writer;
use crate::record::{
    Codec, Cx, EXTRA, FromMap, FromValue, KeySeed, Layout, Path, Payload, Record, RecordListSeed,
    Source, any, kind_of, leaf, to_bool, to_number, to_opt_object, to_opt_string, to_string,
};

impl Event {
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

    fn field_id(&self, key: &str) -> Option<u8> {
        let legacy_validation =
            matches!(self.kind, EventKind::LoopInterrupted { legacy: true, .. });
        match key {
            "timestamp" => Some(TIMESTAMP),
            "metadata" => Some(METADATA),
            // Legacy `form_validation`: `validate` is the (negated) `is_interrupted`.
            "validate" if legacy_validation => Some(FIRST_OWN),
            "is_interrupted" if legacy_validation => None,
            _ => self
                .kind
                .keys()
                .iter()
                .position(|k| *k == key)
                .map(|own| FIRST_OWN + own as u8),
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
        let own = usize::from(id - FIRST_OWN);
        let key = self.kind.keys().get(own).copied().unwrap_or_default();
        let p = root.key(key);
        match &mut self.kind {
            EventKind::User(u) => u.read_own(own, src, cx, p)?,
            EventKind::Bot(b) => b.read_own(own, src, cx, p)?,
            EventKind::Agent(a) => a.read_own(own, src, cx, p)?,
            EventKind::Action(a) => a.read_own(own, src, cx, p)?,
            EventKind::Slot(s) => s.read_own(own, src, cx, p)?,
            EventKind::Reminder(r) => r.read_own(own, src, cx, p)?,
            EventKind::ActionExecutionRejected(r) => r.read_own(own, src, cx, p)?,
            EventKind::Followup { name } => *name = leaf(src, cx, p, to_string)?,
            EventKind::ActiveLoop { name, .. } => *name = leaf(src, cx, p, to_opt_string)?,
            EventKind::LoopInterrupted {
                is_interrupted,
                legacy,
            } => {
                let p = if *legacy { root.key("validate") } else { p };
                let flag = leaf(src, cx, p, to_bool)?;
                *is_interrupted = if *legacy { !flag } else { flag };
            }
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
            EventKind::ResetSlots
            | EventKind::Restart
            | EventKind::SessionStarted
            | EventKind::Rewind
            | EventKind::Undo
            | EventKind::Pause
            | EventKind::Resume
            | EventKind::CancelReminder
            | EventKind::Export
            | EventKind::Other(_) => {}
        }
        Ok(())
    }

    /// The keys an event cannot do without (Rasa refuses to build it without them).
    fn check_complete(&self, seen: u64) -> Result<()> {
        let missing = |key: &'static str| Error::MissingKey {
            path: "$".into(),
            key,
        };
        let has = |own: usize| seen & (1 << (usize::from(FIRST_OWN) + own)) != 0;
        match &self.kind {
            EventKind::Action(a) if a.name.is_none() && a.action_text.is_none() => {
                Err(Error::ActionWithoutName { path: "$".into() })
            }
            EventKind::Slot(_) if !has(SlotField::Name.own()) => Err(missing("name")),
            EventKind::Followup { .. } if !has(0) => Err(missing("name")),
            EventKind::Reminder(_) if !has(ReminderField::DateTime.own()) => {
                Err(missing("date_time"))
            }
            _ => Ok(()),
        }
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

/// A `reminder`'s `date_time`: an ISO-8601 date-time string, kept as read.
pub(crate) struct IsoDateTime;

impl Codec<String> for IsoDateTime {
    fn read<'de, S: Source<'de>>(src: S, cx: &Cx, path: Path<'_>) -> Result<String, S::Error> {
        leaf(src, cx, path, to_date_time)
    }
    fn write(value: &String, w: &mut Writer) {
        w.str(value);
    }
    fn is_set(_: &String) -> bool {
        true
    }
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
}
