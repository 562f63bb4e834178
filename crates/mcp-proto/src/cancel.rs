//! A runtime-agnostic cancellation signal.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

/// A cloneable flag that a transport or the server core raises to stop a running handler.
///
/// Handlers may poll [`CancellationSignal::is_cancelled`] or await
/// [`CancellationSignal::cancelled`]; the server core also drops a handler's future when it is
/// cancelled, so a handler that never checks still stops at its next `.await`.
#[derive(Debug, Clone, Default)]
pub struct CancellationSignal {
    inner: Arc<Inner>,
}

impl CancellationSignal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal and wakes every waiter.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let wakers = match self.inner.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether the signal has fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once the signal fires.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled {
            signal: self.clone(),
        }
    }
}

/// Future returned by [`CancellationSignal::cancelled`].
#[derive(Debug)]
pub struct Cancelled {
    signal: CancellationSignal,
}

impl Future for Cancelled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_cancelled() {
            return Poll::Ready(());
        }
        if let Ok(mut wakers) = self.signal.inner.wakers.lock()
            && !wakers.iter().any(|w| w.will_wake(cx.waker()))
        {
            wakers.push(cx.waker().clone());
        }
        // Re-check: cancel() may have run between the first check and the registration.
        if self.signal.is_cancelled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Runs `fut` until it completes or `signal` fires; `None` when cancelled.
pub async fn run_until_cancelled<F: Future>(
    signal: &CancellationSignal,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cancelled = std::pin::pin!(signal.cancelled());
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_stops_a_pending_future() {
        let signal = CancellationSignal::new();
        let s2 = signal.clone();
        let out = futures::executor::block_on(async move {
            let never = std::future::pending::<u8>();
            let runner = run_until_cancelled(&s2, never);
            let canceller = async {
                signal.cancel();
            };
            let (out, ()) = futures::join!(runner, canceller);
            out
        });
        assert_eq!(out, None);
    }

    #[test]
    fn completed_future_wins() {
        let signal = CancellationSignal::new();
        let out = futures::executor::block_on(run_until_cancelled(&signal, async { 7 }));
        assert_eq!(out, Some(7));
        assert!(!signal.is_cancelled());
    }
}
