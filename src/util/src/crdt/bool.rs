//! A boolean that can only go from false to true.

use serde::{Deserialize, Serialize};

use super::Crdt;

/// A flag that, once set, stays set (e.g. "deleted").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bool(bool);

impl Bool {
    /// A flag with the given value.
    pub fn new(b: bool) -> Self {
        Self(b)
    }
    /// Sets the flag.
    pub fn set(&mut self) {
        self.0 = true;
    }
    /// The value.
    pub fn get(&self) -> bool {
        self.0
    }
}

impl Crdt for Bool {
    fn merge(&mut self, other: &Self) {
        self.0 = self.0 || other.0;
    }
}
