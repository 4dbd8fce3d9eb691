//! A value that may be deleted for good.

use serde::{Deserialize, Serialize};

use super::Crdt;

/// `Present(v)` until deleted; a deletion wins over any state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deletable<T> {
    /// The object exists.
    Present(T),
    /// The object was deleted; it never comes back.
    Deleted,
}

impl<T> Deletable<T> {
    /// The value, unless deleted.
    pub fn as_option(&self) -> Option<&T> {
        match self {
            Self::Present(v) => Some(v),
            Self::Deleted => None,
        }
    }
    /// The value mutably, unless deleted.
    pub fn as_option_mut(&mut self) -> Option<&mut T> {
        match self {
            Self::Present(v) => Some(v),
            Self::Deleted => None,
        }
    }
    /// Whether it was deleted.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Self::Deleted)
    }
}

impl<T: Crdt> Crdt for Deletable<T> {
    fn merge(&mut self, other: &Self) {
        match (&mut *self, other) {
            (Self::Present(a), Self::Present(b)) => a.merge(b),
            (Self::Deleted, _) => (),
            (Self::Present(_), Self::Deleted) => *self = Self::Deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{laws, Lww};
    use proptest::prelude::*;

    /// The state under test.
    type Reg = Deletable<Lww<u64>>;

    /// One step on one of three replicas of a [`Reg`].
    #[derive(Clone, Debug)]
    enum Op {
        /// A write at this replica's clock (no-op once deleted).
        Write(u64),
        /// The deletion.
        Delete,
        /// Receiving another replica's state.
        MergeFrom(usize),
    }

    fn op() -> impl Strategy<Value = (usize, Op)> {
        (
            0usize..3,
            prop_oneof![
                4 => (0u64..4).prop_map(Op::Write),
                1 => Just(Op::Delete),
                4 => (0usize..3).prop_map(Op::MergeFrom),
            ],
        )
    }

    /// Replays `ops`; returns the final replicas and every state seen.
    /// Replica `r`'s clock reads `step + skew[r]`, so writes on different
    /// replicas often tie on the timestamp.
    fn replay(ops: &[(usize, Op)], skew: [u64; 3]) -> (Vec<Reg>, Vec<Reg>) {
        let mut reps = vec![Deletable::Present(Lww::raw(0, 0u64)); 3];
        let mut seen = vec![reps[0].clone()];
        for (step, (r, op)) in ops.iter().enumerate() {
            let now = step as u64 + skew[*r];
            match op {
                Op::Write(v) => {
                    if let Some(reg) = reps[*r].as_option_mut() {
                        // `Lww::update`, with this replica's clock.
                        *reg = Lww::raw(std::cmp::max(reg.timestamp() + 1, now), *v);
                    }
                }
                Op::Delete => reps[*r] = Deletable::Deleted,
                Op::MergeFrom(from) => {
                    let other = reps[*from].clone();
                    reps[*r].merge(&other);
                }
            }
            seen.push(reps[*r].clone());
        }
        (reps, seen)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn deletable_laws(
            ops in prop::collection::vec(op(), 0..16),
            skew in prop::array::uniform3(0u64..3),
            old in any::<prop::sample::Index>(),
        ) {
            let (mut reps, seen) = replay(&ops, skew);
            reps.push(seen[old.index(seen.len())].clone());
            let all = laws::check_all(&reps);
            // A deletion anywhere wins once everything is merged.
            prop_assert_eq!(all.is_deleted(), reps.iter().any(|r| r.is_deleted()));
        }
    }
}
