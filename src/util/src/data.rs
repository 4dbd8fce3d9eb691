//! Fixed-size identifiers and hashes.
//!
//! Node ids, bucket ids and partition hashes are all 32 bytes. Hashes are
//! Blake2b-512 truncated to 32 bytes, as in the on-disk and wire formats.

use std::fmt;

use blake2::{Blake2b512, Digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 32 raw bytes, ordered lexicographically, serialized as a byte string.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FixedBytes32([u8; 32]);

/// A node, bucket or other object identifier.
pub type Uuid = FixedBytes32;
/// A Blake2b hash truncated to 32 bytes.
pub type Hash = FixedBytes32;

impl FixedBytes32 {
    /// Wraps raw bytes.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    /// Builds from a slice; `None` unless it is exactly 32 bytes long.
    pub fn try_from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(Self)
    }
    /// The raw bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0[..]
    }
    /// The raw bytes as an array.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Lower-case hex of all 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Self::try_from_slice(&v)
    }
    /// The first 8 bytes read as a big-endian integer.
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

impl AsRef<[u8]> for FixedBytes32 {
    fn as_ref(&self) -> &[u8] {
        &self.0[..]
    }
}

impl From<[u8; 32]> for FixedBytes32 {
    fn from(b: [u8; 32]) -> Self {
        Self(b)
    }
}

impl fmt::Debug for FixedBytes32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", hex::encode(&self.0[..8]))
    }
}

impl fmt::Display for FixedBytes32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

impl Serialize for FixedBytes32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0[..])
    }
}

impl<'de> Deserialize<'de> for FixedBytes32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        Self::try_from_slice(&v)
            .ok_or_else(|| serde::de::Error::invalid_length(v.len(), &"32 bytes"))
    }
}

/// Blake2b-512 of `data`, truncated to 32 bytes.
pub fn blake2sum(data: &[u8]) -> Hash {
    let mut h = Blake2b512::new();
    h.update(data);
    let full = h.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&full[..32]);
    FixedBytes32(out)
}

/// Blake2b-512 over several byte strings concatenated, truncated to 32 bytes.
pub fn blake2sum_parts(parts: &[&[u8]]) -> Hash {
    let mut h = Blake2b512::new();
    for p in parts {
        h.update(p);
    }
    let full = h.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&full[..32]);
    FixedBytes32(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_order() {
        let a = FixedBytes32::from_bytes([1; 32]);
        assert_eq!(FixedBytes32::from_hex(&a.to_hex()), Some(a));
        assert_eq!(FixedBytes32::from_hex("zz"), None);
        assert!(FixedBytes32::from_bytes([0; 32]) < a);
        assert_eq!(a.prefix_u64(), 0x0101_0101_0101_0101);
    }

    #[test]
    fn msgpack_round_trip() {
        let a = blake2sum(b"hello");
        let enc = rmp_serde::to_vec(&a).expect("encode");
        let dec: FixedBytes32 = rmp_serde::from_slice(&enc).expect("decode");
        assert_eq!(a, dec);
        assert_eq!(blake2sum_parts(&[b"hel", b"lo"]), a);
    }
}
