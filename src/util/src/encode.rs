//! Versioned MessagePack encoding for everything that persists or crosses
//! the wire.
//!
//! Each stored type declares a short version marker that is written before
//! its MessagePack body. Decoding checks the marker of the current version
//! first, then asks the previous version (if any) and migrates the result.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Errors of [`encode`] / [`Migrate::decode`].
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// MessagePack encoding failed.
    #[error("msgpack encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The bytes match no known version of the type.
    #[error("cannot decode {type_name}: no known version matches")]
    UnknownVersion {
        /// The Rust type that was expected.
        type_name: &'static str,
    },
}

/// Encodes as MessagePack with field names (struct maps), so fields can be
/// added later without breaking old readers.
pub fn to_msgpack<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::new();
    let mut ser = rmp_serde::Serializer::new(&mut buf).with_struct_map();
    v.serialize(&mut ser)?;
    Ok(buf)
}

/// Decodes MessagePack written by [`to_msgpack`].
pub fn from_msgpack<T: DeserializeOwned>(b: &[u8]) -> Option<T> {
    rmp_serde::from_slice(b).ok()
}

/// A type stored with a version marker, able to read its older versions.
pub trait Migrate: Serialize + DeserializeOwned + 'static {
    /// The marker written before the body (empty for an unmarked first version).
    const VERSION_MARKER: &'static [u8];
    /// The previous version, or `NoPrevious`.
    type Previous: Migrate;
    /// Converts the previous version into this one.
    fn migrate(previous: Self::Previous) -> Self;

    /// Encodes with the version marker.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Self::VERSION_MARKER.to_vec();
        out.extend(to_msgpack(self)?);
        Ok(out)
    }

    /// Decodes this version or any older one.
    fn decode(bytes: &[u8]) -> Option<Self> {
        if let Some(body) = bytes.strip_prefix(Self::VERSION_MARKER) {
            if let Some(v) = from_msgpack(body) {
                return Some(v);
            }
        }
        if std::any::TypeId::of::<Self::Previous>() == std::any::TypeId::of::<NoPrevious>() {
            return None;
        }
        Self::Previous::decode(bytes).map(Self::migrate)
    }
}

/// Marks the first version of a type.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum NoPrevious {}

impl Migrate for NoPrevious {
    const VERSION_MARKER: &'static [u8] = b"";
    type Previous = NoPrevious;
    fn migrate(p: Self::Previous) -> Self {
        p
    }
    fn decode(_bytes: &[u8]) -> Option<Self> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        a: u32,
    }
    impl Migrate for V1 {
        const VERSION_MARKER: &'static [u8] = b"T1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        a: u32,
        b: String,
    }
    impl Migrate for V2 {
        const VERSION_MARKER: &'static [u8] = b"T2";
        type Previous = V1;
        fn migrate(p: V1) -> Self {
            V2 {
                a: p.a,
                b: "migrated".into(),
            }
        }
    }

    #[test]
    fn decodes_old_versions() {
        let old = V1 { a: 7 }.encode().expect("encode");
        assert_eq!(
            V2::decode(&old),
            Some(V2 {
                a: 7,
                b: "migrated".into()
            })
        );
        let new = V2 {
            a: 1,
            b: "x".into(),
        };
        assert_eq!(V2::decode(&new.encode().expect("encode")), Some(new));
        assert_eq!(V2::decode(b"garbage"), None);
    }
}
