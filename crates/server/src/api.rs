//! Colloquy's JSON API under `/api` (see docs in the OpenAPI description, [`crate::openapi`]).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::dead_letters::{self as letters, Letter};
use crate::index::{Cursor, Filters};

/// Conversations per page by default, and at most.
const CONVERSATIONS_LIMIT: (usize, usize) = (50, 500);
/// Events per page by default, and at most.
const EVENTS_LIMIT: (i64, i64) = (200, 1000);
/// Dead letters per page by default, and at most.
const DEAD_LETTERS_LIMIT: (i64, i64) = (100, 500);

/// The routes of `/api`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/server", get(server))
        .route("/api/conversations", get(conversations))
        .route("/api/conversations/{sender_id}/events", get(events))
        .route(
            "/api/conversations/{sender_id}/dead-letters",
            get(conversation_dead_letters),
        )
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/dead-letters/{id}", get(dead_letter))
        .route("/api/dead-letters/{id}/requeue", post(requeue))
        .route("/api/metrics", get(metrics))
        .route("/api/consumer", get(consumer))
        .route("/api/openapi.json", get(openapi))
        .route("/api", get(not_found))
        .route("/api/{*rest}", get(not_found).post(not_found))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    json(status, &json!({ "error": message }))
}

/// A storage failure: 500 with the storage layer's message (it never holds a password).
fn storage_failure(failure: &colloquy_storage::Error) -> Response {
    tracing::warn!(error = %failure, "A read failed.");
    error(StatusCode::INTERNAL_SERVER_ERROR, &failure.to_string())
}

/// Reads the query string into `T`; empty values count as absent. A bad value is an error message (a 400).
fn query<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T, String> {
    let Some(raw) = raw else {
        return Ok(T::default());
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(key, value)| !value.is_empty() && key != "token")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let text = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    serde_urlencoded::from_str(&text).map_err(|failure| format!("bad query parameter: {failure}"))
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint (see /api/openapi.json)",
    )
}

async fn server(State(state): State<AppState>) -> Response {
    let analytics = state.database.has_analytics_tables().await.unwrap_or(false);
    json(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "auth": state.auth.required(),
            "writes": state.auth.writes_allowed(),
            "analytics": analytics,
            "dialect": dialect_name(state.database.dialect()),
            "consumer_metrics": state.consumer.configured(),
        }),
    )
}

fn dialect_name(dialect: colloquy_storage::Dialect) -> &'static str {
    match dialect {
        colloquy_storage::Dialect::Postgres => "postgres",
        colloquy_storage::Dialect::MySql => "mysql",
        _ => "sqlite",
    }
}

/// The paging parameters of `/api/conversations` (the filters are read from the same query into [`Filters`]:
/// serde's `flatten` would hand numbers over as strings).
#[derive(Debug, Default, serde::Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn conversations(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let query: ListQuery = match query(raw.as_deref()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let filters: Filters = match self::query(raw.as_deref()) {
        Ok(filters) => filters,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let limit = query
        .limit
        .unwrap_or(CONVERSATIONS_LIMIT.0)
        .clamp(1, CONVERSATIONS_LIMIT.1);
    let cursor = match query.cursor.as_deref().map(Cursor::decode) {
        None => None,
        Some(Some(cursor)) => Some(cursor),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad cursor: pass the next_cursor of a previous answer as it is",
            );
        }
    };
    let listing = state.index.list(&filters, cursor.as_ref(), limit);
    json(
        StatusCode::OK,
        &json!({
            "conversations": listing.conversations,
            "matches": listing.matches,
            "next_cursor": listing.next_cursor.map(|cursor| cursor.encode()),
        }),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn events(
    State(state): State<AppState>,
    Path(sender_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query: EventsQuery = match query(raw.as_deref()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let limit = query
        .limit
        .unwrap_or(EVENTS_LIMIT.0)
        .clamp(1, EVENTS_LIMIT.1);
    let after = query.after.unwrap_or(0);
    let mut rows = match state
        .database
        .conversation_page(&sender_id, after, limit + 1)
        .await
    {
        Ok(rows) => rows,
        Err(failure) => return storage_failure(&failure),
    };
    // Counted by the database (by the `sender_id` index): the index may not have seen the newest events yet.
    let total = match state.database.count_events(&sender_id).await {
        Ok(total) => total,
        Err(failure) => return storage_failure(&failure),
    };
    if total == 0 && rows.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            &format!("conversation {sender_id:?} has no events"),
        );
    }
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if more {
        rows.last().map(|row| row.row_id)
    } else {
        None
    };
    let events: Vec<Value> = rows
        .iter()
        .map(|row| {
            let event = serde_json::from_str::<Value>(&row.data)
                .unwrap_or_else(|_| Value::String(row.data.clone()));
            json!({
                "id": row.row_id,
                "type": row.type_name,
                "timestamp": row.timestamp,
                "event": event,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "sender_id": sender_id,
            "total": total,
            "events": events,
            "next_after": next_after,
        }),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct PageQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn dead_letters(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let query: PageQuery = match query(raw.as_deref()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let limit = query
        .limit
        .unwrap_or(DEAD_LETTERS_LIMIT.0)
        .clamp(1, DEAD_LETTERS_LIMIT.1);
    match letters::page(&state.database, query.after.unwrap_or(0), limit).await {
        Ok((page, next_after)) => json(
            StatusCode::OK,
            &json!({
                "dead_letters": page.iter().map(Letter::summary).collect::<Vec<_>>(),
                "next_after": next_after,
            }),
        ),
        Err(failure) => storage_failure(&failure),
    }
}

async fn conversation_dead_letters(
    State(state): State<AppState>,
    Path(sender_id): Path<String>,
) -> Response {
    match letters::of_conversation(&state.database, &sender_id).await {
        Ok(found) => json(
            StatusCode::OK,
            &json!({ "dead_letters": found.iter().map(Letter::summary).collect::<Vec<_>>() }),
        ),
        Err(failure) => storage_failure(&failure),
    }
}

async fn dead_letter(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "a dead letter id is a whole number",
        );
    };
    match letters::one(&state.database, id).await {
        Ok(Some(letter)) => json(StatusCode::OK, &letter.full()),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no dead letter {id}")),
        Err(failure) => storage_failure(&failure),
    }
}

async fn requeue(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "a dead letter id is a whole number",
        );
    };
    let (Some(config), Some(writer)) = (&state.broker_config, &state.writer) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no broker is configured (--amqp-url or --endpoints)",
        );
    };
    let letter = match letters::one(&state.database, id).await {
        Ok(Some(letter)) => letter,
        Ok(None) => return error(StatusCode::NOT_FOUND, &format!("no dead letter {id}")),
        Err(failure) => return storage_failure(&failure),
    };
    match letters::requeue_to_source(writer, config, &letter.stored).await {
        Ok(()) => json(StatusCode::OK, &json!({ "requeued": id })),
        Err(failure) => {
            tracing::warn!(id, error = %failure, "Requeueing a dead letter failed.");
            error(
                StatusCode::BAD_GATEWAY,
                &format!("requeueing dead letter {id} failed (it is kept): {failure}"),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.database.has_analytics_tables().await {
        Ok(false) => json(StatusCode::OK, &json!({ "available": false })),
        Ok(true) => match state.database.analytics_metrics().await {
            Ok(metrics) => json(StatusCode::OK, &metrics_json(&metrics)),
            Err(failure) => storage_failure(&failure),
        },
        Err(failure) => storage_failure(&failure),
    }
}

async fn consumer(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, &state.consumer.scrape().await)
}

async fn openapi() -> Response {
    json(StatusCode::OK, &crate::openapi::document())
}

/// `/api/metrics`'s answer from the analytics views.
fn metrics_json(metrics: &colloquy_storage::AnalyticsMetrics) -> Value {
    json!({
        "available": true,
        "sessions_per_day": metrics.sessions_per_day.iter()
            .map(|(day, sessions)| json!({"day": day, "sessions": sessions})).collect::<Vec<_>>(),
        "sessions_per_channel": metrics.sessions_per_channel.iter()
            .map(|(channel, sessions)| json!({"channel": channel, "sessions": sessions})).collect::<Vec<_>>(),
        "top_intents": metrics.top_intents.iter()
            .map(|(intent, count)| json!({"intent": intent, "count": count})).collect::<Vec<_>>(),
        "turns_per_session": metrics.turns_per_session.iter()
            .map(|(turns, sessions)| json!({"turns": turns, "sessions": sessions})).collect::<Vec<_>>(),
        "senders": metrics.senders,
        "average_bot_response_seconds": metrics.average_bot_response_seconds,
        "rates": {
            "escalation": metrics.escalation_rate,
            "abandonment": metrics.abandonment_rate,
            "containment": metrics.containment_rate,
            "fallback": metrics.fallback_rate,
        },
    })
}
