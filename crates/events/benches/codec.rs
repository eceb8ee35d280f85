//! Parse + write throughput of Rasa-shaped broker bodies: the typed path (`Envelope::from_json` +
//! `to_rasa_json`) against a `serde_json::Value` round trip (`from_slice::<Value>` + `to_string`) of the same
//! bodies, in the same run.

use std::hint::black_box;

use colloquy_events::Envelope;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn bodies() -> Vec<Vec<u8>> {
    let user = r#"{"sender_id": "c0ffee", "event": "user", "timestamp": 1700000000.75, "metadata": {"model_id": "m1", "assistant_id": "a1"}, "text": "I want indian food in Berlin", "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.9412345}, "entities": [{"entity": "cuisine", "start": 7, "end": 13, "confidence_entity": 0.998, "value": "indian", "extractor": "DIETClassifier"}, {"entity": "city", "start": 22, "end": 28, "confidence_entity": 0.997, "value": "Berlin", "extractor": "DIETClassifier"}], "text": "I want indian food in Berlin", "message_id": "6f1b2c", "metadata": {}, "intent_ranking": [{"name": "request_restaurant", "confidence": 0.9412345}, {"name": "greet", "confidence": 0.03}, {"name": "affirm", "confidence": 0.01}, {"name": "deny", "confidence": 0.005}, {"name": "goodbye", "confidence": 0.001}]}, "input_channel": "rest", "message_id": "6f1b2c"}"#;
    let action = r#"{"sender_id": "c0ffee", "event": "action", "timestamp": 1700000001.0, "metadata": {"model_id": "m1", "assistant_id": "a1"}, "name": "utter_ask_location", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": false}"#;
    let bot = r#"{"sender_id": "c0ffee", "event": "bot", "timestamp": 1700000001.125, "metadata": {"utter_action": "utter_ask_location", "model_id": "m1", "assistant_id": "a1"}, "text": "Where should I look? \u00bfD\u00f3nde?", "data": {"elements": null, "quick_replies": null, "buttons": [{"title": "Berlin", "payload": "/inform{\"city\": \"Berlin\"}"}], "attachment": null, "image": null, "custom": null}}"#;
    let slot = r#"{"sender_id": "c0ffee", "event": "slot", "timestamp": 1700000001.25, "metadata": {"model_id": "m1", "assistant_id": "a1"}, "name": "cuisine", "value": "indian"}"#;
    let stack = r#"{"sender_id": "c0ffee", "user_id": "u1", "event": "stack", "timestamp": 1700000001.5, "update": "[{\"op\": \"add\", \"path\": \"/0\", \"value\": {\"frame_id\": \"X\"}}]"}"#;
    [user, action, bot, slot, stack]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect()
}

fn codec(c: &mut Criterion) {
    let bodies = bodies();
    for body in &bodies {
        let typed = Envelope::from_json(body).unwrap().to_rasa_json();
        assert_eq!(
            typed.as_bytes(),
            body.as_slice(),
            "bench bodies are Rasa-exact"
        );
    }
    let total: usize = bodies.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("typed_envelope_rasa_bytes", |b| {
        b.iter(|| {
            for body in &bodies {
                let envelope = Envelope::from_json(black_box(body)).unwrap();
                black_box(envelope.to_rasa_json());
            }
        })
    });
    group.bench_function("serde_json_value_roundtrip", |b| {
        b.iter(|| {
            for body in &bodies {
                let value: Value = serde_json::from_slice(black_box(body)).unwrap();
                black_box(serde_json::to_string(&value).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
