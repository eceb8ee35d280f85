//! The optional HTTP endpoint: `/health` and `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use colloquy_broker::ConsumerRole;
use tokio::net::TcpListener;

use crate::database::EventSink;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    sink: Arc<dyn EventSink>,
}

/// Binds `addr` now (so a bad address fails at start-up) and returns the server future, which runs until
/// `shutdown` resolves.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    sink: Arc<dyn EventSink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Http {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Http {
        addr: addr.to_string(),
        source,
    })?;
    tracing::info!(addr = %bound, "Serving /health and /metrics.");
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, sink });
    Ok(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(%error, "The HTTP endpoint stopped.");
        }
    })
}

/// 200 while the broker is connected, the database answers and batches are being committed; 503 otherwise,
/// with the database's own message when storing failed.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let broker = state.metrics.broker_ready();
    // A failed batch says more than a ping: it may fail while connections open (full, read-only, refused).
    let failure = match state.metrics.database_failure() {
        Some(failure) => Some(failure),
        None => match tokio::time::timeout(PING_TIMEOUT, state.sink.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!(
                "the database did not answer within {} s",
                PING_TIMEOUT.as_secs()
            )),
        },
    };
    let role = state.metrics.role();
    // A standby is healthy (200: a supervisor must not restart it) but says it does not consume.
    let (status, word) = match (broker && failure.is_none(), role) {
        (true, ConsumerRole::Active) => (StatusCode::OK, "ready"),
        (true, ConsumerRole::Standby) => (StatusCode::OK, "standby"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = serde_json::json!({
        "status": word,
        "role": role.as_str(),
        "broker": broker,
        "database": failure.is_none(),
        "database_error": failure,
    });
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
}

/// Longest `/health` waits for the database to answer a ping.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
