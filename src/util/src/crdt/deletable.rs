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
