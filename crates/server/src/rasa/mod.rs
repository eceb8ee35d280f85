//! Rasa 3.6's tracker endpoints, with the paths, parameters, JSON and error bodies of Rasa's HTTP server
//! (`rasa/server.py`):
//!
//! - `GET /conversations/{id}/tracker?include_events=ALL|APPLIED|AFTER_RESTART|NONE&until=T`: the tracker of
//!   every stored event of the conversation (all sessions, as Rasa's `fetch_full_tracker_with_initial_session`),
//!   with the domain's slots, as it was at `until` when given, and its `current_state` with the chosen events
//!   (default `AFTER_RESTART`). A conversation without events gets what Rasa's server gives it: a session start
//!   (`action_session_start`, `session_started`, `action_listen`, stamped now) — not saved, as Rasa's GET does not
//!   save it either.
//! - `POST /conversations/{id}/tracker/events`: one event or a list, validated as Rasa validates them; the latest
//!   session is retrieved from the tracker store (a session start comes first when the conversation has no events
//!   and the request does not begin with one), the events applied, the tracker saved through the store — and
//!   so streamed through the broker, exactly as any save — and its `current_state` returned.
//! - `PUT /conversations/{id}/tracker/events`: the conversation set to the given events. The event log is
//!   append-only (what was saved has been streamed, and consumers hold it): when the stored events are the
//!   beginning of the given ones, the rest is saved; when they differ, 409 says so and nothing changes.
//!   (Rasa's own SQL tracker store does not replace either: it appends the given events beyond the count of the
//!   stored latest session, whatever they are.)
//!
//! What differs from Rasa's server: there is no model, so events get no `model_id`/`assistant_id` metadata and a
//! session start adds no carried-over slots (the domain's `session_config` is not read); a session that Rasa
//! would find expired on a GET is not restarted (a GET never writes); `?token=` and `Authorization: Bearer
//! <token>` are accepted, JWTs are not. Conversation ids are one path segment (percent-encode a `/`).

mod domain;

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use colloquy_events::{Event, EventKind, EventVerbosity, Tracker};
use serde_json::{Map, Value, json};

use crate::AppState;
pub(crate) use domain::Domain;

/// The Rasa version whose HTTP API these endpoints reproduce (the `version` of Rasa's error bodies).
pub const RASA_VERSION: &str = "3.6.21";
const DOCS: &str = "https://rasa.com/docs/rasa";
/// How many times a save that lost a race with another writer of the same conversation is tried again
/// (Rasa serialises them with its lock store; the tracker store's optimistic save says who won).
const SAVE_ATTEMPTS: usize = 5;

/// Rasa's tracker endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/conversations/{conversation_id}/tracker",
            get(retrieve_tracker),
        )
        .route(
            "/conversations/{conversation_id}/tracker/events",
            axum::routing::post(append_events).put(replace_events),
        )
}

/// Rasa's `ErrorResponse` body: `version`, `status`, `message`, `reason`, `details`, `help`, `code`.
#[derive(Debug)]
pub(crate) struct RasaError {
    status: StatusCode,
    reason: &'static str,
    message: String,
    /// The offending parameter and where it was (`details: {"parameter", "in"}`); `None` = `{}`.
    details: Option<(&'static str, &'static str)>,
    /// A path of Rasa's documentation.
    help: Option<&'static str>,
}

impl RasaError {
    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            details: None,
            help: None,
        }
    }

    fn details(mut self, parameter: &'static str, location: &'static str) -> Self {
        self.details = Some((parameter, location));
        self
    }

    /// Points the error's `help` at a page of Rasa's documentation (`path` below its base URL).
    pub(crate) fn help(mut self, path: &'static str) -> Self {
        self.help = Some(path);
        self
    }

    fn conversation_error(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ConversationError",
            format!("An unexpected error occurred. Error: {error}"),
        )
    }
}

impl IntoResponse for RasaError {
    fn into_response(self) -> Response {
        let body = json!({
            "version": RASA_VERSION,
            "status": "failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details.map_or_else(
                || json!({}),
                |(parameter, location)| json!({"parameter": parameter, "in": location}),
            ),
            "help": self.help.map(|path| format!("{DOCS}{path}")),
            "code": self.status.as_u16(),
        });
        crate::api::json(self.status, &body)
    }
}

type RasaResult<T> = Result<T, RasaError>;

fn ok(state: &Value) -> Response {
    crate::api::json(StatusCode::OK, state)
}

/// The query parameters Rasa's tracker endpoints read (the first of each, as Sanic's `args.get`).
#[derive(Debug, Default)]
struct TrackerQuery {
    include_events: Option<String>,
    until: Option<String>,
}

impl TrackerQuery {
    fn parse(raw: Option<String>) -> Self {
        let mut query = Self::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "include_events" => &mut query.include_events,
                "until" => &mut query.until,
                _ => continue,
            };
            slot.get_or_insert_with(|| value.into_owned());
        }
        query
    }

    /// Rasa's `event_verbosity_parameter`: any case; an unknown name is a 400 naming the parameter.
    fn verbosity(&self) -> RasaResult<EventVerbosity> {
        let Some(name) = self.include_events.as_deref() else {
            return Ok(EventVerbosity::AfterRestart);
        };
        EventVerbosity::from_name(name).ok_or_else(|| {
            RasaError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "Invalid parameter value for 'include_events'. Should be one of {}",
                    EventVerbosity::ALL_NAMES.join(", ")
                ),
            )
            .details("include_events", "query")
        })
    }

    /// Rasa's `float_arg`: a value that is not a number is ignored.
    fn until(&self) -> Option<f64> {
        self.until
            .as_deref()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| !t.is_nan())
    }
}

async fn retrieve_tracker(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    RawQuery(query): RawQuery,
) -> RasaResult<Response> {
    let query = TrackerQuery::parse(query);
    let verbosity = query.verbosity()?;
    let mut tracker = full_tracker(&state, &conversation_id).await?;
    if tracker.events().is_empty() {
        start_session(&mut tracker);
    }
    if let Some(until) = query.until() {
        tracker = tracker.travel_back_in_time(until);
    }
    Ok(ok(&tracker.current_state_with(verbosity)))
}

/// Every stored event of the conversation, read through the tracker store when one is configured (where the
/// write endpoints save), else from the database, with the domain's slots.
async fn full_tracker(state: &AppState, conversation_id: &str) -> RasaResult<Tracker> {
    let tracker = match &state.tracker_store {
        Some(store) => store
            .retrieve_full(conversation_id)
            .await
            .map_err(RasaError::conversation_error)?
            .unwrap_or_else(|| Tracker::new(conversation_id)),
        None => {
            let rows = state
                .database
                .conversation_rows(conversation_id)
                .await
                .map_err(RasaError::conversation_error)?;
            let events = rows
                .iter()
                .map(|row| Event::from_json(row.data.as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(RasaError::conversation_error)?;
            Tracker::restore(conversation_id, 0, events)
        }
    };
    Ok(with_domain(state, tracker))
}

fn with_domain(state: &AppState, tracker: Tracker) -> Tracker {
    match &state.domain {
        Some(domain) => tracker.with_domain_slots(domain.initial_slots().clone()),
        None => tracker,
    }
}

/// What Rasa's `action_session_start` logs on a tracker without events: the action (confidence 1.0, no
/// policy), `session_started`, `action_listen`, each stamped now.
fn start_session(tracker: &mut Tracker) {
    let mut session_start = EventKind::action("action_session_start");
    if let EventKind::Action(action) = &mut session_start {
        action.confidence = serde_json::Number::from_f64(1.0);
    }
    let now = SystemTime::now();
    for kind in [
        session_start,
        EventKind::SessionStarted,
        EventKind::action("action_listen"),
    ] {
        tracker.apply(Event::at(kind, now));
    }
}

async fn append_events(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> RasaResult<Response> {
    let events = request_events(&body)?;
    let verbosity = TrackerQuery::parse(query).verbosity()?;
    let store = tracker_store(&state)?;
    let begins_with_session = begins_with_session_start(&events);
    for _ in 0..SAVE_ATTEMPTS {
        let retrieved = store
            .retrieve(&conversation_id)
            .await
            .map_err(RasaError::conversation_error)?
            .unwrap_or_else(|| Tracker::new(conversation_id.as_str()));
        let mut tracker = with_domain(&state, retrieved);
        if tracker.events().is_empty() && !begins_with_session {
            start_session(&mut tracker);
        }
        let mut events = events.clone();
        stamp_missing(&mut events);
        tracker.apply_all(events);
        match store.save(&mut tracker).await {
            Ok(_) => return Ok(ok(&tracker.current_state_with(verbosity))),
            Err(error) if error.is_conflict() => continue,
            Err(error) => return Err(RasaError::conversation_error(error)),
        }
    }
    Err(RasaError::conversation_error(format!(
        "conversation '{conversation_id}' was changed by other writers {SAVE_ATTEMPTS} times in a row"
    )))
}

async fn replace_events(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> RasaResult<Response> {
    let mut events = request_events(&body)?;
    stamp_missing(&mut events);
    let verbosity = TrackerQuery::parse(query).verbosity()?;
    let store = tracker_store(&state)?;
    let stored = store
        .retrieve_full(&conversation_id)
        .await
        .map_err(RasaError::conversation_error)?
        .unwrap_or_else(|| Tracker::new(conversation_id.as_str()));
    let kept = stored.events().len();
    let same = |a: &Event, b: &Event| a.to_value() == b.to_value();
    if events.len() < kept || !stored.events().iter().zip(&events).all(|(a, b)| same(a, b)) {
        return Err(RasaError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Conversation '{conversation_id}' holds {kept} events that are not the beginning of the given \
                 ones. Colloquy keeps a conversation's events append-only (they have been streamed to the \
                 broker): PUT can only add events after the stored ones."
            ),
        ));
    }
    let mut tracker = with_domain(&state, stored);
    tracker.apply_all(events[kept..].iter().cloned());
    match store.save(&mut tracker).await {
        Ok(_) => Ok(ok(&tracker.current_state_with(verbosity))),
        Err(error) if error.is_conflict() => Err(RasaError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "conversation '{conversation_id}' changed while it was being replaced; try again"
            ),
        )),
        Err(error) => Err(RasaError::conversation_error(error)),
    }
}

fn tracker_store(
    state: &AppState,
) -> RasaResult<&std::sync::Arc<dyn colloquy_tracker_store::TrackerStore>> {
    state.tracker_store.as_ref().ok_or_else(|| {
        RasaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "No tracker store to save to: start `colloquy serve` with --tracker-store (or an endpoints.yml \
             with a tracker_store section).",
        )
    })
}

/// Rasa's `do_events_begin_with_session_start`: `action_session_start` then `session_started`.
fn begins_with_session_start(events: &[Event]) -> bool {
    matches!(
        events,
        [first, second, ..]
            if first.action_name() == Some("action_session_start")
                && matches!(second.kind, EventKind::SessionStarted)
    )
}

/// The request's events: Rasa's checks (`validate_events_in_request_body`: each an object with a known `event`
/// and the keys its type requires), then each read and put in Rasa's form (`Event.from_parameters(...)
/// .as_dict()`: every key Rasa writes, its defaults filled in). Timestamps the request leaves out are added by
/// [`stamp_missing`] when the events are applied.
fn request_events(body: &[u8]) -> RasaResult<Vec<Event>> {
    if body.is_empty() {
        return Err(invalid("the request has no body"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| invalid(format!("the body is not JSON: {error}")))?;
    let values = match value {
        Value::Array(values) => values,
        single => vec![single],
    };
    let events = values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            validate(&value)
                .and_then(|()| {
                    let read = Event::from_value(value).map_err(|error| error.to_string())?;
                    Event::from_json(read.to_rasa_json().as_bytes())
                        .map_err(|error| error.to_string())
                })
                .map_err(|error| invalid(format!("event {index}: {error}")))
        })
        .collect::<RasaResult<Vec<_>>>()?;
    if events.is_empty() {
        return Err(RasaError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Couldn't extract a proper event from the request body.",
        )
        .details("", "body"));
    }
    Ok(events)
}

/// Stamps "now" on the events without a timestamp, as Rasa's `Event.from_parameters` does — here when they are
/// applied, after a session start the server logs first, so that they belong to that session (Rasa stamps them
/// before it and a store that loads the latest session by timestamp would leave them out).
fn stamp_missing(events: &mut [Event]) {
    let now = unix_now();
    for event in events.iter_mut().filter(|event| event.timestamp.is_none()) {
        event.timestamp = now.clone();
    }
}

/// The current time as Rasa writes `time.time()`.
fn unix_now() -> Option<serde_json::Number> {
    Event::at(EventKind::SessionStarted, SystemTime::now()).timestamp
}

fn invalid(error: impl std::fmt::Display) -> RasaError {
    RasaError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!(
            "Failed to validate the events format. For more information about the format visit the docs. \
             Error: {error}"
        ),
    )
    .help("/pages/http-api")
}

/// The event types Rasa 3.6's `EVENTS_SCHEMA` accepts.
const RASA_EVENT_TYPES: [&str; 23] = [
    "user",
    "action",
    "slot",
    "entities",
    "user_featurization",
    "cancel_reminder",
    "reminder",
    "action_execution_rejected",
    "form_validation",
    "loop_interrupted",
    "form",
    "active_loop",
    "reset_slots",
    "resume",
    "pause",
    "followup",
    "export",
    "restart",
    "undo",
    "rewind",
    "bot",
    "session_started",
    "agent",
];

/// Rasa's `EVENT_SCHEMA`, on the keys it constrains.
fn validate(value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or("an event is a JSON object")?;
    let kind = match object.get("event") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err("'event' is not a string".into()),
        None => return Err("'event' is a required property".into()),
    };
    if !RASA_EVENT_TYPES.contains(&kind) {
        return Err(format!("'{kind}' is not an event type Rasa knows"));
    }
    check(
        object,
        "timestamp",
        |v| v.is_number() || v.is_null(),
        "a number or null",
    )?;
    check(
        object,
        "metadata",
        |v| v.is_object() || v.is_null(),
        "an object or null",
    )?;
    let text_or_null = |v: &Value| v.is_string() || v.is_null();
    match kind {
        "user" => {
            for key in ["text", "input_channel", "message_id"] {
                check(object, key, text_or_null, "a string or null")?;
            }
            check(object, "parse_data", Value::is_object, "an object")?;
        }
        "action" => {
            for key in ["policy", "name", "action_text"] {
                check(object, key, text_or_null, "a string or null")?;
            }
            check(
                object,
                "confidence",
                |v| v.is_number() || v.is_null(),
                "a number or null",
            )?;
            check(object, "hide_rule_turn", Value::is_boolean, "a boolean")?;
        }
        "slot" => {
            require(object, "name")?;
            require(object, "value")?;
            check(object, "name", Value::is_string, "a string")?;
        }
        "entities" => {
            require(object, "entities")?;
            let entities = object["entities"]
                .as_array()
                .ok_or("'entities' is not an array")?;
            for entity in entities {
                let entity = entity.as_object().ok_or("an entity is an object")?;
                require(entity, "entity")?;
                require(entity, "value")?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn require(object: &Map<String, Value>, key: &str) -> Result<(), String> {
    if object.contains_key(key) {
        Ok(())
    } else {
        Err(format!("'{key}' is a required property"))
    }
}

fn check(
    object: &Map<String, Value>,
    key: &str,
    valid: impl Fn(&Value) -> bool,
    what: &str,
) -> Result<(), String> {
    match object.get(key) {
        Some(value) if !valid(value) => Err(format!("'{key}' must be {what}")),
        _ => Ok(()),
    }
}
