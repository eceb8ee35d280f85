//! Evaluating markers on conversations, step for step as Rasa 3.6.21's `rasa/core/evaluation/marker*.py`.
//!
//! The rules, all Rasa's:
//! - **Events.** A conversation's events are the tracker's events in stored order, minus the legacy
//!   `topic` events Rasa drops when it reads a tracker. `event_idx` is an index into that list.
//! - **Sessions.** A session starts at every `action` event of `action_session_start`; the events before the
//!   first such event belong to no session and are not evaluated. A conversation without one is one session
//!   starting at index 0 (also when it has no events).
//! - **Tracking.** Each marker is updated at every event of a session, sub-markers first. Per session, the
//!   markers forget their history — but a `seq` keeps its progress: Rasa never resets it, so a sequence
//!   begun in one session (or conversation, in evaluation order) continues in the next.
//! - **Conditions.** `action: A` applies at an `action` event named A; `intent: I` at a `user` event whose
//!   intent name or full retrieval intent name is I; `slot_was_set: S` at a `slot` event of S with a
//!   non-null value, and at every later event of the session until a `slot` event of S sets `null`.
//! - **Operators.** `and`/`or`/`not` combine the sub-markers' values at the same event. `seq` advances by
//!   one sub-marker when the next expected sub-marker applies at this event (at most one step per event)
//!   and applies when the last one did, starting over. `at_least_once` applies from the first event at which
//!   its sub-marker applied to the end of the session. A negated marker applies exactly when the
//!   non-negated one would not (its memory — of `at_least_once`, `slot_was_set` — is the non-negated value).
//! - **What is reported.** For each marker, the events at which it applied; for a top-level `at_least_once`
//!   (or `never`), only the first. With each, `num_preceding_user_turns`: the number of `user` events of the
//!   session before it.

use colloquy_events::{Event, EventKind};

use super::config::{Condition, MarkerConfig, Node, NodeKind, Operator};
use crate::derive::ACTION_SESSION_START;

/// Where a marker applied: an event and how many user messages of its session preceded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    /// `event_idx`: the event's index in the conversation (see the module documentation).
    pub idx: usize,
    /// `num_preceding_user_turns`: `user` events of the session before this event.
    pub preceding_user_turns: usize,
}

/// The result of one session: for each marker, in configuration order, its name and where it applied.
pub type SessionResult = Vec<(String, Vec<EventMeta>)>;

/// The results for one conversation, one entry per session (`session_idx` = index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationResult {
    /// Rasa's `sender_id`.
    pub sender_id: String,
    /// Per session, in order.
    pub sessions: Vec<SessionResult>,
}

/// A marker node with its evaluation state.
#[derive(Debug, Clone)]
struct Tracked {
    negated: bool,
    kind: TrackedKind,
    /// The value at the last tracked event of this session (`history[-1]` in Rasa), negation applied.
    last: Option<bool>,
}

#[derive(Debug, Clone)]
enum TrackedKind {
    Condition(Condition),
    Operator {
        operator: Operator,
        children: Vec<Tracked>,
        /// `seq` only: how many sub-markers applied in order so far. Never reset (as in Rasa).
        progress: usize,
    },
}

impl Tracked {
    fn new(node: &Node) -> Self {
        let kind = match &node.kind {
            NodeKind::Condition(condition) => TrackedKind::Condition(condition.clone()),
            NodeKind::Operator(operator, children) => TrackedKind::Operator {
                operator: *operator,
                children: children.iter().map(Tracked::new).collect(),
                progress: 0,
            },
        };
        Self {
            negated: node.negated,
            kind,
            last: None,
        }
    }

    /// Forgets the session's history (not a `seq`'s progress).
    fn reset(&mut self) {
        self.last = None;
        if let TrackedKind::Operator { children, .. } = &mut self.kind {
            children.iter_mut().for_each(Tracked::reset);
        }
    }

    /// The value before negation remembered from the previous event, `false` at a session's start.
    fn previous_plain(&self) -> bool {
        self.last.is_some_and(|value| value != self.negated)
    }

    fn track(&mut self, event: &Event) -> bool {
        let previous_plain = self.previous_plain();
        let plain = match &mut self.kind {
            TrackedKind::Condition(Condition::Action(name)) => {
                matches!(&event.kind, EventKind::Action(action) if action.name.as_deref() == Some(name.as_str()))
            }
            TrackedKind::Condition(Condition::Intent(name)) => match &event.kind {
                EventKind::User(user) => user
                    .parse_data
                    .as_ref()
                    .and_then(|p| p.intent.as_ref())
                    .is_some_and(|intent| {
                        intent.name.as_deref() == Some(name.as_str())
                            || intent.full_retrieval_intent_name.as_deref() == Some(name.as_str())
                    }),
                _ => false,
            },
            TrackedKind::Condition(Condition::SlotWasSet(name)) => match &event.kind {
                EventKind::Slot(slot) if slot.name == *name => !slot.value.is_null(),
                _ => previous_plain,
            },
            TrackedKind::Operator {
                operator,
                children,
                progress,
            } => {
                let values: Vec<bool> = children
                    .iter_mut()
                    .map(|child| child.track(event))
                    .collect();
                match operator {
                    Operator::And => values.iter().all(|v| *v),
                    Operator::Or => values.iter().any(|v| *v),
                    Operator::Not => !values[0],
                    Operator::AtLeastOnce => previous_plain || values[0],
                    Operator::Seq => {
                        if values[*progress] {
                            *progress += 1;
                        }
                        if *progress == values.len() {
                            *progress = 0;
                            true
                        } else {
                            false
                        }
                    }
                }
            }
        };
        let value = plain != self.negated;
        self.last = Some(value);
        value
    }

    fn reports_first_only(&self) -> bool {
        matches!(
            self.kind,
            TrackedKind::Operator {
                operator: Operator::AtLeastOnce,
                ..
            }
        )
    }
}

/// Evaluates a [`MarkerConfig`] on conversations, one after the other; keeps Rasa's cross-conversation
/// state (a `seq`'s progress), so give the conversations in the order the results should be in.
///
/// ```
/// use colloquy_analytics::markers::{Evaluator, MarkerConfig, TagNegation};
/// use colloquy_events::{Event, EventKind};
///
/// let config = MarkerConfig::from_yaml("greeted:\n  intent: greet\n", TagNegation::AsRasa3_6)?;
/// let mut greet = EventKind::user("hello");
/// if let EventKind::User(user) = &mut greet {
///     user.parse_data.as_mut().unwrap().intent = Some(colloquy_events::Intent::new("greet", None));
/// }
/// let events = [Event::new(EventKind::action("action_session_start")), Event::new(greet)];
/// let result = Evaluator::new(&config).evaluate("alice", &events);
/// assert_eq!(result.sessions[0][0].1[0].idx, 1);
/// # Ok::<(), colloquy_analytics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Evaluator {
    markers: Vec<(String, Tracked)>,
}

impl Evaluator {
    /// A fresh evaluator for `config`.
    pub fn new(config: &MarkerConfig) -> Self {
        Self {
            markers: config
                .markers
                .iter()
                .map(|marker| (marker.csv_name(), Tracked::new(&marker.node)))
                .collect(),
        }
    }

    /// Evaluates one conversation (its events in stored order).
    pub fn evaluate<'a>(
        &mut self,
        sender_id: &str,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> ConversationResult {
        let events: Vec<&Event> = events
            .into_iter()
            .filter(|event| !matches!(&event.kind, EventKind::Other(name) if name == "topic"))
            .collect();
        let starts: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, event)| {
                matches!(&event.kind, EventKind::Action(action) if action.name.as_deref() == Some(ACTION_SESSION_START))
            })
            .map(|(i, _)| i)
            .collect();
        let bounds: Vec<(usize, usize)> = if starts.is_empty() {
            vec![(0, events.len())]
        } else {
            starts
                .iter()
                .enumerate()
                .map(|(i, start)| (*start, starts.get(i + 1).copied().unwrap_or(events.len())))
                .collect()
        };
        let sessions = bounds
            .into_iter()
            .map(|(start, end)| self.evaluate_session(&events[start..end], start))
            .collect();
        ConversationResult {
            sender_id: sender_id.to_owned(),
            sessions,
        }
    }

    fn evaluate_session(&mut self, events: &[&Event], offset: usize) -> SessionResult {
        let mut applied: Vec<Vec<EventMeta>> = vec![Vec::new(); self.markers.len()];
        for (_, marker) in &mut self.markers {
            marker.reset();
        }
        let mut preceding_user_turns = 0;
        for (i, event) in events.iter().enumerate() {
            let meta = EventMeta {
                idx: offset + i,
                preceding_user_turns,
            };
            for ((_, marker), applied) in self.markers.iter_mut().zip(&mut applied) {
                // Tracking has side effects: always track, then decide what to report.
                let applies = marker.track(event);
                let already_reported = marker.reports_first_only() && !applied.is_empty();
                if applies && !already_reported {
                    applied.push(meta);
                }
            }
            if matches!(event.kind, EventKind::User(_)) {
                preceding_user_turns += 1;
            }
        }
        self.markers
            .iter()
            .map(|(name, _)| name.clone())
            .zip(applied)
            .collect()
    }
}
