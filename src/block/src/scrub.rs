//! The scrub: every stored block file is read back and checked against its
//! hash, one first hash byte at a time, every [`SCRUB_INTERVAL_MS`] (and on
//! `garage repair scrub`). A file that does not match is moved aside and
//! the block queued for a resync check, which fetches a good copy.
//!
//! The progress survives restarts, in tree `block_scrub_state` under key
//! `state`: `next prefix (u16 BE; 256 = not running) ‖ last finished (ms,
//! u64 BE)`. A fresh node counts as scrubbed at its first start. After
//! each prefix the worker sleeps [`TRANQUILITY`] times as long as the
//! prefix took, so a scrub uses at most a third of the disk's time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

use garage_db::Tree;
use garage_util::background::{Worker, WorkerState};

use crate::manager::BlockManager;
use crate::store::LocalRead;

/// Name of the state tree.
pub(crate) const SCRUB_TREE: &str = "block_scrub_state";
const STATE_KEY: &[u8] = b"state";
/// Time between the end of a scrub and the start of the next one.
pub(crate) const SCRUB_INTERVAL_MS: u64 = 30 * 24 * 3600 * 1000;
/// Sleep after each prefix, as a multiple of the time it took.
const TRANQUILITY: u32 = 2;
/// `next prefix` when no scrub is running.
const NOT_RUNNING: u16 = 256;

/// The persisted progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScrubState {
    /// First hash byte to scrub next (`NOT_RUNNING`: idle).
    pub(crate) next: u16,
    /// When the last scrub finished (ms).
    pub(crate) last_finished: u64,
}

impl ScrubState {
    fn encode(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..2].copy_from_slice(&self.next.to_be_bytes());
        b[2..].copy_from_slice(&self.last_finished.to_be_bytes());
        b
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            next: u16::from_be_bytes(<[u8; 2]>::try_from(b.get(..2)?).ok()?).min(NOT_RUNNING),
            last_finished: u64::from_be_bytes(<[u8; 8]>::try_from(b.get(2..10)?).ok()?),
        })
    }
}

/// Reads and writes the persisted progress.
#[derive(Clone)]
pub(crate) struct ScrubStore {
    tree: Tree,
}

impl ScrubStore {
    pub(crate) fn new(db: &garage_db::Db) -> Result<Self, garage_db::Error> {
        Ok(Self {
            tree: db.open_tree(SCRUB_TREE)?,
        })
    }
    /// The state; a node without one is recorded as scrubbed at `now`.
    pub(crate) fn load(&self, now: u64) -> Result<ScrubState, garage_db::Error> {
        if let Some(s) = self
            .tree
            .get(STATE_KEY)?
            .and_then(|b| ScrubState::decode(&b))
        {
            return Ok(s);
        }
        let s = ScrubState {
            next: NOT_RUNNING,
            last_finished: now,
        };
        self.save(s)?;
        Ok(s)
    }
    pub(crate) fn save(&self, s: ScrubState) -> Result<(), garage_db::Error> {
        self.tree.insert(STATE_KEY, &s.encode())
    }
}

/// Verifies every stored block periodically.
pub(crate) struct ScrubWorker {
    m: Arc<BlockManager>,
    store: ScrubStore,
    state: Option<ScrubState>,
    /// Periodic scrubs are off (`disable_scrub`); requested ones still run.
    disabled: bool,
    checked: u64,
    corrupt: u64,
}

impl ScrubWorker {
    pub(crate) fn new(m: Arc<BlockManager>, store: ScrubStore, disabled: bool) -> Self {
        Self {
            m,
            store,
            state: None,
            disabled,
            checked: 0,
            corrupt: 0,
        }
    }

    /// Checks every file of one first hash byte.
    async fn scrub_prefix(&mut self, p: u8) -> Result<(), String> {
        let store = self.m.store.clone();
        let files = tokio::task::spawn_blocking(move || store.scan_prefix(p))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        for (h, _) in files {
            self.checked += 1;
            if let LocalRead::Corrupt(_) = self.m.read_local(&h).await.map_err(|e| e.to_string())? {
                self.corrupt += 1;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Worker for ScrubWorker {
    fn name(&self) -> String {
        "block scrub".into()
    }

    fn status(&self) -> String {
        let phase = match self.state {
            Some(s) if s.next < NOT_RUNNING => format!("scrubbing ({}/256)", s.next),
            Some(_) if self.disabled => "periodic scrub disabled".into(),
            Some(s) => {
                let next = s.last_finished.saturating_add(SCRUB_INTERVAL_MS);
                let now = self.m.clock.now_ms();
                format!("next scrub in {}h", next.saturating_sub(now) / 3_600_000)
            }
            None => "starting".into(),
        };
        format!(
            "{phase}; files checked: {}, corrupt: {}",
            self.checked, self.corrupt
        )
    }

    async fn work(
        &mut self,
        _must_exit: &mut watch::Receiver<bool>,
    ) -> Result<WorkerState, String> {
        let now = self.m.clock.now_ms();
        let mut s = match self.state {
            Some(s) => s,
            None => self.store.load(now).map_err(|e| e.to_string())?,
        };
        let requested = self.m.scrub_requested.swap(false, Ordering::AcqRel);
        if s.next >= NOT_RUNNING {
            let due = !self.disabled && now >= s.last_finished.saturating_add(SCRUB_INTERVAL_MS);
            if !(requested || due) {
                self.state = Some(s);
                return Ok(WorkerState::Idle);
            }
            tracing::info!("block scrub started");
            s.next = 0;
        }
        let started = Instant::now();
        self.scrub_prefix(s.next as u8).await?;
        s.next += 1;
        if s.next >= NOT_RUNNING {
            s.last_finished = self.m.clock.now_ms();
            tracing::info!(
                checked = self.checked,
                corrupt = self.corrupt,
                "block scrub finished"
            );
        }
        self.store.save(s).map_err(|e| e.to_string())?;
        self.state = Some(s);
        let rest = started.elapsed() * TRANQUILITY;
        tokio::time::sleep(rest.min(Duration::from_secs(10))).await;
        Ok(WorkerState::Busy)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = self.m.scrub_notify.notified() => (),
            _ = tokio::time::sleep(Duration::from_secs(600)) => (),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_starts_scrubbed() {
        let db = garage_db::Db::memory();
        let st = ScrubStore::new(&db).expect("store");
        let s = st.load(1234).expect("load");
        assert_eq!(
            s,
            ScrubState {
                next: NOT_RUNNING,
                last_finished: 1234
            }
        );
        let t = ScrubState {
            next: 17,
            last_finished: 99,
        };
        st.save(t).expect("save");
        assert_eq!(st.load(5).expect("load"), t);
        assert_eq!(ScrubState::decode(b"short"), None);
    }
}
