//! PostgreSQL: a whole batch per statement (one array per column, `UNNEST`), several conversations at once.

use std::collections::HashMap;

use colloquy_analytics::rows::EventColumns;
use colloquy_analytics::{Rows, Settings};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row};

use super::{ActivePatterns, AnalyticsProgress, MarkerRow, State, marker_rows};

macro_rules! statement {
    ($name:literal) => {
        include_str!(concat!("../../sql/analytics/postgres/", $name, ".sql"))
    };
}

type Q<'q> = Query<'q, Postgres, PgArguments>;

fn texts<T>(rows: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|r| f(r).to_owned()).collect()
}
fn opt_texts<T>(rows: &[T], f: impl Fn(&T) -> Option<&str>) -> Vec<Option<String>> {
    rows.iter().map(|r| f(r).map(str::to_owned)).collect()
}
fn floats<T>(rows: &[T], f: impl Fn(&T) -> Option<f64>) -> Vec<Option<f64>> {
    rows.iter().map(f).collect()
}
fn ints<T>(rows: &[T], f: impl Fn(&T) -> u64) -> Vec<i64> {
    rows.iter().map(|r| f(r) as i64).collect()
}

/// Binds the columns shared by event-derived rows ($1..$7).
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

/// Writes `rows` (of different conversations only: one version of each row), one statement per table.
pub(crate) async fn write_rows(conn: &mut PgConnection, rows: &Rows) -> Result<(), sqlx::Error> {
    if !rows.senders.is_empty() {
        let r = &rows.senders;
        sqlx::query(statement!("upsert_rasa_sender"))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_key))
            .bind(opt_texts(r, |r| r.channel.as_deref()))
            .bind(floats(r, |r| r.first_seen))
            .bind(floats(r, |r| r.last_seen))
            .execute(&mut *conn)
            .await?;
    }
    if !rows.sessions.is_empty() {
        let r = &rows.sessions;
        sqlx::query(statement!("upsert_rasa_session"))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(floats(r, |r| r.timestamp))
            .bind(ints(r, |r| r.start_sequence_number))
            .bind(ints(r, |r| r.end_sequence_number))
            .execute(&mut *conn)
            .await?;
    }
    if !rows.turns.is_empty() {
        let r = &rows.turns;
        sqlx::query(statement!("upsert_rasa_turn"))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(texts(r, |r| &r.session_id))
            .bind(ints(r, |r| r.start_sequence_number))
            .bind(ints(r, |r| r.end_sequence_number))
            .execute(&mut *conn)
            .await?;
    }
    if !rows.events.is_empty() {
        let r = &rows.events;
        sqlx::query(statement!("insert_rasa_event"))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(texts(r, |r| &r.session_id))
            .bind(floats(r, |r| r.timestamp))
            .bind(opt_texts(r, |r| r.model_id.as_deref()))
            .bind(opt_texts(r, |r| r.environment.as_deref()))
            .bind(ints(r, |r| r.sequence_number))
            .bind(texts(r, |r| &r.event_type))
            .execute(&mut *conn)
            .await?;
    }
    if !rows.user_messages.is_empty() {
        let r = &rows.user_messages;
        event_columns(
            sqlx::query(statement!("insert_rasa_user_message")),
            r,
            |r| (&r.id, &r.event),
        )
        .bind(opt_texts(r, |r| r.intent.as_deref()))
        .bind(opt_texts(r, |r| r.retrieval_intent.as_deref()))
        .bind(floats(r, |r| r.confidence))
        .bind(opt_texts(r, |r| r.text.as_deref()))
        .bind(opt_texts(r, |r| r.message_id.as_deref()))
        .execute(&mut *conn)
        .await?;
    }
    if !rows.bot_messages.is_empty() {
        let r = &rows.bot_messages;
        event_columns(sqlx::query(statement!("insert_rasa_bot_message")), r, |r| {
            (&r.id, &r.event)
        })
        .bind(opt_texts(r, |r| r.template_name.as_deref()))
        .bind(opt_texts(r, |r| r.text.as_deref()))
        .execute(&mut *conn)
        .await?;
    }
    if !rows.actions.is_empty() {
        let r = &rows.actions;
        event_columns(sqlx::query(statement!("insert_rasa_action")), r, |r| {
            (&r.id, &r.event)
        })
        .bind(opt_texts(r, |r| r.name.as_deref()))
        .bind(floats(r, |r| r.confidence))
        .bind(opt_texts(r, |r| r.policy.as_deref()))
        .execute(&mut *conn)
        .await?;
    }
    if !rows.slots.is_empty() {
        let r = &rows.slots;
        event_columns(sqlx::query(statement!("insert_rasa_slot")), r, |r| {
            (&r.id, &r.event)
        })
        .bind(texts(r, |r| &r.slot_path))
        .bind(texts(r, |r| &r.name))
        .bind(texts(r, |r| &r.value))
        .execute(&mut *conn)
        .await?;
    }
    if !rows.session_slot_states.is_empty() {
        let r = &rows.session_slot_states;
        sqlx::query(statement!("upsert_rasa_session_slot_state"))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(texts(r, |r| &r.session_id))
            .bind(texts(r, |r| &r.name))
            .bind(texts(r, |r| &r.value))
            .bind(floats(r, |r| r.timestamp))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Brings the analytics tables of `senders` up to date with their events, in the caller's transaction:
/// three reads and writes for the whole batch, whatever the number of conversations.
pub(crate) async fn catch_up(
    conn: &mut PgConnection,
    senders: &[&str],
    settings: &Settings,
) -> Result<AnalyticsProgress, sqlx::Error> {
    if senders.is_empty() {
        return Ok(AnalyticsProgress::default());
    }
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
    let after: Vec<i64> = states.iter().map(|state| state.last_row_id).collect();
    let mut new: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
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
    let (mut keys, mut jsons, mut last_ids) = (Vec::new(), Vec::new(), Vec::new());
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
        keys.push(*sender);
        jsons.push(state.conversation.to_json());
        last_ids.push(state.last_row_id);
    }
    write_rows(conn, &rows).await?;
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
    if !keys.is_empty() {
        sqlx::query(statement!("upsert_state"))
            .bind(keys)
            .bind(jsons)
            .bind(last_ids)
            .execute(&mut *conn)
            .await?;
    }
    Ok(progress)
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
