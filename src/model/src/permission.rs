//! Permissions of an access key on a bucket.

use serde::{Deserialize, Serialize};

use garage_util::crdt::Crdt;

/// What a key may do on a bucket; the newest grant (by timestamp) wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketKeyPerm {
    /// When this grant was made (ms).
    pub timestamp: u64,
    /// May read.
    pub allow_read: bool,
    /// May write and delete.
    pub allow_write: bool,
    /// Owns the bucket.
    pub allow_owner: bool,
}

impl BucketKeyPerm {
    /// No permission at all.
    pub const NONE: Self = Self {
        timestamp: 0,
        allow_read: false,
        allow_write: false,
        allow_owner: false,
    };

    /// Whether any permission is granted.
    pub fn is_any(&self) -> bool {
        self.allow_read || self.allow_write || self.allow_owner
    }

    /// `RWO`-style flags as the CLI prints them.
    pub fn flags(&self) -> String {
        format!(
            "{}{}{}",
            if self.allow_read { "R" } else { " " },
            if self.allow_write { "W" } else { " " },
            if self.allow_owner { "O" } else { " " }
        )
    }
}

impl Crdt for BucketKeyPerm {
    fn merge(&mut self, other: &Self) {
        // Total order: timestamp first, then the flags, so ties converge.
        if other > self {
            *self = *other;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::crdt::laws;
    use proptest::prelude::*;

    fn perm() -> impl Strategy<Value = BucketKeyPerm> {
        (0u64..4, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(t, r, w, o)| {
            BucketKeyPerm {
                timestamp: t,
                allow_read: r,
                allow_write: w,
                allow_owner: o,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        // Any grant can be written, so arbitrary grants are reachable
        // states; small timestamps make ties frequent.
        fn perm_laws(perms in prop::collection::vec(perm(), 1..6)) {
            let all = laws::check_all(&perms);
            prop_assert_eq!(Some(all), perms.iter().max().copied());
        }
    }
}
