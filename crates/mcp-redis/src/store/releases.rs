//! Call slots given back without a round trip of their own.
//!
//! A finished call's slots wait here and ride on the next `load` script this replica sends
//! (any session's), which applies them before anything else; when no load comes within
//! [`FLUSH_DELAY`], one script gives back everything waiting. Under load a call costs one
//! round trip instead of two, and a session's own next call always sees its earlier slots
//! free, because its load applies them first.

use std::sync::Mutex;
use std::time::Duration;

/// How long released slots wait for a load to carry them before they are sent alone.
pub(super) const FLUSH_DELAY: Duration = Duration::from_millis(10);

/// Most releases waiting at once; beyond it (or [`MAX_PENDING_BYTES`]) a release is sent at
/// once.
pub(super) const MAX_PENDING: usize = 512;

/// Most bytes of counter keys waiting at once.
pub(super) const MAX_PENDING_BYTES: usize = 64 * 1024;

/// Releases waiting to be sent: counter key and how many slots.
#[derive(Debug, Default)]
pub(super) struct PendingReleases {
    inner: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    entries: Vec<(String, usize)>,
    bytes: usize,
    flush_scheduled: bool,
}

impl Pending {
    fn drain(&mut self) -> Vec<(String, usize)> {
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }
}

/// What [`PendingReleases::push`] asks the caller to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Queued; a flush is already scheduled (or a load will carry it).
    Queued,
    /// Queued; the caller must run the flush after [`FLUSH_DELAY`].
    ScheduleFlush,
    /// The queue is full: send this release now.
    SendNow(String, usize),
}

impl PendingReleases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `n` slots of counter `key` to give back.
    pub(super) fn push(&self, key: String, n: usize) -> Pushed {
        let mut pending = self.lock();
        if pending.entries.len() >= MAX_PENDING || pending.bytes + key.len() > MAX_PENDING_BYTES {
            return Pushed::SendNow(key, n);
        }
        pending.bytes += key.len();
        pending.entries.push((key, n));
        if pending.flush_scheduled {
            Pushed::Queued
        } else {
            pending.flush_scheduled = true;
            Pushed::ScheduleFlush
        }
    }

    /// Takes everything waiting (for a script to carry).
    pub(super) fn take(&self) -> Vec<(String, usize)> {
        self.lock().drain()
    }

    /// The scheduled flush is running: later releases schedule another. Returns what waits.
    pub(super) fn start_flush(&self) -> Vec<(String, usize)> {
        let mut pending = self.lock();
        pending.flush_scheduled = false;
        pending.drain()
    }

    /// A scheduled flush that will not run (its future was dropped): the next release
    /// schedules one.
    pub(super) fn flush_abandoned(&self) {
        self.lock().flush_scheduled = false;
    }
}

/// Clears the scheduled flag if a flush future is dropped before it starts.
pub(super) struct FlushGuard<'a> {
    pub(super) pending: &'a PendingReleases,
    pub(super) armed: bool,
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pending.flush_abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_release_schedules_a_flush_and_later_ones_wait_with_it() {
        let pending = PendingReleases::default();
        assert_eq!(pending.push("a".into(), 1), Pushed::ScheduleFlush);
        assert_eq!(pending.push("b".into(), 2), Pushed::Queued);
        assert_eq!(pending.take(), vec![("a".into(), 1), ("b".into(), 2)]);
        // Taken by a load: the scheduled flush is still due, so no second one.
        assert_eq!(pending.push("c".into(), 1), Pushed::Queued);
        assert_eq!(pending.start_flush(), vec![("c".into(), 1)]);
        assert_eq!(pending.push("d".into(), 1), Pushed::ScheduleFlush);
    }

    #[test]
    fn a_full_queue_sends_at_once() {
        let pending = PendingReleases::default();
        for i in 0..MAX_PENDING {
            assert_ne!(
                pending.push(format!("k{i}"), 1),
                Pushed::SendNow(format!("k{i}"), 1)
            );
        }
        assert_eq!(pending.push("x".into(), 3), Pushed::SendNow("x".into(), 3));
        pending.take();
        let long = "k".repeat(MAX_PENDING_BYTES + 1);
        assert_eq!(pending.push(long.clone(), 1), Pushed::SendNow(long, 1));
    }

    #[test]
    fn an_abandoned_flush_lets_the_next_release_schedule_one() {
        let pending = PendingReleases::default();
        assert_eq!(pending.push("a".into(), 1), Pushed::ScheduleFlush);
        drop(FlushGuard {
            pending: &pending,
            armed: true,
        });
        assert_eq!(pending.push("b".into(), 1), Pushed::ScheduleFlush);
    }
}
