//! The tracker's replay rules, save bookkeeping and stamping, one table row per rule.

use colloquy_events::{Envelope, Event, EventId, EventVerbosity, Tracker};
use serde_json::{Value, json};

fn ev(json: Value) -> Event {
    Event::from_value(json).unwrap()
}

fn user(text: &str, intent: &str) -> Event {
    ev(json!({"event": "user", "timestamp": 1.0, "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": [], "text": text,
                       "message_id": null, "metadata": {}},
        "input_channel": "rest", "message_id": null, "metadata": {}}))
}

fn action(name: &str) -> Event {
    ev(json!({"event": "action", "timestamp": 1.0, "name": name}))
}

fn slot(name: &str, value: Value) -> Event {
    ev(json!({"event": "slot", "timestamp": 1.0, "name": name, "value": value}))
}

fn simple(kind: &str) -> Event {
    ev(json!({"event": kind, "timestamp": 1.0}))
}

/// Replays `events` and compares selected `current_state` keys.
fn check(events: Vec<Event>, expected: Value) {
    let mut tracker = Tracker::new("t");
    tracker.apply_all(events);
    let state = tracker.current_state();
    for (key, want) in expected.as_object().unwrap() {
        assert_eq!(&state[key], want, "{key} in {state:#}");
    }
}

#[test]
fn replay_rules() {
    // Initial state.
    check(
        vec![],
        json!({"slots": {}, "followup_action": "action_listen", "paused": false, "latest_action": {},
               "latest_action_name": null, "active_loop": {}, "latest_event_time": null,
               "latest_message": {"intent": {}, "entities": [], "text": null, "message_id": null, "metadata": {}}}),
    );
    // Slots, reset_slots keeps the names with null.
    check(
        vec![slot("a", json!(1)), slot("b", json!("x"))],
        json!({"slots": {"a": 1, "b": "x"}}),
    );
    check(
        vec![slot("a", json!(1)), simple("reset_slots")],
        json!({"slots": {"a": null}}),
    );
    // User clears the follow-up; action records latest action; followup sets it.
    check(
        vec![user("hi", "greet")],
        json!({"followup_action": null, "latest_input_channel": "rest"}),
    );
    check(
        vec![
            action("utter_hi"),
            ev(json!({"event": "followup", "name": "act_x"})),
        ],
        json!({"followup_action": "act_x", "latest_action": {"action_name": "utter_hi"}}),
    );
    check(
        vec![ev(
            json!({"event": "action", "name": null, "action_text": "Hello"}),
        )],
        json!({"latest_action": {"action_text": "Hello"}, "latest_action_name": "Hello"}),
    );
    // Pause / resume.
    check(vec![simple("pause")], json!({"paused": true}));
    check(
        vec![simple("pause"), simple("resume")],
        json!({"paused": false}),
    );
    // Restart resets and forces action_session_start; session_started resets.
    check(
        vec![slot("a", json!(1)), simple("pause"), simple("restart")],
        json!({"slots": {"a": null}, "paused": false, "followup_action": "action_session_start"}),
    );
    check(
        vec![slot("a", json!(1)), simple("session_started")],
        json!({"slots": {"a": null}, "followup_action": "action_listen"}),
    );
    // Rewind drops the last user message and the action before it.
    check(
        vec![
            action("action_listen"),
            user("one", "first"),
            action("utter_a"),
            action("action_listen"),
            user("two", "second"),
            slot("s", json!(2)),
            simple("rewind"),
        ],
        json!({"latest_message": {"intent": {"name": "first", "confidence": 1.0}, "entities": [], "text": "one",
                                  "message_id": null, "metadata": {}},
               "slots": {"s": null}, "latest_action": {"action_name": "utter_a"}}),
    );
    // Undo drops the last action and what came after it.
    check(
        vec![
            slot("s", json!(1)),
            action("utter_a"),
            slot("s", json!(2)),
            simple("undo"),
        ],
        json!({"slots": {"s": 1}, "latest_action": {}}),
    );
    // Active loop: activation captures the trigger message; interruption, rejection, reset by the action.
    let trigger = json!({"intent": {"name": "order", "confidence": 1.0}, "entities": [], "text": "pizza",
                         "message_id": null, "metadata": {}});
    check(
        vec![
            user("pizza", "order"),
            ev(json!({"event": "active_loop", "name": "pizza_form"})),
            ev(json!({"event": "loop_interrupted", "is_interrupted": true})),
            ev(json!({"event": "action_execution_rejected", "name": "pizza_form"})),
        ],
        json!({"active_loop": {"name": "pizza_form", "is_interrupted": true, "rejected": true,
                               "trigger_message": trigger}}),
    );
    check(
        vec![
            ev(json!({"event": "form", "name": "pizza_form"})),
            ev(json!({"event": "form_validation", "validate": false})),
            action("pizza_form"),
        ],
        json!({"active_loop": {"name": "pizza_form", "is_interrupted": false, "rejected": false,
                               "trigger_message": {"intent": {}, "entities": [], "text": null,
                                                   "message_id": null, "metadata": {}}}}),
    );
    check(
        vec![
            ev(json!({"event": "active_loop", "name": "f"})),
            ev(json!({"event": "active_loop", "name": null})),
        ],
        json!({"active_loop": {}}),
    );
    // Entities events add to the latest message only right after action_listen.
    check(
        vec![
            user("hi", "greet"),
            action("action_listen"),
            ev(json!({"event": "entities", "entities": [{"entity": "city", "value": "Rome"}]})),
        ],
        json!({"latest_message": {"intent": {"name": "greet", "confidence": 1.0},
                                  "entities": [{"entity": "city", "value": "Rome"}], "text": "hi",
                                  "message_id": null, "metadata": {}}}),
    );
    check(
        vec![
            user("hi", "greet"),
            action("utter_x"),
            ev(json!({"event": "entities", "entities": [{"entity": "city", "value": "Rome"}]})),
        ],
        json!({"latest_message": {"intent": {"name": "greet", "confidence": 1.0}, "entities": [], "text": "hi",
                                  "message_id": null, "metadata": {}}}),
    );
}

#[test]
fn loop_reexecutions_are_folded_in_applied_events() {
    let mut tracker = Tracker::new("t");
    tracker.apply_all(vec![
        action("action_listen"),
        user("pizza", "order"),
        action("pizza_form"),
        ev(json!({"event": "active_loop", "name": "pizza_form"})),
        action("action_listen"),
        user("large", "inform"),
        action("pizza_form"),
    ]);
    let names: Vec<&str> = tracker
        .applied_events()
        .iter()
        .map(|e| e.type_name())
        .collect();
    // The second pizza_form run undoes the listen + user turn in between (Rasa's happy-path folding).
    assert_eq!(names, ["action", "user", "action", "active_loop"]);
}

#[test]
fn sessions_restarts_and_saves() {
    let mut tracker = Tracker::restore(
        "alice",
        10,
        vec![
            action("action_session_start"),
            simple("session_started"),
            action("action_listen"),
        ],
    );
    assert_eq!(tracker.saved_len(), 3);
    assert!(tracker.events_since_last_save().is_empty());
    tracker.apply_all(vec![
        user("hi", "greet"),
        simple("restart"),
        action("action_session_start"),
        simple("session_started"),
        slot("a", json!(1)),
    ]);
    assert_eq!(tracker.events_since_last_save().len(), 5);
    assert_eq!(tracker.sessions().len(), 3);
    assert_eq!(tracker.latest_session().len(), 2);
    assert_eq!(tracker.events_after_latest_restart().len(), 3);

    let stamped = tracker.stamped_since_last_save();
    assert_eq!(
        stamped.iter().map(|s| s.seq.unwrap()).collect::<Vec<_>>(),
        [13, 14, 15, 16, 17]
    );
    let first = &stamped[0];
    let body = first.envelope.to_rasa_json();
    assert!(body.starts_with(r#"{"sender_id": "alice", "event": "user""#));
    assert_eq!(first.id, EventId::for_tracked("alice", 13, body.as_bytes()));
    // Stable: stamping again gives the same ids; the whole conversation stamps from first_seq.
    assert_eq!(tracker.stamped_since_last_save(), stamped);
    assert_eq!(tracker.stamp_all()[0].seq, Some(10));
    tracker.mark_saved();
    assert_eq!(tracker.saved_len(), 8);
    assert!(tracker.stamped_since_last_save().is_empty());

    let unsequenced = colloquy_events::StampedEnvelope::unsequenced(Envelope {
        sender_id: "alice".into(),
        event: simple("pause"),
    });
    let body = unsequenced.envelope.to_rasa_json();
    assert_eq!(
        unsequenced.id,
        EventId::for_message("alice", body.as_bytes())
    );
    assert_eq!(unsequenced.seq, None);
}

fn at(mut event: Event, time: f64) -> Event {
    event.timestamp = Some(serde_json::Number::from_f64(time).unwrap());
    event
}

#[test]
fn domain_slots_start_from_and_reset_to_their_initial_values() {
    let initial = json!({"cuisine": "any", "people": null, "session_started_metadata": null});
    let mut tracker = Tracker::new("t").with_domain_slots(initial.as_object().unwrap().clone());
    assert_eq!(tracker.current_state()["slots"], initial);
    tracker.apply(slot("people", json!(4)));
    tracker.apply(slot("unknown", json!("ignored, as in Rasa")));
    assert_eq!(
        tracker.current_state()["slots"],
        json!({"cuisine": "any", "people": 4, "session_started_metadata": null})
    );
    tracker.apply(simple("restart"));
    assert_eq!(tracker.current_state()["slots"], initial);
    tracker.apply(slot("cuisine", json!("thai")));
    tracker.apply(simple("reset_slots"));
    assert_eq!(tracker.current_state()["slots"], initial);
}

#[test]
fn domain_slots_rederive_a_restored_tracker_and_keep_its_bookkeeping() {
    let restored = Tracker::restore(
        "t",
        3,
        vec![slot("people", json!(2)), slot("other", json!(1))],
    );
    let tracker = restored.with_domain_slots(json!({"people": 1}).as_object().unwrap().clone());
    assert_eq!(tracker.current_state()["slots"], json!({"people": 2}));
    assert_eq!((tracker.first_seq(), tracker.saved_len()), (3, 2));
}

#[test]
fn verbosity_selects_the_events_like_rasa() {
    let mut tracker = Tracker::new("t");
    tracker.apply_all(vec![
        user("hi", "greet"),
        action("utter_hi"),
        simple("restart"),
        user("again", "greet"),
        action("utter_hi"),
        simple("undo"),
    ]);
    let count = |verbosity| match &tracker.current_state_with(verbosity)["events"] {
        Value::Array(events) => Some(events.len()),
        _ => None,
    };
    assert_eq!(count(EventVerbosity::All), Some(6));
    assert_eq!(count(EventVerbosity::AfterRestart), Some(3));
    assert_eq!(count(EventVerbosity::Applied), Some(1));
    assert_eq!(count(EventVerbosity::None), None);
    assert_eq!(
        tracker.current_state(),
        tracker.current_state_with(EventVerbosity::All)
    );
    assert_eq!(
        EventVerbosity::from_name("after_restart"),
        Some(EventVerbosity::AfterRestart)
    );
    assert_eq!(EventVerbosity::from_name("some"), None);
}

#[test]
fn travel_back_in_time_replays_up_to_the_first_later_event() {
    let mut tracker =
        Tracker::new("t").with_domain_slots(json!({"a": 0}).as_object().unwrap().clone());
    tracker.apply_all(vec![
        at(slot("a", json!(1)), 1.0),
        at(slot("a", json!(2)), 2.0),
        at(slot("a", json!(3)), 3.0),
        at(slot("a", json!(4)), 2.5),
    ]);
    let past = tracker.travel_back_in_time(2.0);
    assert_eq!(past.current_state()["slots"], json!({"a": 2}));
    assert_eq!(past.events().len(), 2);
    assert_eq!(past.saved_len(), 0);
    assert_eq!(
        tracker.travel_back_in_time(0.5).current_state()["slots"],
        json!({"a": 0})
    );
}
