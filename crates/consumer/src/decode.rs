//! Turning a delivery into a row: an event for the `events` table, or a dead letter that says why not.

use colloquy_broker::{Acker, Delivery, MessageProperties};
use colloquy_events::{Envelope, EventId};
use colloquy_storage::{DeadLetterRow, EventRow};

/// A delivery, decoded.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A valid event (known or unknown type).
    Event(Box<ReceivedEvent>),
    /// A message that is not an event, kept whole.
    DeadLetter(DeadLetterRow),
}

/// A valid event: its row, and the message it came from.
#[derive(Debug)]
pub(crate) struct ReceivedEvent {
    pub(crate) row: EventRow,
    pub(crate) message: RawMessage,
}

/// A message as received: what is needed to dead-letter it after all, should the database refuse its row.
#[derive(Debug)]
pub(crate) struct RawMessage {
    source: String,
    body: Vec<u8>,
    properties: MessageProperties,
}

impl RawMessage {
    /// The dead letter of this message, for when the database refuses its row.
    pub(crate) fn into_dead_letter(self, error: String) -> DeadLetterRow {
        DeadLetterRow {
            source: self.source,
            body: self.body,
            properties: self.properties.to_json().to_string(),
            error,
        }
    }
}

/// Decodes one delivery (taking its body and properties; the acker is returned for the batch).
pub(crate) fn decode(delivery: Delivery, max_body_bytes: usize) -> (Decoded, Acker) {
    let Delivery {
        body,
        properties,
        source,
        acker,
        ..
    } = delivery;
    let decoded = match event_row(&body, &properties, max_body_bytes) {
        Ok(row) => Decoded::Event(Box::new(ReceivedEvent {
            row,
            message: RawMessage {
                source,
                body,
                properties,
            },
        })),
        Err(error) => Decoded::DeadLetter(DeadLetterRow {
            source,
            body,
            properties: properties.to_json().to_string(),
            error,
        }),
    };
    (decoded, acker)
}

/// The row of a message body, or why it is not an event.
pub(crate) fn event_row(
    body: &[u8],
    properties: &MessageProperties,
    max_body_bytes: usize,
) -> Result<EventRow, String> {
    if body.is_empty() {
        return Err("empty body".to_owned());
    }
    if body.len() > max_body_bytes {
        return Err(format!(
            "body of {} bytes is over the limit of {max_body_bytes} bytes",
            body.len()
        ));
    }
    if let Err(error) = std::str::from_utf8(body) {
        return Err(format!(
            "body is not valid UTF-8 (at byte {})",
            error.valid_up_to()
        ));
    }
    let envelope = Envelope::from_json(body).map_err(|error| error.to_string())?;
    let event_id = match properties.event_id() {
        Some(id) if !id.is_empty() => EventId::from(id.to_owned()),
        _ => EventId::for_message(&envelope.sender_id, body),
    };
    EventRow::new(&envelope.sender_id, &envelope.event, &event_id)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(body: &[u8]) -> String {
        event_row(body, &MessageProperties::default(), 1024).expect_err("should be a dead letter")
    }

    #[test]
    fn bad_bodies_have_reasons() {
        assert_eq!(reason(b""), "empty body");
        assert!(reason(&[b'{', 0xff, b'}']).contains("not valid UTF-8"));
        assert!(reason(&vec![b' '; 2000]).contains("over the limit of 1024 bytes"));
        for body in [
            &b"not json"[..],
            b"[1, 2]",
            b"\"text\"",
            b"{\"event\": \"user\"}",
            b"{\"sender_id\": 5, \"event\": \"user\"}",
            b"{\"sender_id\": \"s\"}",
        ] {
            assert!(!reason(body).is_empty(), "{body:?}");
        }
    }

    #[test]
    fn event_id_comes_from_the_header_or_the_body() {
        let body = br#"{"sender_id": "s", "event": "restart", "timestamp": 1.0}"#;
        let row = event_row(body, &MessageProperties::default(), 1024).unwrap();
        assert_eq!(
            row.event_id.as_deref(),
            Some(EventId::for_message("s", body).as_str())
        );
        let mut properties = MessageProperties::default();
        properties
            .headers
            .insert("colloquy-event-id".into(), serde_json::json!("abc"));
        let row = event_row(body, &properties, 1024).unwrap();
        assert_eq!(row.event_id.as_deref(), Some("abc"));
    }

    #[test]
    fn fallback_event_id_hashes_the_raw_bytes_received() {
        // Not in Rasa's form (as `rasa export` writes it, `sender_id` last): the id is the hash of these
        // exact bytes, not of a re-serialisation (see `EventId`'s contract).
        let body = br#"{"event": "restart", "timestamp": 1.0, "sender_id": "s"}"#;
        let row = event_row(body, &MessageProperties::default(), 1024).unwrap();
        let rasa_form = Envelope::from_json(body).unwrap().to_rasa_json();
        assert_ne!(rasa_form.as_bytes(), body);
        assert_eq!(
            row.event_id.as_deref(),
            Some(EventId::for_message("s", body).as_str())
        );
        assert_ne!(
            row.event_id.as_deref(),
            Some(EventId::for_message("s", rasa_form.as_bytes()).as_str())
        );
    }

    #[test]
    fn unknown_event_types_are_events() {
        let body =
            br#"{"sender_id": "s", "event": "flow_started", "timestamp": 1.0, "flow_id": "f"}"#;
        let row = event_row(body, &MessageProperties::default(), 1024).unwrap();
        assert_eq!(row.type_name, "flow_started");
    }
}
