//! A background task the server starts and stops with itself (the schedule runner, the guard
//! evaluator): a stop signal the task watches between two units of work, and a bounded wait
//! for it to finish. It must not know what the task does.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`Stoppable::stop`] waits before it aborts the task.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// A running background task and its stop signal.
pub struct Stoppable {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Stoppable {
    /// Spawns `task`, handing it the receiver that turns `true` when it is asked to stop.
    pub fn spawn<F, Fut>(name: &'static str, task: F) -> Stoppable
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Stoppable {
            name,
            stop,
            task: tokio::spawn(task(stopped)),
        }
    }

    /// Asks the task to stop (it does so between two units of work, never in the middle of a
    /// write) and waits for it; aborts it after five seconds.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_WITHIN, &mut task).await.is_err() {
            tracing::warn!(task = self.name, "did not stop within 5 s; aborted");
            task.abort();
        }
    }
}
