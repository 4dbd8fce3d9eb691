//! Conflict-free replicated data types.
//!
//! Every replicated value implements [`Crdt`]: `merge` must be commutative,
//! associative and idempotent over the states that real histories produce,
//! so replicas converge whatever order updates arrive in.

mod deletable;
pub mod laws;
mod lww;
mod lww_map;

pub use deletable::Deletable;
pub use lww::Lww;
pub use lww_map::LwwMap;

/// A state-based CRDT.
///
/// Laws (checked by property tests for each implementation, with the
/// helpers of [`laws`]): `a.merge(b) == b.merge(a)`,
/// `(a.merge(b)).merge(c) == a.merge(b.merge(c))`, `a.merge(a) == a`, and
/// replicas that received the same states in any order are equal.
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

#[cfg(test)]
mod tests {
    use super::laws;
    use crate::data::FixedBytes32;
    use proptest::prelude::*;

    // Any value of these types can be written, so arbitrary values are
    // reachable states. Small ranges make ties frequent.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn auto_crdt_laws(
            strings in prop::collection::vec("[ab]{0,2}", 1..5),
            flags in prop::collection::vec(any::<bool>(), 1..5),
            numbers in prop::collection::vec(0u64..4, 1..5),
            ids in prop::collection::vec(0u8..3, 1..5),
            options in prop::collection::vec(prop::option::of(0u64..3), 1..5),
        ) {
            prop_assert_eq!(Some(laws::check_all(&strings)), strings.iter().max().cloned());
            prop_assert_eq!(Some(laws::check_all(&flags)), flags.iter().max().copied());
            prop_assert_eq!(Some(laws::check_all(&numbers)), numbers.iter().max().copied());
            let ids: Vec<FixedBytes32> = ids.into_iter().map(|b| FixedBytes32::from([b; 32])).collect();
            laws::check_all(&ids);
            laws::check_all(&options);
        }
    }
}
