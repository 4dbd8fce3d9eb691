//! The object table: per bucket (partition key) and object key (sort key),
//! the versions of the object.
//!
//! A version goes `Uploading` → `Complete` or `Aborted`, never back: the
//! merge of two copies of a version keeps the later state (`Complete` if
//! one copy completed). Versions older
//! than the newest complete one are dropped by the merge (they can never be
//! read again), so an entry holds the current object plus the uploads
//! started after it. Small objects are stored inline; larger ones name
//! their first block, the rest of their blocks is in the version table.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use garage_db::Transaction;
use garage_table::{Entry, TableSchema};
use garage_util::crdt::Crdt;
use garage_util::data::{Hash, Uuid};
use garage_util::encode::{Migrate, NoPrevious};

use super::cascade::{Cascade, CascadeTask};

pub use v1::{Object, ObjectMeta, ObjectVersion, ObjectVersionData, ObjectVersionState};

/// Objects up to this size are stored inline in the object table.
pub const INLINE_THRESHOLD: usize = 3072;

mod v1 {
    use super::*;

    /// All known versions of one object key.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Object {
        /// The bucket.
        pub bucket_id: Uuid,
        /// The object key.
        pub key: String,
        /// Versions, ordered by (timestamp, uuid).
        pub versions: Vec<ObjectVersion>,
    }

    /// One version of an object (one PutObject, CopyObject, DeleteObject or
    /// multipart upload).
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct ObjectVersion {
        /// When it was started (ms); orders versions.
        pub timestamp: u64,
        /// Its id; also the multipart upload id and the version table key.
        pub uuid: Uuid,
        /// Where it is in its life.
        pub state: ObjectVersionState,
    }

    /// The life of a version; variants are in the order of the merge.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum ObjectVersionState {
        /// Data is being written.
        Uploading {
            /// A multipart upload (listed by ListMultipartUploads).
            multipart: bool,
            /// Headers given when it started.
            meta: ObjectMeta,
        },
        /// Cancelled or failed: never readable.
        Aborted,
        /// Readable. Wins over `Aborted` (an abort racing a completion
        /// loses), so the newest complete version only ever moves forward.
        Complete(ObjectVersionData),
    }

    /// What a complete version holds.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum ObjectVersionData {
        /// The object was deleted.
        DeleteMarker,
        /// A small object, stored here.
        Inline(ObjectMeta, ByteBuf),
        /// A larger object, whose first block is this.
        FirstBlock(ObjectMeta, Hash),
    }

    /// Size, ETag and the headers returned on GET.
    #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct ObjectMeta {
        /// Bytes.
        pub size: u64,
        /// The ETag without quotes.
        pub etag: String,
        /// Stored headers (`content-type`, `x-amz-meta-*`, ...), lowercase names.
        pub headers: Vec<(String, String)>,
        /// Multipart: the (part number, attempt) pairs the object is made
        /// of, in order (empty for a simple upload).
        pub parts: Vec<(u64, u64)>,
    }

    impl Migrate for Object {
        const VERSION_MARKER: &'static [u8] = b"S3obj1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

impl ObjectVersion {
    /// Whether it is complete and not a delete marker.
    pub fn is_data(&self) -> bool {
        matches!(
            self.state,
            ObjectVersionState::Complete(ObjectVersionData::Inline(..))
                | ObjectVersionState::Complete(ObjectVersionData::FirstBlock(..))
        )
    }

    /// Whether it is complete (data or delete marker).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ObjectVersionState::Complete(_))
    }

    /// Whether it is an upload in progress (multipart ones only if asked).
    pub fn is_uploading(&self, multipart_only: bool) -> bool {
        match &self.state {
            ObjectVersionState::Uploading { multipart, .. } => !multipart_only || *multipart,
            _ => false,
        }
    }

    /// The metadata of a complete data version.
    pub fn meta(&self) -> Option<&ObjectMeta> {
        match &self.state {
            ObjectVersionState::Complete(ObjectVersionData::Inline(m, _))
            | ObjectVersionState::Complete(ObjectVersionData::FirstBlock(m, _)) => Some(m),
            _ => None,
        }
    }
}

impl Object {
    /// An entry with one version.
    pub fn new(bucket_id: Uuid, key: String, versions: Vec<ObjectVersion>) -> Self {
        let mut o = Self {
            bucket_id,
            key,
            versions,
        };
        o.versions.sort();
        o.prune();
        o
    }

    /// The newest complete version, if it holds data (not a delete marker).
    pub fn last_data(&self) -> Option<&ObjectVersion> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.is_complete())
            .filter(|v| v.is_data())
    }

    /// Drops the versions older than the newest complete one.
    fn prune(&mut self) {
        if let Some(i) = self.versions.iter().rposition(|v| v.is_complete()) {
            self.versions.drain(..i);
        }
    }
}

impl Crdt for Object {
    fn merge(&mut self, other: &Self) {
        for o in other.versions.iter() {
            match self
                .versions
                .binary_search_by(|v| (v.timestamp, v.uuid).cmp(&(o.timestamp, o.uuid)))
            {
                Ok(i) => {
                    if o.state > self.versions[i].state {
                        self.versions[i].state = o.state.clone();
                    }
                }
                Err(i) => self.versions.insert(i, o.clone()),
            }
        }
        self.prune();
    }
}

impl Entry<Uuid, String> for Object {
    fn partition_key(&self) -> &Uuid {
        &self.bucket_id
    }
    fn sort_key(&self) -> &String {
        &self.key
    }
    fn is_tombstone(&self) -> bool {
        self.versions.len() == 1
            && matches!(
                self.versions[0].state,
                ObjectVersionState::Complete(ObjectVersionData::DeleteMarker)
            )
    }
}

/// Filters of object range reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ObjectFilter {
    /// Objects whose current version holds data.
    IsData,
    /// Objects with an upload in progress (multipart ones only if `true`).
    IsUploading {
        /// Only multipart uploads.
        multipart_only: bool,
    },
}

/// The versions of `old` that `new` no longer has, or has aborted, and
/// whose data is in blocks: their version entries must be deleted.
pub fn dropped_versions(old: &Object, new: Option<&Object>) -> Vec<Uuid> {
    old.versions
        .iter()
        .filter(|ov| match &ov.state {
            ObjectVersionState::Aborted => false,
            ObjectVersionState::Complete(ObjectVersionData::Inline(..))
            | ObjectVersionState::Complete(ObjectVersionData::DeleteMarker) => false,
            ObjectVersionState::Uploading { .. }
            | ObjectVersionState::Complete(ObjectVersionData::FirstBlock(..)) => true,
        })
        .filter(
            |ov| match new.and_then(|n| n.versions.iter().find(|nv| nv.uuid == ov.uuid)) {
                None => true,
                Some(nv) => matches!(nv.state, ObjectVersionState::Aborted),
            },
        )
        .map(|ov| ov.uuid)
        .collect()
}

/// Schema of the object table; its hook queues the deletion of the
/// versions a change dropped or aborted.
pub struct ObjectTable {
    /// The queue of follow-up writes.
    pub cascade: std::sync::Arc<Cascade>,
}

impl TableSchema for ObjectTable {
    const TABLE_NAME: &'static str = "object";
    type P = Uuid;
    type S = String;
    type E = Object;
    type Filter = ObjectFilter;

    fn matches_filter(entry: &Object, filter: &ObjectFilter) -> bool {
        match filter {
            ObjectFilter::IsData => entry.last_data().is_some(),
            ObjectFilter::IsUploading { multipart_only } => entry
                .versions
                .iter()
                .any(|v| v.is_uploading(*multipart_only)),
        }
    }

    fn updated(
        &self,
        tx: &mut Transaction<'_>,
        old: Option<&Object>,
        new: Option<&Object>,
    ) -> Result<(), garage_db::Error> {
        let Some(old) = old else {
            return Ok(());
        };
        let versions = dropped_versions(old, new);
        if versions.is_empty() {
            return Ok(());
        }
        self.cascade.queue_in_tx(
            tx,
            &CascadeTask::DropVersions {
                bucket_id: old.bucket_id,
                key: old.key.clone(),
                versions,
            },
        )
    }

    fn committed(&self, _old: Option<&Object>, _new: &Object) {
        self.cascade.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::crdt::laws;
    use proptest::prelude::*;

    fn meta(n: u8) -> ObjectMeta {
        ObjectMeta {
            size: u64::from(n),
            etag: format!("e{n}"),
            headers: vec![],
            parts: vec![],
        }
    }

    /// A replica step: start version `v`, complete it, abort it, or merge
    /// another replica in.
    #[derive(Clone, Debug)]
    enum Op {
        Start(u8),
        Complete(u8, bool),
        Abort(u8),
        Merge(usize),
    }

    fn op() -> impl Strategy<Value = (usize, Op)> {
        (
            0usize..3,
            prop_oneof![
                (0u8..4).prop_map(Op::Start),
                (0u8..4, any::<bool>()).prop_map(|(v, d)| Op::Complete(v, d)),
                (0u8..4).prop_map(Op::Abort),
                (0usize..3).prop_map(Op::Merge),
            ],
        )
    }

    fn version(v: u8, state: ObjectVersionState) -> ObjectVersion {
        ObjectVersion {
            timestamp: u64::from(v) * 10,
            uuid: Uuid::from([v; 32]),
            state,
        }
    }

    fn replay(ops: &[(usize, Op)]) -> (Vec<Object>, Vec<Object>) {
        let b = Uuid::from([1; 32]);
        let empty = Object::new(b, "k".into(), vec![]);
        let mut reps = vec![empty.clone(), empty.clone(), empty];
        let mut seen = vec![];
        for (r, op) in ops {
            let upd = match op {
                Op::Start(v) => Some(version(
                    *v,
                    ObjectVersionState::Uploading {
                        multipart: true,
                        meta: meta(*v),
                    },
                )),
                Op::Complete(v, del) => Some(version(
                    *v,
                    ObjectVersionState::Complete(if *del {
                        ObjectVersionData::DeleteMarker
                    } else {
                        ObjectVersionData::FirstBlock(meta(*v), Hash::from([*v; 32]))
                    }),
                )),
                Op::Abort(v) => Some(version(*v, ObjectVersionState::Aborted)),
                Op::Merge(from) => {
                    let o = reps[*from].clone();
                    reps[*r].merge(&o);
                    None
                }
            };
            if let Some(u) = upd {
                let o = Object::new(b, "k".into(), vec![u]);
                reps[*r].merge(&o);
            }
            seen.push(reps[*r].clone());
        }
        (reps, seen)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn object_merge_laws(ops in prop::collection::vec(op(), 0..16), old in any::<prop::sample::Index>()) {
            let (mut reps, seen) = replay(&ops);
            if !seen.is_empty() {
                reps.push(seen[old.index(seen.len())].clone());
            }
            let all = laws::check_all(&reps);
            // Never two complete versions; nothing older than the complete one.
            let complete: Vec<_> = all.versions.iter().filter(|v| v.is_complete()).collect();
            prop_assert!(complete.len() <= 1);
            if let Some(c) = complete.first() {
                prop_assert!(all.versions.iter().all(|v| v.timestamp >= c.timestamp));
            }
            for o in &reps {
                prop_assert_eq!(Object::decode(&o.encode().expect("encode")), Some(o.clone()));
            }
        }
    }

    #[test]
    fn newest_complete_wins() {
        let b = Uuid::from([1; 32]);
        let mut a = Object::new(
            b,
            "k".into(),
            vec![version(
                1,
                ObjectVersionState::Complete(ObjectVersionData::Inline(meta(1), ByteBuf::new())),
            )],
        );
        let up = Object::new(
            b,
            "k".into(),
            vec![version(
                2,
                ObjectVersionState::Uploading {
                    multipart: false,
                    meta: meta(2),
                },
            )],
        );
        a.merge(&up);
        assert_eq!(a.versions.len(), 2);
        assert_eq!(a.last_data().map(|v| v.uuid), Some(Uuid::from([1; 32])));
        let del = Object::new(
            b,
            "k".into(),
            vec![version(
                3,
                ObjectVersionState::Complete(ObjectVersionData::DeleteMarker),
            )],
        );
        a.merge(&del);
        assert_eq!(a.versions.len(), 1);
        assert!(a.last_data().is_none());
        assert!(a.is_tombstone());
    }
}
