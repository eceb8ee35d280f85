//! The SQL event schema shared by the PostgreSQL tracker store and the consumer service.
//!
//! The `events` table is Rasa's (`SQLTrackerStore`'s) with the same column names and types, so Rasa can read
//! what we write, plus `event_id`, our dedupe key. Rows are filled by Rasa's rules: `type_name` is the event's
//! type, `intent_name` is `parse_data.intent.name`, `action_name` is the event's `name` key, `data` is the
//! event's JSON without `sender_id`, written byte for byte as Rasa writes it.
//!
//! Inserts skip rows whose `event_id` is stored already (`ON CONFLICT DO NOTHING`), which is what makes an
//! at-least-once delivery store every event exactly once. Rows of one insert get ascending `id`s in slice
//! order, because Rasa reads a conversation back `ORDER BY id`.

use colloquy_events::{Event, EventId};
use sqlx::migrate::Migrator;
use sqlx::{PgConnection, QueryBuilder, Sqlite, SqliteConnection};

/// The migrations of a PostgreSQL database: Rasa's `events` table, `dead_letters`, and what the stores need.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations of an SQLite database (the consumer's embedded default).
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rasa's limit on `sender_id`, `type_name`, `intent_name` and `action_name` (`VARCHAR(255)`), in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// One row of the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// The conversation id.
    pub sender_id: String,
    /// The event type (`user`, `bot`, ...).
    pub type_name: String,
    /// Unix seconds.
    pub timestamp: Option<f64>,
    /// `parse_data.intent.name` of a user event.
    pub intent_name: Option<String>,
    /// The event's `name` key (action, slot, loop, ... name).
    pub action_name: Option<String>,
    /// The event's JSON without `sender_id`, as Rasa writes it.
    pub data: String,
    /// The dedupe key (NULL only for rows Rasa inserted itself).
    pub event_id: Option<String>,
}

/// Why an event cannot be a row of Rasa's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// A name column is longer than Rasa's `VARCHAR(255)`.
    #[error("`{column}` is {chars} characters long; Rasa's schema allows at most {MAX_NAME_CHARS}")]
    TooLong {
        /// The column.
        column: &'static str,
        /// The length of the value in characters.
        chars: usize,
    },
    /// A name column contains a NUL character, which PostgreSQL text cannot hold.
    #[error("`{column}` contains a NUL character, which the database cannot store")]
    Nul {
        /// The column.
        column: &'static str,
    },
}

impl EventRow {
    /// The row of `event` in conversation `sender_id`, filled by Rasa's rules.
    pub fn new(sender_id: &str, event: &Event, event_id: &EventId) -> Result<Self, RowError> {
        let row = Self {
            sender_id: sender_id.to_owned(),
            type_name: event.type_name().to_owned(),
            timestamp: event.timestamp(),
            intent_name: event.intent_name().map(str::to_owned),
            action_name: event.action_name().map(str::to_owned),
            data: event.to_rasa_json(),
            event_id: Some(event_id.as_str().to_owned()),
        };
        check_name("sender_id", &row.sender_id)?;
        check_name("type_name", &row.type_name)?;
        if let Some(intent_name) = &row.intent_name {
            check_name("intent_name", intent_name)?;
        }
        if let Some(action_name) = &row.action_name {
            check_name("action_name", action_name)?;
        }
        Ok(row)
    }
}

fn check_name(column: &'static str, value: &str) -> Result<(), RowError> {
    if value.contains('\0') {
        return Err(RowError::Nul { column });
    }
    // Byte length bounds the character count from above: count characters only when it might matter.
    if value.len() > MAX_NAME_CHARS {
        let chars = value.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(RowError::TooLong { column, chars });
        }
    }
    Ok(())
}

/// One row of the `dead_letters` table: a message that could not be stored as an event, kept whole.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    /// Where it came from (the queue name).
    pub source: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The message properties as a JSON object.
    pub properties: String,
    /// Why it is not an event.
    pub error: String,
}

/// `rows` as one array per column, for an `UNNEST` insert.
struct Columns<'a> {
    sender_ids: Vec<&'a str>,
    type_names: Vec<&'a str>,
    timestamps: Vec<Option<f64>>,
    intent_names: Vec<Option<&'a str>>,
    action_names: Vec<Option<&'a str>>,
    datas: Vec<&'a str>,
    event_ids: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [EventRow]) -> Self {
        Self {
            sender_ids: rows.iter().map(|row| row.sender_id.as_str()).collect(),
            type_names: rows.iter().map(|row| row.type_name.as_str()).collect(),
            timestamps: rows.iter().map(|row| row.timestamp).collect(),
            intent_names: rows.iter().map(|row| row.intent_name.as_deref()).collect(),
            action_names: rows.iter().map(|row| row.action_name.as_deref()).collect(),
            datas: rows.iter().map(|row| row.data.as_str()).collect(),
            event_ids: rows.iter().map(|row| row.event_id.as_deref()).collect(),
        }
    }
}

/// Inserts `rows` in one statement, skipping those whose `event_id` is stored already; returns how many were
/// inserted. Rows get ascending ids in slice order.
pub async fn insert_events_postgres(
    conn: &mut PgConnection,
    rows: &[EventRow],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns = Columns::of(rows);
    let result = sqlx::query(
        r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id)
           SELECT sender_id, type_name, ts, intent_name, action_name, data, event_id
           FROM UNNEST($1::varchar[], $2::varchar[], $3::float8[], $4::varchar[], $5::varchar[], $6::text[],
                       $7::text[])
                WITH ORDINALITY AS batch(sender_id, type_name, ts, intent_name, action_name, data, event_id, position)
           ORDER BY position
           ON CONFLICT (event_id) DO NOTHING"#,
    )
    .bind(columns.sender_ids)
    .bind(columns.type_names)
    .bind(columns.timestamps)
    .bind(columns.intent_names)
    .bind(columns.action_names)
    .bind(columns.datas)
    .bind(columns.event_ids)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Inserts the new events of one conversation (`rows`, all of `sender_id`) at positions `first_seq ..`, in one
/// statement, and only if the conversation holds exactly `first_seq` rows (else nothing is inserted and the
/// result is 0); with `with_outbox`, the same statement records them in the `outbox` table for the relay.
/// Unlike [`insert_events_postgres`], a duplicate `event_id` or position is an error: a concurrent save of the
/// same conversation that committed first makes this one fail on the unique `(sender_id, seq)` index, even
/// where the count check could not see it yet. Rows get ascending ids in slice order.
pub async fn insert_tracked_events_postgres(
    conn: &mut PgConnection,
    sender_id: &str,
    first_seq: u64,
    rows: &[EventRow],
    with_outbox: bool,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns = Columns::of(rows);
    let query = if with_outbox {
        sqlx::query(
            r#"WITH inserted AS (
                 INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, seq)
                 SELECT $1, type_name, ts, intent_name, action_name, data, event_id, $2 + position - 1
                 FROM UNNEST($3::varchar[], $4::float8[], $5::varchar[], $6::varchar[], $7::text[], $8::text[])
                      WITH ORDINALITY AS batch(type_name, ts, intent_name, action_name, data, event_id, position)
                 WHERE (SELECT count(*) FROM events WHERE sender_id = $1) = $2
                 ORDER BY position
                 RETURNING id)
               INSERT INTO outbox (event_row_id) SELECT id FROM inserted"#,
        )
    } else {
        sqlx::query(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, seq)
               SELECT $1, type_name, ts, intent_name, action_name, data, event_id, $2 + position - 1
               FROM UNNEST($3::varchar[], $4::float8[], $5::varchar[], $6::varchar[], $7::text[], $8::text[])
                    WITH ORDINALITY AS batch(type_name, ts, intent_name, action_name, data, event_id, position)
               WHERE (SELECT count(*) FROM events WHERE sender_id = $1) = $2
               ORDER BY position"#,
        )
    };
    let first_seq =
        i64::try_from(first_seq).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    let result = query
        .bind(sender_id)
        .bind(first_seq)
        .bind(columns.type_names)
        .bind(columns.timestamps)
        .bind(columns.intent_names)
        .bind(columns.action_names)
        .bind(columns.datas)
        .bind(columns.event_ids)
        .execute(conn)
        .await?;
    Ok(result.rows_affected())
}

/// Inserts dead letters in one statement.
pub async fn insert_dead_letters_postgres(
    conn: &mut PgConnection,
    rows: &[DeadLetterRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = rows.iter().map(|row| row.source.as_str()).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|row| row.body.as_slice()).collect();
    let properties: Vec<&str> = rows.iter().map(|row| row.properties.as_str()).collect();
    let errors: Vec<&str> = rows.iter().map(|row| row.error.as_str()).collect();
    sqlx::query(
        "INSERT INTO dead_letters (source, body, properties, error)
         SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::text[])",
    )
    .bind(sources)
    .bind(bodies)
    .bind(properties)
    .bind(errors)
    .execute(conn)
    .await?;
    Ok(())
}

/// SQLite allows 32766 bound parameters per statement; 7 per row.
const SQLITE_ROWS_PER_STATEMENT: usize = 4000;

/// The SQLite twin of [`insert_events_postgres`].
pub async fn insert_events_sqlite(
    conn: &mut SqliteConnection,
    rows: &[EventRow],
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id) "#,
        );
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.sender_id.as_str())
                .push_bind(row.type_name.as_str())
                .push_bind(row.timestamp)
                .push_bind(row.intent_name.as_deref())
                .push_bind(row.action_name.as_deref())
                .push_bind(row.data.as_str())
                .push_bind(row.event_id.as_deref());
        });
        insert.push(" ON CONFLICT (event_id) DO NOTHING");
        inserted += insert.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

/// The SQLite twin of [`insert_dead_letters_postgres`].
pub async fn insert_dead_letters_sqlite(
    conn: &mut SqliteConnection,
    rows: &[DeadLetterRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO dead_letters (source, body, properties, error) ");
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.source.as_str())
                .push_bind(row.body.as_slice())
                .push_bind(row.properties.as_str())
                .push_bind(row.error.as_str());
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(body: &str) -> Result<EventRow, RowError> {
        let envelope = colloquy_events::Envelope::from_json(body.as_bytes()).expect("valid body");
        EventRow::new(
            &envelope.sender_id,
            &envelope.event,
            &EventId::from("id".to_owned()),
        )
    }

    #[test]
    fn fills_columns_by_rasas_rules() {
        let row = row_of(
            r#"{"sender_id": "s", "event": "user", "timestamp": 1.5, "text": "hi", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}}}"#,
        )
        .unwrap();
        assert_eq!(row.type_name, "user");
        assert_eq!(row.intent_name.as_deref(), Some("greet"));
        assert_eq!(row.action_name, None);
        assert_eq!(row.timestamp, Some(1.5));
        assert!(!row.data.contains("sender_id"));

        let row = row_of(r#"{"sender_id": "s", "event": "slot", "timestamp": 2.0, "name": "cuisine", "value": 1}"#).unwrap();
        assert_eq!(row.action_name.as_deref(), Some("cuisine"));
    }

    #[test]
    fn refuses_what_rasas_schema_cannot_hold() {
        let long = "x".repeat(256);
        let body = format!(r#"{{"sender_id": "{long}", "event": "restart", "timestamp": 1.0}}"#);
        assert_eq!(
            row_of(&body),
            Err(RowError::TooLong {
                column: "sender_id",
                chars: 256
            })
        );
        let ok = "é".repeat(255);
        let body = format!(r#"{{"sender_id": "{ok}", "event": "restart", "timestamp": 1.0}}"#);
        assert!(row_of(&body).is_ok());
        let body = r#"{"sender_id": "a\u0000b", "event": "restart", "timestamp": 1.0}"#;
        assert_eq!(
            row_of(body),
            Err(RowError::Nul {
                column: "sender_id"
            })
        );
    }
}
