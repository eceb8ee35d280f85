//! Rasa 3.6.21's marker semantics, case by case (the compat suite compares whole files with Rasa itself).

use colloquy_analytics::markers::{Evaluator, MarkerConfig, TagNegation};
use colloquy_events::{Event, EventKind, Intent};

/// One event per letter: `S` action_session_start, `g`/`b` user greet/goodbye, `a` action utter_a,
/// `x`/`n` slot x set / set to null, `T` a legacy `topic` event, `L` action_listen.
fn events(spec: &str) -> Vec<Event> {
    spec.chars()
        .map(|c| {
            let kind = match c {
                'S' => EventKind::action("action_session_start"),
                'g' | 'b' => {
                    let mut kind = EventKind::user("text");
                    if let EventKind::User(u) = &mut kind {
                        let name = if c == 'g' { "greet" } else { "goodbye" };
                        u.parse_data.as_mut().unwrap().intent = Some(Intent::new(name, None));
                    }
                    kind
                }
                'a' => EventKind::action("utter_a"),
                'x' => EventKind::slot("x", "v"),
                'n' => EventKind::slot("x", serde_json::Value::Null),
                'T' => EventKind::Other("topic".into()),
                'L' => EventKind::action("action_listen"),
                other => panic!("no event for {other:?}"),
            };
            Event::new(kind)
        })
        .collect()
}

/// Evaluates `marker` (YAML of one marker named `m`) on conversations; returns, per conversation, per
/// session, the (event_idx, num_preceding_user_turns) where it applied.
fn check(
    marker: &str,
    negation: TagNegation,
    conversations: &[&str],
    expected: &[&[&[(usize, usize)]]],
) {
    let config = MarkerConfig::from_yaml(&format!("m:\n{marker}"), negation).unwrap();
    let mut evaluator = Evaluator::new(&config);
    let got: Vec<Vec<Vec<(usize, usize)>>> = conversations
        .iter()
        .map(|spec| {
            evaluator
                .evaluate("s", &events(spec))
                .sessions
                .into_iter()
                .map(|session| {
                    session[0]
                        .1
                        .iter()
                        .map(|m| (m.idx, m.preceding_user_turns))
                        .collect()
                })
                .collect()
        })
        .collect();
    assert_eq!(got, expected, "{marker} on {conversations:?}");
}

#[test]
fn rasa_marker_semantics() {
    use TagNegation::{AsRasa3_6, Honoured};
    // Conditions; events before the first session start are in no session.
    check(
        "  intent: greet\n",
        AsRasa3_6,
        &["gSgLg"],
        &[&[&[(2, 0), (4, 1)]]],
    );
    check(
        "  intent: greet\n",
        AsRasa3_6,
        &["gag"],
        &[&[&[(0, 0), (2, 1)]]],
    );
    // `topic` events are not in Rasa's tracker: indices skip them.
    check("  action: utter_a\n", AsRasa3_6, &["STa"], &[&[&[(1, 0)]]]);
    // slot_was_set holds until the slot is set to null, within the session.
    check(
        "  slot_was_set: x\n",
        AsRasa3_6,
        &["SxLnLSL"],
        &[&[&[(1, 0), (2, 0)], &[]]],
    );
    // at_least_once reports its first application only; never (honoured) the first event it holds at.
    check(
        "  at_least_once:\n    - action: utter_a\n",
        AsRasa3_6,
        &["SLaLa"],
        &[&[&[(2, 0)]]],
    );
    check(
        "  never:\n    - action: utter_a\n",
        Honoured,
        &["SLaL", "aL"],
        &[&[&[(0, 0)]], &[&[]]],
    );
    // ... and Rasa 3.6.21 reads `never` as `at_least_once`.
    check(
        "  never:\n    - action: utter_a\n",
        AsRasa3_6,
        &["SLaL"],
        &[&[&[(2, 0)]]],
    );
    // seq: one step per event; restarts after applying.
    check(
        "  seq:\n    - intent: greet\n    - action: utter_a\n",
        AsRasa3_6,
        &["SgagaLa"],
        &[&[&[(2, 1), (4, 2)]]],
    );
    // seq keeps its progress across sessions and conversations (Rasa never resets it).
    check(
        "  seq:\n    - intent: greet\n    - action: utter_a\n",
        AsRasa3_6,
        &["SgLSa", "a"],
        &[&[&[], &[(4, 0)]], &[&[]]],
    );
    check(
        "  seq:\n    - intent: greet\n    - action: utter_a\n",
        AsRasa3_6,
        &["Sg", "a"],
        &[&[&[]], &[&[(0, 0)]]],
    );
    // and / or / not at the same event.
    check(
        "  and:\n    - intent: greet\n    - slot_was_set: x\n",
        AsRasa3_6,
        &["SgxgLb"],
        &[&[&[(3, 1)]]],
    );
    check(
        "  not:\n    - action: action_listen\n",
        AsRasa3_6,
        &["SLa"],
        &[&[&[(0, 0), (2, 0)]]],
    );
    check(
        "  slot_was_not_set: x\n",
        Honoured,
        &["SxnL"],
        &[&[&[(0, 0), (2, 0), (3, 0)]]],
    );
}
