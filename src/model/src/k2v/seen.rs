//! Seen markers of PollRange: what a client has already seen of a range.
//!
//! A marker holds a vector clock, meaning "every item that node X produced up
//! to time `vector_clock[X]` is seen", plus, per sort key, the causal context
//! of items seen beyond that clock. An item is new for the marker when its
//! context is newer than the clock and than its own per-key entry.
//!
//! Clients get the marker as an opaque string: the versioned MessagePack form
//! ([`Migrate`]) in standard base64. We have no compression crate, so markers
//! are kept small by [`RangeSeenMarker::canonicalize`] instead. Decoding never
//! panics and refuses oversized input; any failure is a 400 for the API.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use garage_util::encode::{Migrate, NoPrevious};

use super::causality::{vclock_gt, vclock_max_into, K2VNodeId, VectorClock};
use super::item::K2VItem;
use super::range::KeyRange;

/// Longest encoded marker accepted (base64 characters). Far above what a real
/// range produces, well below what would hurt a node to decode.
pub const MAX_SEEN_MARKER_LEN: usize = 16 << 20;

mod v1 {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::super::causality::K2VNodeId;

    /// What a PollRange client has seen; see the module documentation.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RangeSeenMarker {
        /// Per node: every item it produced up to this time is seen.
        pub vector_clock: BTreeMap<K2VNodeId, u64>,
        /// Per sort key: the context of the item seen beyond `vector_clock`.
        pub items: BTreeMap<String, BTreeMap<K2VNodeId, u64>>,
    }
}

pub use v1::RangeSeenMarker;

impl Migrate for RangeSeenMarker {
    const VERSION_MARKER: &'static [u8] = b"k2vsm1";
    type Previous = NoPrevious;
    fn migrate(previous: NoPrevious) -> Self {
        match previous {}
    }
}

/// Why a seen marker was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSeenMarker {
    /// Longer than [`MAX_SEEN_MARKER_LEN`].
    #[error("invalid seen marker: {len} characters is too long")]
    TooLong {
        /// Length of the string received.
        len: usize,
    },
    /// Not standard base64.
    #[error("invalid seen marker: not base64")]
    Base64,
    /// Not a marker in any known version.
    #[error("invalid seen marker: unknown format")]
    Format,
}

impl RangeSeenMarker {
    /// An empty marker: nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the items outside the range: keys with `prefix`, from `start`
    /// (inclusive) to `end` (exclusive).
    pub fn restrict(&mut self, range: &KeyRange) {
        self.items.retain(|sk, _| range.contains(sk));
    }

    /// Records the items that node `node` returned: its clock entry rises to
    /// the largest time of its own writes among them, and items whose context
    /// is beyond the clock are remembered by sort key.
    pub fn mark_seen_node_items<'a>(
        &mut self,
        node: K2VNodeId,
        items: impl Iterator<Item = &'a K2VItem>,
    ) {
        for item in items {
            let context = item.causal_context().vector_clock;
            if let Some(t) = context.get(&node) {
                let seen = self.vector_clock.entry(node).or_insert(*t);
                *seen = (*seen).max(*t);
            }
            if vclock_gt(&context, &self.vector_clock) {
                let seen = self.items.entry(item.sort_key.clone()).or_default();
                vclock_max_into(seen, &context);
            }
        }
    }

    /// Drops what the vector clock already covers (per-key contexts and zero
    /// times), so the marker stays small.
    pub fn canonicalize(&mut self) {
        self.vector_clock.retain(|_, t| *t > 0);
        let clock = &self.vector_clock;
        self.items.retain(|_, context| vclock_gt(context, clock));
        for context in self.items.values_mut() {
            context.retain(|_, t| *t > 0);
        }
    }

    /// True if the item holds a write this marker has not seen.
    pub fn is_new_item(&self, item: &K2VItem) -> bool {
        let context: VectorClock = item.causal_context().vector_clock;
        vclock_gt(&context, &self.vector_clock)
            && self
                .items
                .get(&item.sort_key)
                .is_none_or(|seen| vclock_gt(&context, seen))
    }

    /// The opaque string sent to the client (versioned MessagePack, base64).
    pub fn encode(&self) -> String {
        // Maps of strings and integers always serialize; the only failure
        // mode of the encoder is a writer error, and a Vec never fails.
        let bytes = Migrate::encode(self)
            .expect("invariant: msgpack of maps of strings and integers into a Vec");
        STANDARD.encode(bytes)
    }

    /// Decodes a marker received from a client.
    ///
    /// # Errors
    /// [`InvalidSeenMarker`] if the string is too long, not base64, or not a
    /// marker of any known version.
    pub fn decode(s: &str) -> Result<Self, InvalidSeenMarker> {
        if s.len() > MAX_SEEN_MARKER_LEN {
            return Err(InvalidSeenMarker::TooLong { len: s.len() });
        }
        let bytes = STANDARD.decode(s).map_err(|_| InvalidSeenMarker::Base64)?;
        <Self as Migrate>::decode(&bytes).ok_or(InvalidSeenMarker::Format)
    }
}

#[cfg(test)]
#[path = "seen_tests.rs"]
mod tests;
