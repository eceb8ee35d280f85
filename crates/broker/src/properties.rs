//! Message properties: [`MessageProperties`] (transport-neutral, JSON headers) and their conversion to and from
//! AMQP's `BasicProperties`.

use std::collections::BTreeMap;

use colloquy_events::StampedEnvelope;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Number, Value};

/// Header carrying the event's stable id.
pub const EVENT_ID_HEADER: &str = "colloquy-event-id";
/// Header carrying the event's 0-based position in its conversation.
pub const SEQ_HEADER: &str = "colloquy-seq";
/// The `content_type` of published events.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// `delivery_mode` of persistent messages.
pub const PERSISTENT: u8 = 2;

/// A message property value, as the consumer stores it (JSON) in `dead_letters.properties`.
pub type HeaderValue = serde_json::Value;

/// The properties of a received message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageProperties {
    /// `message_id`.
    pub message_id: Option<String>,
    /// `content_type`.
    pub content_type: Option<String>,
    /// `app_id`.
    pub app_id: Option<String>,
    /// `delivery_mode` (2 = persistent).
    pub delivery_mode: Option<u8>,
    /// `timestamp` (unix seconds).
    pub timestamp: Option<u64>,
    /// Headers, converted to JSON values.
    pub headers: BTreeMap<String, HeaderValue>,
}

impl MessageProperties {
    /// Header `colloquy-event-id`, when present and a string.
    pub fn event_id(&self) -> Option<&str> {
        self.headers.get(EVENT_ID_HEADER)?.as_str()
    }

    /// Header `colloquy-seq`, when present and a non-negative integer.
    pub fn seq(&self) -> Option<u64> {
        self.headers.get(SEQ_HEADER)?.as_u64()
    }

    /// The properties of an event as this crate publishes it (what [`crate::AmqpBroker`] sends).
    pub fn for_event(event: &StampedEnvelope, app_id: Option<&str>) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert(
            EVENT_ID_HEADER.to_owned(),
            Value::String(event.id.as_str().to_owned()),
        );
        if let Some(seq) = event.seq {
            headers.insert(SEQ_HEADER.to_owned(), Value::from(seq));
        }
        Self {
            message_id: Some(event.id.as_str().to_owned()),
            content_type: Some(JSON_CONTENT_TYPE.to_owned()),
            app_id: app_id.map(str::to_owned),
            delivery_mode: Some(PERSISTENT),
            timestamp: None,
            headers,
        }
    }

    /// All properties as one JSON object (for `dead_letters.properties`): the properties that are set, and
    /// `headers` (always, possibly empty).
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = Map::new();
        if let Some(v) = &self.message_id {
            object.insert("message_id".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.content_type {
            object.insert("content_type".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.app_id {
            object.insert("app_id".into(), Value::String(v.clone()));
        }
        if let Some(v) = self.delivery_mode {
            object.insert("delivery_mode".into(), Value::from(v));
        }
        if let Some(v) = self.timestamp {
            object.insert("timestamp".into(), Value::from(v));
        }
        object.insert(
            "headers".into(),
            Value::Object(
                self.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        );
        Value::Object(object)
    }

    /// Reads properties back from their [`MessageProperties::to_json`] form (e.g. to requeue a dead letter).
    /// Keys that are missing or of the wrong type are left unset.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            message_id: text("message_id"),
            content_type: text("content_type"),
            app_id: text("app_id"),
            delivery_mode: value
                .get("delivery_mode")
                .and_then(Value::as_u64)
                .and_then(|mode| u8::try_from(mode).ok()),
            timestamp: value.get("timestamp").and_then(Value::as_u64),
            headers: value
                .get("headers")
                .and_then(Value::as_object)
                .map(|headers| {
                    headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Reads AMQP properties (headers become JSON values).
    pub(crate) fn from_amqp(properties: &BasicProperties) -> Self {
        Self {
            message_id: properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            content_type: properties
                .content_type()
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            app_id: properties.app_id().as_ref().map(|s| s.as_str().to_owned()),
            delivery_mode: *properties.delivery_mode(),
            timestamp: *properties.timestamp(),
            headers: properties
                .headers()
                .as_ref()
                .map(|table| {
                    table
                        .inner()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), amqp_to_json(v)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Writes AMQP properties. Strings over 255 bytes cannot be short-string properties: such a property is left
    /// out (its value stays available in the headers for our own ids). A missing `delivery_mode` becomes
    /// persistent.
    pub(crate) fn to_amqp(&self) -> BasicProperties {
        let short = |s: &Option<String>| {
            s.as_ref()
                .and_then(|s| ShortString::try_new(s.as_str()).ok())
        };
        let mut properties =
            BasicProperties::default().with_delivery_mode(self.delivery_mode.unwrap_or(PERSISTENT));
        if let Some(v) = short(&self.message_id) {
            properties = properties.with_message_id(v);
        }
        if let Some(v) = short(&self.content_type) {
            properties = properties.with_content_type(v);
        }
        if let Some(v) = short(&self.app_id) {
            properties = properties.with_app_id(v);
        }
        if let Some(v) = self.timestamp {
            properties = properties.with_timestamp(v);
        }
        let mut table = FieldTable::default();
        for (key, value) in &self.headers {
            if let Ok(key) = ShortString::try_new(key.as_str()) {
                table.insert(key, json_to_amqp(value));
            }
        }
        properties.with_headers(table)
    }
}

/// The AMQP properties of an event as published (built directly, without the JSON detour of
/// [`MessageProperties::to_amqp`]: this runs once per event).
pub(crate) fn event_amqp_properties(
    event: &StampedEnvelope,
    app_id: Option<&ShortString>,
) -> BasicProperties {
    let id = event.id.as_str();
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from(EVENT_ID_HEADER),
        AMQPValue::LongString(LongString::from(id.as_bytes())),
    );
    if let Some(seq) = event.seq {
        // A long integer ('l'); positions never reach i64::MAX.
        headers.insert(
            ShortString::from(SEQ_HEADER),
            AMQPValue::LongLongInt(i64::try_from(seq).unwrap_or(i64::MAX)),
        );
    }
    let mut properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(ShortString::from(JSON_CONTENT_TYPE))
        .with_headers(headers);
    if let Ok(message_id) = ShortString::try_new(id) {
        properties = properties.with_message_id(message_id);
    }
    if let Some(app_id) = app_id {
        properties = properties.with_app_id(app_id.clone());
    }
    properties
}

/// An AMQP field value as JSON: numbers stay numbers, strings (valid UTF-8, else lossy) strings, tables
/// objects, arrays arrays, void null.
pub(crate) fn amqp_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(v) => Value::Bool(*v),
        AMQPValue::ShortShortInt(v) => Value::from(*v),
        AMQPValue::ShortShortUInt(v) => Value::from(*v),
        AMQPValue::ShortInt(v) => Value::from(*v),
        AMQPValue::ShortUInt(v) => Value::from(*v),
        AMQPValue::LongInt(v) => Value::from(*v),
        AMQPValue::LongUInt(v) => Value::from(*v),
        AMQPValue::LongLongInt(v) => Value::from(*v),
        AMQPValue::Float(v) => Number::from_f64(f64::from(*v)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let value = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            Number::from_f64(value).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(v) => Value::String(v.as_str().to_owned()),
        AMQPValue::LongString(v) => {
            Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())
        }
        AMQPValue::FieldArray(v) => Value::Array(v.as_slice().iter().map(amqp_to_json).collect()),
        AMQPValue::Timestamp(v) => Value::from(*v),
        AMQPValue::FieldTable(v) => Value::Object(
            v.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), amqp_to_json(v)))
                .collect(),
        ),
        AMQPValue::ByteArray(v) => {
            Value::String(String::from_utf8_lossy(v.as_slice()).into_owned())
        }
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON value as an AMQP field value: integers as long-long, other numbers as double.
pub(crate) fn json_to_amqp(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(v) => AMQPValue::Boolean(*v),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(items) => {
            let mut array = FieldArray::default();
            for item in items {
                array.push(json_to_amqp(item));
            }
            AMQPValue::FieldArray(array)
        }
        Value::Object(map) => {
            let mut table = FieldTable::default();
            for (k, v) in map {
                if let Ok(k) = ShortString::try_new(k.as_str()) {
                    table.insert(k, json_to_amqp(v));
                }
            }
            AMQPValue::FieldTable(table)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip_through_amqp() {
        let mut headers = BTreeMap::new();
        headers.insert(EVENT_ID_HEADER.to_owned(), Value::from("id-1"));
        headers.insert(SEQ_HEADER.to_owned(), Value::from(7u64));
        headers.insert(
            "nested".to_owned(),
            serde_json::json!({"a": [1, 2.5, true, null, "x"]}),
        );
        let properties = MessageProperties {
            message_id: Some("id-1".into()),
            content_type: Some(JSON_CONTENT_TYPE.into()),
            app_id: Some("production".into()),
            delivery_mode: Some(2),
            timestamp: Some(1_700_000_000),
            headers,
        };
        let back = MessageProperties::from_amqp(&properties.to_amqp());
        assert_eq!(back, properties);
        assert_eq!(back.event_id(), Some("id-1"));
        assert_eq!(back.seq(), Some(7));
        assert_eq!(
            back.to_json(),
            serde_json::json!({
                "message_id": "id-1", "content_type": "application/json", "app_id": "production",
                "delivery_mode": 2, "timestamp": 1_700_000_000u64,
                "headers": {"colloquy-event-id": "id-1", "colloquy-seq": 7, "nested": {"a": [1, 2.5, true, null, "x"]}}
            })
        );
    }

    #[test]
    fn amqp_values_become_json() {
        let cases = [
            (AMQPValue::ShortShortInt(-1), serde_json::json!(-1)),
            (AMQPValue::LongUInt(5), serde_json::json!(5)),
            (AMQPValue::Float(1.5), serde_json::json!(1.5)),
            (AMQPValue::Timestamp(9), serde_json::json!(9)),
            (AMQPValue::ShortString("s".into()), serde_json::json!("s")),
            (AMQPValue::Void, Value::Null),
        ];
        for (amqp, json) in cases {
            assert_eq!(amqp_to_json(&amqp), json, "{amqp:?}");
        }
    }
}
