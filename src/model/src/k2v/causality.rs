//! Causal contexts of K2V items and their wire form, the causality token.
//!
//! A causal context maps each K2V node id to the largest time of that node's
//! writes that a reader has seen (see the DVVS item in `item.rs`). Clients get
//! it as an opaque token and send it back with their next write, which then
//! supersedes every value the context covers.
//!
//! Token format (Garage's, kept bit for bit): big-endian u64 words
//! `[checksum] [node, time]*` sorted by node, where the checksum is the XOR of
//! every node id and time, encoded as URL-safe base64 without padding.
//! Parsing never panics: any malformed string is an [`InvalidCausalityToken`],
//! which the API maps to a 400.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use garage_util::crdt::Crdt;
use serde::{Deserialize, Serialize};

/// Identifier of a K2V writer node. It must never be reused by a node whose
/// history restarted from nothing (see the spec: derived from a random id kept
/// in the metadata database).
pub type K2VNodeId = u64;

/// A vector clock: node id → time. A missing node counts as time 0.
pub type VectorClock = BTreeMap<K2VNodeId, u64>;

/// Size of one big-endian word of the token.
const WORD: usize = 8;

/// Why a causality token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCausalityToken {
    /// Not URL-safe base64 without padding.
    #[error("invalid causality token: not URL-safe base64 without padding")]
    Base64,
    /// The decoded length is not `8 + 16 * n` bytes.
    #[error("invalid causality token: {len} bytes is not 8 + 16n")]
    Length {
        /// Decoded length in bytes.
        len: usize,
    },
    /// The checksum word does not match the XOR of the entries.
    #[error("invalid causality token: checksum mismatch")]
    Checksum,
}

/// The causal context of an item, as sent to and received from clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    /// Largest time seen, per writer node.
    pub vector_clock: VectorClock,
}

impl CausalContext {
    /// An empty context (covers nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes the context as a causality token (URL-safe base64, no padding).
    pub fn serialize(&self) -> String {
        let checksum = self
            .vector_clock
            .iter()
            .fold(0u64, |acc, (node, time)| acc ^ node ^ time);
        let mut bytes = Vec::with_capacity(WORD * (1 + 2 * self.vector_clock.len()));
        bytes.extend_from_slice(&checksum.to_be_bytes());
        for (node, time) in &self.vector_clock {
            bytes.extend_from_slice(&node.to_be_bytes());
            bytes.extend_from_slice(&time.to_be_bytes());
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a causality token. Entries may come in any order; a node given
    /// twice keeps its larger time (our own tokens never do either).
    ///
    /// # Errors
    /// [`InvalidCausalityToken`] on bad base64, a bad length or a wrong checksum.
    pub fn parse(s: &str) -> Result<Self, InvalidCausalityToken> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| InvalidCausalityToken::Base64)?;
        if bytes.len() % (2 * WORD) != WORD {
            return Err(InvalidCausalityToken::Length { len: bytes.len() });
        }
        let mut words = bytes.chunks_exact(WORD).map(be_u64);
        let checksum = words.next().unwrap_or_default();
        let mut vector_clock = VectorClock::new();
        let mut xor = 0u64;
        while let (Some(node), Some(time)) = (words.next(), words.next()) {
            xor ^= node ^ time;
            let t = vector_clock.entry(node).or_insert(time);
            *t = (*t).max(time);
        }
        if xor != checksum {
            return Err(InvalidCausalityToken::Checksum);
        }
        Ok(Self { vector_clock })
    }

    /// True if some node has a larger time here than in `other` (missing = 0),
    /// i.e. `self` knows of a write that `other` does not cover.
    pub fn is_newer_than(&self, other: &CausalContext) -> bool {
        vclock_gt(&self.vector_clock, &other.vector_clock)
    }

    /// Raises each node's time to the maximum of both contexts.
    pub fn merge_max(&mut self, other: &CausalContext) {
        vclock_max_into(&mut self.vector_clock, &other.vector_clock);
    }
}

impl Crdt for CausalContext {
    fn merge(&mut self, other: &Self) {
        self.merge_max(other);
    }
}

/// True if some node has a larger time in `a` than in `b` (missing = 0).
pub fn vclock_gt(a: &VectorClock, b: &VectorClock) -> bool {
    a.iter()
        .any(|(node, t)| *t > b.get(node).copied().unwrap_or(0))
}

/// Raises each node's time in `acc` to the maximum of `acc` and `other`.
pub fn vclock_max_into(acc: &mut VectorClock, other: &VectorClock) {
    for (node, t) in other {
        let mine = acc.entry(*node).or_insert(*t);
        *mine = (*mine).max(*t);
    }
}

/// Reads one big-endian word; callers only pass `WORD`-byte chunks.
fn be_u64(chunk: &[u8]) -> u64 {
    let mut word = [0u8; WORD];
    word.copy_from_slice(chunk);
    u64::from_be_bytes(word)
}

#[cfg(test)]
#[path = "causality_tests.rs"]
mod tests;
