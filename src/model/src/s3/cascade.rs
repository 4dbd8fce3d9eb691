//! The follow-up writes of S3 deletions, kept in a local queue.
//!
//! When a merge drops or aborts an object version, its version entry must
//! be marked deleted; when a version entry becomes deleted, the references
//! of its blocks must be released. Both are writes to other replicated
//! tables, which cannot happen inside the storage transaction of the
//! change. So the schema hooks write a task into the local tree
//! `s3_cascade_queue` in that same transaction, and [`CascadeWorker`]
//! carries the tasks out and removes each one once its writes reached
//! their quorum. A crash or an unreachable quorum only delays them. Every
//! replica queues the same tasks; they are idempotent (a deletion flag
//! only ever goes from false to true), and a task's key is the hash of its
//! content, so a task queued twice is stored once.

use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use garage_block::BlockRef;
use garage_db::{Db, Transaction, Tree};
use garage_util::background::{Worker, WorkerState};
use garage_util::data::{blake2sum, Hash, Uuid};
use garage_util::encode::{Migrate, NoPrevious};

use super::version_table::Version;
use super::{BlockRefTableT, VersionTableT};

pub use v1::CascadeTask;

mod v1 {
    use super::*;

    /// One follow-up write.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub enum CascadeTask {
        /// Mark these versions of (bucket, key) deleted.
        DropVersions {
            /// The bucket.
            bucket_id: Uuid,
            /// The object key.
            key: String,
            /// The versions.
            versions: Vec<Uuid>,
        },
        /// Release the references of `version` to these blocks.
        ReleaseBlocks {
            /// The deleted version.
            version: Uuid,
            /// Its blocks.
            blocks: Vec<Hash>,
        },
    }

    impl Migrate for CascadeTask {
        const VERSION_MARKER: &'static [u8] = b"S3cas1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

/// Tasks carried out per worker step.
const BATCH: usize = 64;

/// The queue and the tables its tasks write to.
pub struct Cascade {
    queue: Tree,
    pub(crate) versions: OnceLock<Arc<VersionTableT>>,
    pub(crate) block_refs: OnceLock<Arc<BlockRefTableT>>,
    notify: Notify,
}

impl Cascade {
    /// Opens the local queue tree.
    pub fn new(db: &Db) -> Result<Arc<Self>, garage_db::Error> {
        Ok(Arc::new(Self {
            queue: db.open_tree("s3_cascade_queue")?,
            versions: OnceLock::new(),
            block_refs: OnceLock::new(),
            notify: Notify::new(),
        }))
    }

    /// Queues `task` in the transaction of the change that calls for it.
    pub(crate) fn queue_in_tx(
        &self,
        tx: &mut Transaction<'_>,
        task: &CascadeTask,
    ) -> Result<(), garage_db::Error> {
        let enc = task.encode().map_err(|e| garage_db::Error::Corrupted {
            engine: "s3 cascade",
            message: e.to_string(),
        })?;
        tx.insert(&self.queue, blake2sum(&enc).as_slice(), &enc)
    }

    /// Wakes the worker (after a commit that may have queued tasks).
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Tasks waiting.
    pub fn len(&self) -> Result<usize, garage_db::Error> {
        self.queue.len()
    }

    /// Whether no task waits.
    pub fn is_empty(&self) -> Result<bool, garage_db::Error> {
        self.queue.is_empty()
    }

    /// The worker carrying the tasks out.
    pub fn worker(self: &Arc<Self>) -> CascadeWorker {
        CascadeWorker {
            cascade: self.clone(),
        }
    }

    async fn run(&self, task: CascadeTask) -> Result<(), String> {
        match task {
            CascadeTask::DropVersions {
                bucket_id,
                key,
                versions,
            } => {
                let t = self.versions.get().ok_or("version table not set")?;
                let entries: Vec<Version> = versions
                    .into_iter()
                    .map(|u| Version::deleted(u, bucket_id, key.clone()))
                    .collect();
                t.insert_many(&entries).await.map_err(|e| e.to_string())
            }
            CascadeTask::ReleaseBlocks { version, blocks } => {
                let t = self.block_refs.get().ok_or("block ref table not set")?;
                let refs: Vec<BlockRef> = blocks
                    .into_iter()
                    .map(|block| BlockRef {
                        block,
                        version,
                        deleted: true,
                    })
                    .collect();
                t.insert_many(&refs).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// Carries out the queued tasks; a failed task stays queued (retried with
/// the runner's backoff).
pub struct CascadeWorker {
    cascade: Arc<Cascade>,
}

#[async_trait]
impl Worker for CascadeWorker {
    fn name(&self) -> String {
        "S3 version and block release".into()
    }

    fn status(&self) -> String {
        match self.cascade.len() {
            Ok(n) => format!("{n} queued"),
            Err(e) => e.to_string(),
        }
    }

    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        let c = &self.cascade;
        let rows = c
            .queue
            .range(Bound::Unbounded, Bound::Unbounded, false, Some(BATCH))
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(WorkerState::Idle);
        }
        for (k, v) in rows {
            match CascadeTask::decode(&v) {
                Some(task) => c.run(task).await?,
                None => tracing::warn!("dropping an undecodable S3 cascade task"),
            }
            c.queue.remove(&k).map_err(|e| e.to_string())?;
        }
        Ok(WorkerState::Busy)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = self.cascade.notify.notified() => (),
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => (),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_queued_once_in_the_transaction() {
        let db = Db::memory();
        let c = Cascade::new(&db).expect("open");
        let task = CascadeTask::ReleaseBlocks {
            version: Uuid::from([1; 32]),
            blocks: vec![Hash::from([2; 32])],
        };
        for _ in 0..2 {
            db.transaction::<(), ()>(|tx| c.queue_in_tx(tx, &task).map_err(garage_db::TxError::Db))
                .expect("tx");
        }
        assert_eq!(c.len().expect("len"), 1);
        let enc = task.encode().expect("encode");
        assert_eq!(CascadeTask::decode(&enc), Some(task));
    }
}
