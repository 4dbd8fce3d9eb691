//! Keeping a full-copy table (keys, buckets, aliases) equal on every node.
//!
//! Writes to a full-copy table reach all layout nodes but one; a node that
//! was down, partitioned, or that joined later would otherwise never learn
//! what it missed. This worker pulls the whole table (these tables are
//! small) from every peer that becomes reachable, which covers a restart
//! and a new node joining within a second of connecting, and from every
//! reachable peer again each `interval`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use garage_util::background::{Worker, WorkerState};
use garage_util::data::Uuid;

use crate::replication::TableReplication;
use crate::schema::TableSchema;
use crate::table::Table;

/// How often the worker looks for newly reachable peers.
const PEER_POLL: Duration = Duration::from_secs(1);

/// Pulls a full-copy table from peers: at once from every peer that
/// becomes reachable, then from all of them every `interval`.
pub struct FullCopySyncWorker<F: TableSchema, R: TableReplication> {
    table: Arc<Table<F, R>>,
    interval: Duration,
    synced: BTreeSet<Uuid>,
    next_full: tokio::time::Instant,
    pulled: u64,
    last_error: Option<String>,
}

impl<F: TableSchema, R: TableReplication> FullCopySyncWorker<F, R> {
    /// A worker for `table`, pulling from every peer each `interval`.
    pub fn new(table: Arc<Table<F, R>>, interval: Duration) -> Self {
        Self {
            table,
            interval,
            synced: BTreeSet::new(),
            next_full: tokio::time::Instant::now() + interval,
            pulled: 0,
            last_error: None,
        }
    }
}

#[async_trait]
impl<F: TableSchema, R: TableReplication> Worker for FullCopySyncWorker<F, R> {
    fn name(&self) -> String {
        format!("{} full-copy sync", F::TABLE_NAME)
    }

    fn status(&self) -> String {
        match &self.last_error {
            Some(e) => format!(
                "{} peers synced, {} entries pulled; last error: {e}",
                self.synced.len(),
                self.pulled
            ),
            None => format!(
                "{} peers synced, {} entries pulled",
                self.synced.len(),
                self.pulled
            ),
        }
    }

    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        let up = self.table.reachable_peers();
        // Peers that went down are pulled from again when they come back.
        self.synced.retain(|p| up.contains(p));
        let now = tokio::time::Instant::now();
        let periodic = self.table.sync_trigger.take() || now >= self.next_full;
        if periodic {
            self.next_full = now + self.interval;
        }
        let todo: Vec<Uuid> = up
            .iter()
            .filter(|p| periodic || !self.synced.contains(p))
            .copied()
            .collect();
        for peer in todo {
            match self.table.pull_all_from(peer).await {
                Ok(n) => {
                    self.pulled += n as u64;
                    self.synced.insert(peer);
                }
                Err(e) => {
                    tracing::debug!(table = F::TABLE_NAME, peer = ?peer, error = %e, "full-copy pull failed");
                    self.last_error = Some(e.to_string());
                }
            }
        }
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(PEER_POLL) => (),
            _ = self.table.sync_trigger.notified() => (),
        }
    }
}
