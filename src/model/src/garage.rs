//! The node's state: database, membership and every table.

use std::sync::Arc;

use garage_block::BlockManager;
use garage_db::Db;
use garage_rpc::system::System;
use garage_table::{
    FullCopySyncWorker, GcWorker, MerkleWorker, SyncWorker, Table, TableFullReplication,
    TableShardedReplication,
};
use garage_util::background::BackgroundRunner;
use garage_util::config::Config;
use garage_util::rng::Rng;
use garage_util::time::Clock;

use crate::bucket_alias_table::BucketAliasTable;
use crate::bucket_table::BucketTable;
use crate::key_table::KeyTable;
use crate::s3::cascade::Cascade;
use crate::s3::object_table::ObjectTable;
use crate::s3::version_table::VersionTable;
use crate::s3::S3State;

/// Everything a node serves from.
pub struct Garage {
    /// The configuration.
    pub config: Config,
    /// Local storage.
    pub db: Db,
    /// Membership and layout.
    pub system: Arc<System>,
    /// The clock.
    pub clock: Clock,
    /// Randomness.
    pub rng: Rng,
    /// Access keys.
    pub key_table: Arc<Table<KeyTable, TableFullReplication>>,
    /// Buckets.
    pub bucket_table: Arc<Table<BucketTable, TableFullReplication>>,
    /// Global bucket names.
    pub bucket_alias_table: Arc<Table<BucketAliasTable, TableFullReplication>>,
    /// Data blocks of objects and their reference table.
    pub block_manager: Arc<BlockManager>,
    /// S3 state: objects and versions.
    pub s3: S3State,
    /// K2V state.
    #[cfg(feature = "k2v")]
    pub k2v: K2VState,
}

/// The K2V part of a node.
#[cfg(feature = "k2v")]
pub struct K2VState {
    /// Items.
    pub item_table: Arc<crate::k2v::rpc::ItemTable>,
    /// Index counters.
    pub counter_table: Arc<crate::k2v::counter_table::CounterTableT>,
    /// Local counters.
    pub counter: Arc<crate::k2v::counter_table::IndexCounter>,
    /// Inserts and polls.
    pub rpc: Arc<crate::k2v::rpc::K2VRpcHandler>,
}

/// Errors building the node state.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    /// A table failed to open.
    #[error(transparent)]
    Table(#[from] garage_table::Error),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] garage_db::Error),
    /// The block store failed to open.
    #[error(transparent)]
    Block(#[from] garage_block::BlockError),
}

impl Garage {
    /// Builds every table on `db`, reachable through `system`.
    pub fn new(
        config: Config,
        db: Db,
        system: Arc<System>,
        clock: Clock,
        rng: Rng,
    ) -> Result<Arc<Self>, GarageError> {
        let full = || TableFullReplication {
            system: system.clone(),
        };
        let key_table = Table::new(
            Arc::new(KeyTable),
            full(),
            system.clone(),
            db.clone(),
            clock.clone(),
        )?;
        let bucket_table = Table::new(
            Arc::new(BucketTable),
            full(),
            system.clone(),
            db.clone(),
            clock.clone(),
        )?;
        let bucket_alias_table = Table::new(
            Arc::new(BucketAliasTable),
            full(),
            system.clone(),
            db.clone(),
            clock.clone(),
        )?;
        let block_manager = BlockManager::new(&config, db.clone(), system.clone(), clock.clone())?;

        let s3 = {
            let cascade = Cascade::new(&db)?;
            let object_table = Table::new(
                Arc::new(ObjectTable {
                    cascade: cascade.clone(),
                }),
                TableShardedReplication {
                    system: system.clone(),
                },
                system.clone(),
                db.clone(),
                clock.clone(),
            )?;
            let version_table = Table::new(
                Arc::new(VersionTable {
                    cascade: cascade.clone(),
                }),
                TableShardedReplication {
                    system: system.clone(),
                },
                system.clone(),
                db.clone(),
                clock.clone(),
            )?;
            let _ = cascade.versions.set(version_table.clone());
            let _ = cascade
                .block_refs
                .set(block_manager.block_ref_table().clone());
            S3State {
                object_table,
                version_table,
                cascade,
            }
        };

        #[cfg(feature = "k2v")]
        let k2v = {
            use crate::k2v::counter_table::{CounterTable, IndexCounter};
            use crate::k2v::item_table::K2VItemTable;
            use crate::k2v::rpc::{k2v_node_id, K2VRpcHandler};
            use crate::k2v::sub::SubscriptionManager;
            let sharded = || garage_table::TableShardedReplication {
                system: system.clone(),
            };
            let counter = IndexCounter::new(&db, system.id, clock.clone())?;
            let counter_table = Table::new(
                Arc::new(CounterTable),
                sharded(),
                system.clone(),
                db.clone(),
                clock.clone(),
            )?;
            counter.set_table(counter_table.clone());
            let subscriptions = Arc::new(SubscriptionManager::new());
            let item_table = Table::new(
                Arc::new(K2VItemTable {
                    counter: counter.clone(),
                    subscriptions: subscriptions.clone(),
                }),
                sharded(),
                system.clone(),
                db.clone(),
                clock.clone(),
            )?;
            let node_id = k2v_node_id(&db, rng.next_u64())?;
            let rpc = K2VRpcHandler::new(
                system.clone(),
                db.clone(),
                item_table.clone(),
                subscriptions,
                node_id,
                clock.clone(),
            )?;
            K2VState {
                item_table,
                counter_table,
                counter,
                rpc,
            }
        };

        Ok(Arc::new(Self {
            config,
            db,
            system,
            clock,
            rng,
            key_table,
            bucket_table,
            bucket_alias_table,
            block_manager,
            s3,
            #[cfg(feature = "k2v")]
            k2v,
        }))
    }

    /// Starts the background workers of every component.
    pub fn spawn_workers(&self, bg: &BackgroundRunner) {
        bg.spawn_worker(self.system.status_worker());
        bg.spawn_worker(self.system.tracker_worker());
        // Full-copy tables are small: pull them at least every minute.
        let full_sync = std::time::Duration::from_secs(self.config.sync_interval_secs.clamp(1, 60));
        bg.spawn_worker(FullCopySyncWorker::new(self.key_table.clone(), full_sync));
        bg.spawn_worker(FullCopySyncWorker::new(
            self.bucket_table.clone(),
            full_sync,
        ));
        bg.spawn_worker(FullCopySyncWorker::new(
            self.bucket_alias_table.clone(),
            full_sync,
        ));
        bg.spawn_worker(MerkleWorker::new(self.key_table.merkle().clone()));
        bg.spawn_worker(MerkleWorker::new(self.bucket_table.merkle().clone()));
        bg.spawn_worker(MerkleWorker::new(self.bucket_alias_table.merkle().clone()));
        self.block_manager.spawn_workers(bg);
        let sync = std::time::Duration::from_secs(self.config.sync_interval_secs.max(1));
        let gc = std::time::Duration::from_secs(self.config.tombstone_gc_delay_secs);
        {
            let objects = &self.s3.object_table;
            let versions = &self.s3.version_table;
            bg.spawn_worker(MerkleWorker::new(objects.merkle().clone()));
            bg.spawn_worker(MerkleWorker::new(versions.merkle().clone()));
            bg.spawn_worker(SyncWorker::new(objects.clone(), sync));
            bg.spawn_worker(SyncWorker::new(versions.clone(), sync));
            bg.spawn_worker(GcWorker::new(objects.clone(), gc));
            bg.spawn_worker(GcWorker::new(versions.clone(), gc));
            bg.spawn_worker(self.s3.cascade.worker());
        }
        #[cfg(feature = "k2v")]
        {
            let items = &self.k2v.item_table;
            let counters = &self.k2v.counter_table;
            if let Some(w) = self.k2v.rpc.committer_worker() {
                bg.spawn_worker(w);
            }
            bg.spawn_worker(MerkleWorker::new(items.merkle().clone()));
            bg.spawn_worker(MerkleWorker::new(counters.merkle().clone()));
            bg.spawn_worker(SyncWorker::new(items.clone(), sync));
            bg.spawn_worker(SyncWorker::new(counters.clone(), sync));
            bg.spawn_worker(GcWorker::new(items.clone(), gc));
            bg.spawn_worker(GcWorker::new(counters.clone(), gc));
        }
        #[cfg(feature = "k2v")]
        bg.spawn_worker(self.k2v.counter.worker());
    }
}
