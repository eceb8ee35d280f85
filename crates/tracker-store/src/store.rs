//! The [`TrackerStore`] trait: the seam between the dialogue engine and where conversations are kept.
//!
//! # What "new since the last save" means
//! A [`Tracker`] knows how many of its events are stored ([`Tracker::saved_len`]) and the conversation
//! position of its first event ([`Tracker::first_seq`]). A save writes exactly
//! [`Tracker::events_since_last_save`], at positions `first_seq + saved_len ..`, and streams exactly those to
//! the broker. Positions are counts, never timestamps, and nothing before `saved_len` is written or published
//! again, whatever the tracker holds (Rasa re-publishes old events when a tracker holds more than its latest
//! session; we do not).
//!
//! # Concurrency: optimistic, per conversation
//! A save succeeds only if the store holds exactly `first_seq + saved_len` events of the conversation at that
//! moment; otherwise nothing is written and [`Error::Conflict`](crate::Error::Conflict) says so. Two tasks
//! that saved from the same starting point cannot both win: one gets the conflict, retrieves the tracker again
//! and re-applies its events. Saves of different conversations never wait for each other.
//!
//! A save whose outcome is unknown (a transient error after the commit may have happened) can be retried with
//! the same tracker: if the store already holds exactly these events at these positions (same event ids), the
//! retry succeeds without writing or publishing anything again.

use async_trait::async_trait;
use colloquy_events::{Event, Tracker};

use crate::error::Result;

/// Where conversations are kept. Object-safe: use it as `Arc<dyn TrackerStore>`.
#[async_trait]
pub trait TrackerStore: Send + Sync {
    /// The latest session of the conversation, as Rasa's `SQLTrackerStore.retrieve` returns it (see
    /// [`latest_session`]), or `None` if the conversation has no events.
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Tracker>>;

    /// Every event of the conversation (all sessions), or `None` if it has none.
    async fn retrieve_full(&self, sender_id: &str) -> Result<Option<Tracker>>;

    /// Stores the tracker's new events (those since its last save), streams them to the broker if the store
    /// has one, and marks the tracker saved. Returns how many events were written (0 when there was nothing
    /// new, or when a retry found them stored already).
    ///
    /// Publishing is asynchronous: `save` returns once the events are stored; a store with a broker hands
    /// them to it in the background (an SQL store through its transactional outbox, so a crash or a dropped
    /// store only delays them until the next store on the same database starts). Call
    /// [`TrackerStore::close`] before the program ends to wait until they are published.
    ///
    /// Fails with [`Error::Conflict`](crate::Error::Conflict), writing nothing and leaving the tracker as it
    /// was, when the store does not hold exactly the events the tracker believes are stored.
    async fn save(&self, tracker: &mut Tracker) -> Result<u64>;

    /// The ids of every stored conversation, sorted.
    async fn keys(&self) -> Result<Vec<String>>;

    /// Whether the conversation has any stored event.
    async fn exists(&self, sender_id: &str) -> Result<bool>;

    /// Publishes everything saved so far (bounded by a timeout each store documents), then releases the
    /// store's connections. If events are still unpublished at the deadline, the error says how many and
    /// where they wait. The store must not be used afterwards. The default does nothing (a store without
    /// background work).
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// The latest session of the conversation, or a new empty tracker if it has none (nothing is written
    /// until the tracker is saved).
    async fn get_or_create(&self, sender_id: &str) -> Result<Tracker> {
        Ok(self
            .retrieve(sender_id)
            .await?
            .unwrap_or_else(|| Tracker::new(sender_id)))
    }
}

/// Rasa's `type_name` of the event that starts a session.
pub const SESSION_STARTED: &str = "session_started";

/// Which of a conversation's events (oldest first) make up its latest session, by Rasa 3.6's rule
/// (`SQLTrackerStore._event_query`): the events whose timestamp is at least the greatest timestamp of a
/// `session_started` event, in stored order; every event when there is no `session_started` with a timestamp.
///
/// The selection uses timestamps because Rasa's does, so that both read the same tracker from the same rows;
/// positions and order never come from timestamps. Usually the result is the `action_session_start` logged
/// after the last `session_started` (Rasa logs an action after the events it returned) and everything since.
pub fn latest_session(events: &[Event]) -> Vec<usize> {
    let session_start = events
        .iter()
        .filter(|event| event.type_name() == SESSION_STARTED)
        .filter_map(Event::timestamp)
        .fold(None, |max: Option<f64>, t| {
            Some(max.map_or(t, |m| m.max(t)))
        });
    match session_start {
        None => (0..events.len()).collect(),
        Some(start) => events
            .iter()
            .enumerate()
            .filter(|(_, event)| event.timestamp().is_some_and(|t| t >= start))
            .map(|(i, _)| i)
            .collect(),
    }
}

/// A tracker of the selected events of a conversation that holds `total` events. Its `first_seq` is
/// `total - selected.len()`, so that `first_seq + saved_len` is the stored count that the next save checks.
pub(crate) fn restored(sender_id: &str, total: u64, events: Vec<Event>) -> Tracker {
    let first_seq = total - events.len() as u64;
    Tracker::restore(sender_id, first_seq, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, t: Option<f64>) -> Event {
        let mut value = serde_json::json!({ "event": kind });
        if kind == "action" || kind == "slot" {
            value["name"] = "x".into();
        }
        if let Some(t) = t {
            value["timestamp"] = t.into();
        }
        Event::from_value(value).unwrap()
    }

    #[test]
    fn selects_the_latest_session_like_rasa() {
        let check =
            |events: &[Event], expected: &[usize]| assert_eq!(latest_session(events), expected);
        check(&[], &[]);
        check(
            &[event("user", Some(1.0)), event("bot", Some(2.0))],
            &[0, 1],
        );
        // Rasa: action_session_start is logged after session_started, with a later timestamp.
        check(
            &[
                event("action", Some(1.0)),
                event("session_started", Some(0.9)),
                event("user", Some(2.0)),
                event("session_started", Some(3.0)),
                event("action", Some(3.1)),
                event("user", Some(4.0)),
            ],
            &[3, 4, 5],
        );
        // Equal timestamps are included; events without a timestamp are not (SQL NULL >= x is not true).
        check(
            &[
                event("action", Some(5.0)),
                event("session_started", Some(5.0)),
                event("slot", None),
            ],
            &[0, 1],
        );
        // A session_started without a timestamp does not start a session.
        check(
            &[event("session_started", None), event("user", Some(1.0))],
            &[0, 1],
        );
    }
}
