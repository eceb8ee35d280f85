//! PostgreSQL: a whole batch per statement (one array per column, `UNNEST`), several conversations at once.

use std::collections::{HashMap, HashSet};

use colloquy_analytics::rows::EventColumns;
use colloquy_analytics::{Rows, Settings};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row};

use super::{ActivePatterns, AnalyticsProgress, MarkerRow, State, marker_rows, senders_of};
use crate::rows::EventRow;

macro_rules! statement {
    ($name:literal) => {
        include_str!(concat!("../../sql/analytics/postgres/", $name, ".sql"))
    };
}

type Q<'q> = Query<'q, Postgres, PgArguments>;

fn texts<'r, T>(rows: &'r [T], f: impl Fn(&'r T) -> &'r str) -> Vec<&'r str> {
    rows.iter().map(f).collect()
}
fn opt_texts<'r, T>(rows: &'r [T], f: impl Fn(&'r T) -> Option<&'r str>) -> Vec<Option<&'r str>> {
    rows.iter().map(f).collect()
}
fn floats<T>(rows: &[T], f: impl Fn(&T) -> Option<f64>) -> Vec<Option<f64>> {
    rows.iter().map(f).collect()
}
fn ints<T>(rows: &[T], f: impl Fn(&T) -> u64) -> Vec<i64> {
    rows.iter().map(|r| f(r) as i64).collect()
}

/// Binds the seven columns every event-derived row begins with (id, sender_id, session_id, event_id,
/// timestamp, model_id, sequence_number).
fn event_columns<'q, T>(
    query: Q<'q>,
    rows: &[T],
    columns: impl Fn(&T) -> (&str, &EventColumns),
) -> Q<'q> {
    query
        .bind(texts(rows, |r| columns(r).0))
        .bind(texts(rows, |r| &columns(r).1.sender_id))
        .bind(texts(rows, |r| &columns(r).1.session_id))
        .bind(texts(rows, |r| &columns(r).1.event_id))
        .bind(floats(rows, |r| columns(r).1.timestamp))
        .bind(opt_texts(rows, |r| columns(r).1.model_id.as_deref()))
        .bind(ints(rows, |r| columns(r).1.sequence_number))
}

/// New derivation states of some conversations: `colloquy_analytics_state`'s columns, one entry each.
#[derive(Default)]
pub(crate) struct States<'a> {
    pub(crate) sender_keys: Vec<&'a str>,
    /// `Conversation::to_json` of each.
    pub(crate) state_jsons: Vec<String>,
    pub(crate) last_row_ids: Vec<i64>,
}

/// Writes `rows` (of different conversations only: one version of each row) and `states`: every table in one
/// statement (`write_rows.sql`), one round trip whatever the batch holds.
pub(crate) async fn write_rows(
    conn: &mut PgConnection,
    rows: &Rows,
    states: &States<'_>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() && states.sender_keys.is_empty() {
        return Ok(());
    }
    let query = sqlx::query(statement!("write_rows"));
    let r = &rows.senders;
    let query = query
        .bind(texts(r, |r| &r.id))
        .bind(texts(r, |r| &r.sender_key))
        .bind(opt_texts(r, |r| r.channel.as_deref()))
        .bind(floats(r, |r| r.first_seen))
        .bind(floats(r, |r| r.last_seen));
    let r = &rows.sessions;
    let query = query
        .bind(texts(r, |r| &r.id))
        .bind(texts(r, |r| &r.sender_id))
        .bind(floats(r, |r| r.timestamp))
        .bind(ints(r, |r| r.start_sequence_number))
        .bind(ints(r, |r| r.end_sequence_number));
    let r = &rows.turns;
    let query = query
        .bind(texts(r, |r| &r.id))
        .bind(texts(r, |r| &r.sender_id))
        .bind(texts(r, |r| &r.session_id))
        .bind(ints(r, |r| r.start_sequence_number))
        .bind(ints(r, |r| r.end_sequence_number));
    let r = &rows.events;
    let query = query
        .bind(texts(r, |r| &r.id))
        .bind(texts(r, |r| &r.sender_id))
        .bind(texts(r, |r| &r.session_id))
        .bind(floats(r, |r| r.timestamp))
        .bind(opt_texts(r, |r| r.model_id.as_deref()))
        .bind(opt_texts(r, |r| r.environment.as_deref()))
        .bind(ints(r, |r| r.sequence_number))
        .bind(texts(r, |r| &r.event_type));
    let r = &rows.user_messages;
    let query = event_columns(query, r, |r| (&r.id, &r.event))
        .bind(opt_texts(r, |r| r.intent.as_deref()))
        .bind(opt_texts(r, |r| r.retrieval_intent.as_deref()))
        .bind(floats(r, |r| r.confidence))
        .bind(opt_texts(r, |r| r.text.as_deref()))
        .bind(opt_texts(r, |r| r.message_id.as_deref()));
    let r = &rows.bot_messages;
    let query = event_columns(query, r, |r| (&r.id, &r.event))
        .bind(opt_texts(r, |r| r.template_name.as_deref()))
        .bind(opt_texts(r, |r| r.text.as_deref()));
    let r = &rows.actions;
    let query = event_columns(query, r, |r| (&r.id, &r.event))
        .bind(opt_texts(r, |r| r.name.as_deref()))
        .bind(floats(r, |r| r.confidence))
        .bind(opt_texts(r, |r| r.policy.as_deref()));
    let r = &rows.slots;
    let query = event_columns(query, r, |r| (&r.id, &r.event))
        .bind(texts(r, |r| &r.slot_path))
        .bind(texts(r, |r| &r.name))
        .bind(texts(r, |r| &r.value));
    let r = &rows.session_slot_states;
    query
        .bind(texts(r, |r| &r.id))
        .bind(texts(r, |r| &r.sender_id))
        .bind(texts(r, |r| &r.session_id))
        .bind(texts(r, |r| &r.name))
        .bind(texts(r, |r| &r.value))
        .bind(floats(r, |r| r.timestamp))
        .bind(&states.sender_keys)
        .bind(&states.state_jsons)
        .bind(&states.last_row_ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A row the batch's insert added to `events`: its id, conversation and dedupe key (`RETURNING`).
pub(crate) struct Inserted {
    pub(crate) id: i64,
    pub(crate) sender_id: String,
    pub(crate) event_key: Option<Vec<u8>>,
}

/// A conversation's events not derived yet: `(events.id, data)` in id order, per conversation.
type NewEvents = HashMap<String, Vec<(i64, Option<String>)>>;

/// The stored states of `senders` (in their order; none stored: a new conversation).
async fn read_states(conn: &mut PgConnection, senders: &[&str]) -> Result<Vec<State>, sqlx::Error> {
    let stored: HashMap<String, (String, i64)> = sqlx::query(statement!("select_state"))
        .bind(senders)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                (row.get::<String, _>(1), row.get::<i64, _>(2)),
            )
        })
        .collect();
    let mut states = Vec::with_capacity(senders.len());
    for sender in senders {
        states.push(State::read(sender, stored.get(*sender).cloned())?);
    }
    Ok(states)
}

/// Brings the analytics tables of `senders` up to date with their events, in the caller's transaction:
/// three reads and writes for the whole batch, whatever the number of conversations (what a rebuild runs).
pub(crate) async fn catch_up(
    conn: &mut PgConnection,
    senders: &[&str],
    settings: &Settings,
) -> Result<AnalyticsProgress, sqlx::Error> {
    if senders.is_empty() {
        return Ok(AnalyticsProgress::default());
    }
    let states = read_states(conn, senders).await?;
    let after: Vec<i64> = states.iter().map(|state| state.last_row_id).collect();
    let mut new: NewEvents = HashMap::new();
    for row in sqlx::query(statement!("select_new_events"))
        .bind(senders)
        .bind(after)
        .fetch_all(&mut *conn)
        .await?
    {
        new.entry(row.get::<String, _>(1))
            .or_default()
            .push((row.get::<i64, _>(0), row.get(2)));
    }
    derive_and_write(conn, senders, states, new, settings).await
}

/// [`catch_up`] of the conversations of a batch the caller has just inserted (`batch`, of which `inserted`
/// are the rows the insert added), without reading those rows back: their data is the batch's. Only the
/// events of a conversation that are not in the batch and not derived yet are read — those before the
/// batch's first inserted row and after its last (normally none: an index probe each on `(sender_id, id)`).
/// A conversation with an inserted row whose dedupe key matches no row of the batch is read whole, as
/// [`catch_up`] does.
pub(crate) async fn catch_up_batch(
    conn: &mut PgConnection,
    batch: &[&EventRow],
    inserted: &[Inserted],
    settings: &Settings,
) -> Result<AnalyticsProgress, sqlx::Error> {
    let senders = senders_of(batch.iter().map(|row| row.sender_id.as_str()));
    if senders.is_empty() {
        return Ok(AnalyticsProgress::default());
    }
    let states = read_states(conn, &senders).await?;
    let by_key: HashMap<[u8; crate::rows::DEDUPE_KEY_BYTES], &EventRow> = batch
        .iter()
        .filter_map(|row| row.dedupe_key().map(|key| (key, *row)))
        .collect();
    let mut from_batch: NewEvents = HashMap::new();
    let mut read_whole: HashSet<&str> = HashSet::new();
    for row in inserted {
        let found = row
            .event_key
            .as_deref()
            .and_then(|key| <[u8; crate::rows::DEDUPE_KEY_BYTES]>::try_from(key).ok())
            .and_then(|key| by_key.get(&key))
            .filter(|found| found.sender_id == row.sender_id);
        match found {
            Some(found) => from_batch
                .entry(row.sender_id.clone())
                .or_default()
                .push((row.id, Some(found.data.clone()))),
            None => {
                read_whole.insert(row.sender_id.as_str());
            }
        }
    }
    let (mut after, mut before, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for (sender, state) in senders.iter().zip(&states) {
        after.push(state.last_row_id);
        match from_batch.get_mut(*sender) {
            Some(rows) if !read_whole.contains(sender) => {
                rows.sort_unstable_by_key(|(id, _)| *id);
                before.push(rows.first().map_or(i64::MAX, |(id, _)| *id));
                last.push(rows.last().map_or(i64::MAX, |(id, _)| *id));
            }
            _ => {
                from_batch.remove(*sender);
                before.push(i64::MAX);
                last.push(i64::MAX);
            }
        }
    }
    let mut new = from_batch;
    for row in sqlx::query(statement!("select_events_not_in_batch"))
        .bind(&senders[..])
        .bind(after)
        .bind(before)
        .bind(last)
        .fetch_all(&mut *conn)
        .await?
    {
        new.entry(row.get::<String, _>(1))
            .or_default()
            .push((row.get::<i64, _>(0), row.get(2)));
    }
    for events in new.values_mut() {
        events.sort_unstable_by_key(|(id, _)| *id);
    }
    derive_and_write(conn, &senders, states, new, settings).await
}

/// Derives the rows of each conversation's `new` events from its state, and writes the rows and the new
/// states (one statement, `write_rows.sql`).
async fn derive_and_write(
    conn: &mut PgConnection,
    senders: &[&str],
    mut states: Vec<State>,
    new: NewEvents,
    settings: &Settings,
) -> Result<AnalyticsProgress, sqlx::Error> {
    let patterns: Vec<(String, String)> = sqlx::query(statement!("select_active_patterns"))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(2)))
        .collect();
    let patterns = ActivePatterns::of(patterns)?;
    let mut markers: Vec<MarkerRow> = Vec::new();
    let mut rows = Rows::default();
    let mut progress = AnalyticsProgress {
        conversations: senders.len() as u64,
        events: 0,
    };
    let mut new_states = States::default();
    for (sender, state) in senders.iter().zip(&mut states) {
        let Some(events) = new.get(*sender) else {
            continue;
        };
        let first_new = state.conversation.next_position();
        let derived = state.apply(settings, events)?;
        if let Some(patterns) = &patterns {
            let all: Vec<(i64, Option<String>)> =
                sqlx::query(statement!("select_conversation_events"))
                    .bind(*sender)
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
            markers.extend(marker_rows(patterns, sender, &all, first_new)?);
        }
        progress.events += derived.events.len() as u64;
        rows.extend(derived);
        new_states.sender_keys.push(*sender);
        new_states.state_jsons.push(state.conversation.to_json());
        new_states.last_row_ids.push(state.last_row_id);
    }
    write_rows(conn, &rows, &new_states).await?;
    for row in &markers {
        sqlx::query(statement!("insert_rasa_marker"))
            .bind(&row.id)
            .bind(&row.pattern_id)
            .bind(&row.sender_id)
            .bind(&row.session_id)
            .bind(&row.event_id)
            .bind(row.num_preceding_user_turns)
            .bind(row.created_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(progress)
}

/// Creates the index on events (sender_id, id) the reads of new events need, unless it exists (see
/// `ensure_events_sender_id_id.sql`).
pub(crate) async fn ensure_events_index(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(statement!("ensure_events_sender_id_id"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Writes the patterns of an upload in the caller's transaction: every pattern inactive, then each of
/// `patterns` inserted or updated, active.
pub(crate) async fn upload_patterns(
    conn: &mut PgConnection,
    patterns: &[colloquy_analytics::markers::Pattern],
) -> Result<(), sqlx::Error> {
    sqlx::query(statement!("deactivate_patterns"))
        .execute(&mut *conn)
        .await?;
    for pattern in patterns {
        sqlx::query(statement!("upsert_rasa_pattern"))
            .bind(&pattern.id)
            .bind(&pattern.name)
            .bind(pattern.description.as_deref())
            .bind(&pattern.config)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
