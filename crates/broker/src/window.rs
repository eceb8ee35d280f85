//! The byte window of an [`crate::AmqpSubscription`]: how many bytes of bodies RabbitMQ may have sent that are
//! not yet acknowledged.
//!
//! AMQP 0-9-1 bounds a consumer in messages only (`basic.qos` `prefetch_count`; RabbitMQ refuses a
//! `prefetch_size`), and a delivery RabbitMQ has sent arrives whatever the client does: lapin buffers it. So the
//! subscription bounds bytes through the message count: it consumes with a prefetch of
//! `max_unacked_bytes / (largest body seen so far, rounded up to a power of two) / queues` (at least 1, at most
//! the configured prefetch; 1 until the first body has arrived). RabbitMQ applies a consumer's prefetch from its
//! `basic.consume` on (re-issuing `basic.qos` changes only consumers started later), so when a body changes the
//! window the subscription cancels its consumers, passes on what was already in transit, waits until the bytes
//! still unacknowledged leave room for the new window, and consumes again with it. One consumer at a time, in
//! queue order: the order of deliveries is kept.
//!
//! What holds: bodies received and not yet acknowledged stay within `max_unacked_bytes`, or one body when a
//! single body is larger. The one exception: bodies larger than the power of two at or above every earlier
//! body can arrive in a window sized for the smaller ones (at most that window's count of them) before it
//! shrinks; bodies of similar sizes never exceed the bound.

use std::collections::BTreeMap;
use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The bytes of bodies received and not yet acknowledged by a subscription: now, and the most ever. Cheap to
/// clone (a shared handle); readable while the subscription runs.
#[derive(Debug, Clone, Default)]
pub struct UnackedBytes {
    inner: Arc<Counter>,
}

#[derive(Debug, Default)]
struct Counter {
    current: AtomicUsize,
    peak: AtomicUsize,
    /// Notified on every release, for a subscription waiting for room.
    released: Notify,
}

impl UnackedBytes {
    /// Bytes of bodies the subscription has taken from the client's buffer and not yet settled (acknowledged,
    /// rejected, or given up with their channel). The window bounds what RabbitMQ sent, which this counts once
    /// the subscription has taken it.
    pub fn current(&self) -> usize {
        self.inner.current.load(Ordering::SeqCst)
    }

    /// The most [`UnackedBytes::current`] has been since the subscription started.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    fn hold(&self, bytes: usize) {
        let now = self.inner.current.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.inner.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.inner.current.fetch_sub(bytes, Ordering::SeqCst);
            // A permit is stored when nobody waits yet: the waiter re-checks the count, no wakeup is lost.
            self.inner.released.notify_one();
        }
    }

    /// Resolves once the count is at most `bytes`.
    pub(crate) async fn at_most(&self, bytes: usize) {
        while self.current() > bytes {
            self.inner.released.notified().await;
        }
    }
}

/// The bodies of one channel that are held (delivered, not yet settled), by delivery tag.
#[derive(Debug, Default)]
pub(crate) struct ChannelHeld {
    counter: UnackedBytes,
    by_tag: Mutex<BTreeMap<u64, usize>>,
}

impl ChannelHeld {
    pub(crate) fn new(counter: UnackedBytes) -> Self {
        Self {
            counter,
            by_tag: Mutex::default(),
        }
    }

    fn tags(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, usize>> {
        // A panic elsewhere cannot leave the map half-updated (each change is one insert or split).
        self.by_tag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the body of delivery `tag`.
    pub(crate) fn hold(&self, tag: u64, bytes: usize) {
        self.tags().insert(tag, bytes);
        self.counter.hold(bytes);
    }

    /// Settles delivery `tag` (an ack or a reject of it alone).
    pub(crate) fn release(&self, tag: u64) {
        let bytes = self.tags().remove(&tag).unwrap_or(0);
        self.counter.release(bytes);
    }

    /// Settles every delivery up to `tag` (a multiple-ack).
    pub(crate) fn release_through(&self, tag: u64) {
        let bytes: usize = {
            let mut tags = self.tags();
            let later = tags.split_off(&(tag.saturating_add(1)));
            let settled = std::mem::replace(&mut *tags, later);
            settled.values().sum()
        };
        self.counter.release(bytes);
    }

    /// Gives up every delivery of the channel (it closed: RabbitMQ redelivers them).
    pub(crate) fn release_all(&self) {
        let bytes: usize = std::mem::take(&mut *self.tags()).values().sum();
        self.counter.release(bytes);
    }
}

/// The prefetch that keeps the bytes of bodies in flight within a bound (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct ByteWindow {
    max_unacked_bytes: Option<NonZeroUsize>,
    prefetch: NonZeroU16,
    queues: usize,
    /// The largest body seen so far, rounded up to a power of two; 0 before the first.
    largest: usize,
}

impl ByteWindow {
    pub(crate) fn new(
        max_unacked_bytes: Option<NonZeroUsize>,
        prefetch: NonZeroU16,
        queues: usize,
    ) -> Self {
        Self {
            max_unacked_bytes,
            prefetch,
            queues: queues.max(1),
            largest: 0,
        }
    }

    /// Takes note of a body's size; `true` when this changes [`ByteWindow::prefetch`].
    pub(crate) fn observe(&mut self, bytes: usize) -> bool {
        let rounded = bytes
            .max(1)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        if rounded <= self.largest {
            return false;
        }
        let before = self.prefetch();
        self.largest = rounded;
        self.prefetch() != before
    }

    /// The prefetch of each consumer for the bodies seen so far.
    pub(crate) fn prefetch(&self) -> NonZeroU16 {
        let Some(limit) = self.max_unacked_bytes else {
            return self.prefetch;
        };
        if self.largest == 0 {
            return NonZeroU16::MIN;
        }
        let fits = limit.get() / self.largest.saturating_mul(self.queues);
        let fits = u16::try_from(fits).unwrap_or(u16::MAX);
        NonZeroU16::new(fits.min(self.prefetch.get())).unwrap_or(NonZeroU16::MIN)
    }

    /// The bytes still unacknowledged at or below which consuming with [`ByteWindow::prefetch`] keeps within
    /// the bound (0 when one body alone exceeds it: then one at a time).
    pub(crate) fn resume_at(&self) -> usize {
        let Some(limit) = self.max_unacked_bytes else {
            return usize::MAX;
        };
        let window = usize::from(self.prefetch().get())
            .saturating_mul(self.largest)
            .saturating_mul(self.queues);
        limit.get().saturating_sub(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(limit: usize, prefetch: u16, queues: usize) -> ByteWindow {
        ByteWindow::new(
            NonZeroUsize::new(limit),
            NonZeroU16::new(prefetch).unwrap_or(NonZeroU16::MIN),
            queues,
        )
    }

    #[test]
    fn the_window_fits_the_largest_body_seen_into_the_bound() {
        let mut w = window(10 << 20, 2000, 1);
        assert_eq!(w.prefetch().get(), 1, "one at a time until a size is known");
        assert!(w.observe(3_000_000), "3 MB rounds up to 4 MiB: 2 fit");
        assert_eq!(w.prefetch().get(), 2);
        assert_eq!(w.resume_at(), 2 << 20);
        assert!(!w.observe(4 << 20), "not larger once rounded: no change");
        assert!(w.observe(20 << 20), "larger than the bound: one at a time");
        assert_eq!((w.prefetch().get(), w.resume_at()), (1, 0));
    }

    #[test]
    fn small_bodies_keep_the_configured_prefetch() {
        let mut w = window(64 << 20, 2000, 1);
        assert!(w.observe(900));
        assert_eq!(w.prefetch().get(), 2000);
        let mut two_queues = window(8 << 20, 2000, 2);
        two_queues.observe(1 << 20);
        assert_eq!(
            two_queues.prefetch().get(),
            4,
            "each queue's consumer gets its share"
        );
    }

    #[test]
    fn without_a_bound_the_prefetch_is_the_configured_one() {
        let mut w = ByteWindow::new(None, NonZeroU16::MIN.saturating_add(99), 1);
        assert_eq!(w.prefetch().get(), 100);
        assert!(!w.observe(1 << 30));
        assert_eq!(w.resume_at(), usize::MAX);
    }

    #[test]
    fn held_bytes_are_released_by_single_multiple_and_lost_channel_settles() {
        let counter = UnackedBytes::default();
        let held = ChannelHeld::new(counter.clone());
        for tag in 1..=4 {
            held.hold(tag, 10);
        }
        held.release(2);
        assert_eq!(counter.current(), 30);
        held.release_through(3);
        assert_eq!(counter.current(), 10);
        held.release(2);
        assert_eq!(counter.current(), 10, "settling twice releases once");
        held.release_all();
        assert_eq!((counter.current(), counter.peak()), (0, 40));
    }
}
