//! A replicated table: local data plus quorum reads and writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use garage_rpc::quorum::{call_preferred, call_quorum};
use garage_rpc::system::System;
use garage_rpc::{Endpoint, Handler, RpcMessage};
use garage_util::crdt::Crdt;
use garage_util::data::{Hash, Uuid};
use garage_util::encode::Migrate;

use crate::data::{tree_key, SortRange, TableData};
use crate::error::Error;
use crate::replication::TableReplication;
use crate::schema::{Entry, PartitionKey, SortKey, TableSchema};

/// Messages between replicas of a table. Keys and filters travel encoded,
/// so the message type does not depend on the schema.
#[derive(Debug, Serialize, Deserialize)]
pub enum TableRpc {
    /// Success.
    Ok,
    /// Read one entry.
    ReadEntry {
        /// Partition hash.
        hash: Hash,
        /// Sort key bytes.
        sort_key: ByteBuf,
    },
    /// Answer to `ReadEntry`.
    Entry(Option<ByteBuf>),
    /// Read a range of one partition.
    ReadRange {
        /// Partition hash.
        hash: Hash,
        /// Bounds on the sort keys.
        range: SortRange,
        /// Encoded filter.
        filter: Option<ByteBuf>,
        /// Most entries to return.
        limit: u32,
        /// Walk downward.
        reverse: bool,
    },
    /// Answer to `ReadRange`.
    Entries(Vec<ByteBuf>),
    /// Merge these entries.
    Update(Vec<ByteBuf>),
}

impl RpcMessage for TableRpc {
    type Response = TableRpc;
}

/// Entries of one replica's answer, by storage key.
type EntriesByKey<F> = BTreeMap<Vec<u8>, <F as TableSchema>::E>;

/// A table replicated over the cluster.
pub struct Table<F: TableSchema, R: TableReplication> {
    /// Local storage.
    pub data: Arc<TableData<F>>,
    /// Placement.
    pub replication: R,
    /// Membership.
    pub system: Arc<System>,
    endpoint: Endpoint<TableRpc>,
}

impl<F: TableSchema, R: TableReplication> Table<F, R> {
    /// Builds the table and registers its RPC handler.
    pub fn new(
        schema: Arc<F>,
        replication: R,
        system: Arc<System>,
        db: garage_db::Db,
    ) -> Result<Arc<Self>, Error> {
        let data = TableData::new(schema, db)?;
        let endpoint = Endpoint::new(
            system.transport.clone(),
            &format!("table/{}", F::TABLE_NAME),
        );
        let t = Arc::new(Self {
            data,
            replication,
            system,
            endpoint,
        });
        t.endpoint.set_handler(t.clone());
        Ok(t)
    }

    fn encode(e: &F::E) -> Result<ByteBuf, Error> {
        e.encode().map(ByteBuf::from).map_err(|err| Error::Encode {
            table: F::TABLE_NAME,
            message: err.to_string(),
        })
    }

    fn decode(b: &[u8]) -> Result<F::E, Error> {
        F::E::decode(b).ok_or(Error::Corrupted {
            table: F::TABLE_NAME,
        })
    }

    /// Writes an entry to every write set, waiting for the write quorum.
    pub async fn insert(&self, e: &F::E) -> Result<(), Error> {
        let hash = e.partition_key().hash();
        let enc = Self::encode(e)?;
        for set in self.replication.write_sets(&hash) {
            call_quorum(
                &self.endpoint,
                &set,
                TableRpc::Update(vec![enc.clone()]),
                self.replication.write_quorum(),
                self.system.rpc_timeout,
            )
            .await?;
        }
        Ok(())
    }

    /// Writes several entries, batched per destination set.
    pub async fn insert_many(&self, entries: &[F::E]) -> Result<(), Error> {
        let mut by_set: BTreeMap<Vec<Uuid>, Vec<ByteBuf>> = BTreeMap::new();
        for e in entries {
            let hash = e.partition_key().hash();
            let enc = Self::encode(e)?;
            for mut set in self.replication.write_sets(&hash) {
                set.sort();
                by_set.entry(set).or_default().push(enc.clone());
            }
        }
        let calls = by_set.into_iter().map(|(set, batch)| async move {
            call_quorum(
                &self.endpoint,
                &set,
                TableRpc::Update(batch),
                self.replication.write_quorum(),
                self.system.rpc_timeout,
            )
            .await
        });
        for r in futures::future::join_all(calls).await {
            r?;
        }
        Ok(())
    }

    /// Replicates entries that were just stored locally (by a transaction
    /// of the caller) to the other nodes of their write sets; the local copy
    /// counts as one acknowledgement in each set that holds this node.
    pub async fn replicate_stored(&self, entries: &[F::E]) -> Result<(), Error> {
        let me = self.system.id;
        let w = self.replication.write_quorum();
        let mut by_set: BTreeMap<Vec<Uuid>, Vec<ByteBuf>> = BTreeMap::new();
        for e in entries {
            let sets = self.replication.write_sets(&e.partition_key().hash());
            // Nothing to send when this node is the only replica (rf 1).
            if sets.iter().all(|s| s.iter().all(|n| *n == me)) {
                continue;
            }
            let enc = Self::encode(e)?;
            for mut set in sets {
                set.sort();
                by_set.entry(set).or_default().push(enc.clone());
            }
        }
        let timeout = self.system.rpc_timeout;
        let calls = by_set.into_iter().map(|(set, batch)| {
            let ep = self.endpoint.clone();
            async move {
                let has_me = set.contains(&me);
                let others: Vec<Uuid> = set.into_iter().filter(|n| *n != me).collect();
                let need = if has_me { w.saturating_sub(1) } else { w };
                if others.is_empty() {
                    return Ok(());
                }
                if need == 0 {
                    let n = others.len();
                    tokio::spawn(async move {
                        let msg = TableRpc::Update(batch);
                        if let Err(e) = call_quorum(&ep, &others, msg, n, timeout).await {
                            tracing::debug!(error = %e, "background replication failed");
                        }
                    });
                    return Ok(());
                }
                call_quorum(&ep, &others, TableRpc::Update(batch), need, timeout)
                    .await
                    .map(|_| ())
            }
        });
        for r in futures::future::join_all(calls).await {
            r?;
        }
        Ok(())
    }

    /// Reads one entry from a read quorum, merging answers and repairing
    /// replicas that were behind (also those that had nothing).
    pub async fn get(&self, pk: &F::P, sk: &F::S) -> Result<Option<F::E>, Error> {
        let hash = pk.hash();
        let nodes = self.replication.read_nodes(&hash);
        let q = self.replication.read_quorum();
        if nodes.len() == 1 && nodes[0] == self.system.id && q == 1 {
            return self.data.get(pk, sk);
        }
        let msg = TableRpc::ReadEntry {
            hash,
            sort_key: ByteBuf::from(sk.sort_key().to_vec()),
        };
        let answers =
            call_preferred(&self.endpoint, &nodes, msg, q, self.system.rpc_timeout).await?;
        let mut values: Vec<(Uuid, Option<F::E>)> = vec![];
        for (n, a) in answers {
            match a {
                TableRpc::Entry(b) => {
                    values.push((n, b.map(|b| Self::decode(&b)).transpose()?));
                }
                _ => {
                    return Err(Error::UnexpectedAnswer {
                        table: F::TABLE_NAME,
                    })
                }
            }
        }
        let mut merged: Option<F::E> = None;
        for (_, v) in values.iter() {
            if let Some(v) = v {
                match &mut merged {
                    Some(m) => m.merge(v),
                    None => merged = Some(v.clone()),
                }
            }
        }
        if let Some(m) = &merged {
            let stale: Vec<Uuid> = values
                .iter()
                .filter(|(_, v)| v.as_ref() != Some(m))
                .map(|(n, _)| *n)
                .collect();
            if !stale.is_empty() {
                self.repair(stale, vec![m.clone()]);
            }
        }
        Ok(merged)
    }

    /// Reads a range of one partition from a read quorum: entries with sort
    /// keys within `range`, filtered, at most `limit`, in the requested order.
    pub async fn get_range(
        &self,
        pk: &F::P,
        range: SortRange,
        filter: Option<F::Filter>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<F::E>, Error> {
        let hash = pk.hash();
        let nodes = self.replication.read_nodes(&hash);
        let q = self.replication.read_quorum();
        if nodes.len() == 1 && nodes[0] == self.system.id && q == 1 {
            return self
                .data
                .read_range(&hash, &range, filter.as_ref(), limit, reverse);
        }
        let filter_enc = match &filter {
            Some(f) => Some(ByteBuf::from(rmp_serde::to_vec_named(f).map_err(|e| {
                Error::Encode {
                    table: F::TABLE_NAME,
                    message: e.to_string(),
                }
            })?)),
            None => None,
        };
        let msg = TableRpc::ReadRange {
            hash,
            range,
            filter: filter_enc,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            reverse,
        };
        let answers =
            call_preferred(&self.endpoint, &nodes, msg, q, self.system.rpc_timeout).await?;
        let mut per_node: Vec<(Uuid, EntriesByKey<F>)> = vec![];
        for (n, a) in answers {
            let TableRpc::Entries(list) = a else {
                return Err(Error::UnexpectedAnswer {
                    table: F::TABLE_NAME,
                });
            };
            let mut m = BTreeMap::new();
            for b in list {
                let e = Self::decode(&b)?;
                m.insert(e.sort_key().sort_key().to_vec(), e);
            }
            per_node.push((n, m));
        }
        let mut merged: BTreeMap<Vec<u8>, F::E> = BTreeMap::new();
        for (_, m) in per_node.iter() {
            for (k, e) in m.iter() {
                match merged.get_mut(k) {
                    Some(x) => x.merge(e),
                    None => {
                        merged.insert(k.clone(), e.clone());
                    }
                }
            }
        }
        let mut ordered: Vec<(Vec<u8>, F::E)> = merged.into_iter().collect();
        if reverse {
            ordered.reverse();
        }
        // Only the first `limit` keys are known to every answering replica's range.
        ordered.truncate(limit);
        let mut to_repair: BTreeMap<Uuid, Vec<F::E>> = BTreeMap::new();
        for (k, e) in ordered.iter() {
            for (n, m) in per_node.iter() {
                if m.get(k) != Some(e) {
                    to_repair.entry(*n).or_default().push(e.clone());
                }
            }
        }
        for (n, es) in to_repair {
            self.repair(vec![n], es);
        }
        Ok(ordered.into_iter().map(|(_, e)| e).collect())
    }

    fn repair(&self, nodes: Vec<Uuid>, entries: Vec<F::E>) {
        let Ok(batch) = entries
            .iter()
            .map(Self::encode)
            .collect::<Result<Vec<_>, _>>()
        else {
            return;
        };
        let ep = self.endpoint.clone();
        let timeout = self.system.rpc_timeout;
        tokio::spawn(async move {
            let n = nodes.len();
            if let Err(e) = call_quorum(&ep, &nodes, TableRpc::Update(batch), n, timeout).await {
                tracing::warn!(table = F::TABLE_NAME, error = %e, "read repair failed");
            }
        });
    }

    /// Reads the local copy of one entry (no quorum).
    pub fn get_local(&self, pk: &F::P, sk: &F::S) -> Result<Option<F::E>, Error> {
        self.data.get(pk, sk)
    }

    /// The storage key of an entry.
    pub fn tree_key(pk: &F::P, sk: &F::S) -> Vec<u8> {
        tree_key(&pk.hash(), sk.sort_key())
    }

    fn handle_local(&self, msg: TableRpc) -> Result<TableRpc, Error> {
        match msg {
            TableRpc::ReadEntry { hash, sort_key } => Ok(TableRpc::Entry(
                self.data.read_entry(&hash, &sort_key)?.map(ByteBuf::from),
            )),
            TableRpc::ReadRange {
                hash,
                range,
                filter,
                limit,
                reverse,
            } => {
                let filter: Option<F::Filter> = match filter {
                    Some(b) => Some(rmp_serde::from_slice(&b).map_err(|_| Error::Corrupted {
                        table: F::TABLE_NAME,
                    })?),
                    None => None,
                };
                let es = self.data.read_range(
                    &hash,
                    &range,
                    filter.as_ref(),
                    limit as usize,
                    reverse,
                )?;
                Ok(TableRpc::Entries(
                    es.iter().map(Self::encode).collect::<Result<_, _>>()?,
                ))
            }
            TableRpc::Update(list) => {
                let list: Vec<Vec<u8>> = list.into_iter().map(|b| b.into_vec()).collect();
                self.data.update_many(&list)?;
                Ok(TableRpc::Ok)
            }
            TableRpc::Ok | TableRpc::Entry(_) | TableRpc::Entries(_) => {
                Err(Error::UnexpectedAnswer {
                    table: F::TABLE_NAME,
                })
            }
        }
    }
}

#[async_trait]
impl<F: TableSchema, R: TableReplication> Handler<TableRpc> for Table<F, R> {
    async fn handle(&self, msg: TableRpc, _from: Uuid) -> Result<TableRpc, String> {
        self.handle_local(msg).map_err(|e| e.to_string())
    }
}
