//! The local reference counts of blocks.
//!
//! Tree `block_local_rc`: block hash → either `L ‖ count (u64 BE)`, the
//! number of live (not deleted) references this node stores, or
//! `Z ‖ since (u64 BE, ms)`, no live reference since that time. It is
//! changed only inside the transactions of the block reference table (its
//! `updated` hook) or when a block arrives with no reference yet, so it
//! always agrees with the references stored here.

use garage_db::{Db, Transaction, Tree};
use garage_util::data::Hash;

/// Name of the tree.
pub(crate) const RC_TREE: &str = "block_local_rc";

/// The reference state of one block on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rc {
    /// This many live references.
    Live(u64),
    /// No live reference since this time (ms).
    ZeroSince(u64),
}

impl Rc {
    pub(crate) fn encode(self) -> [u8; 9] {
        let (tag, v) = match self {
            Rc::Live(n) => (b'L', n),
            Rc::ZeroSince(t) => (b'Z', t),
        };
        let mut out = [0u8; 9];
        out[0] = tag;
        out[1..].copy_from_slice(&v.to_be_bytes());
        out
    }

    /// None for bytes that are not an encoded `Rc` (treated as absent).
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let v = u64::from_be_bytes(<[u8; 8]>::try_from(b.get(1..9)?).ok()?);
        match b.first()? {
            b'L' if b.len() == 9 => Some(Rc::Live(v)),
            b'Z' if b.len() == 9 => Some(Rc::ZeroSince(v)),
            _ => None,
        }
    }

    /// Whether some live reference needs the block.
    pub(crate) fn is_live(self) -> bool {
        matches!(self, Rc::Live(n) if n > 0)
    }
}

/// What a reference count change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The count stayed on the same side of zero.
    None,
    /// It went from zero (or absent) to positive: the block is needed.
    BecameLive,
    /// It went from positive to zero: the block may go after the delay.
    BecameZero,
}

/// The reference count tree.
pub(crate) struct BlockRc {
    pub(crate) tree: Tree,
}

impl BlockRc {
    pub(crate) fn new(db: &Db) -> Result<Self, garage_db::Error> {
        Ok(Self {
            tree: db.open_tree(RC_TREE)?,
        })
    }

    /// The state of `hash` (None: never referenced, or cleaned up).
    pub(crate) fn get(&self, hash: &Hash) -> Result<Option<Rc>, garage_db::Error> {
        Ok(self.tree.get(hash.as_slice())?.and_then(|b| Rc::decode(&b)))
    }

    /// The state of `hash` inside a transaction.
    pub(crate) fn get_tx(
        &self,
        tx: &Transaction<'_>,
        hash: &Hash,
    ) -> Result<Option<Rc>, garage_db::Error> {
        Ok(tx
            .get(&self.tree, hash.as_slice())?
            .and_then(|b| Rc::decode(&b)))
    }

    /// Adds `delta` (±1) live references to `hash` inside `tx`, at time
    /// `now` (ms). A count never goes below zero.
    pub(crate) fn add_tx(
        &self,
        tx: &mut Transaction<'_>,
        hash: &Hash,
        delta: i64,
        now: u64,
    ) -> Result<Transition, garage_db::Error> {
        let old = self.get_tx(tx, hash)?;
        let before = match old {
            Some(Rc::Live(n)) => n,
            _ => 0,
        };
        let after = if delta >= 0 {
            before.saturating_add(delta as u64)
        } else {
            before.saturating_sub(delta.unsigned_abs())
        };
        let new = if after > 0 {
            Rc::Live(after)
        } else {
            match old {
                // Already at zero: keep the original time.
                Some(z @ Rc::ZeroSince(_)) => z,
                _ => Rc::ZeroSince(now),
            }
        };
        if Some(new) != old {
            tx.insert(&self.tree, hash.as_slice(), &new.encode())?;
        }
        Ok(match (before > 0, after > 0) {
            (false, true) => Transition::BecameLive,
            (true, false) => Transition::BecameZero,
            _ => Transition::None,
        })
    }

    /// Records `hash` as present with no reference since `now`, unless it
    /// has a state already. Returns whether it was recorded.
    pub(crate) fn mark_unreferenced_tx(
        &self,
        tx: &mut Transaction<'_>,
        hash: &Hash,
        now: u64,
    ) -> Result<bool, garage_db::Error> {
        if self.get_tx(tx, hash)?.is_some() {
            return Ok(false);
        }
        tx.insert(&self.tree, hash.as_slice(), &Rc::ZeroSince(now).encode())?;
        Ok(true)
    }

    /// Removes the state of `hash` if it is still `expected`.
    pub(crate) fn clear_if(
        &self,
        db: &Db,
        hash: &Hash,
        expected: Rc,
    ) -> Result<bool, garage_db::Error> {
        let r: garage_db::TxResult<bool, garage_db::Error> = db.transaction(|tx| {
            if self.get_tx(tx, hash)? == Some(expected) {
                tx.remove(&self.tree, hash.as_slice())?;
                Ok(true)
            } else {
                Ok(false)
            }
        });
        Ok(r?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(db: &Db, rc: &BlockRc, h: &Hash, delta: i64, now: u64) -> Transition {
        db.transaction(|tx| {
            Ok::<_, garage_db::TxError<garage_db::Error>>(rc.add_tx(tx, h, delta, now)?)
        })
        .expect("tx")
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        for r in [Rc::Live(0), Rc::Live(7), Rc::ZeroSince(123_456)] {
            assert_eq!(Rc::decode(&r.encode()), Some(r));
        }
        assert_eq!(Rc::decode(b""), None);
        assert_eq!(Rc::decode(b"X12345678"), None);
        assert_eq!(Rc::decode(b"L1234"), None);
    }

    #[test]
    fn transitions() {
        let db = Db::memory();
        let rc = BlockRc::new(&db).expect("rc");
        let h = Hash::from_bytes([1; 32]);
        assert_eq!(rc.get(&h).expect("get"), None);
        assert_eq!(apply(&db, &rc, &h, 1, 10), Transition::BecameLive);
        assert_eq!(apply(&db, &rc, &h, 1, 11), Transition::None);
        assert_eq!(rc.get(&h).expect("get"), Some(Rc::Live(2)));
        assert_eq!(apply(&db, &rc, &h, -1, 12), Transition::None);
        assert_eq!(apply(&db, &rc, &h, -1, 13), Transition::BecameZero);
        assert_eq!(rc.get(&h).expect("get"), Some(Rc::ZeroSince(13)));
        // An extra decrement keeps zero and its time.
        assert_eq!(apply(&db, &rc, &h, -1, 20), Transition::None);
        assert_eq!(rc.get(&h).expect("get"), Some(Rc::ZeroSince(13)));
        assert_eq!(apply(&db, &rc, &h, 1, 30), Transition::BecameLive);
        assert_eq!(rc.get(&h).expect("get"), Some(Rc::Live(1)));
        // Clearing only removes the expected state.
        assert!(!rc.clear_if(&db, &h, Rc::ZeroSince(13)).expect("clear"));
        apply(&db, &rc, &h, -1, 40);
        assert!(rc.clear_if(&db, &h, Rc::ZeroSince(40)).expect("clear"));
        assert_eq!(rc.get(&h).expect("get"), None);
    }

    #[test]
    fn unreferenced_mark_does_not_override() {
        let db = Db::memory();
        let rc = BlockRc::new(&db).expect("rc");
        let h = Hash::from_bytes([2; 32]);
        let mark = |now| {
            db.transaction(|tx| {
                Ok::<_, garage_db::TxError<garage_db::Error>>(rc.mark_unreferenced_tx(tx, &h, now)?)
            })
            .expect("tx")
        };
        assert!(mark(5));
        assert!(!mark(6));
        assert_eq!(rc.get(&h).expect("get"), Some(Rc::ZeroSince(5)));
        apply(&db, &rc, &h, 1, 7);
        assert!(!mark(8));
        assert_eq!(rc.get(&h).expect("get"), Some(Rc::Live(1)));
    }
}
