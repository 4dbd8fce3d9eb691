//! Randomness through a handle: seeded in tests, from the OS otherwise.

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// A shareable random number generator.
#[derive(Clone)]
pub struct Rng(Arc<Mutex<StdRng>>);

impl Rng {
    /// Seeded from the operating system.
    pub fn from_os() -> Self {
        Self(Arc::new(Mutex::new(StdRng::from_entropy())))
    }
    /// Deterministic, for tests and simulations.
    pub fn seeded(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }
    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.fill_bytes(buf);
    }
    /// 32 random bytes.
    pub fn bytes32(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.fill(&mut b);
        b
    }
    /// A random u64.
    pub fn next_u64(&self) -> u64 {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.next_u64()
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic() {
        assert_eq!(Rng::seeded(7).next_u64(), Rng::seeded(7).next_u64());
        assert_ne!(Rng::seeded(7).bytes32(), Rng::seeded(8).bytes32());
    }
}
