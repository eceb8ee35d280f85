//! The HTML pages and their static assets (owned by the pages work; this stub serves nothing yet).

/// The routes of the pages and assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
}
