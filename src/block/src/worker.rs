//! The background workers of the block store.
//!
//! - [`ResyncWorker`]: takes the due blocks off the resync queue, a few
//!   distinct blocks at a time, and checks them concurrently
//!   (`BlockManager::check`); a failed check is retried with an
//!   exponential wait.
//! - [`ScanWorker`]: counts the block files at start-up (queueing files
//!   with no reference state: orphans left by a crash), queues every block
//!   with a reference state after each layout change, and on
//!   `garage repair blocks` queues every stored file and every referenced
//!   block.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use garage_util::background::{Worker, WorkerState};
use garage_util::data::Hash;

use crate::manager::BlockManager;
use crate::resync::Next;

/// Longest idle sleep of the resync worker (a manual clock or a queue entry
/// written by another process is noticed within this).
const MAX_IDLE: Duration = Duration::from_secs(10);

/// Blocks checked concurrently by the resync worker.
const CHECKS_AT_ONCE: usize = 4;

/// Reference states queued per step of a walk.
const RC_PAGE: usize = 1000;

/// Checks the blocks of the resync queue.
pub(crate) struct ResyncWorker {
    m: Arc<BlockManager>,
    next_due: Option<u64>,
    checked: u64,
    failed: u64,
}

impl ResyncWorker {
    pub(crate) fn new(m: Arc<BlockManager>) -> Self {
        Self {
            m,
            next_due: None,
            checked: 0,
            failed: 0,
        }
    }
}

#[async_trait]
impl Worker for ResyncWorker {
    fn name(&self) -> String {
        "block resync".into()
    }

    fn status(&self) -> String {
        let s = self.m.stats();
        format!(
            "queue: {}, failing blocks: {}, checked: {}, failed checks: {}",
            s.resync_queue_len, s.resync_errors, self.checked, self.failed
        )
    }

    async fn work(
        &mut self,
        _must_exit: &mut watch::Receiver<bool>,
    ) -> Result<WorkerState, String> {
        let now = self.m.clock.now_ms();
        let q = &self.m.resync;
        let batch = q
            .due_batch(now, CHECKS_AT_ONCE)
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            self.next_due = match q.next(now).map_err(|e| e.to_string())? {
                Next::Later(t) => Some(t),
                Next::Due(_) => Some(now),
                Next::Empty => None,
            };
            return Ok(WorkerState::Idle);
        }
        let m = &self.m;
        let results =
            futures::future::join_all(batch.iter().map(|d| async move { m.check(&d.hash).await }))
                .await;
        for (due, r) in batch.iter().zip(results) {
            self.checked += 1;
            m.metrics.resync_checks.inc();
            match r {
                Ok(()) => q.clear_error(&due.hash).map_err(|e| e.to_string())?,
                Err(e) => {
                    self.failed += 1;
                    m.metrics.resync_errors.inc();
                    let retry = q.record_error(&due.hash, now).map_err(|e| e.to_string())?;
                    tracing::warn!(block = %due.hash, error = %e, retry_in_ms = retry - now, "block resync check failed");
                    q.put(retry, &due.hash).map_err(|e| e.to_string())?;
                }
            }
            q.done(due).map_err(|e| e.to_string())?;
        }
        Ok(WorkerState::Busy)
    }

    async fn wait_for_work(&mut self) {
        let now = self.m.clock.now_ms();
        let wait = match self.next_due {
            Some(t) => Duration::from_millis(t.saturating_sub(now)).min(MAX_IDLE),
            None => MAX_IDLE,
        };
        tokio::select! {
            _ = self.m.resync.notify.notified() => (),
            _ = tokio::time::sleep(wait) => (),
        }
    }
}

/// Where the scan worker is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Counting the files of this first hash byte (start-up).
    Count(u16),
    /// Queueing every file of this first hash byte (repair).
    Files(u16),
    /// Queueing every reference state after this key.
    Rcs(Option<Vec<u8>>),
    /// Nothing to do.
    Idle,
}

/// Counts and walks the local blocks.
pub(crate) struct ScanWorker {
    m: Arc<BlockManager>,
    layout: watch::Receiver<u64>,
    phase: Phase,
    /// A walk of the reference states is wanted after the current phase.
    rcs_pending: bool,
    queued: u64,
}

impl ScanWorker {
    pub(crate) fn new(m: Arc<BlockManager>) -> Self {
        let layout = m.system.layout_watch();
        Self {
            m,
            layout,
            phase: Phase::Count(0),
            rcs_pending: false,
            queued: 0,
        }
    }

    /// Lists the files of one first byte under its lock; counts them when
    /// `count`, queues those without reference state (or all, when not
    /// `count`).
    async fn scan_prefix(&mut self, p: u8, count: bool) -> Result<(), String> {
        let m = &self.m;
        let files = {
            let _g = m.locks[usize::from(p)].lock().await;
            let store = m.store.clone();
            let files = tokio::task::spawn_blocking(move || store.scan_prefix(p))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if count && !m.counts.scanned[usize::from(p)].load(Ordering::Acquire) {
                let bytes: u64 = files.iter().map(|(_, n)| *n).sum();
                m.counts.add(files.len() as u64, bytes);
                m.counts.scanned[usize::from(p)].store(true, Ordering::Release);
            }
            files
        };
        let now = m.clock.now_ms();
        for (h, _) in files {
            if count {
                if m.rc.get(&h).map_err(|e| e.to_string())?.is_none() {
                    m.mark_if_unreferenced(&h).map_err(|e| e.to_string())?;
                }
            } else {
                m.resync.put(now, &h).map_err(|e| e.to_string())?;
                self.queued += 1;
            }
        }
        Ok(())
    }

    /// Queues one page of reference states; returns the last key seen.
    fn queue_rcs(&mut self, after: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        let lo = match after {
            Some(k) => std::ops::Bound::Excluded(k),
            None => std::ops::Bound::Unbounded,
        };
        let rows = self
            .m
            .rc
            .tree
            .range(lo, std::ops::Bound::Unbounded, false, Some(RC_PAGE))
            .map_err(|e| e.to_string())?;
        let now = self.m.clock.now_ms();
        let n = rows.len();
        let mut last = None;
        for (k, _) in rows {
            if let Some(h) = Hash::try_from_slice(&k) {
                self.m.resync.put(now, &h).map_err(|e| e.to_string())?;
                self.queued += 1;
            }
            last = Some(k);
        }
        Ok(if n < RC_PAGE { None } else { last })
    }

    fn after_phase(&mut self) -> Phase {
        if self.m.repair_requested.swap(false, Ordering::AcqRel) {
            self.rcs_pending = true;
            return Phase::Files(0);
        }
        if std::mem::take(&mut self.rcs_pending) {
            return Phase::Rcs(None);
        }
        Phase::Idle
    }
}

#[async_trait]
impl Worker for ScanWorker {
    fn name(&self) -> String {
        "block scan".into()
    }

    fn status(&self) -> String {
        let s = self.m.stats();
        let phase = match &self.phase {
            Phase::Count(p) => format!("counting files ({p}/256)"),
            Phase::Files(p) => format!("queueing files ({p}/256)"),
            Phase::Rcs(_) => "queueing referenced blocks".into(),
            Phase::Idle => "idle".into(),
        };
        format!(
            "{phase}; {} blocks, {} bytes; queued: {}",
            s.blocks, s.bytes, self.queued
        )
    }

    async fn work(
        &mut self,
        _must_exit: &mut watch::Receiver<bool>,
    ) -> Result<WorkerState, String> {
        if self.layout.has_changed().unwrap_or(false) {
            self.layout.borrow_and_update();
            self.rcs_pending = true;
        }
        match self.phase.clone() {
            Phase::Count(p) => {
                self.scan_prefix(p as u8, true).await?;
                self.phase = if p >= 255 {
                    self.after_phase()
                } else {
                    Phase::Count(p + 1)
                };
            }
            Phase::Files(p) => {
                self.scan_prefix(p as u8, false).await?;
                self.phase = if p >= 255 {
                    self.after_phase()
                } else {
                    Phase::Files(p + 1)
                };
            }
            Phase::Rcs(after) => {
                self.phase = match self.queue_rcs(after.as_deref())? {
                    Some(last) => Phase::Rcs(Some(last)),
                    None => self.after_phase(),
                };
            }
            Phase::Idle => {
                self.phase = self.after_phase();
                if self.phase == Phase::Idle {
                    return Ok(WorkerState::Idle);
                }
            }
        }
        Ok(WorkerState::Busy)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = self.m.repair_notify.notified() => (),
            _ = self.layout.changed() => {
                self.rcs_pending = true;
            }
        }
    }
}
