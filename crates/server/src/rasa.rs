//! Rasa 3.6's tracker endpoints (`/conversations/{id}/tracker`, `.../tracker/events`) and `--domain` (stub).

use std::path::Path;

use axum::Router;

use crate::AppState;

/// Rasa's domain, as far as the tracker endpoints need it (the slots and their initial values).
#[derive(Debug, Clone, Default)]
pub(crate) struct Domain {}

/// Reads Rasa's domain file.
pub(crate) fn load_domain(path: &Path) -> crate::Result<Domain> {
    std::fs::metadata(path).map_err(|error| {
        crate::Error::Config(format!(
            "cannot read the domain file {}: {error}",
            path.display()
        ))
    })?;
    Ok(Domain::default())
}

/// Rasa's tracker endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
