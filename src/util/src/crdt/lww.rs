//! Last-writer-wins register.

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::time::system_now_ms;

/// A register whose newest write (by millisecond timestamp) wins. On equal
/// timestamps the values themselves are merged, so the result is the same
/// on every replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lww<T> {
    ts: u64,
    v: T,
}

impl<T: Crdt + Clone> Lww<T> {
    /// A register written now.
    pub fn new(v: T) -> Self {
        Self {
            ts: system_now_ms(),
            v,
        }
    }
    /// A register with an explicit timestamp (0 = older than anything).
    pub fn raw(ts: u64, v: T) -> Self {
        Self { ts, v }
    }
    /// Overwrites the value with a timestamp above every previous one.
    pub fn update(&mut self, v: T) {
        self.ts = std::cmp::max(self.ts + 1, system_now_ms());
        self.v = v;
    }
    /// The current value.
    pub fn get(&self) -> &T {
        &self.v
    }
    /// The current value, mutably (the caller must then merge-safe edit it).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.v
    }
    /// The timestamp of the last write.
    pub fn timestamp(&self) -> u64 {
        self.ts
    }
}

impl<T: Crdt + Clone> Crdt for Lww<T> {
    fn merge(&mut self, other: &Self) {
        if other.ts > self.ts {
            self.ts = other.ts;
            self.v = other.v.clone();
        } else if other.ts == self.ts {
            self.v.merge(&other.v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::laws;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        // Any (timestamp, value) pair can be written, so arbitrary pairs
        // are reachable states; small ranges make ties frequent.
        fn lww_laws(states in prop::collection::vec((0u64..5, 0u64..5), 1..6)) {
            let regs: Vec<Lww<u64>> = states.iter().map(|&(t, v)| Lww::raw(t, v)).collect();
            let all = laws::check_all(&regs);
            // The newest write wins, and the larger value on a tie.
            prop_assert_eq!((all.timestamp(), *all.get()), states.iter().copied().max().expect("non-empty"));
        }
    }

    #[test]
    fn update_moves_forward() {
        let mut r = Lww::raw(u64::MAX - 10, 1u64);
        r.update(2);
        assert_eq!(*r.get(), 2);
        assert_eq!(r.timestamp(), u64::MAX - 9);
    }
}
