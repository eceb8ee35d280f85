//! PROVISIONAL API SKELETON — the events helper replaces the internals; the public signatures below are the
//! contract the other crates code against.
//!
//! `colloquy-events`: Rasa's conversation events as Rust values. No I/O.

use std::fmt;

use serde_json::{Map, Value};

mod tracker;
pub use tracker::Tracker;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The input is JSON but not an event.
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One Rasa event (without the conversation id).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    fields: Map<String, Value>,
}

impl Event {
    /// Reads an event from a JSON object.
    pub fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Object(fields) => {
                if !matches!(fields.get("event"), Some(Value::String(_))) {
                    return Err(Error::Invalid("missing string `event`".into()));
                }
                Ok(Self { fields })
            }
            _ => Err(Error::Invalid("not an object".into())),
        }
    }
    /// Reads an event from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Self::from_value(serde_json::from_slice(bytes).map_err(|e| Error::Json(e.to_string()))?)
    }
    /// The event's JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }
    /// Rasa's `type_name` (the `event` key), e.g. `user`.
    pub fn type_name(&self) -> &str {
        self.fields["event"].as_str().unwrap_or_default()
    }
    /// Unix seconds.
    pub fn timestamp(&self) -> Option<f64> {
        self.fields.get("timestamp").and_then(Value::as_f64)
    }
    /// `parse_data.intent.name` of a `user` event (Rasa's `intent_name` column).
    pub fn intent_name(&self) -> Option<&str> {
        self.fields
            .get("parse_data")?
            .get("intent")?
            .get("name")?
            .as_str()
    }
    /// The event's `name` key, for any event that has one (Rasa's `action_name` column).
    pub fn action_name(&self) -> Option<&str> {
        self.fields.get("name")?.as_str()
    }
    /// Exactly the bytes Rasa writes for this event (Python `json.dumps`), without `sender_id`.
    pub fn to_rasa_json(&self) -> Result<String> {
        serde_json::to_string(&self.fields).map_err(|e| Error::Invalid(e.to_string()))
    }
    /// Compact UTF-8 JSON.
    pub fn to_compact_json(&self) -> Result<String> {
        serde_json::to_string(&self.fields).map_err(|e| Error::Invalid(e.to_string()))
    }
}

/// A broker message body: the conversation id and one event.
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
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Json(e.to_string()))?;
        Self::from_value(value)
    }
    /// Reads a body from a JSON value.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(mut fields) = value else {
            return Err(Error::Invalid("not an object".into()));
        };
        let Some(Value::String(sender_id)) = fields.shift_remove("sender_id") else {
            return Err(Error::Invalid("missing string `sender_id`".into()));
        };
        Ok(Self {
            sender_id,
            event: Event::from_value(Value::Object(fields))?,
        })
    }
    /// Exactly the bytes Rasa publishes: `sender_id` first, then the event.
    pub fn to_rasa_json(&self) -> Result<String> {
        let mut map = Map::new();
        map.insert("sender_id".into(), Value::String(self.sender_id.clone()));
        map.extend(self.event.fields.clone());
        serde_json::to_string(&map).map_err(|e| Error::Invalid(e.to_string()))
    }
    /// Compact UTF-8 JSON, `sender_id` first.
    pub fn to_compact_json(&self) -> Result<String> {
        self.to_rasa_json()
    }
}

/// The stable id of an event: assigned once, never changed on retry; the consumer's dedupe key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    /// The id of an event at position `seq` of its conversation, whose Rasa body is `body`.
    pub fn for_tracked(sender_id: &str, seq: u64, body: &[u8]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(sender_id.as_bytes());
        h.update([0]);
        h.update(seq.to_string().as_bytes());
        h.update([0]);
        h.update(body);
        Self(hex(&h.finalize()))
    }
    /// The id of a message that carries no id of its own: SHA-256 of `sender_id` and the body.
    pub fn for_message(sender_id: &str, body: &[u8]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(sender_id.as_bytes());
        h.update([0]);
        h.update(body);
        Self(hex(&h.finalize()))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl From<String> for EventId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An envelope stamped with its stable id and its 0-based position in the conversation: what brokers publish.
#[derive(Debug, Clone, PartialEq)]
pub struct StampedEnvelope {
    /// The body.
    pub envelope: Envelope,
    /// The stable id (`message_id`, header `colloquy-event-id`).
    pub id: EventId,
    /// The position in the conversation (header `colloquy-seq`), when known.
    pub seq: Option<u64>,
}

impl StampedEnvelope {
    /// Stamps an envelope whose position is unknown with [`EventId::for_message`].
    pub fn unsequenced(envelope: Envelope) -> Result<Self> {
        let body = envelope.to_rasa_json()?;
        Ok(Self {
            id: EventId::for_message(&envelope.sender_id, body.as_bytes()),
            envelope,
            seq: None,
        })
    }
}
