//! Conflict-free replicated data types.
//!
//! Every replicated value implements [`Crdt`]: `merge` must be commutative,
//! associative and idempotent over the states that real histories produce,
//! so replicas converge whatever order updates arrive in.

mod bool;
mod deletable;
mod lww;
mod lww_map;

pub use self::bool::Bool;
pub use deletable::Deletable;
pub use lww::Lww;
pub use lww_map::LwwMap;

/// A state-based CRDT.
///
/// Laws (checked by property tests for each implementation):
/// `a.merge(b) == b.merge(a)`, `(a.merge(b)).merge(c) == a.merge(b.merge(c))`,
/// `a.merge(a) == a`.
pub trait Crdt {
    /// Merges `other` into `self`.
    fn merge(&mut self, other: &Self);
}

/// Values that merge by keeping the larger one (by `Ord`): used for the
/// values inside Lww registers when two updates carry the same timestamp.
pub trait AutoCrdt: Ord + Clone + std::fmt::Debug {
    /// Whether a tie on the timestamp deserves a warning in the logs.
    const WARN_IF_DIFFERENT: bool;
}

impl<T: AutoCrdt> Crdt for T {
    fn merge(&mut self, other: &Self) {
        if other > self {
            if Self::WARN_IF_DIFFERENT {
                tracing::warn!(?self, ?other, "CRDT tie between different values");
            }
            *self = other.clone();
        }
    }
}

impl AutoCrdt for String {
    const WARN_IF_DIFFERENT: bool = true;
}
impl AutoCrdt for bool {
    const WARN_IF_DIFFERENT: bool = true;
}
impl AutoCrdt for u64 {
    const WARN_IF_DIFFERENT: bool = true;
}
impl AutoCrdt for crate::data::FixedBytes32 {
    const WARN_IF_DIFFERENT: bool = true;
}

impl<T: AutoCrdt> AutoCrdt for Option<T> {
    const WARN_IF_DIFFERENT: bool = T::WARN_IF_DIFFERENT;
}

/// Property-test helpers shared by the CRDT tests of every crate.
pub mod laws {
    use super::Crdt;

    /// Checks commutativity, associativity and idempotence on three states.
    pub fn check<T: Crdt + Clone + PartialEq + std::fmt::Debug>(a: &T, b: &T, c: &T) {
        let mut ab = a.clone();
        ab.merge(b);
        let mut ba = b.clone();
        ba.merge(a);
        assert_eq!(ab, ba, "merge is not commutative");

        let mut ab_c = ab.clone();
        ab_c.merge(c);
        let mut bc = b.clone();
        bc.merge(c);
        let mut a_bc = a.clone();
        a_bc.merge(&bc);
        assert_eq!(ab_c, a_bc, "merge is not associative");

        let mut aa = a.clone();
        aa.merge(a);
        assert_eq!(&aa, a, "merge is not idempotent");
    }
}
