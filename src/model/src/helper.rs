//! Operations on keys, buckets and aliases, as the CLI and the single-node
//! set-up use them. Each checks everything first and only then writes, so
//! a refused operation changes nothing.

use garage_table::{EmptyKey, SortRange};
use garage_util::crdt::{Deletable, Lww};
use garage_util::data::Uuid;

use crate::bucket_alias_table::BucketAlias;
use crate::bucket_table::{Bucket, BucketFilter};
use crate::garage::Garage;
use crate::key_table::{Key, KeyFilter};
use crate::permission::BucketKeyPerm;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// Nothing matches.
    #[error("{what} not found: {name}")]
    NotFound {
        /// "key", "bucket"...
        what: &'static str,
        /// What was asked.
        name: String,
    },
    /// Several things match a pattern.
    #[error("{pattern} matches several {what}s: {matches}")]
    Ambiguous {
        /// "key"...
        what: &'static str,
        /// What was asked.
        pattern: String,
        /// The candidates.
        matches: String,
    },
    /// Refused with a reason.
    #[error("{0}")]
    Refused(String),
    /// Storage or replication failed.
    #[error(transparent)]
    Table(#[from] garage_table::Error),
}

type Result<T> = std::result::Result<T, HelperError>;

/// Whether `name` is a valid bucket name (S3 rules: 3 to 63 characters,
/// lower-case letters, digits, `-` and `.`, starting and ending with a
/// letter or digit).
pub fn is_valid_bucket_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(ok_char)
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

fn is_key_id(s: &str) -> bool {
    s.len() == 26 && s.starts_with("GK") && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

impl Garage {
    fn new_perm(&self, read: bool, write: bool, owner: bool) -> BucketKeyPerm {
        BucketKeyPerm {
            timestamp: self.clock.now_ms(),
            allow_read: read,
            allow_write: write,
            allow_owner: owner,
        }
    }

    /// Every key (deleted ones when `with_deleted`).
    pub async fn list_keys(&self, with_deleted: bool) -> Result<Vec<Key>> {
        let filter = if with_deleted {
            KeyFilter::Any
        } else {
            KeyFilter::Live
        };
        Ok(self
            .key_table
            .get_range(&EmptyKey, SortRange::all(), Some(filter), usize::MAX, false)
            .await?)
    }

    /// A live key by exact id, case-insensitive id prefix, or exact name.
    pub async fn find_key(&self, pattern: &str) -> Result<Key> {
        if let Some(k) = self.key_table.get(&EmptyKey, &pattern.to_string()).await? {
            if !k.state.is_deleted() {
                return Ok(k);
            }
        }
        let lower = pattern.to_ascii_lowercase();
        let candidates: Vec<Key> = self
            .list_keys(false)
            .await?
            .into_iter()
            .filter(|k| k.key_id.to_ascii_lowercase().starts_with(&lower) || k.name() == pattern)
            .collect();
        match candidates.len() {
            0 => Err(HelperError::NotFound {
                what: "key",
                name: pattern.into(),
            }),
            1 => Ok(candidates
                .into_iter()
                .next()
                .expect("invariant: one element")),
            _ => Err(HelperError::Ambiguous {
                what: "key",
                pattern: pattern.into(),
                matches: candidates
                    .iter()
                    .map(|k| format!("{} ({})", k.key_id, k.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Creates a key with a random id and secret.
    pub async fn create_key(&self, name: &str) -> Result<Key> {
        let id = format!("GK{}", hex::encode(&self.rng.bytes32()[..12]));
        let secret = hex::encode(self.rng.bytes32());
        let key = Key::new(id, secret, name);
        self.key_table.insert(&key).await?;
        Ok(key)
    }

    /// Imports a key created elsewhere; refused if the id ever existed.
    pub async fn import_key(&self, id: &str, secret: &str, name: &str) -> Result<Key> {
        if !is_key_id(id) {
            return Err(HelperError::Refused(format!(
                "invalid key id `{id}`: expected GK followed by 24 hex digits"
            )));
        }
        if secret.len() != 64 || !secret.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(HelperError::Refused(
                "invalid secret key: expected 64 hex digits".into(),
            ));
        }
        if self
            .key_table
            .get(&EmptyKey, &id.to_string())
            .await?
            .is_some()
        {
            return Err(HelperError::Refused(format!(
                "key {id} already exists or existed in this cluster: it cannot be imported"
            )));
        }
        let key = Key::new(id.into(), secret.into(), name);
        self.key_table.insert(&key).await?;
        Ok(key)
    }

    /// Renames a key.
    pub async fn rename_key(&self, pattern: &str, new_name: &str) -> Result<Key> {
        let mut key = self.find_key(pattern).await?;
        if let Some(p) = key.params_mut() {
            p.name.update(new_name.to_string());
        }
        self.key_table.insert(&key).await?;
        Ok(key)
    }

    /// Allows or denies bucket creation.
    pub async fn set_key_create_bucket(&self, pattern: &str, allow: bool) -> Result<Key> {
        let mut key = self.find_key(pattern).await?;
        if let Some(p) = key.params_mut() {
            p.allow_create_bucket.update(allow);
        }
        self.key_table.insert(&key).await?;
        Ok(key)
    }

    /// Deletes a key: its permissions and local aliases go with it.
    pub async fn delete_key(&self, pattern: &str) -> Result<Key> {
        let mut key = self.find_key(pattern).await?;
        let params = key.params().cloned();
        if let Some(p) = params {
            for (bucket_id, perm) in p.authorized_buckets.iter() {
                if perm.is_any() {
                    self.set_permissions_raw(bucket_id, &key.key_id, BucketKeyPerm::NONE)
                        .await?;
                }
            }
            for (alias, _, target) in p.local_aliases.items() {
                if let Some(b) = target {
                    if let Some(mut bucket) = self.bucket_table.get(&EmptyKey, b).await? {
                        if let Some(bp) = bucket.params_mut() {
                            bp.local_aliases
                                .update_in_place((key.key_id.clone(), alias.clone()), false);
                        }
                        self.bucket_table.insert(&bucket).await?;
                    }
                }
            }
        }
        key.state = Deletable::Deleted;
        self.key_table.insert(&key).await?;
        Ok(key)
    }

    /// Every live bucket.
    pub async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        Ok(self
            .bucket_table
            .get_range(
                &EmptyKey,
                SortRange::all(),
                Some(BucketFilter::Live),
                usize::MAX,
                false,
            )
            .await?)
    }

    /// The bucket a global alias points to.
    pub async fn resolve_global_alias(&self, name: &str) -> Result<Option<Uuid>> {
        Ok(self
            .bucket_alias_table
            .get(&EmptyKey, &name.to_string())
            .await?
            .and_then(|a| a.bucket()))
    }

    /// The bucket a key-local alias points to.
    pub async fn resolve_local_alias(&self, key_id: &str, name: &str) -> Result<Option<Uuid>> {
        Ok(self
            .key_table
            .get(&EmptyKey, &key_id.to_string())
            .await?
            .and_then(|k| {
                k.params()
                    .and_then(|p| p.local_aliases.get(&name.to_string()).cloned().flatten())
            }))
    }

    /// A live bucket by global alias, full hex id or unique hex id prefix
    /// (at least 8 digits).
    pub async fn find_bucket(&self, name: &str) -> Result<Bucket> {
        let not_found = || HelperError::NotFound {
            what: "bucket",
            name: name.into(),
        };
        let id = match self.resolve_global_alias(name).await? {
            Some(id) => Some(id),
            None => match Uuid::from_hex(name) {
                Some(id) => Some(id),
                None if name.len() >= 8 && name.chars().all(|c| c.is_ascii_hexdigit()) => {
                    let lower = name.to_ascii_lowercase();
                    let m: Vec<Uuid> = self
                        .list_buckets()
                        .await?
                        .into_iter()
                        .map(|b| b.id)
                        .filter(|id| id.to_hex().starts_with(&lower))
                        .collect();
                    if m.len() > 1 {
                        return Err(HelperError::Ambiguous {
                            what: "bucket",
                            pattern: name.into(),
                            matches: m.iter().map(|i| i.to_hex()).collect::<Vec<_>>().join(", "),
                        });
                    }
                    m.into_iter().next()
                }
                None => None,
            },
        };
        let id = id.ok_or_else(not_found)?;
        match self.bucket_table.get(&EmptyKey, &id).await? {
            Some(b) if !b.state.is_deleted() => Ok(b),
            _ => Err(not_found()),
        }
    }

    /// Creates a bucket with a global alias.
    pub async fn create_bucket(&self, name: &str) -> Result<Bucket> {
        if !is_valid_bucket_name(name) {
            return Err(HelperError::Refused(format!(
                "invalid bucket name `{name}`: use 3 to 63 lower-case letters, digits, \
                 '-' or '.', starting and ending with a letter or digit"
            )));
        }
        if self.resolve_global_alias(name).await?.is_some() {
            return Err(HelperError::Refused(format!(
                "bucket {name} already exists"
            )));
        }
        let id = Uuid::from_bytes(self.rng.bytes32());
        let mut bucket = Bucket::new(id, self.clock.now_ms());
        if let Some(p) = bucket.params_mut() {
            p.aliases.update_in_place(name.to_string(), true);
        }
        self.bucket_table.insert(&bucket).await?;
        self.set_global_alias_raw(name, Some(id)).await?;
        Ok(bucket)
    }

    async fn set_global_alias_raw(&self, name: &str, target: Option<Uuid>) -> Result<()> {
        let alias = match self
            .bucket_alias_table
            .get(&EmptyKey, &name.to_string())
            .await?
        {
            Some(mut a) => {
                a.state.update(target);
                a
            }
            None => BucketAlias {
                name: name.to_string(),
                state: Lww::new(target),
            },
        };
        self.bucket_alias_table.insert(&alias).await?;
        Ok(())
    }

    /// Sets the permissions of a key on a bucket, on both sides.
    async fn set_permissions_raw(
        &self,
        bucket_id: &Uuid,
        key_id: &str,
        perm: BucketKeyPerm,
    ) -> Result<()> {
        let perm = BucketKeyPerm {
            timestamp: self.clock.now_ms(),
            ..perm
        };
        if let Some(mut b) = self.bucket_table.get(&EmptyKey, bucket_id).await? {
            if let Some(p) = b.params_mut() {
                p.authorized_keys.insert(key_id.to_string(), perm);
                self.bucket_table.insert(&b).await?;
            }
        }
        if let Some(mut k) = self.key_table.get(&EmptyKey, &key_id.to_string()).await? {
            if let Some(p) = k.params_mut() {
                p.authorized_buckets.insert(*bucket_id, perm);
                self.key_table.insert(&k).await?;
            }
        }
        Ok(())
    }

    /// Allows (`allow = true`: ORs the given flags in) or denies (clears
    /// only the given flags) a key on a bucket. Returns the new permission.
    pub async fn change_permissions(
        &self,
        bucket: &str,
        key_pattern: &str,
        read: bool,
        write: bool,
        owner: bool,
        allow: bool,
    ) -> Result<(Bucket, Key, BucketKeyPerm)> {
        if !(read || write || owner) {
            return Err(HelperError::Refused(
                "give at least one of --read, --write, --owner".into(),
            ));
        }
        let b = self.find_bucket(bucket).await?;
        let k = self.find_key(key_pattern).await?;
        let cur = k.bucket_permissions(&b.id);
        let new = if allow {
            self.new_perm(
                cur.allow_read || read,
                cur.allow_write || write,
                cur.allow_owner || owner,
            )
        } else {
            self.new_perm(
                cur.allow_read && !read,
                cur.allow_write && !write,
                cur.allow_owner && !owner,
            )
        };
        self.set_permissions_raw(&b.id, &k.key_id, new).await?;
        Ok((b, k, new))
    }

    /// Adds a global alias, or a local one for `local_key`.
    pub async fn alias_bucket(
        &self,
        bucket: &str,
        new_name: &str,
        local_key: Option<&str>,
    ) -> Result<Bucket> {
        if !is_valid_bucket_name(new_name) {
            return Err(HelperError::Refused(format!(
                "invalid bucket name `{new_name}`"
            )));
        }
        let mut b = self.find_bucket(bucket).await?;
        match local_key {
            None => {
                if let Some(other) = self.resolve_global_alias(new_name).await? {
                    if other != b.id {
                        return Err(HelperError::Refused(format!(
                            "alias {new_name} already points to another bucket"
                        )));
                    }
                }
                if let Some(p) = b.params_mut() {
                    p.aliases.update_in_place(new_name.to_string(), true);
                }
                self.bucket_table.insert(&b).await?;
                self.set_global_alias_raw(new_name, Some(b.id)).await?;
            }
            Some(kp) => {
                let mut k = self.find_key(kp).await?;
                if let Some(Some(other)) = k
                    .params()
                    .and_then(|p| p.local_aliases.get(&new_name.to_string()))
                {
                    if *other != b.id {
                        return Err(HelperError::Refused(format!(
                            "local alias {new_name} of key {} already points to another bucket",
                            k.key_id
                        )));
                    }
                }
                if let Some(p) = k.params_mut() {
                    p.local_aliases
                        .update_in_place(new_name.to_string(), Some(b.id));
                }
                if let Some(p) = b.params_mut() {
                    p.local_aliases
                        .update_in_place((k.key_id.clone(), new_name.to_string()), true);
                }
                self.bucket_table.insert(&b).await?;
                self.key_table.insert(&k).await?;
            }
        }
        Ok(b)
    }

    /// The bucket `id`, unless `name` is its only alias.
    async fn bucket_with_another_alias(&self, id: &Uuid, name: &str) -> Result<Bucket> {
        let b = self.find_bucket(&id.to_hex()).await?;
        if b.global_aliases().len() + b.local_aliases().len() <= 1 {
            return Err(HelperError::Refused(format!(
                "bucket {name} has no other alias: delete it instead, or add another alias first"
            )));
        }
        Ok(b)
    }

    /// Removes a global alias (or a local one of `local_key`); refused for
    /// the last alias of a bucket.
    pub async fn unalias_bucket(&self, name: &str, local_key: Option<&str>) -> Result<Bucket> {
        match local_key {
            None => {
                let id = self.resolve_global_alias(name).await?.ok_or_else(|| {
                    HelperError::NotFound {
                        what: "global alias",
                        name: name.into(),
                    }
                })?;
                let mut b = self.bucket_with_another_alias(&id, name).await?;
                if let Some(p) = b.params_mut() {
                    p.aliases.update_in_place(name.to_string(), false);
                }
                self.bucket_table.insert(&b).await?;
                self.set_global_alias_raw(name, None).await?;
                Ok(b)
            }
            Some(kp) => {
                let mut k = self.find_key(kp).await?;
                let id = k
                    .params()
                    .and_then(|p| p.local_aliases.get(&name.to_string()).cloned().flatten())
                    .ok_or_else(|| HelperError::NotFound {
                        what: "local alias",
                        name: name.into(),
                    })?;
                let mut b = self.bucket_with_another_alias(&id, name).await?;
                if let Some(p) = k.params_mut() {
                    p.local_aliases.update_in_place(name.to_string(), None);
                }
                if let Some(p) = b.params_mut() {
                    p.local_aliases
                        .update_in_place((k.key_id.clone(), name.to_string()), false);
                }
                self.bucket_table.insert(&b).await?;
                self.key_table.insert(&k).await?;
                Ok(b)
            }
        }
    }

    /// Number of live K2V items in a bucket, summed over partition keys
    /// (0 without the K2V feature).
    pub async fn bucket_k2v_entries(&self, bucket: &Uuid) -> Result<i64> {
        #[cfg(feature = "k2v")]
        {
            let nodes = self.system.layout().current().storage_nodes().to_vec();
            let entries = self
                .k2v
                .counter_table
                .get_range(bucket, SortRange::all(), None, usize::MAX, false)
                .await?;
            Ok(entries
                .iter()
                .map(|e| *e.filtered_values(&nodes).get("entries").unwrap_or(&0))
                .sum())
        }
        #[cfg(not(feature = "k2v"))]
        {
            let _ = bucket;
            Ok(0)
        }
    }

    /// S3 contents of a bucket: (objects, bytes, uploads in progress). Reads
    /// the bucket's whole object partition.
    pub async fn bucket_object_counts(&self, bucket: &Uuid) -> Result<(u64, u64, u64)> {
        let (mut objects, mut bytes, mut uploads) = (0u64, 0u64, 0u64);
        let mut range = SortRange::all();
        loop {
            let page = self
                .s3
                .object_table
                .get_range(bucket, range.clone(), None, 1000, false)
                .await?;
            for o in page.iter() {
                if let Some(m) = o.last_data().and_then(|v| v.meta()) {
                    objects += 1;
                    bytes += m.size;
                }
                uploads += o.versions.iter().filter(|v| v.is_uploading(false)).count() as u64;
            }
            match page.last() {
                Some(last) if page.len() >= 1000 => {
                    range.lo = std::ops::Bound::Excluded(last.key.as_bytes().to_vec());
                }
                _ => break,
            }
        }
        Ok((objects, bytes, uploads))
    }

    /// Whether the bucket holds at least one S3 object.
    pub async fn bucket_has_objects(&self, bucket: &Uuid) -> Result<bool> {
        Ok(!self
            .s3
            .object_table
            .get_range(
                bucket,
                SortRange::all(),
                Some(crate::s3::object_table::ObjectFilter::IsData),
                1,
                false,
            )
            .await?
            .is_empty())
    }

    /// Deletes a bucket that is empty and has only the alias `name`.
    pub async fn delete_bucket(&self, name: &str) -> Result<Bucket> {
        let mut b = self.find_bucket(name).await?;
        let aliases = b.global_aliases();
        if aliases.len() + b.local_aliases().len() > 1 || !aliases.contains(&name.to_string()) {
            return Err(HelperError::Refused(format!(
                "bucket {name} has other aliases: remove them first (garage bucket unalias)"
            )));
        }
        if self.bucket_has_objects(&b.id).await? {
            return Err(HelperError::Refused(format!(
                "bucket {name} is not empty: it holds S3 objects"
            )));
        }
        let n = self.bucket_k2v_entries(&b.id).await?;
        if n > 0 {
            return Err(HelperError::Refused(format!(
                "bucket {name} is not empty: it holds {n} K2V item(s)"
            )));
        }
        let keys: Vec<String> = b
            .params()
            .map(|p| p.authorized_keys.keys().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            self.set_permissions_raw(&b.id, &k, BucketKeyPerm::NONE)
                .await?;
        }
        self.set_global_alias_raw(name, None).await?;
        b = self.bucket_table.get(&EmptyKey, &b.id).await?.unwrap_or(b);
        b.state = Deletable::Deleted;
        self.bucket_table.insert(&b).await?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(is_valid_bucket_name("default"));
        assert!(is_valid_bucket_name("my-bucket.1"));
        assert!(!is_valid_bucket_name("ab"));
        assert!(!is_valid_bucket_name("Upper"));
        assert!(!is_valid_bucket_name("-x-"));
        assert!(!is_valid_bucket_name("a..b"));
        assert!(!is_valid_bucket_name(&"a".repeat(64)));
        assert!(is_key_id("GK0123456789abcdef01234567"));
        assert!(!is_key_id("GK0123"));
    }
}
