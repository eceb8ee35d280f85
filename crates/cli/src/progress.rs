//! Progress for people and for logs: an `indicatif` bar with rate and ETA when standard error is a terminal,
//! a log line every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;

/// How often the log form reports.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// What the bar measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes of input read (the total is the file size); events are shown in the message.
    Bytes,
    /// Events.
    Events,
    /// Conversations (the position); events are shown in the message.
    Conversations,
}

/// A progress display of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    log: bool,
    unit: Unit,
    verb: &'static str,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    events: u64,
    position: u64,
    last_log: Option<Instant>,
}

impl Progress {
    /// A display for `verb` ("Imported", "Exported"); `total` in `unit`s when known.
    pub fn new(mode: ProgressMode, verb: &'static str, unit: Unit, total: Option<u64>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, log) = match mode {
            ProgressMode::Auto if terminal => (true, false),
            ProgressMode::Auto | ProgressMode::Log => (false, true),
            ProgressMode::Bar => (true, false),
            ProgressMode::None => (false, false),
        };
        let bar = bar.then(|| {
            let bar = match total {
                Some(total) => ProgressBar::with_draw_target(
                    Some(total),
                    ProgressDrawTarget::stderr_with_hz(5),
                ),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5)),
            };
            let template = match (unit, total.is_some()) {
                (Unit::Bytes, true) => {
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}"
                }
                (Unit::Conversations, true) => {
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} conversations (ETA {eta}) {msg}"
                }
                (Unit::Events, true) => {
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({per_sec}, ETA {eta}) {msg}"
                }
                (_, false) => "{spinner} [{elapsed_precise}] {msg}",
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            log,
            unit,
            verb,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Records `events` more events done; `position` is the new position in the bar's unit (bytes read),
    /// ignored for [`Unit::Events`].
    pub fn advance(&self, events: u64, position: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.events += events;
        state.position = match self.unit {
            Unit::Bytes | Unit::Conversations => position,
            Unit::Events => state.events,
        };
        if let Some(bar) = &self.bar {
            bar.set_position(state.position);
            let rate = rate(state.events, self.started.elapsed());
            bar.set_message(format!("{} events, {rate:.0} events/s", state.events));
        }
        if self.log {
            let now = Instant::now();
            let due = state
                .last_log
                .is_none_or(|last| now.duration_since(last) >= LOG_EVERY);
            if due && state.last_log.is_some() {
                let rate = rate(state.events, self.started.elapsed());
                tracing::info!(
                    events = state.events,
                    events_per_second = rate as u64,
                    "{} events so far.",
                    self.verb
                );
            }
            if due {
                state.last_log = Some(now);
            }
        }
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar (call before printing the final summary).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Events per second.
pub fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-3)
}
