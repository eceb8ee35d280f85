//! `colloquy-retry`: the one place that says how Colloquy waits before trying again.
//!
//! Four named [`Policy`]s, each an exponential backoff with jitter between a first and a longest pause:
//!
//! | policy | first pause | longest | attempts | used by |
//! |---|---|---|---|---|
//! | [`Policy::START_UP`] | 200 ms | 5 s | set by the caller | a database or Redis not reachable yet when a program starts |
//! | [`Policy::RECONNECT`] | 100 ms | 30 s | without end | the AMQP publisher and subscription after a lost connection, and a Nacked publish |
//! | [`Policy::OUTAGE`] | 100 ms | 5 s | without end | a database that fails while the consumer runs, or while `import`/`export` work (which give up after a time) |
//! | [`Policy::RELAY`] | 100 ms | 5 s | without end | the outbox relays (SQL and Redis) after a failed pass |
//!
//! Callers keep the shape of their own loop (what they select on while waiting, what they report), but take
//! every pause from [`Policy::delays`]: no loop has durations of its own. Configuration may move the pauses
//! ([`Policy::with_delays`]) or bound the attempts ([`Policy::with_attempts`]) of a policy; it cannot invent
//! another.
//!
//! This crate does no I/O and never sleeps itself: it sits below every crate that retries (broker, storage,
//! tracker store, consumer, binary) without giving any of them a dependency on another. It depends on `backon`
//! only, for the backoff arithmetic.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// A named retry policy: pauses that double from `min_delay` up to `max_delay`, with jitter, for at most
/// `attempts` attempts (without end when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    name: &'static str,
    min_delay: Duration,
    max_delay: Duration,
    attempts: Option<usize>,
}

impl Policy {
    /// A service not reachable yet when a program starts (a database, Redis): a few attempts, then the
    /// program says it cannot reach it. The number of attempts comes from the caller's configuration.
    pub const START_UP: Self = Self::new(
        "start-up",
        Duration::from_millis(200),
        Duration::from_secs(5),
    );
    /// A lost AMQP connection (publisher and subscription) and a Nacked publish: tried again without end, the
    /// pauses growing to half a minute; the broker configuration may move them.
    pub const RECONNECT: Self = Self::new(
        "reconnect",
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    /// A database that fails while work is in hand (the consumer's batch, an import or export): waited out
    /// without end (the caller may give up after a time), never pausing longer than 5 s so that recovery is
    /// seen soon.
    pub const OUTAGE: Self =
        Self::new("outage", Duration::from_millis(100), Duration::from_secs(5));
    /// A failed pass of an outbox relay: the events stay in the outbox and the next pass tries again.
    pub const RELAY: Self = Self::new("relay", Duration::from_millis(100), Duration::from_secs(5));

    const fn new(name: &'static str, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            name,
            min_delay,
            max_delay,
            attempts: None,
        }
    }

    /// The policy's name, for logs.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The first and the longest pause.
    pub const fn delay_range(&self) -> (Duration, Duration) {
        (self.min_delay, self.max_delay)
    }

    /// The same policy with other pauses (from configuration); the longest is at least the first.
    pub fn with_delays(self, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            min_delay,
            max_delay: max_delay.max(min_delay),
            ..self
        }
    }

    /// The same policy with another longest pause (at least the first).
    pub fn with_max_delay(self, max_delay: Duration) -> Self {
        self.with_delays(self.min_delay, max_delay)
    }

    /// The same policy ending after `attempts` attempts in all (at least 1): [`Policy::delays`] yields one pause
    /// fewer.
    pub const fn with_attempts(self, attempts: usize) -> Self {
        Self {
            attempts: Some(if attempts == 0 { 1 } else { attempts }),
            ..self
        }
    }

    /// The pauses before each further attempt, in order; the iterator ends when the attempts are used up (never,
    /// for a policy without a bound).
    pub fn delays(&self) -> Delays {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter();
        let builder = match self.attempts {
            Some(attempts) => builder.with_max_times(attempts - 1),
            None => builder.without_max_times(),
        };
        Delays {
            backoff: builder.build(),
            max_delay: self.max_delay,
        }
    }
}

/// The pauses of a [`Policy`]. Start again from the first with [`Policy::delays`] after a success.
#[derive(Debug)]
pub struct Delays {
    backoff: ExponentialBackoff,
    max_delay: Duration,
}

impl Delays {
    /// The next pause of a policy without end (the longest once the attempts of a bounded one are used up).
    pub fn next_or_longest(&mut self) -> Duration {
        self.next().unwrap_or(self.max_delay)
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // backon's jitter adds up to one more pause: keep within the policy's longest.
        self.backoff.next().map(|delay| delay.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_policies_yield_one_pause_fewer_than_attempts() {
        assert_eq!(Policy::START_UP.with_attempts(4).delays().count(), 3);
        assert_eq!(Policy::START_UP.with_attempts(0).delays().count(), 0);
    }

    #[test]
    fn pauses_stay_between_the_first_and_the_longest() {
        for policy in [
            Policy::START_UP,
            Policy::RECONNECT,
            Policy::OUTAGE,
            Policy::RELAY,
        ] {
            let (min, max) = policy.delay_range();
            let pauses: Vec<Duration> = policy.delays().take(40).collect();
            assert_eq!(pauses.len(), 40, "{} has no end", policy.name());
            assert!(
                pauses.iter().all(|pause| *pause >= min && *pause <= max),
                "{pauses:?}"
            );
            assert_eq!(
                *pauses.last().unwrap_or(&Duration::ZERO),
                max,
                "{} reaches its longest",
                policy.name()
            );
        }
    }

    #[test]
    fn configuration_moves_the_pauses() {
        let policy = Policy::RECONNECT.with_delays(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(
            policy.delay_range(),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
        assert_eq!(policy.name(), "reconnect");
    }
}
