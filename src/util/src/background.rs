//! Background work: one [`Worker`] trait and one [`BackgroundRunner`].
//!
//! Every long-running loop of the node is a worker: the runner calls `work`
//! while it reports `Busy`, waits with `wait_for_work` when it reports
//! `Idle`, backs off exponentially on errors, and stops every worker when
//! the shared shutdown signal fires.
//!
//! Blocking work (database transactions) goes through [`spawn_blocking`],
//! which a single-threaded simulation switches to inline execution with
//! [`set_inline_blocking`]: a thread pool would make the interleaving of
//! tasks depend on the OS scheduler, and a seed would not replay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

thread_local! {
    /// Whether [`spawn_blocking`] runs closures inline on this thread.
    static INLINE_BLOCKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes [`spawn_blocking`] run closures inline on the calling thread (for
/// deterministic simulations on a current-thread runtime), or not.
pub fn set_inline_blocking(inline: bool) {
    INLINE_BLOCKING.with(|c| c.set(inline));
}

/// Runs blocking work off the async threads (tokio's blocking pool), or
/// inline when [`set_inline_blocking`] asked for it on this thread. An
/// `Err` says the closure panicked or its task was cancelled.
pub async fn spawn_blocking<F, R>(f: F) -> Result<R, String>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if INLINE_BLOCKING.with(|c| c.get()) {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("blocking task failed: {e}"))
}

/// What a worker reports after one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// More work is ready: call `work` again at once.
    Busy,
    /// Nothing to do: wait for `wait_for_work`.
    Idle,
    /// The worker is finished for good.
    Done,
}

/// A long-running background task.
#[async_trait]
pub trait Worker: Send {
    /// A short name for logs and status.
    fn name(&self) -> String;
    /// A free-form status line.
    fn status(&self) -> String {
        String::new()
    }
    /// Does one bounded unit of work.
    async fn work(&mut self, must_exit: &mut watch::Receiver<bool>) -> Result<WorkerState, String>;
    /// Waits until there may be work again (a timer, a notification).
    async fn wait_for_work(&mut self);
}

/// What `garage worker list` shows of one worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    /// The worker's name.
    pub name: String,
    /// `busy`, `idle`, `error` (backing off) or `done`.
    pub state: String,
    /// The worker's own status line (queue lengths, progress).
    pub status: String,
    /// Failed steps so far.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// Runs workers until shutdown.
pub struct BackgroundRunner {
    stop: watch::Receiver<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    infos: Arc<Mutex<Vec<WorkerInfo>>>,
}

impl BackgroundRunner {
    /// A runner whose workers stop when `stop` becomes true.
    pub fn new(stop: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Self {
            stop,
            handles: Mutex::new(Vec::new()),
            infos: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The state of every worker started so far.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.infos.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a worker.
    pub fn spawn_worker<W: Worker + 'static>(&self, mut w: W) {
        let mut stop = self.stop.clone();
        let infos = self.infos.clone();
        let idx = {
            let mut l = infos.lock().unwrap_or_else(|e| e.into_inner());
            l.push(WorkerInfo {
                name: w.name(),
                state: "idle".into(),
                status: w.status(),
                errors: 0,
                last_error: None,
            });
            l.len() - 1
        };
        // A busy worker's status is refreshed at most once a second (a
        // status line may count a queue).
        let mut last_busy: Option<std::time::Instant> = None;
        let mut report = move |w: &W, state: &str, error: Option<String>| {
            if state == "busy" {
                if last_busy.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                    return;
                }
                last_busy = Some(std::time::Instant::now());
            } else {
                last_busy = None;
            }
            let status = w.status();
            let mut l = infos.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = l.get_mut(idx) {
                i.state = state.to_string();
                i.status = status;
                if let Some(e) = error {
                    i.errors += 1;
                    i.last_error = Some(e);
                }
            }
        };
        let h = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                if *stop.borrow() {
                    break;
                }
                let step = w.work(&mut stop).await;
                match &step {
                    Ok(WorkerState::Busy) => report(&w, "busy", None),
                    Ok(WorkerState::Idle) => report(&w, "idle", None),
                    Ok(WorkerState::Done) => report(&w, "done", None),
                    Err(e) => report(&w, "error", Some(e.clone())),
                }
                match step {
                    Ok(WorkerState::Busy) => {
                        backoff = Duration::from_millis(100);
                        tokio::task::yield_now().await;
                    }
                    Ok(WorkerState::Idle) => {
                        backoff = Duration::from_millis(100);
                        tokio::select! {
                            biased;
                            _ = stop.changed() => (),
                            _ = w.wait_for_work() => (),
                        }
                    }
                    Ok(WorkerState::Done) => break,
                    Err(e) => {
                        tracing::warn!(worker = %w.name(), error = %e, "worker step failed");
                        tokio::select! {
                            biased;
                            _ = stop.changed() => (),
                            _ = tokio::time::sleep(backoff) => (),
                        }
                        backoff = std::cmp::min(backoff * 2, Duration::from_secs(60));
                    }
                }
            }
            tracing::debug!(worker = %w.name(), "worker stopped");
        });
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h);
    }

    /// Waits for every worker to stop, at most `deadline`.
    pub async fn join(&self, deadline: Duration) {
        let handles: Vec<_> =
            std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("some workers did not stop in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counter(Arc<AtomicU32>);

    #[async_trait]
    impl Worker for Counter {
        fn name(&self) -> String {
            "counter".into()
        }
        async fn work(&mut self, _: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            if n == 2 {
                return Err("boom".into());
            }
            Ok(if n < 5 {
                WorkerState::Busy
            } else {
                WorkerState::Idle
            })
        }
        async fn wait_for_work(&mut self) {
            tokio::time::sleep(Duration::from_secs(3600)).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_until_idle_then_stops() {
        let (tx, rx) = watch::channel(false);
        let bg = BackgroundRunner::new(rx);
        let n = Arc::new(AtomicU32::new(0));
        bg.spawn_worker(Counter(n.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(n.load(Ordering::SeqCst), 6);
        tx.send(true).expect("send");
        bg.join(Duration::from_secs(8)).await;
    }
}
