//! Dead letters: listing them for the pages, and requeueing them through the broker — the one requeue that
//! `colloquy dead-letters requeue` and `POST /api/dead-letters/{id}/requeue` share ([`requeue`]).

use std::time::Duration;

use base64::Engine as _;
use colloquy_broker::{AmqpBroker, AmqpConfig, MessageProperties};
use colloquy_storage::{Database, StoredDeadLetter};
use serde::Deserialize as _;
use serde_json::{Value, json};

/// How many bytes of each body a listing reads (enough for the preview and, usually, the `sender_id`).
pub const PREVIEW_BYTES: usize = 4096;
/// How many bytes of the body a summary's preview shows.
const PREVIEW_SHOWN: usize = 300;
/// How long a requeue through the API may take (connect, publish, confirm).
const REQUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A dead letter with the conversation its body names, if any.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The stored row (its body may be the first [`PREVIEW_BYTES`] only).
    pub stored: StoredDeadLetter,
    /// The `sender_id` its JSON body names.
    pub sender_id: Option<String>,
}

impl Letter {
    fn new(stored: StoredDeadLetter) -> Self {
        let sender_id = sender_id_of(&stored.body);
        Self { stored, sender_id }
    }

    /// The summary the listing shows.
    pub fn summary(&self) -> Value {
        let letter = &self.stored;
        json!({
            "id": letter.id,
            "received_at": letter.received_at,
            "source": letter.source,
            "error": letter.error,
            "body_len": letter.body_len,
            "preview": lossy_prefix(&letter.body, PREVIEW_SHOWN),
            "sender_id": self.sender_id,
        })
    }

    /// The summary, the whole body (lossy UTF-8 and base64) and the properties.
    pub fn full(&self) -> Value {
        let mut value = self.summary();
        let letter = &self.stored;
        if let Value::Object(object) = &mut value {
            object.insert(
                "body".into(),
                Value::String(String::from_utf8_lossy(&letter.body).into_owned()),
            );
            object.insert(
                "body_base64".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(&letter.body)),
            );
            object.insert(
                "properties".into(),
                serde_json::from_str(&letter.properties).unwrap_or_else(|_| json!({})),
            );
        }
        value
    }
}

/// The first `limit` bytes of `body` as text, without a character cut in half at the end.
fn lossy_prefix(body: &[u8], limit: usize) -> String {
    let mut end = body.len().min(limit);
    if let Err(error) = std::str::from_utf8(&body[..end])
        && error.error_len().is_none()
    {
        end = error.valid_up_to();
    }
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// The `sender_id` a JSON body (or its first bytes) names: the string after the first `"sender_id":`.
pub fn sender_id_of(body: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&body[..error.valid_up_to()]).ok()?,
    };
    let start = text.find("\"sender_id\"")? + "\"sender_id\"".len();
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let mut deserializer = serde_json::Deserializer::from_str(rest);
    String::deserialize(&mut deserializer).ok()
}

/// A page of dead letters after `after` (bodies cut to [`PREVIEW_BYTES`]), and where the next starts. A
/// database without the `dead_letters` table (one Rasa wrote) has none.
pub(crate) async fn page(
    database: &Database,
    after: i64,
    limit: i64,
) -> colloquy_storage::Result<(Vec<Letter>, Option<i64>)> {
    if !database.has_dead_letters_table().await? {
        return Ok((Vec::new(), None));
    }
    let mut rows = database
        .dead_letters(after, limit + 1, Some(PREVIEW_BYTES))
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|row| row.id)
    } else {
        None
    };
    Ok((rows.into_iter().map(Letter::new).collect(), next))
}

/// Dead letter `id`, whole.
pub(crate) async fn one(database: &Database, id: i64) -> colloquy_storage::Result<Option<Letter>> {
    if id < 1 || !database.has_dead_letters_table().await? {
        return Ok(None);
    }
    let rows = database.dead_letters(id - 1, 1, None).await?;
    Ok(rows.into_iter().find(|row| row.id == id).map(Letter::new))
}

/// The dead letters whose body names `sender_id`.
pub(crate) async fn of_conversation(
    database: &Database,
    sender_id: &str,
) -> colloquy_storage::Result<Vec<Letter>> {
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = page(database, after, 500).await?;
        found.extend(
            page.into_iter()
                .filter(|letter| letter.sender_id.as_deref() == Some(sender_id)),
        );
        match next {
            Some(next) => after = next,
            None => return Ok(found),
        }
    }
}

/// Publishes `letters` (whole bodies) with their properties through `broker`, waits until the broker confirmed
/// every one, then deletes them from `database`. Returns how many were deleted. Nothing is deleted unless
/// the broker confirmed it.
pub async fn requeue(
    database: &Database,
    broker: &AmqpBroker,
    letters: &[&StoredDeadLetter],
) -> crate::Result<u64> {
    for letter in letters {
        let properties = MessageProperties::from_json(
            &serde_json::from_str(&letter.properties).unwrap_or_default(),
        );
        broker.publish_raw(letter.body.clone(), &properties).await?;
    }
    // Delete only what the broker confirmed.
    colloquy_broker::EventBroker::flush(broker).await?;
    let mut deleted = 0;
    for letter in letters {
        database.delete_dead_letter(letter.id).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Requeues one dead letter to the queue it came from (the configured exchange, with that queue declared and
/// bound as the broker settings say), then deletes it; within [`REQUEUE_TIMEOUT`].
pub async fn requeue_to_source(
    writer: &Database,
    config: &AmqpConfig,
    letter: &StoredDeadLetter,
) -> crate::Result<()> {
    let config = config.clone().with_queues([letter.source.as_str()])?;
    let work = async {
        let broker = AmqpBroker::connect(config).await?;
        let result = requeue(writer, &broker, &[letter]).await;
        if let Err(error) = colloquy_broker::EventBroker::close(&broker).await {
            tracing::warn!(%error, "Closing the requeue connection failed.");
        }
        result.map(|_| ())
    };
    tokio::time::timeout(REQUEUE_TIMEOUT, work)
        .await
        .map_err(|_| {
            crate::Error::Config(format!(
                "the broker did not confirm within {} s",
                REQUEUE_TIMEOUT.as_secs()
            ))
        })?
}

#[cfg(test)]
mod tests {
    use super::{lossy_prefix, sender_id_of};

    #[test]
    fn the_sender_id_is_found_in_a_prefix() {
        assert_eq!(
            sender_id_of(br#"{"event": "user", "sender_id" : "a\"b", "text": "cut"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(sender_id_of(b"not json"), None);
        assert_eq!(sender_id_of(br#"{"sender_id": 5}"#), None);
        assert_eq!(sender_id_of(br#"{"sender_id": "unfinish"#), None);
    }

    #[test]
    fn previews_do_not_cut_characters() {
        assert_eq!(lossy_prefix("é".as_bytes(), 1), "");
        assert_eq!(lossy_prefix(b"abc", 2), "ab");
        assert_eq!(lossy_prefix(b"\xff", 5), "\u{fffd}");
    }
}
