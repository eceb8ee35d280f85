//! The broker message body: a conversation id and one event, and its stamped form.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{Event, EventReader, not_an_object, refuse_top_level};
use crate::id::EventId;
use crate::pyjson::Style;
use crate::record::{Added, Cx, FromMap, KeySeed, Path, leaf, to_string};

/// A broker message body: `sender_id` and one event, as Rasa publishes it.
///
/// Reading accepts `sender_id` anywhere in the object (`rasa export` puts it last); writing puts it first,
/// followed by the event's keys.
///
/// ```
/// use colloquy_events::Envelope;
/// let exported = br#"{"event": "pause", "timestamp": 1.0, "sender_id": "bob"}"#;
/// let envelope = Envelope::from_json(exported)?;
/// assert_eq!(envelope.sender_id, "bob");
/// assert_eq!(envelope.to_rasa_json(), r#"{"sender_id": "bob", "event": "pause", "timestamp": 1.0}"#);
/// # Ok::<(), colloquy_events::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The conversation id.
    pub sender_id: String,
    /// The event.
    pub event: Event,
}

impl Envelope {
    /// Reads a body; `sender_id` may be anywhere in the object.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let cx = Cx::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let envelope = EnvelopeSeed { cx: &cx }
            .deserialize(&mut de)
            .map_err(|e| cx.into_error(&e))?;
        de.end().map_err(|e| Error::from_json(&e))?;
        Ok(envelope)
    }

    /// Reads a body from a JSON value.
    pub fn from_value(value: Value) -> Result<Self> {
        let cx = Cx::default();
        EnvelopeSeed { cx: &cx }
            .deserialize(value)
            .map_err(|e| cx.into_error(&e))
    }

    /// Exactly the bytes Rasa's tracker store publishes for this event (`stream_events`): `sender_id` first,
    /// then the event in Rasa's form ([`Event::to_rasa_json`]), as Python's `json.dumps` writes them.
    pub fn to_rasa_json(&self) -> String {
        self.event
            .write(Style::Rasa, Added::First("sender_id", &self.sender_id))
    }

    /// Exactly the bytes `rasa export` publishes for this event: the event in Rasa's form, then `sender_id`
    /// as the **last** key (Rasa 3.6's `Exporter` adds it to each event's `as_dict()`). A live broker body has
    /// it first instead ([`Envelope::to_rasa_json`]); both read back to the same envelope.
    ///
    /// ```
    /// use colloquy_events::Envelope;
    /// let envelope = Envelope::from_json(br#"{"sender_id": "bob", "event": "pause", "timestamp": 1.0}"#)?;
    /// assert_eq!(
    ///     envelope.to_rasa_export_json(),
    ///     r#"{"event": "pause", "timestamp": 1.0, "sender_id": "bob"}"#
    /// );
    /// # Ok::<(), colloquy_events::Error>(())
    /// ```
    pub fn to_rasa_export_json(&self) -> String {
        self.event
            .write(Style::Rasa, Added::Last("sender_id", &self.sender_id))
    }

    /// Compact UTF-8 JSON, `sender_id` first, the event lossless ([`Event::to_compact_json`]).
    pub fn to_compact_json(&self) -> String {
        self.event
            .write(Style::Compact, Added::First("sender_id", &self.sender_id))
    }
}

struct EnvelopeSeed<'c> {
    cx: &'c Cx,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Envelope, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object with `sender_id`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut reader = EventReader::default();
        let mut sender_id = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == "sender_id" {
                sender_id = Some(leaf(
                    FromMap(&mut map),
                    self.cx,
                    Path::Root.key("sender_id"),
                    to_string,
                )?);
            } else {
                reader.entry(key, FromMap(&mut map), self.cx)?;
            }
        }
        let event = reader.finish().map_err(|e| self.cx.fail(e))?;
        let sender_id = sender_id.ok_or_else(|| {
            self.cx.fail(Error::MissingKey {
                path: "$".into(),
                key: "sender_id",
            })
        })?;
        Ok(Envelope { sender_id, event })
    }
    refuse_top_level!();
}

/// An envelope stamped with its stable id and its 0-based position in the conversation: what brokers
/// publish (`message_id` and header `colloquy-event-id` = `id`, header `colloquy-seq` = `seq`).
#[derive(Debug, Clone, PartialEq)]
pub struct StampedEnvelope {
    /// The body.
    pub envelope: Envelope,
    /// The stable id.
    pub id: EventId,
    /// The position in the conversation, when known.
    pub seq: Option<u64>,
}

impl StampedEnvelope {
    /// Stamps an envelope whose position is unknown with [`EventId::for_message`] of its Rasa body.
    pub fn unsequenced(envelope: Envelope) -> Self {
        let body = envelope.to_rasa_json();
        Self {
            id: EventId::for_message(&envelope.sender_id, body.as_bytes()),
            envelope,
            seq: None,
        }
    }

    /// Stamps the envelope at position `seq` with [`EventId::for_tracked`] of its Rasa body.
    pub fn sequenced(envelope: Envelope, seq: u64) -> Self {
        let body = envelope.to_rasa_json();
        Self {
            id: EventId::for_tracked(&envelope.sender_id, seq, body.as_bytes()),
            envelope,
            seq: Some(seq),
        }
    }
}
