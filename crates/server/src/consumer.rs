//! `/api/consumer`: the consumer's live figures, scraped from its Prometheus `/metrics` (`--consumer-metrics`).
//!
//! Each answer scrapes once; the rate is the difference of `events_stored_total` between this scrape and the
//! previous one (at least [`MIN_SPAN`] apart) over their time apart, so the first answer has no rate yet.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The shortest span a rate is computed over (closer scrapes keep the previous rate).
const MIN_SPAN: Duration = Duration::from_millis(500);
/// The largest `/metrics` answer read.
const MAX_BYTES: u64 = 1 << 20;

/// Scrapes one consumer's `/metrics`.
#[derive(Debug)]
pub(crate) struct Scraper {
    url: Option<String>,
    previous: Mutex<Previous>,
}

#[derive(Debug, Default)]
struct Previous {
    sample: Option<(Instant, f64)>,
    rate: Option<f64>,
}

/// What one scrape found.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    events_total: Option<f64>,
    active: Option<f64>,
}

impl Scraper {
    pub(crate) fn new(url: Option<String>) -> Self {
        Self {
            url,
            previous: Mutex::default(),
        }
    }

    pub(crate) fn configured(&self) -> bool {
        self.url.is_some()
    }

    /// `/api/consumer`'s answer.
    pub(crate) async fn scrape(&self) -> Value {
        let Some(url) = &self.url else {
            return json!({ "available": false });
        };
        let text = match tokio::time::timeout(TIMEOUT, fetch(url)).await {
            Ok(Ok(text)) => text,
            Ok(Err(error)) => return json!({ "available": false, "error": error }),
            Err(_) => {
                return json!({ "available": false, "error": format!("no answer within {} s", TIMEOUT.as_secs()) });
            }
        };
        let sample = parse(&text);
        let now = Instant::now();
        let mut previous = self.previous.lock().await;
        if let (Some((then, before)), Some(total)) = (previous.sample, sample.events_total) {
            let span = now.duration_since(then);
            if span >= MIN_SPAN {
                previous.rate = Some(((total - before) / span.as_secs_f64()).max(0.0));
                previous.sample = Some((now, total));
            }
        } else {
            previous.sample = sample.events_total.map(|total| (now, total));
        }
        let role = sample
            .active
            .map(|active| if active >= 1.0 { "active" } else { "standby" });
        json!({
            "available": true,
            "role": role,
            "events_per_second": previous.rate,
            "events_total": sample.events_total.map(|total| total as u64),
        })
    }
}

/// GETs `url` (plain `http://`) and returns the body.
async fn fetch(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("bad URL: {error}"))?;
    if parsed.scheme() != "http" {
        return Err("only http:// is supported".into());
    }
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let path = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("cannot send: {error}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_BYTES)
        .read_to_end(&mut answer)
        .await
        .map_err(|error| format!("cannot read: {error}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("not an HTTP answer")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("the consumer answered {status}"));
    }
    Ok(body.to_owned())
}

/// Reads the figures out of Prometheus' text format.
fn parse(text: &str) -> Sample {
    let mut sample = Sample::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name.split('{').next().unwrap_or(name).trim();
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if name.ends_with("events_stored_total") {
            sample.events_total = Some(sample.events_total.unwrap_or(0.0) + value);
        } else if name.ends_with("consumer_active") {
            sample.active = Some(value);
        }
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::{Sample, parse};

    #[test]
    fn the_figures_are_read() {
        let text = "# HELP events_stored Events\n# TYPE events_stored counter\nevents_stored_total 42\n\
                    consumer_active 1\nbatches_total 3\n";
        assert_eq!(
            parse(text),
            Sample {
                events_total: Some(42.0),
                active: Some(1.0)
            }
        );
    }
}
