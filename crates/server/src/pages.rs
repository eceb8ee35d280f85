//! The pages: the inbox, a conversation, the dashboard and the dead letters, served by the binary.
//!
//! Each page is a small HTML shell — a header, empty containers, one JS module — that the browser fills from
//! the JSON API under `/api`. The shells, the stylesheet and the modules are embedded in the binary
//! (`include_str!`), so the server needs no network, CDN, Node or bundler at build or run time; they live in
//! `crates/server/assets/`.
//!
//! Security: every response here carries the Content-Security-Policy of the contract (no inline script or
//! style, nothing from another origin), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! No user content is ever part of a shell: the JS modules put it into the page with `textContent` and DOM
//! APIs only, so a message holding `<script>` or HTML is shown as those characters.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The Content-Security-Policy of every page and asset: scripts, styles and API calls from this origin only,
/// no inline script, no framing, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An embedded static file: its name under `/assets/`, media type and content.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/assets/`, embedded at compile time.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
    Asset {
        name: "common.js",
        media_type: JS,
        body: include_str!("../assets/common.js"),
    },
    Asset {
        name: "charts.js",
        media_type: JS,
        body: include_str!("../assets/charts.js"),
    },
    Asset {
        name: "inbox.js",
        media_type: JS,
        body: include_str!("../assets/inbox.js"),
    },
    Asset {
        name: "conversation.js",
        media_type: JS,
        body: include_str!("../assets/conversation.js"),
    },
    Asset {
        name: "dashboard.js",
        media_type: JS,
        body: include_str!("../assets/dashboard.js"),
    },
    Asset {
        name: "dead-letters.js",
        media_type: JS,
        body: include_str!("../assets/dead-letters.js"),
    },
    Asset {
        name: "favicon.svg",
        media_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// The four pages: which tab is current, the title, the body's containers (static markup, no user content)
/// and the module that fills them.
#[derive(Clone, Copy)]
enum Page {
    Inbox,
    Conversation,
    Dashboard,
    DeadLetters,
}

impl Page {
    fn title(self) -> &'static str {
        match self {
            Page::Inbox => "Inbox",
            Page::Conversation => "Conversation",
            Page::Dashboard => "Dashboard",
            Page::DeadLetters => "Dead letters",
        }
    }

    fn module(self) -> &'static str {
        match self {
            Page::Inbox => "inbox.js",
            Page::Conversation => "conversation.js",
            Page::Dashboard => "dashboard.js",
            Page::DeadLetters => "dead-letters.js",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Page::Inbox => include_str!("../assets/inbox.html"),
            Page::Conversation => include_str!("../assets/conversation.html"),
            Page::Dashboard => include_str!("../assets/dashboard.html"),
            Page::DeadLetters => include_str!("../assets/dead-letters.html"),
        }
    }

    /// The whole HTML document.
    fn html(self) -> String {
        let tab = |page: Page, href: &str| {
            let current = if std::mem::discriminant(&page) == std::mem::discriminant(&self) {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!(
                "<a class=\"tab\" href=\"{href}\"{current}>{}</a>",
                page.title()
            )
        };
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title} · Colloquy</title>\n\
             <link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\n\
             <link rel=\"stylesheet\" href=\"/assets/app.css\">\n\
             <script type=\"module\" src=\"/assets/{module}\"></script>\n</head>\n<body>\n\
             <a class=\"skip\" href=\"#main\">Skip to content</a>\n\
             <header class=\"top\"><nav aria-label=\"Pages\">\
             <a class=\"brand\" href=\"/\">Colloquy</a>{inbox}{dashboard}{dead_letters}\
             <span class=\"server-info\" id=\"server-info\"></span></nav></header>\n\
             <main id=\"main\">\n{body}</main>\n</body>\n</html>\n",
            title = self.title(),
            module = self.module(),
            inbox = tab(Page::Inbox, "/"),
            dashboard = tab(Page::Dashboard, "/dashboard"),
            dead_letters = tab(Page::DeadLetters, "/dead-letters"),
            body = self.body(),
        )
    }
}

/// The routes of the pages and their assets: `/`, `/conversations/{sender_id}`, `/dashboard`,
/// `/dead-letters` and `/assets/{file}`. Generic over the server's state (they need none), so the server's
/// router merges them as they are; its auth middleware wraps them like every other route.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|| async { page(Page::Inbox) }))
        .route(
            "/conversations/{sender_id}",
            get(|_: Path<String>| async { page(Page::Conversation) }),
        )
        .route("/dashboard", get(|| async { page(Page::Dashboard) }))
        .route("/dead-letters", get(|| async { page(Page::DeadLetters) }))
        .route("/assets/{file}", get(asset))
}

fn page(page: Page) -> Response {
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page.html().into_bytes(),
    )
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => respond(
            StatusCode::OK,
            asset.media_type,
            asset.body.as_bytes().to_vec(),
        ),
        None => respond(
            StatusCode::NOT_FOUND,
            "application/json",
            br#"{"error": "no such asset"}"#.to_vec(),
        ),
    }
}

/// A response with the security headers every page and asset carries. The assets are small and change with
/// the binary: browsers revalidate them (`no-cache`) rather than keep a stale copy after an upgrade.
fn respond(status: StatusCode, media_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_hold_no_inline_script_or_style() {
        for page in [
            Page::Inbox,
            Page::Conversation,
            Page::Dashboard,
            Page::DeadLetters,
        ] {
            let html = page.html();
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("style="), "{html}");
            let inline_handler = html.split_whitespace().any(|word| {
                word.starts_with("on") && word.contains('=') && !word.starts_with("one")
            });
            assert!(!inline_handler, "no inline event handler: {html}");
            assert!(html.contains(&format!("src=\"/assets/{}\"", page.module())));
        }
    }

    #[test]
    fn every_module_a_page_imports_is_served() {
        for asset in ASSETS {
            for line in asset.body.lines() {
                if let Some(rest) = line.split(" from \"./").nth(1) {
                    let imported = rest.split('"').next().unwrap_or_default();
                    assert!(
                        ASSETS.iter().any(|other| other.name == imported),
                        "{} imports {imported}, which is not embedded",
                        asset.name
                    );
                }
            }
        }
    }

    #[test]
    fn no_asset_writes_html_from_strings() {
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(
                    !asset.body.contains(forbidden),
                    "{} uses {forbidden}",
                    asset.name
                );
            }
        }
    }
}
