//! The in-memory conversation index: what the inbox lists and filters, without a `GROUP BY` over the events.
//!
//! Built at start by walking `events` in `id` order ([`Database::events_after`]) and kept current by polling
//! the ids above the highest one folded. Concurrent transactions may commit ids out of order (a batch with
//! lower ids commits after one with higher ids): every id skipped over is remembered as a gap for
//! [`GAP_PATIENCE`] (within the last [`GAP_WINDOW`] ids), and polls read again from the lowest open gap,
//! folding only ids not folded yet. Ids that never appear (rolled back, or consumed by a skipped duplicate)
//! are given up after that time.
//!
//! Listing is stable while events arrive: a cursor carries the highest id folded when its first page was
//! read, and later pages order the conversations by their last activity as of that id (each conversation
//! remembers its last [`HISTORY`] activity changes); conversations that started after it are left out.
//!
//! Memory: per conversation its names (interned), its numbers, and the lower-cased text of its user and bot
//! messages (for the `text` filter), so roughly the size of the messages' text.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use colloquy_storage::{Database, StoredEvent};
use serde::Deserialize;

use crate::AppState;

/// How many events one read of the walk takes.
const PAGE: i64 = 5_000;
/// How long an id skipped over is waited for (a transaction that commits later than a higher id).
pub const GAP_PATIENCE: Duration = Duration::from_secs(30);
/// Gaps further than this many ids below the highest id folded are given up.
pub const GAP_WINDOW: i64 = 50_000;
/// How many activity changes each conversation remembers (for stable pagination).
pub const HISTORY: usize = 16;
/// How many characters of the last message the inbox shows.
const LAST_TEXT_CHARS: usize = 280;

/// The action that marks a fallback.
const FALLBACK_ACTION: &str = "action_default_fallback";
/// The intent that marks a fallback.
const FALLBACK_INTENT: &str = "nlu_fallback";

/// The index: conversations and how far the events were read.
#[derive(Debug, Default)]
pub struct Index {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    conversations: Vec<Conversation>,
    by_sender: HashMap<String, usize>,
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
    /// The highest id folded.
    max_id: i64,
    /// Ids skipped over and not seen yet, with when they were first missed.
    gaps: BTreeMap<i64, Instant>,
}

/// One conversation, as the inbox needs it.
#[derive(Debug, Clone)]
struct Conversation {
    sender_id: String,
    first_activity: Option<f64>,
    last_activity: Option<f64>,
    events: u64,
    channel: Option<u32>,
    intents: Vec<u32>,
    actions: Vec<u32>,
    slots: Vec<u32>,
    min_confidence: Option<f64>,
    fallback: bool,
    last_text: Option<String>,
    /// The lower-cased text of its user and bot messages, one per line.
    text: String,
    first_id: i64,
    last_id: i64,
    /// `(row id, last activity after it)` of the latest activity changes.
    history: VecDeque<(i64, f64)>,
    /// Whether older changes were dropped from `history`.
    history_truncated: bool,
}

/// The inbox's filters (all optional; a conversation matches when it passes every one given).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    /// Last activity at or after (unix seconds).
    pub since: Option<f64>,
    /// Last activity at or before (unix seconds).
    pub until: Option<f64>,
    /// The input channel of its user messages.
    pub channel: Option<String>,
    /// An intent some user message had.
    pub intent: Option<String>,
    /// An action that ran.
    pub action: Option<String>,
    /// A slot that was set.
    pub slot: Option<String>,
    /// At least this many events.
    pub min_events: Option<u64>,
    /// Some user message's intent confidence is below this.
    pub confidence_below: Option<f64>,
    /// A substring of a user or bot message's text (case-insensitive).
    pub text: Option<String>,
    /// `true`: `action_default_fallback` ran or intent `nlu_fallback` was predicted; `false`: neither.
    pub fallback: Option<bool>,
}

/// A conversation as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The conversation id.
    pub sender_id: String,
    /// Its earliest event timestamp.
    pub first_activity: Option<f64>,
    /// Its latest event timestamp.
    pub last_activity: Option<f64>,
    /// How many events it holds.
    pub events: u64,
    /// The input channel of its latest user message that named one.
    pub channel: Option<String>,
    /// The start of its latest user or bot message.
    pub last_text: Option<String>,
    /// The intents of its user messages, in name order.
    pub intents: Vec<String>,
    /// Whether a fallback happened.
    pub fallback: bool,
}

/// Where a listing continues: the snapshot (highest id folded when the first page was read) and the last
/// conversation listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The snapshot's highest id.
    pub as_of: i64,
    /// The last activity (sort key) of the last conversation listed.
    pub key: f64,
    /// The last conversation listed.
    pub sender_id: String,
}

impl Cursor {
    /// The opaque text form (URL-safe).
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::json!([self.as_of, self.key.to_bits(), self.sender_id]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    /// Reads [`Cursor::encode`]'s form back; `None` when it is not one.
    pub fn decode(text: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let (as_of, bits, sender_id): (i64, u64, String) = serde_json::from_slice(&bytes).ok()?;
        Some(Self {
            as_of,
            key: f64::from_bits(bits),
            sender_id,
        })
    }
}

/// One page of the listing.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The conversations of the page.
    pub conversations: Vec<Summary>,
    /// How many conversations match the filters in all.
    pub matches: u64,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<Cursor>,
}

/// The parts of a user or bot event the index keeps.
#[derive(Debug, Default, Deserialize)]
struct Message {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    input_channel: Option<String>,
    #[serde(default)]
    parse_data: Option<ParseData>,
}

#[derive(Debug, Default, Deserialize)]
struct ParseData {
    #[serde(default)]
    intent: Option<Intent>,
}

#[derive(Debug, Default, Deserialize)]
struct Intent {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
}

/// The sort order: latest activity first (none last), then by id.
fn order(a: (f64, &str), b: (f64, &str)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

impl Conversation {
    fn new(sender_id: &str, row_id: i64) -> Self {
        Self {
            sender_id: sender_id.to_owned(),
            first_activity: None,
            last_activity: None,
            events: 0,
            channel: None,
            intents: Vec::new(),
            actions: Vec::new(),
            slots: Vec::new(),
            min_confidence: None,
            fallback: false,
            last_text: None,
            text: String::new(),
            first_id: row_id,
            last_id: row_id,
            history: VecDeque::new(),
            history_truncated: false,
        }
    }

    /// The sort key as of snapshot `as_of` (`None`: it did not exist then).
    fn key_as_of(&self, as_of: i64) -> Option<f64> {
        if self.first_id > as_of {
            return None;
        }
        let current = self.last_activity.unwrap_or(f64::NEG_INFINITY);
        if self.last_id <= as_of {
            return Some(current);
        }
        match self.history.iter().rev().find(|(id, _)| *id <= as_of) {
            Some((_, key)) => Some(*key),
            // Older than what is remembered, or no activity before the snapshot.
            None if self.history_truncated => self.history.front().map(|(_, key)| *key),
            None => Some(f64::NEG_INFINITY),
        }
    }
}

/// Inserts `id` into a sorted list of ids once.
fn add(list: &mut Vec<u32>, id: u32) {
    if let Err(at) = list.binary_search(&id) {
        list.insert(at, id);
    }
}

impl Inner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.name_ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.name_ids.insert(name.to_owned(), id);
        id
    }

    /// Folds one event in (once: the caller skips ids folded already).
    fn fold(&mut self, event: &StoredEvent) {
        let intent = event.intent_name.as_deref().map(|name| self.intern(name));
        let action = match event.type_name.as_str() {
            "action" => event.action_name.as_deref().map(|name| self.intern(name)),
            _ => None,
        };
        let slot = match event.type_name.as_str() {
            "slot" => event.action_name.as_deref().map(|name| self.intern(name)),
            _ => None,
        };
        let message = match event.type_name.as_str() {
            "user" | "bot" => serde_json::from_str::<Message>(&event.data).unwrap_or_default(),
            _ => Message::default(),
        };
        let channel = message
            .input_channel
            .as_deref()
            .map(|name| self.intern(name));
        let index = match self.by_sender.get(&event.sender_id) {
            Some(index) => *index,
            None => {
                self.conversations
                    .push(Conversation::new(&event.sender_id, event.row_id));
                let index = self.conversations.len() - 1;
                self.by_sender.insert(event.sender_id.clone(), index);
                index
            }
        };
        let conversation = &mut self.conversations[index];
        conversation.events += 1;
        conversation.first_id = conversation.first_id.min(event.row_id);
        conversation.last_id = conversation.last_id.max(event.row_id);
        if let Some(timestamp) = event.timestamp.filter(|t| t.is_finite()) {
            conversation.first_activity = Some(
                conversation
                    .first_activity
                    .map_or(timestamp, |first| first.min(timestamp)),
            );
            let last = conversation
                .last_activity
                .map_or(timestamp, |last| last.max(timestamp));
            if conversation.last_activity != Some(last) {
                conversation.last_activity = Some(last);
                conversation.history.push_back((event.row_id, last));
                if conversation.history.len() > HISTORY {
                    conversation.history.pop_front();
                    conversation.history_truncated = true;
                }
            }
        }
        if let Some(intent) = intent {
            add(&mut conversation.intents, intent);
        }
        if let Some(action) = action {
            add(&mut conversation.actions, action);
        }
        if let Some(slot) = slot {
            add(&mut conversation.slots, slot);
        }
        if channel.is_some() {
            conversation.channel = channel;
        }
        if event.intent_name.as_deref() == Some(FALLBACK_INTENT)
            || (event.type_name == "action"
                && event.action_name.as_deref() == Some(FALLBACK_ACTION))
        {
            conversation.fallback = true;
        }
        if let Some(confidence) = message
            .parse_data
            .and_then(|data| data.intent)
            .filter(|intent| intent.name.is_some())
            .and_then(|intent| intent.confidence)
        {
            conversation.min_confidence = Some(
                conversation
                    .min_confidence
                    .map_or(confidence, |min| min.min(confidence)),
            );
        }
        if let Some(text) = message.text.filter(|text| !text.is_empty()) {
            if !conversation.text.is_empty() {
                conversation.text.push('\n');
            }
            conversation.text.push_str(&text.to_lowercase());
            conversation.last_text = Some(text.chars().take(LAST_TEXT_CHARS).collect());
        }
    }

    /// Folds a page read from the database; returns the highest id seen.
    fn fold_page(&mut self, page: &[StoredEvent], now: Instant) {
        for event in page {
            let id = event.row_id;
            if id <= self.max_id {
                if self.gaps.remove(&id).is_some() {
                    self.fold(event);
                }
                continue;
            }
            // Ids skipped over may still commit: remember them (only the last GAP_WINDOW).
            let first_gap = (self.max_id + 1).max(id - GAP_WINDOW);
            for gap in first_gap..id {
                self.gaps.insert(gap, now);
            }
            self.max_id = id;
            self.fold(event);
        }
    }

    /// Gives up gaps older than [`GAP_PATIENCE`] or below the window.
    fn expire_gaps(&mut self, now: Instant) {
        let floor = self.max_id - GAP_WINDOW;
        self.gaps
            .retain(|id, since| *id > floor && now.duration_since(*since) < GAP_PATIENCE);
    }

    fn summary(&self, conversation: &Conversation) -> Summary {
        let name = |id: u32| self.names.get(id as usize).cloned().unwrap_or_default();
        Summary {
            sender_id: conversation.sender_id.clone(),
            first_activity: conversation.first_activity,
            last_activity: conversation.last_activity,
            events: conversation.events,
            channel: conversation.channel.map(name),
            last_text: conversation.last_text.clone(),
            intents: conversation.intents.iter().map(|id| name(*id)).collect(),
            fallback: conversation.fallback,
        }
    }
}

/// A filter resolved against the interned names: `Err(())` when a name is unknown (nothing matches).
struct Resolved<'a> {
    filters: &'a Filters,
    channel: Option<u32>,
    intent: Option<u32>,
    action: Option<u32>,
    slot: Option<u32>,
    text: Option<String>,
}

impl<'a> Resolved<'a> {
    fn new(inner: &Inner, filters: &'a Filters) -> Option<Self> {
        let resolve = |name: &Option<String>| -> Option<Option<u32>> {
            match name {
                None => Some(None),
                Some(name) => inner.name_ids.get(name).map(|id| Some(*id)),
            }
        };
        Some(Self {
            filters,
            channel: resolve(&filters.channel)?,
            intent: resolve(&filters.intent)?,
            action: resolve(&filters.action)?,
            slot: resolve(&filters.slot)?,
            text: filters
                .text
                .as_deref()
                .filter(|text| !text.is_empty())
                .map(str::to_lowercase),
        })
    }

    fn matches(&self, conversation: &Conversation) -> bool {
        let filters = self.filters;
        let last = conversation.last_activity;
        filters
            .since
            .is_none_or(|since| last.is_some_and(|last| last >= since))
            && filters
                .until
                .is_none_or(|until| last.is_some_and(|last| last <= until))
            && self
                .channel
                .is_none_or(|channel| conversation.channel == Some(channel))
            && self
                .intent
                .is_none_or(|intent| conversation.intents.binary_search(&intent).is_ok())
            && self
                .action
                .is_none_or(|action| conversation.actions.binary_search(&action).is_ok())
            && self
                .slot
                .is_none_or(|slot| conversation.slots.binary_search(&slot).is_ok())
            && filters
                .min_events
                .is_none_or(|min| conversation.events >= min)
            && filters.confidence_below.is_none_or(|below| {
                conversation
                    .min_confidence
                    .is_some_and(|confidence| confidence < below)
            })
            && filters
                .fallback
                .is_none_or(|fallback| conversation.fallback == fallback)
            && self
                .text
                .as_deref()
                .is_none_or(|text| conversation.text.contains(text))
    }
}

impl Index {
    /// How many conversations it holds.
    pub fn len(&self) -> usize {
        self.read().conversations.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest event id folded.
    pub fn max_id(&self) -> i64 {
        self.read().max_id
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the events not folded yet (from the lowest open gap on) and folds them; returns how many were.
    pub async fn refresh(&self, database: &Database) -> colloquy_storage::Result<u64> {
        let now = Instant::now();
        let mut after = {
            let mut inner = self.write();
            inner.expire_gaps(now);
            match inner.gaps.keys().next() {
                Some(gap) => gap - 1,
                None => inner.max_id,
            }
        };
        let mut read = 0u64;
        loop {
            let page = database.events_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.row_id;
            read += page.len() as u64;
            let full = page.len() as i64 == PAGE;
            self.write().fold_page(&page, now);
            if !full {
                break;
            }
        }
        Ok(read)
    }

    /// Whether conversation `sender_id` is known, and how many events it holds.
    pub fn events_of(&self, sender_id: &str) -> Option<u64> {
        let inner = self.read();
        inner
            .by_sender
            .get(sender_id)
            .map(|index| inner.conversations[*index].events)
    }

    /// One page of the conversations that match `filters`, newest last activity first, after `cursor`.
    pub fn list(&self, filters: &Filters, cursor: Option<&Cursor>, limit: usize) -> Listing {
        let inner = self.read();
        let as_of = cursor.map_or(inner.max_id, |cursor| cursor.as_of);
        let Some(resolved) = Resolved::new(&inner, filters) else {
            return Listing {
                conversations: Vec::new(),
                matches: 0,
                next_cursor: None,
            };
        };
        let mut matches = 0u64;
        let mut candidates: Vec<(f64, usize)> = Vec::new();
        for (index, conversation) in inner.conversations.iter().enumerate() {
            let Some(key) = conversation.key_as_of(as_of) else {
                continue;
            };
            if !resolved.matches(conversation) {
                continue;
            }
            matches += 1;
            if let Some(cursor) = cursor
                && order(
                    (key, &conversation.sender_id),
                    (cursor.key, &cursor.sender_id),
                ) != std::cmp::Ordering::Greater
            {
                continue;
            }
            candidates.push((key, index));
        }
        let compare = |a: &(f64, usize), b: &(f64, usize)| {
            order(
                (a.0, &inner.conversations[a.1].sender_id),
                (b.0, &inner.conversations[b.1].sender_id),
            )
        };
        let more = candidates.len() > limit;
        if more {
            candidates.select_nth_unstable_by(limit, compare);
            candidates.truncate(limit);
        }
        candidates.sort_unstable_by(compare);
        let next_cursor = match candidates.last() {
            Some((key, index)) if more => Some(Cursor {
                as_of,
                key: *key,
                sender_id: inner.conversations[*index].sender_id.clone(),
            }),
            _ => None,
        };
        Listing {
            conversations: candidates
                .iter()
                .map(|(_, index)| inner.summary(&inner.conversations[*index]))
                .collect(),
            matches,
            next_cursor,
        }
    }
}

/// Keeps the index current until `stop` turns true: a refresh every poll interval.
pub(crate) async fn poll(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(state.poll_interval) => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(error) = state.index.refresh(&state.database).await {
            // The next poll tries again; the index keeps what it has.
            tracing::warn!(%error, "Reading new events for the index failed.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cursor, Filters, Index, Inner};
    use colloquy_storage::StoredEvent;
    use std::time::Instant;

    fn event(id: i64, sender: &str, kind: &str, ts: f64, data: &str) -> StoredEvent {
        let value: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        StoredEvent {
            row_id: id,
            sender_id: sender.into(),
            type_name: kind.into(),
            intent_name: value
                .pointer("/parse_data/intent/name")
                .and_then(|v| v.as_str())
                .map(Into::into),
            action_name: value.get("name").and_then(|v| v.as_str()).map(Into::into),
            data: data.into(),
            event_id: None,
            timestamp: Some(ts),
        }
    }

    #[test]
    fn out_of_order_ids_are_folded_once() {
        let index = Index::default();
        let now = Instant::now();
        {
            let mut inner: std::sync::RwLockWriteGuard<'_, Inner> = index.write();
            inner.fold_page(&[event(1, "a", "restart", 1.0, "{}")], now);
            inner.fold_page(&[event(3, "a", "restart", 3.0, "{}")], now);
            assert_eq!(inner.gaps.keys().copied().collect::<Vec<_>>(), vec![2]);
            // Re-read from the gap: 2 is new, 3 is skipped.
            inner.fold_page(
                &[
                    event(2, "b", "restart", 2.0, "{}"),
                    event(3, "a", "restart", 3.0, "{}"),
                ],
                now,
            );
            assert!(inner.gaps.is_empty());
        }
        assert_eq!(index.events_of("a"), Some(2));
        assert_eq!(index.events_of("b"), Some(1));
    }

    #[test]
    fn pages_stay_stable_while_a_listed_conversation_moves_up() {
        let index = Index::default();
        let now = Instant::now();
        let page: Vec<_> = (1..=5)
            .map(|i| event(i, &format!("c{i}"), "restart", i as f64, "{}"))
            .collect();
        index.write().fold_page(&page, now);
        let first = index.list(&Filters::default(), None, 2);
        let names: Vec<_> = first
            .conversations
            .iter()
            .map(|c| c.sender_id.clone())
            .collect();
        assert_eq!(names, ["c5", "c4"]);
        assert_eq!(first.matches, 5);
        // c1 gets a new event and a new conversation starts: neither changes the following pages.
        index.write().fold_page(
            &[
                event(6, "c1", "restart", 10.0, "{}"),
                event(7, "c9", "restart", 11.0, "{}"),
            ],
            now,
        );
        let cursor = first.next_cursor.clone().expect("more");
        let cursor = Cursor::decode(&cursor.encode()).expect("round trip");
        let second = index.list(&Filters::default(), Some(&cursor), 2);
        let third = index.list(&Filters::default(), second.next_cursor.as_ref(), 2);
        let rest: Vec<_> = second
            .conversations
            .iter()
            .chain(&third.conversations)
            .map(|c| c.sender_id.clone())
            .collect();
        assert_eq!(rest, ["c3", "c2", "c1"]);
        assert!(third.next_cursor.is_none());
    }

    #[test]
    fn filters_select() {
        let index = Index::default();
        let user = r#"{"event":"user","text":"Hello <b>World</b>","input_channel":"rest","parse_data":{"intent":{"name":"greet","confidence":0.4}}}"#;
        index.write().fold_page(
            &[
                event(1, "a", "user", 1.0, user),
                event(
                    2,
                    "a",
                    "action",
                    2.0,
                    r#"{"event":"action","name":"action_default_fallback"}"#,
                ),
                event(
                    3,
                    "b",
                    "slot",
                    3.0,
                    r#"{"event":"slot","name":"city","value":"x"}"#,
                ),
            ],
            Instant::now(),
        );
        let count = |filters: Filters| index.list(&filters, None, 10).matches;
        assert_eq!(
            count(Filters {
                text: Some("world</B>".into()),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                intent: Some("greet".into()),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                intent: Some("nope".into()),
                ..Filters::default()
            }),
            0
        );
        assert_eq!(
            count(Filters {
                slot: Some("city".into()),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                channel: Some("rest".into()),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                confidence_below: Some(0.5),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                confidence_below: Some(0.3),
                ..Filters::default()
            }),
            0
        );
        assert_eq!(
            count(Filters {
                fallback: Some(true),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                min_events: Some(2),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                since: Some(2.5),
                ..Filters::default()
            }),
            1
        );
        assert_eq!(
            count(Filters {
                until: Some(2.5),
                ..Filters::default()
            }),
            1
        );
    }
}
