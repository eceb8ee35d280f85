//! Stable event ids: the dedupe key shared by the tracker store, the brokers and the consumer.

use std::fmt;

use sha2::{Digest, Sha256};

/// The stable id of an event: assigned once, never changed on retry; the consumer's dedupe key.
///
/// Formulas (a cross-crate contract; `‖` is concatenation, the result is lowercase hex):
/// - [`EventId::for_tracked`] = `SHA-256(sender_id ‖ 0x00 ‖ seq as decimal ASCII ‖ 0x00 ‖ body)`, where
///   `body` is the Rasa-form body of the envelope (the bytes of [`crate::Envelope::to_rasa_json`]).
/// - [`EventId::for_message`] = `SHA-256(sender_id ‖ 0x00 ‖ body)`, where `body` is the message body
///   **exactly as published or received**. When we publish, that is the Rasa form
///   ([`crate::StampedEnvelope::unsequenced`]); a consumer that receives a message without an id (e.g. from
///   genuine Rasa) hashes the raw bytes it received, never a re-serialisation: the raw bytes are what a
///   redelivery repeats exactly, they exist for every body (also one that is dead-lettered or that a later
///   version of the writer would normalise differently), and hashing them costs no second serialisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    /// The id of the event at 0-based position `seq` of conversation `sender_id`, whose Rasa body is `body`:
    /// lowercase hex `SHA-256(sender_id ‖ 0x00 ‖ seq in decimal ASCII ‖ 0x00 ‖ body)`.
    ///
    /// ```
    /// use colloquy_events::EventId;
    /// let id = EventId::for_tracked("alice", 3, b"{}");
    /// assert_eq!(id.as_str().len(), 64);
    /// assert_ne!(id, EventId::for_tracked("alice", 4, b"{}"));
    /// ```
    pub fn for_tracked(sender_id: &str, seq: u64, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(sender_id.as_bytes());
        hash.update([0]);
        hash.update(seq.to_string().as_bytes());
        hash.update([0]);
        hash.update(body);
        Self(hex(&hash.finalize()))
    }

    /// The id of a message that carries no id of its own (no `colloquy-event-id` header): lowercase hex
    /// `SHA-256(sender_id ‖ 0x00 ‖ body)`, `body` being the message body as received (see [`EventId`]).
    pub fn for_message(sender_id: &str, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(sender_id.as_bytes());
        hash.update([0]);
        hash.update(body);
        Self(hex(&hash.finalize()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

impl From<String> for EventId {
    /// Wraps an id received from elsewhere (a message header), unchecked.
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_sha256_of_documented_bytes() {
        // Known answers: printf 'a\0001\000{}' | sha256sum ; printf 'a\000{}' | sha256sum
        assert_eq!(
            EventId::for_tracked("a", 1, b"{}").as_str(),
            hex(&Sha256::digest(b"a\x001\x00{}"))
        );
        assert_eq!(
            EventId::for_message("a", b"{}").as_str(),
            hex(&Sha256::digest(b"a\x00{}"))
        );
        assert_eq!(
            EventId::for_message("", b"").as_str(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
