//! The rows of Colloquy's tables, filled by Rasa's rules, and what a dialect's schema can hold.
//!
//! Rasa's `events` table: `type_name` is the event's type, `intent_name` is `parse_data.intent.name`,
//! `action_name` is the event's `name` key, `data` is the event's JSON without `sender_id`, written byte for
//! byte as Rasa writes it; `event_id` is the event's stable id and [`EventRow::dedupe_key`] the compact key
//! the unique index holds (PostgreSQL).

use colloquy_events::{Event, EventId};

use crate::Dialect;

/// Rasa's limit on `sender_id`, `type_name`, `intent_name` and `action_name` (`VARCHAR(255)`), in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// One row of the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// The conversation id.
    pub sender_id: String,
    /// The event type (`user`, `bot`, ...).
    pub type_name: String,
    /// Unix seconds.
    pub timestamp: Option<f64>,
    /// `parse_data.intent.name` of a user event.
    pub intent_name: Option<String>,
    /// The event's `name` key (action, slot, loop, ... name).
    pub action_name: Option<String>,
    /// The event's JSON without `sender_id`, as Rasa writes it.
    pub data: String,
    /// The dedupe key (NULL only for rows Rasa inserted itself).
    pub event_id: Option<String>,
}

/// Why an event cannot be a row of Rasa's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// A name column is longer than Rasa's `VARCHAR(255)`.
    #[error("`{column}` is {chars} characters long; Rasa's schema allows at most {MAX_NAME_CHARS}")]
    TooLong {
        /// The column.
        column: &'static str,
        /// The length of the value in characters.
        chars: usize,
    },
    /// A name column contains a NUL character, which PostgreSQL text cannot hold.
    #[error("`{column}` contains a NUL character, which the database cannot store")]
    Nul {
        /// The column.
        column: &'static str,
    },
    /// The row is larger than the dialect's column can hold (MySQL's `TEXT` holds 65,535 bytes).
    #[error(
        "the `{column}` value is {bytes} bytes long; the column on {dialect} holds at most {limit} bytes"
    )]
    TooLarge {
        /// The column.
        column: &'static str,
        /// The value's length in bytes.
        bytes: usize,
        /// The most the column holds.
        limit: usize,
        /// The dialect.
        dialect: Dialect,
    },
}

impl EventRow {
    /// The row of `event` in conversation `sender_id`, filled by Rasa's rules.
    pub fn new(sender_id: &str, event: &Event, event_id: &EventId) -> Result<Self, RowError> {
        let row = Self {
            sender_id: sender_id.to_owned(),
            type_name: event.type_name().to_owned(),
            timestamp: event.timestamp(),
            intent_name: event.intent_name().map(str::to_owned),
            action_name: event.action_name().map(str::to_owned),
            data: event.to_rasa_json(),
            event_id: Some(event_id.as_str().to_owned()),
        };
        check_name("sender_id", &row.sender_id)?;
        check_name("type_name", &row.type_name)?;
        if let Some(intent_name) = &row.intent_name {
            check_name("intent_name", intent_name)?;
        }
        if let Some(action_name) = &row.action_name {
            check_name("action_name", action_name)?;
        }
        check_name("event_id", event_id.as_str())?;
        Ok(row)
    }
}

fn check_name(column: &'static str, value: &str) -> Result<(), RowError> {
    if value.contains('\0') {
        return Err(RowError::Nul { column });
    }
    // Byte length bounds the character count from above: count characters only when it might matter.
    if value.len() > MAX_NAME_CHARS {
        let chars = value.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(RowError::TooLong { column, chars });
        }
    }
    Ok(())
}

/// One row of the `dead_letters` table: a message that could not be stored as an event, kept whole.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    /// Where it came from (the queue name).
    pub source: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The message properties as a JSON object.
    pub properties: String,
    /// Why it is not an event.
    pub error: String,
}

/// The length of [`EventRow::dedupe_key`] in bytes.
pub const DEDUPE_KEY_BYTES: usize = 16;

/// The largest timestamp, in microseconds, that [`EventRow::dedupe_key`] orders (9 × 10¹⁸ µs, about the year
/// 287,000); later ones share it. Below `i64::MAX`, so that SQL computes the same value without overflow.
pub const DEDUPE_KEY_MAX_MICROS: u64 = 9_000_000_000_000_000_000;

impl EventRow {
    /// The compact dedupe key (`event_key`, 16 bytes) of the row: `None` when the row has no `event_id`.
    ///
    /// Formula (a contract with the SQL that backfills it, see the dialect modules):
    /// - bytes 0..8: `floor(timestamp × 10⁶)` (Unix microseconds) as a big-endian u64, clamped to
    ///   `[0, DEDUPE_KEY_MAX_MICROS]`; 0 when the timestamp is absent or NaN;
    /// - bytes 8..16: the first 8 bytes of `SHA-256(event_id as UTF-8)`.
    ///
    /// Every input is part of the event itself, so a redelivery or re-send of an event (the same bytes, or
    /// the same event re-published from the outbox) always has the same key. The leading timestamp makes
    /// keys of new events sort after those stored before, so inserts land at the right edge of the unique
    /// index instead of at a random page of it. Two different events collide only if they carry the same
    /// microsecond *and* the same 64-bit hash prefix of their ids.
    ///
    /// ```
    /// # use colloquy_storage::EventRow;
    /// let row = EventRow { sender_id: "s".into(), type_name: "restart".into(), timestamp: Some(1.5),
    ///     intent_name: None, action_name: None, data: "{}".into(), event_id: Some("id".into()) };
    /// let key = row.dedupe_key().unwrap();
    /// assert_eq!(&key[..8], &1_500_000u64.to_be_bytes());
    /// ```
    pub fn dedupe_key(&self) -> Option<[u8; DEDUPE_KEY_BYTES]> {
        use sha2::{Digest, Sha256};
        let event_id = self.event_id.as_deref()?;
        let micros = match self.timestamp {
            // `as` saturates: negative values become 0; NaN is excluded here.
            Some(seconds) if !seconds.is_nan() => {
                ((seconds * 1_000_000.0).floor() as u64).min(DEDUPE_KEY_MAX_MICROS)
            }
            _ => 0,
        };
        let mut key = [0u8; DEDUPE_KEY_BYTES];
        key[..8].copy_from_slice(&micros.to_be_bytes());
        key[8..].copy_from_slice(&Sha256::digest(event_id.as_bytes())[..8]);
        Some(key)
    }

    /// Whether the row fits the columns of Rasa's schema in `dialect` (MySQL's `TEXT` is the one limit beyond
    /// the name columns' 255 characters, which [`EventRow::new`] checks). A row that does not fit is refused
    /// whole, never truncated.
    pub fn check_fits(&self, dialect: Dialect) -> Result<(), RowError> {
        if let Some(limit) = dialect.max_data_bytes()
            && self.data.len() > limit
        {
            return Err(RowError::TooLarge {
                column: "data",
                bytes: self.data.len(),
                limit,
                dialect,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(body: &str) -> Result<EventRow, RowError> {
        let envelope = colloquy_events::Envelope::from_json(body.as_bytes()).expect("valid body");
        EventRow::new(
            &envelope.sender_id,
            &envelope.event,
            &EventId::from("id".to_owned()),
        )
    }

    #[test]
    fn fills_columns_by_rasas_rules() {
        let row = row_of(
            r#"{"sender_id": "s", "event": "user", "timestamp": 1.5, "text": "hi", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}}}"#,
        )
        .unwrap();
        assert_eq!(row.type_name, "user");
        assert_eq!(row.intent_name.as_deref(), Some("greet"));
        assert_eq!(row.action_name, None);
        assert_eq!(row.timestamp, Some(1.5));
        assert!(!row.data.contains("sender_id"));

        let row = row_of(r#"{"sender_id": "s", "event": "slot", "timestamp": 2.0, "name": "cuisine", "value": 1}"#).unwrap();
        assert_eq!(row.action_name.as_deref(), Some("cuisine"));
    }

    #[test]
    fn dedupe_key_follows_the_timestamp_and_the_id() {
        let row = |timestamp, id: &str| EventRow {
            sender_id: "s".into(),
            type_name: "restart".into(),
            timestamp,
            intent_name: None,
            action_name: None,
            data: "{}".into(),
            event_id: Some(id.into()),
        };
        let a = row(Some(1_700_000_000.25), "a").dedupe_key().unwrap();
        assert_eq!(a, row(Some(1_700_000_000.25), "a").dedupe_key().unwrap());
        assert_eq!(&a[..8], &1_700_000_000_250_000u64.to_be_bytes());
        assert_ne!(a, row(Some(1_700_000_000.25), "b").dedupe_key().unwrap());
        assert!(a < row(Some(1_700_000_001.0), "0").dedupe_key().unwrap());
        // Known answer: printf a | sha256sum starts with ca978112ca1bbdca.
        assert_eq!(&a[8..], &[0xca, 0x97, 0x81, 0x12, 0xca, 0x1b, 0xbd, 0xca]);
        assert_eq!(&row(None, "a").dedupe_key().unwrap()[..8], &[0; 8]);
        assert_eq!(&row(Some(-5.0), "a").dedupe_key().unwrap()[..8], &[0; 8]);
        assert_eq!(
            &row(Some(f64::NAN), "a").dedupe_key().unwrap()[..8],
            &[0; 8]
        );
        assert_eq!(
            &row(Some(f64::INFINITY), "a").dedupe_key().unwrap()[..8],
            &DEDUPE_KEY_MAX_MICROS.to_be_bytes()
        );
        let mut none = row(None, "a");
        none.event_id = None;
        assert_eq!(none.dedupe_key(), None);
    }

    #[test]
    fn refuses_what_rasas_schema_cannot_hold() {
        let long = "x".repeat(256);
        let body = format!(r#"{{"sender_id": "{long}", "event": "restart", "timestamp": 1.0}}"#);
        assert_eq!(
            row_of(&body),
            Err(RowError::TooLong {
                column: "sender_id",
                chars: 256
            })
        );
        let ok = "é".repeat(255);
        let body = format!(r#"{{"sender_id": "{ok}", "event": "restart", "timestamp": 1.0}}"#);
        assert!(row_of(&body).is_ok());
        let body = r#"{"sender_id": "a\u0000b", "event": "restart", "timestamp": 1.0}"#;
        assert_eq!(
            row_of(body),
            Err(RowError::Nul {
                column: "sender_id"
            })
        );
    }
}
