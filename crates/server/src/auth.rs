//! Auth: one token for every request, and writes only with a token that a page cannot be tricked into
//! sending (the query token or the `Authorization: Bearer` header, never the cookie).
//!
//! With a token configured, a request is let through when it carries the token as `?token=TOKEN` (as Rasa
//! accepts it), as `Authorization: Bearer TOKEN`, or in the cookie `colloquy_token` — which the server sets
//! (HttpOnly, SameSite=Strict, Path=/) on every successful request that carried `?token=`, so that a person
//! opens `/?token=X` once and the assets and links work. A write (any method but GET, HEAD and OPTIONS) needs
//! the query token or the bearer header: a cookie alone is refused (no cross-site request forgery).
//!
//! Without a token, reads pass and every write is refused with 403 (`writes need --auth-token`); the server
//! then listens on loopback only ([`crate::Server::bind`]). Refusals of Rasa's endpoints
//! (`/conversations/{id}/tracker...`) have Rasa's error body; all others `{"error": "..."}`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The name of the cookie that carries the token.
pub const COOKIE: &str = "colloquy_token";

/// The auth settings.
#[derive(Clone)]
pub struct Auth {
    token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Query,
    Bearer,
    Cookie,
}

impl Auth {
    /// Settings with `token` (`None`: unauthenticated, no writes).
    pub fn new(token: Option<String>) -> Self {
        Self { token }
    }

    /// Whether a token is required (and so writes are possible).
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether writes are allowed at all (only with a token).
    pub fn writes_allowed(&self) -> bool {
        self.token.is_some()
    }

    /// Where the valid token of `request` came from, if it carries one (the query token wins, then the bearer
    /// header, then the cookie).
    fn presented(&self, request: &Request) -> Option<Source> {
        let token = self.token.as_deref()?;
        if let Some(query) = request.uri().query()
            && url::form_urlencoded::parse(query.as_bytes())
                .any(|(key, value)| key == "token" && same(value.as_bytes(), token.as_bytes()))
        {
            return Some(Source::Query);
        }
        for value in request.headers().get_all(header::AUTHORIZATION) {
            if let Ok(value) = value.to_str()
                && let Some((scheme, given)) = value.trim().split_once(' ')
                && scheme.eq_ignore_ascii_case("bearer")
                && same(given.trim().as_bytes(), token.as_bytes())
            {
                return Some(Source::Bearer);
            }
        }
        for value in request.headers().get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                if let Some((name, given)) = pair.trim().split_once('=')
                    && name == COOKIE
                    && url::form_urlencoded::parse(format!("v={given}").as_bytes())
                        .any(|(_, decoded)| same(decoded.as_bytes(), token.as_bytes()))
                {
                    return Some(Source::Cookie);
                }
            }
        }
        None
    }

    /// The `Set-Cookie` value that carries the token.
    fn cookie(&self) -> Option<HeaderValue> {
        let token = self.token.as_deref()?;
        let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        HeaderValue::from_str(&format!(
            "{COOKIE}={encoded}; HttpOnly; SameSite=Strict; Path=/"
        ))
        .ok()
    }
}

/// Compares without stopping at the first difference.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// Whether `method` changes something.
pub(crate) fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether `path` is one of Rasa's endpoints (its refusals have Rasa's error body).
pub(crate) fn is_rasa_path(path: &str) -> bool {
    path.strip_prefix("/conversations/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, tail)| tail == "tracker" || tail.starts_with("tracker/"))
}

/// The middleware wrapping every route.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let auth = &state.auth;
    let write = is_write(request.method());
    let rasa = is_rasa_path(request.uri().path());
    if !auth.required() {
        if write {
            return refusal(
                rasa,
                StatusCode::FORBIDDEN,
                "writes need --auth-token",
                "NotAuthorized",
            );
        }
        return next.run(request).await;
    }
    let source = auth.presented(&request);
    match source {
        None => refusal(
            rasa,
            StatusCode::UNAUTHORIZED,
            "this server needs its token: ?token=TOKEN or Authorization: Bearer TOKEN",
            "NotAuthenticated",
        ),
        Some(Source::Cookie) if write => refusal(
            rasa,
            StatusCode::FORBIDDEN,
            "writes need the token as ?token= or Authorization: Bearer (the cookie is not enough)",
            "NotAuthorized",
        ),
        Some(source) => {
            let mut response = next.run(request).await;
            if source == Source::Query
                && let Some(cookie) = auth.cookie()
            {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
    }
}

/// A refusal: Rasa's error body for Rasa's endpoints, `{"error"}` for the others.
fn refusal(rasa: bool, status: StatusCode, message: &str, reason: &'static str) -> Response {
    if rasa {
        crate::rasa::RasaError::new(status, reason, message)
            .help("/user-guide/configuring-http-api/#security-considerations")
            .into_response()
    } else {
        crate::api::error(status, message)
    }
}

#[cfg(test)]
mod tests {
    use super::{is_rasa_path, same};

    #[test]
    fn rasa_paths_are_recognised() {
        assert!(is_rasa_path("/conversations/a/tracker"));
        assert!(is_rasa_path("/conversations/a/tracker/events"));
        assert!(!is_rasa_path("/conversations/a"));
        assert!(!is_rasa_path("/api/conversations/a/events"));
        assert!(!is_rasa_path("/conversations/a/trackers"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abd", b"abc"));
        assert!(!same(b"ab", b"abc"));
    }
}
