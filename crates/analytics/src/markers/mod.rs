//! Rasa's conversation markers (Rasa 3.6 `rasa evaluate markers`): the configuration language, the
//! evaluation per session, and the CSV and statistics files — the same bytes as Rasa 3.6.21 writes for
//! the same conversations (checked against Rasa's own code in `compat/rasa/tests/test_markers.py`).
//!
//! ```
//! use colloquy_analytics::markers::{Evaluator, MarkerConfig, TagNegation, write_markers_csv};
//! use colloquy_events::{Event, EventKind};
//!
//! let config = MarkerConfig::from_yaml("said_bye:\n  action: utter_goodbye\n", TagNegation::AsRasa3_6)?;
//! let events = [
//!     Event::new(EventKind::action("action_session_start")),
//!     Event::new(EventKind::user("bye")),
//!     Event::new(EventKind::action("utter_goodbye")),
//! ];
//! let results = [Evaluator::new(&config).evaluate("alice", &events)];
//! let mut csv = Vec::new();
//! write_markers_csv(&mut csv, &results).unwrap();
//! assert_eq!(
//!     String::from_utf8(csv).unwrap(),
//!     "sender_id,session_idx,marker,event_idx,num_preceding_user_turns\r\nalice,0,said_bye,2,1\r\n"
//! );
//! # Ok::<(), colloquy_analytics::Error>(())
//! ```

mod config;
mod eval;
mod output;
mod pattern;

pub use config::{Condition, Marker, MarkerConfig, Node, NodeKind, Operator, TagNegation};
pub use eval::{ConversationResult, Evaluator, EventMeta, SessionResult};
pub use output::{write_markers_csv, write_overall_statistics, write_per_session_statistics};
pub use pattern::{Pattern, config_of_patterns, patterns_of};
