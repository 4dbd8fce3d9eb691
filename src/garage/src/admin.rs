//! The admin RPC: `garage key …` and `garage bucket …` run on the daemon,
//! which answers with the text the CLI prints.

use std::fmt::Write;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use garage_model::bucket_table::Bucket;
use garage_model::garage::Garage;
use garage_model::helper::HelperError;
use garage_model::key_table::Key;
use garage_rpc::{Endpoint, Handler, RpcMessage};
use garage_table::EmptyKey;
use garage_util::config::format_size;
use garage_util::data::Uuid;

use garage_util::background::BackgroundRunner;

use crate::cli::{BlockCmd, BucketCmd, DebugCmd, KeyCmd, RepairWhat, WorkerCmd};
use crate::fmt::format_table;

/// Path of the admin endpoint.
pub const ADMIN_PATH: &str = "garage/admin";

/// A key or bucket command sent by the CLI.
#[derive(Debug, Serialize, Deserialize)]
pub enum AdminRpc {
    /// `garage key …`.
    Key(KeyCmd),
    /// `garage bucket …`.
    Bucket(BucketCmd),
    /// `garage worker …`.
    Worker(WorkerCmd),
    /// `garage repair …`.
    Repair(RepairWhat),
    /// `garage debug …`.
    Debug(DebugCmd),
    /// `garage block …`.
    Block(BlockCmd),
}

impl RpcMessage for AdminRpc {
    /// The text to print.
    type Response = String;
}

/// Runs admin commands on this node.
pub struct AdminRpcHandler {
    garage: Arc<Garage>,
    bg: Arc<BackgroundRunner>,
}

impl AdminRpcHandler {
    /// Registers the handler.
    pub fn register(garage: Arc<Garage>, bg: Arc<BackgroundRunner>) {
        let ep: Endpoint<AdminRpc> = Endpoint::new(garage.system.transport.clone(), ADMIN_PATH);
        ep.set_handler(Arc::new(Self { garage, bg }));
    }

    fn workers(&self) -> String {
        let mut rows = vec!["Name\tState\tErrors\tStatus".to_string()];
        for w in self.bg.workers() {
            let errors = match &w.last_error {
                Some(e) if w.errors > 0 => format!("{} ({e})", w.errors),
                _ => w.errors.to_string(),
            };
            rows.push(format!("{}\t{}\t{}\t{}", w.name, w.state, errors, w.status));
        }
        format_table(&rows)
    }

    fn repair(&self, what: RepairWhat) -> String {
        match what {
            RepairWhat::Tables => {
                let g = &self.garage;
                g.key_table.sync_trigger().request();
                g.bucket_table.sync_trigger().request();
                g.bucket_alias_table.sync_trigger().request();
                g.block_manager.block_ref_table().sync_trigger().request();
                g.s3.object_table.sync_trigger().request();
                g.s3.version_table.sync_trigger().request();
                #[cfg(feature = "k2v")]
                {
                    g.k2v.item_table.sync_trigger().request();
                    g.k2v.counter_table.sync_trigger().request();
                }
                "Repair launched: a full anti-entropy pass of every table with every peer.".into()
            }
            RepairWhat::Blocks => {
                self.garage.block_manager.launch_repair();
                "Repair launched: every block stored or referenced on this node is queued for a check.".into()
            }
            RepairWhat::Scrub {
                cmd: crate::cli::ScrubCmd::Start,
            } => {
                self.garage.block_manager.launch_scrub();
                "Scrub started: every block stored on this node is read back and checked.".into()
            }
        }
    }

    async fn debug(&self, cmd: DebugCmd) -> Result<String, HelperError> {
        match cmd {
            DebugCmd::MerkleRoots { table } => {
                let g = &self.garage;
                let roots = match table.as_str() {
                    "key" => roots_of(&g.key_table, 1).await?,
                    "bucket" => roots_of(&g.bucket_table, 1).await?,
                    "bucket_alias" => roots_of(&g.bucket_alias_table, 1).await?,
                    "block_ref" => roots_of(g.block_manager.block_ref_table(), 256).await?,
                    "object" => roots_of(&g.s3.object_table, 256).await?,
                    "version" => roots_of(&g.s3.version_table, 256).await?,
                    #[cfg(feature = "k2v")]
                    "k2v_item" => roots_of(&g.k2v.item_table, 256).await?,
                    #[cfg(feature = "k2v")]
                    "k2v_index_counter" => roots_of(&g.k2v.counter_table, 256).await?,
                    other => return Err(refused(&format!("unknown table `{other}`"))),
                };
                let mut out = String::new();
                for (p, r) in roots.into_iter().enumerate() {
                    let r = r.map(|h| h.to_hex()).unwrap_or_else(|| "-".into());
                    let _ = writeln!(out, "{p:02x} {r}");
                }
                Ok(out)
            }
            DebugCmd::Entries { table } => {
                let g = &self.garage;
                let (n, t) = match table.as_str() {
                    "key" => count_of(&g.key_table)?,
                    "bucket" => count_of(&g.bucket_table)?,
                    "bucket_alias" => count_of(&g.bucket_alias_table)?,
                    "block_ref" => count_of(g.block_manager.block_ref_table())?,
                    "object" => count_of(&g.s3.object_table)?,
                    "version" => count_of(&g.s3.version_table)?,
                    #[cfg(feature = "k2v")]
                    "k2v_item" => count_of(&g.k2v.item_table)?,
                    #[cfg(feature = "k2v")]
                    "k2v_index_counter" => count_of(&g.k2v.counter_table)?,
                    other => return Err(refused(&format!("unknown table `{other}`"))),
                };
                Ok(format!("entries: {n}\ntombstones: {t}\n"))
            }
        }
    }
}

/// (entries, tombstones among them) stored locally by a table.
fn count_of<F: garage_table::TableSchema, R: garage_table::TableReplication>(
    t: &garage_table::Table<F, R>,
) -> Result<(usize, usize), HelperError> {
    use garage_table::Entry;
    let (mut n, mut tomb) = (0, 0);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = t.scan_local(after.as_deref(), 1000)?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            break;
        };
        for (_, v) in rows.iter() {
            n += 1;
            if <F::E as garage_util::encode::Migrate>::decode(v).is_some_and(|e| e.is_tombstone()) {
                tomb += 1;
            }
        }
        if rows.len() < 1000 {
            break;
        }
        after = Some(last);
    }
    Ok((n, tomb))
}

/// The Merkle roots of the first `n` partitions of a table, after hashing
/// every pending change.
async fn roots_of<F: garage_table::TableSchema, R: garage_table::TableReplication>(
    t: &garage_table::Table<F, R>,
    n: u16,
) -> Result<Vec<Option<garage_util::data::Hash>>, HelperError> {
    t.flush_merkle().await?;
    (0..n)
        .map(|p| t.merkle().root(p).map_err(HelperError::from))
        .collect()
}

#[async_trait]
impl Handler<AdminRpc> for AdminRpcHandler {
    async fn handle(&self, msg: AdminRpc, _from: Uuid) -> Result<String, String> {
        let r = match msg {
            AdminRpc::Key(k) => self.key(k).await,
            AdminRpc::Bucket(b) => self.bucket(b).await,
            AdminRpc::Worker(WorkerCmd::List) => Ok(self.workers()),
            AdminRpc::Repair(w) => Ok(self.repair(w)),
            AdminRpc::Debug(d) => self.debug(d).await,
            AdminRpc::Block(b) => return self.block(b).await,
        };
        r.map_err(|e| e.to_string())
    }
}

/// Parses a full block hash given on the command line.
fn parse_hash(s: &str) -> Result<garage_util::data::Hash, String> {
    garage_util::data::Hash::from_hex(s.trim())
        .ok_or_else(|| format!("`{s}` is not a block hash (64 hex digits)"))
}

/// A time in ms since the epoch as seconds from now (negative: past).
fn secs_from_now(ms: u64) -> String {
    let now = garage_util::time::system_now_ms();
    if ms >= now {
        format!("in {}s", (ms - now) / 1000)
    } else {
        format!("{}s ago", (now - ms) / 1000)
    }
}

impl AdminRpcHandler {
    /// `garage block …`; errors are the text the CLI prints.
    async fn block(&self, cmd: BlockCmd) -> Result<String, String> {
        let bm = &self.garage.block_manager;
        let err = |e: garage_block::BlockError| e.to_string();
        match cmd {
            BlockCmd::ListErrors => {
                let list = bm.list_errors(1000).map_err(err)?;
                if list.is_empty() {
                    return Ok("No block errors.\n".into());
                }
                let mut rows = vec!["Hash\tFailures\tNext try".to_string()];
                for e in list {
                    rows.push(format!(
                        "{}\t{}\t{}",
                        e.hash.to_hex(),
                        e.failures,
                        secs_from_now(e.next_try)
                    ));
                }
                Ok(format_table(&rows))
            }
            BlockCmd::Info { hash } => {
                let info = bm.info(&parse_hash(&hash)?).await.map_err(err)?;
                let mut out = String::new();
                let _ = writeln!(out, "Block hash: {}", info.hash.to_hex());
                let _ = writeln!(
                    out,
                    "Stored here by the layout: {}",
                    if info.stored_here { "yes" } else { "no" }
                );
                match (&info.path, info.size) {
                    (Some(p), Some(n)) => {
                        let _ = writeln!(out, "Local file: {} ({})", p.display(), format_size(n));
                    }
                    _ => {
                        let _ = writeln!(out, "Local file: none");
                    }
                }
                let rc = match info.refcount {
                    garage_block::RefCount::Absent => "none".to_string(),
                    garage_block::RefCount::Live(n) => n.to_string(),
                    garage_block::RefCount::ZeroSince(t) => {
                        format!("0 (unreferenced since {})", secs_from_now(t))
                    }
                };
                let _ = writeln!(out, "Reference count: {rc}");
                if let Some((f, next)) = info.errors {
                    let _ = writeln!(out, "Resync errors: {f} (next try {})", secs_from_now(next));
                }
                if !info.refs.is_empty() {
                    let mut rows = vec!["Version\tDeleted".to_string()];
                    for r in info.refs {
                        rows.push(format!("{}\t{}", r.version.to_hex(), r.deleted));
                    }
                    let _ = writeln!(out, "References:");
                    out.push_str(&format_table(&rows));
                }
                Ok(out)
            }
            BlockCmd::RetryNow { all, blocks } => {
                if all != blocks.is_empty() {
                    return Err("give either --all or block hashes".into());
                }
                let hashes = blocks
                    .iter()
                    .map(|b| parse_hash(b))
                    .collect::<Result<Vec<_>, _>>()?;
                let n = bm.retry_now(&hashes).map_err(err)?;
                Ok(format!("{n} blocks queued for a check now.\n"))
            }
        }
    }
}

fn refused(msg: &str) -> HelperError {
    HelperError::Refused(msg.to_string())
}

impl AdminRpcHandler {
    async fn key(&self, cmd: KeyCmd) -> Result<String, HelperError> {
        let g = &self.garage;
        match cmd {
            KeyCmd::List => {
                let mut rows = vec!["ID\tName".to_string()];
                for k in g.list_keys(false).await? {
                    rows.push(format!("{}\t{}", k.key_id, k.name()));
                }
                Ok(format!("List of keys:\n{}", format_table(&rows)))
            }
            KeyCmd::Info {
                key_pattern,
                show_secret,
            } => {
                let k = g.find_key(&key_pattern).await?;
                self.key_info(&k, show_secret).await
            }
            KeyCmd::Create { name } => {
                let k = g.create_key(&name).await?;
                self.key_info(&k, true).await
            }
            KeyCmd::Rename {
                key_pattern,
                new_name,
            } => {
                let k = g.rename_key(&key_pattern, &new_name).await?;
                self.key_info(&k, false).await
            }
            KeyCmd::Delete { key_pattern, yes } => {
                if !yes {
                    return Err(refused("Add --yes flag to really perform this operation"));
                }
                let k = g.delete_key(&key_pattern).await?;
                Ok(format!("Key {} was deleted successfully.", k.key_id))
            }
            KeyCmd::Allow {
                key_pattern,
                create_bucket,
            } => {
                let k = if create_bucket {
                    g.set_key_create_bucket(&key_pattern, true).await?
                } else {
                    g.find_key(&key_pattern).await?
                };
                self.key_info(&k, false).await
            }
            KeyCmd::Deny {
                key_pattern,
                create_bucket,
            } => {
                let k = if create_bucket {
                    g.set_key_create_bucket(&key_pattern, false).await?
                } else {
                    g.find_key(&key_pattern).await?
                };
                self.key_info(&k, false).await
            }
            KeyCmd::Import {
                key_id,
                secret_key,
                name,
                yes,
            } => {
                if !yes {
                    return Err(refused(
                        "This command is intended to re-import keys that were previously \
                         generated by Garage. If you want to create a new key, use \
                         `garage key create` instead. Add the --yes flag if you really \
                         want to re-import a key.",
                    ));
                }
                let k = g.import_key(&key_id, &secret_key, &name).await?;
                self.key_info(&k, true).await
            }
        }
    }

    async fn bucket_names(&self, id: &Uuid) -> Result<(Vec<String>, Vec<String>), HelperError> {
        match self.garage.bucket_table.get(&EmptyKey, id).await? {
            Some(b) => Ok((
                b.global_aliases(),
                b.local_aliases().into_iter().map(|(_, a)| a).collect(),
            )),
            None => Ok((vec![], vec![])),
        }
    }

    async fn key_info(&self, k: &Key, show_secret: bool) -> Result<String, HelperError> {
        let Some(p) = k.params() else {
            return Err(HelperError::NotFound {
                what: "key",
                name: k.key_id.clone(),
            });
        };
        let mut s = String::new();
        let _ = writeln!(s, "Key name: {}", p.name.get());
        let _ = writeln!(s, "Key ID: {}", k.key_id);
        let secret = if show_secret {
            p.secret_key.as_str()
        } else {
            "(redacted)"
        };
        let _ = writeln!(s, "Secret key: {secret}");
        let _ = writeln!(s, "Can create buckets: {}", p.allow_create_bucket.get());
        let _ = writeln!(s, "\nKey-specific bucket aliases:");
        let mut rows = vec![];
        for (alias, _, target) in p.local_aliases.items() {
            if let Some(b) = target {
                rows.push(format!("{alias}\t{}", b.to_hex()));
            }
        }
        s.push_str(&format_table(&rows));
        let _ = writeln!(s, "\nAuthorized buckets:");
        let mut rows = vec![];
        for (b, perm) in p.authorized_buckets.iter() {
            if !perm.is_any() {
                continue;
            }
            let (global, _) = self.bucket_names(b).await?;
            let local: Vec<String> = p
                .local_aliases
                .items()
                .iter()
                .filter(|(_, _, t)| *t == Some(*b))
                .map(|(a, _, _)| a.clone())
                .collect();
            rows.push(format!(
                "{}\t{}\t{}\t{}",
                perm.flags(),
                global.join(","),
                local.join(","),
                b.to_hex()
            ));
        }
        s.push_str(&format_table(&rows));
        Ok(s.trim_end().to_string())
    }

    async fn bucket(&self, cmd: BucketCmd) -> Result<String, HelperError> {
        let g = &self.garage;
        match cmd {
            BucketCmd::List => {
                let mut rows = vec!["ID\tGlobal aliases\tLocal aliases".to_string()];
                for b in g.list_buckets().await? {
                    let local = b.local_aliases();
                    let local = match local.len() {
                        0 => String::new(),
                        1 => format!("{}:{}", local[0].0, local[0].1),
                        n => format!("[{n} local aliases]"),
                    };
                    rows.push(format!(
                        "{}\t{}\t{}",
                        b.id.to_hex(),
                        b.global_aliases().join(","),
                        local
                    ));
                }
                Ok(format!("List of buckets:\n{}", format_table(&rows)))
            }
            BucketCmd::Info { name } => {
                let b = g.find_bucket(&name).await?;
                self.bucket_info(&b).await
            }
            BucketCmd::Create { name } => {
                g.create_bucket(&name).await?;
                Ok(format!("Bucket {name} was created."))
            }
            BucketCmd::Delete { name, yes } => {
                if !yes {
                    // Check first, so a refusal for another reason shows up.
                    g.find_bucket(&name).await?;
                    return Err(refused("Add --yes flag to really perform this operation"));
                }
                g.delete_bucket(&name).await?;
                Ok(format!("Bucket {name} was deleted."))
            }
            BucketCmd::Alias {
                existing_bucket,
                new_name,
                local,
            } => {
                let b = g
                    .alias_bucket(&existing_bucket, &new_name, local.as_deref())
                    .await?;
                Ok(match local {
                    None => format!("Alias {new_name} now points to bucket {}", b.id.to_hex()),
                    Some(k) => format!(
                        "Alias {new_name} now points to bucket {} in namespace of key {k}",
                        b.id.to_hex()
                    ),
                })
            }
            BucketCmd::Unalias { name, local } => {
                let b = g.unalias_bucket(&name, local.as_deref()).await?;
                Ok(format!(
                    "Alias {name} no longer points to bucket {}",
                    b.id.to_hex()
                ))
            }
            BucketCmd::Allow(p) => self.perm(p, true).await,
            BucketCmd::Deny(p) => self.perm(p, false).await,
        }
    }

    async fn perm(&self, p: crate::cli::PermOpt, allow: bool) -> Result<String, HelperError> {
        let (b, k, perm) = self
            .garage
            .change_permissions(&p.bucket, &p.key_pattern, p.read, p.write, p.owner, allow)
            .await?;
        let _ = b;
        Ok(format!(
            "New permissions for {} on {}: read {}, write {}, owner {}.",
            k.key_id, p.bucket, perm.allow_read, perm.allow_write, perm.allow_owner
        ))
    }

    async fn bucket_info(&self, b: &Bucket) -> Result<String, HelperError> {
        let g = &self.garage;
        let Some(p) = b.params() else {
            return Err(HelperError::NotFound {
                what: "bucket",
                name: b.id.to_hex(),
            });
        };
        let items = g.bucket_k2v_entries(&b.id).await?;
        let (objects, bytes, uploads) = g.bucket_object_counts(&b.id).await?;
        let mut s = String::new();
        let _ = writeln!(s, "Bucket: {}", b.id.to_hex());
        let _ = writeln!(s);
        let _ = writeln!(s, "Size: {} ({bytes} B)", format_size(bytes));
        let _ = writeln!(s, "Objects: {objects}");
        let _ = writeln!(s, "Unfinished uploads: {uploads}");
        let _ = writeln!(s, "K2V items: {items}");
        let _ = writeln!(s);
        let _ = writeln!(s, "Website access: false");
        let _ = writeln!(s);
        let _ = writeln!(s, "Global aliases:");
        for a in b.global_aliases() {
            let _ = writeln!(s, "  {a}");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "Key-specific aliases:");
        let mut rows = vec![];
        for (k, a) in b.local_aliases() {
            rows.push(format!("  {k}\t{a}"));
        }
        s.push_str(&format_table(&rows));
        let _ = writeln!(s);
        let _ = writeln!(s, "Authorized keys:");
        let mut rows = vec![];
        for (key_id, perm) in p.authorized_keys.iter() {
            if !perm.is_any() {
                continue;
            }
            let name = g
                .key_table
                .get(&EmptyKey, key_id)
                .await?
                .map(|k| k.name())
                .unwrap_or_default();
            rows.push(format!("  {}\t{}\t{}", perm.flags(), key_id, name));
        }
        s.push_str(&format_table(&rows));
        Ok(s.trim_end().to_string())
    }
}
