//! A [`TaskRuntime`] for the task tests of this crate, which has no async runtime of its own.

use std::time::Duration;

use crate::service::BoxFuture;
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
