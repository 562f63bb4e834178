//! What the task tests of this crate share: a [`TaskRuntime`] (the crate has no async runtime
//! of its own) and an [`Outbound`] that keeps what it is sent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Message;
use crate::service::{BoxFuture, Outbound, SendError};
use crate::task::TaskRuntime;

/// Runs each task on a thread of its own; a short sleep on a thread too, a long one never ends.
#[derive(Debug)]
pub(super) struct Threads;

impl TaskRuntime for Threads {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        std::thread::spawn(move || futures::executor::block_on(task));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        if duration > Duration::from_secs(10) {
            return Box::pin(std::future::pending());
        }
        let (tx, rx) = futures_channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            let _ = tx.send(());
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// An outbound that keeps what it is sent, as JSON.
#[derive(Default)]
pub(super) struct Kept(pub(super) Mutex<Vec<Value>>);

impl Outbound for Kept {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        self.0
            .lock()
            .unwrap()
            .push(serde_json::to_value(message).unwrap());
        Box::pin(async { Ok(()) })
    }
}

impl Kept {
    /// Waits (at most 5 s) until a kept message satisfies `pred`; returns it.
    pub(super) fn wait(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(m) = self.0.lock().unwrap().iter().find(|m| pred(m)) {
                return m.clone();
            }
            assert!(Instant::now() < deadline, "{:?}", self.0.lock().unwrap());
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
