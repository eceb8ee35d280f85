//! Rasa's session, turn and column rules, one case per line, plus a conversation as Rasa 3.6 publishes it.

use colloquy_analytics::{Conversation, Settings, derive_conversation};
use colloquy_events::{Envelope, Event, EventKind};
use colloquy_testkit::rasa_conversation;

/// One event per letter: `S` action_session_start, `M` slot session_started_metadata, `U` user, `B` bot,
/// `L` action_listen, `R` restart, `x` slot x, `P` pause.
fn events(spec: &str) -> Vec<Event> {
    spec.chars()
        .map(|c| {
            Event::new(match c {
                'S' => EventKind::action("action_session_start"),
                'M' => EventKind::slot("session_started_metadata", serde_json::json!({"k": 1})),
                'U' => EventKind::user("hi"),
                'B' => EventKind::bot("hello"),
                'L' => EventKind::action("action_listen"),
                'R' => EventKind::Restart,
                'x' => EventKind::slot("x", 1),
                'P' => EventKind::Pause,
                other => panic!("no event for {other:?}"),
            })
        })
        .collect()
}

type Ranges = Vec<(u64, u64)>;

/// Sessions and turns as (start, end) positions.
fn check(spec: &str, sessions: &[(u64, u64)], turns: &[(u64, u64)]) {
    let rows = derive_conversation(&Settings::default(), "s", &events(spec));
    let got_sessions: Ranges = rows
        .sessions
        .iter()
        .map(|s| (s.start_sequence_number, s.end_sequence_number))
        .collect();
    let got_turns: Ranges = rows
        .turns
        .iter()
        .map(|t| (t.start_sequence_number, t.end_sequence_number))
        .collect();
    assert_eq!(got_sessions, sessions, "sessions of {spec}");
    assert_eq!(got_turns, turns, "turns of {spec}");
    // Every event is in exactly one session, and its rows name that session.
    for event in &rows.events {
        let session = rows
            .sessions
            .iter()
            .find(|s| s.id == event.session_id)
            .expect("session of event");
        assert!(
            (session.start_sequence_number..=session.end_sequence_number)
                .contains(&event.sequence_number)
        );
    }
}

#[test]
fn sessions_and_turns_follow_rasas_rules() {
    // No session start at all: one session.
    check("UBLUB", &[(0, 4)], &[(0, 2), (3, 4)]);
    check("", &[], &[]);
    // action_session_start opens a session; events before the first one form their own session.
    check("SLUBL", &[(0, 4)], &[(2, 4)]);
    check("PSLUB", &[(0, 0), (1, 4)], &[(3, 4)]);
    check("SLUBSLUB", &[(0, 3), (4, 7)], &[(2, 3), (6, 7)]);
    // The session_started_metadata slot before action_session_start belongs to the new session.
    check("SLUBMSLUB", &[(0, 3), (4, 8)], &[(2, 3), (7, 8)]);
    check("MSLU", &[(0, 3)], &[(3, 3)]);
    // A metadata slot alone also starts a session.
    check("ULMUB", &[(0, 1), (2, 4)], &[(0, 1), (3, 4)]);
    // After a restart the next event starts a session (Rasa runs action_session_start then).
    check("SLUBRSLUB", &[(0, 4), (5, 8)], &[(2, 4), (7, 8)]);
    check("SLUBRMSLU", &[(0, 4), (5, 8)], &[(2, 4), (8, 8)]);
    check("SLURUB", &[(0, 3), (4, 5)], &[(2, 3), (4, 5)]);
    // A turn ends at the session's end, not at the next user message of another session.
    check("SUxBSxU", &[(0, 3), (4, 6)], &[(1, 3), (6, 6)]);
}

#[test]
fn a_conversation_as_rasa_publishes_it() {
    let events: Vec<Event> = rasa_conversation("alice", 2)
        .iter()
        .map(|body| Envelope::from_json(body).expect("Rasa body").event)
        .collect();
    let settings = Settings {
        environment: Some("production".into()),
    };
    let rows = derive_conversation(&settings, "alice", &events);

    let sender = &rows.senders[0];
    assert_eq!(sender.sender_key, "alice");
    assert_eq!(sender.channel.as_deref(), Some("rest"));
    assert_eq!(
        (sender.first_seen, sender.last_seen),
        (Some(1700000000.0), Some(1700000002.25))
    );

    assert_eq!(rows.sessions.len(), 1);
    assert_eq!(rows.sessions[0].timestamp, Some(1700000000.0));
    assert_eq!(
        (
            rows.sessions[0].start_sequence_number,
            rows.sessions[0].end_sequence_number
        ),
        (0, 12)
    );
    let turns: Ranges = rows
        .turns
        .iter()
        .map(|t| (t.start_sequence_number, t.end_sequence_number))
        .collect();
    assert_eq!(turns, [(3, 7), (8, 12)]);

    assert_eq!(rows.events.len(), 13);
    assert!(
        rows.events
            .iter()
            .all(|e| e.model_id.as_deref() == Some("m1"))
    );
    assert!(
        rows.events
            .iter()
            .all(|e| e.environment.as_deref() == Some("production"))
    );
    let types: Vec<&str> = rows
        .events
        .iter()
        .take(4)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["action", "session_started", "action", "user"]);

    let user = &rows.user_messages[0];
    assert_eq!(user.intent.as_deref(), Some("request_restaurant"));
    assert_eq!(user.confidence, Some(0.9412345678901234));
    assert_eq!(user.message_id.as_deref(), Some("6f1b0"));
    assert_eq!(user.event.event_id, rows.events[3].id);
    assert_eq!(user.event.sequence_number, 3);

    let bot = &rows.bot_messages[1];
    assert_eq!(bot.template_name.as_deref(), Some("utter_ack"));
    assert_eq!(bot.text.as_deref(), Some("Sure, turn 1!"));

    let policies: Vec<Option<&str>> = rows.actions.iter().map(|a| a.policy.as_deref()).collect();
    assert_eq!(policies[..3], [None, None, Some("TEDPolicy")]);
    assert_eq!(rows.actions[2].name.as_deref(), Some("utter_ack"));
    assert_eq!(rows.actions[2].confidence, Some(0.98));

    assert_eq!(rows.slots.len(), 2);
    assert_eq!(rows.slots[0].value, "\"indian\"");
    assert_eq!(
        rows.slots[0].slot_path,
        format!("{}/{}/cuisine", sender.id, rows.sessions[0].id)
    );
    assert_eq!(
        rows.session_slot_states.len(),
        1,
        "the last value per slot and session"
    );
    assert_eq!(rows.session_slot_states[0].id, rows.slots[0].slot_path);
    assert_eq!(rows.session_slot_states[0].timestamp, Some(1700000002.25));
}

#[test]
fn a_gap_is_refused_and_changes_nothing() {
    let events = events("SLU");
    let mut conversation = Conversation::new("s");
    conversation
        .apply(&Settings::default(), [(0, &events[0])])
        .unwrap();
    let before = conversation.clone();
    let error = conversation
        .apply(&Settings::default(), [(1, &events[1]), (5, &events[2])])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "conversation \"s\": expected the event at position 2, got position 5"
    );
    assert!(error.is_bad_input());
    assert_eq!(conversation, before);
}
