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

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database = tokio::time::timeout(std::time::Duration::from_secs(2), state.sink.ping())
        .await
        .is_ok_and(|ping| ping.is_ok());
    state.metrics.set_database_ready(database);
    let broker = state.metrics.broker_ready();
    let role = state.metrics.role();
    // A standby is healthy (200: a supervisor must not restart it) but says it does not consume.
    let (status, word) = match (broker && database, role) {
        (true, ConsumerRole::Active) => (StatusCode::OK, "ready"),
        (true, ConsumerRole::Standby) => (StatusCode::OK, "standby"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = format!(
        "{{\"status\": \"{word}\", \"role\": \"{}\", \"broker\": {broker}, \"database\": {database}}}\n",
        role.as_str()
    );
    (status, [(CONTENT_TYPE, "application/json")], body)
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
