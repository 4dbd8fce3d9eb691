//! SigV4 key derivation and a small cache of derived signing keys.
//!
//! Deriving a signing key costs four HMACs; a client signs many requests per day with the same
//! key, so the verifier keeps the derived keys of `(key id, date, region, service)`. Each
//! entry also remembers the secret it was derived from and is only used when the secret given
//! now is the same (compared in constant time), so a key re-imported with a new secret never
//! verifies with a stale derived key. The cache is bounded: it is emptied when it would grow
//! past [`MAX_ENTRIES`].

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Upper bound on the number of cached signing keys.
pub const MAX_ENTRIES: usize = 10_000;

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .expect("invariant: HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date8), region), service),
/// "aws4_request")`, where `date8` is `YYYYMMDD`.
pub fn signing_key(secret: &str, date8: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date8.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key_id: String,
    date8: String,
    region: String,
    service: String,
}

struct CacheEntry {
    secret: String,
    key: [u8; 32],
}

/// Cache of derived signing keys, shared by all requests of an API server.
pub struct SigningKeyCache {
    entries: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl SigningKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        SigningKeyCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, CacheEntry>> {
        // The map is always consistent (every update is a single insert or clear), so a panic
        // in another thread holding the lock does not make it unusable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signing key of `key_id`/`secret` for a scope, derived once and then cached.
    pub fn get(
        &self,
        key_id: &str,
        secret: &str,
        date8: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        let cache_key = CacheKey {
            key_id: key_id.to_owned(),
            date8: date8.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        };
        if let Some(entry) = self.lock().get(&cache_key) {
            if constant_time_eq(entry.secret.as_bytes(), secret.as_bytes()) {
                return entry.key;
            }
        }
        // Derive outside the lock: it is the expensive part.
        let key = signing_key(secret, date8, region, service);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&cache_key) {
            entries.clear();
        }
        entries.insert(
            cache_key,
            CacheEntry {
                secret: secret.to_owned(),
                key,
            },
        );
        key
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets or derived keys.
        f.debug_struct("SigningKeyCache")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_documented_signing_key() {
        // From the AWS SigV4 documentation ("Examples of how to derive a signing key").
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn cache_hits_and_secret_change() {
        let cache = SigningKeyCache::new();
        let a = cache.get("GK1", "s1", "20240101", "garage", "k2v");
        assert_eq!(a, signing_key("s1", "20240101", "garage", "k2v"));
        assert_eq!(cache.get("GK1", "s1", "20240101", "garage", "k2v"), a);
        assert_eq!(cache.len(), 1);
        let b = cache.get("GK1", "s2", "20240101", "garage", "k2v");
        assert_eq!(b, signing_key("s2", "20240101", "garage", "k2v"));
        assert_ne!(a, b);
        assert_eq!(cache.len(), 1);
        assert!(!format!("{cache:?}").contains("s2"));
    }

    #[test]
    fn cache_is_bounded() {
        let cache = SigningKeyCache::new();
        for i in 0..=MAX_ENTRIES {
            cache.get(&format!("GK{i}"), "s", "20240101", "garage", "k2v");
        }
        assert!(cache.len() <= MAX_ENTRIES);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
