//! Tests of the public API, run against every compiled-in engine.
//!
//! `suite` holds the behaviour tests, `model` a property test against a
//! `BTreeMap`, `crash` a SIGKILL test with a real child process,
//! `power_loss` the simulated-disk tests (the throughput benchmark is the
//! `commit_rate` example). [`engine_suite!`] instantiates the
//! shared ones once per engine.

use std::path::Path;

use crate::{Db, Engine, OpenOptions};

#[cfg(any(feature = "redb", feature = "sled"))]
mod crash;
mod model;
#[cfg(feature = "redb")]
mod power_loss;
mod suite;

/// An engine under test, with a private directory for the on-disk ones.
pub(crate) struct Harness {
    engine: Engine,
    dir: tempfile::TempDir,
}

impl Harness {
    pub fn new(engine: Engine) -> Harness {
        Harness {
            engine,
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// Whether data survives dropping every handle and opening again.
    pub fn persistent(&self) -> bool {
        self.engine != Engine::Memory
    }

    /// Opens the database (a fresh one each time for the memory engine).
    pub fn open(&self) -> Db {
        open_at(self.engine, self.dir.path())
    }
}

pub(crate) fn open_at(engine: Engine, dir: &Path) -> Db {
    Db::open(&OpenOptions::new(engine, dir)).expect("open database")
}

macro_rules! engine_suite {
    ($name:ident, $engine:expr) => {
        mod $name {
            use super::{model, suite, Harness};
            use proptest::prelude::*;

            fn h() -> Harness {
                Harness::new($engine)
            }

            #[test]
            fn get_insert_remove() {
                suite::get_insert_remove(&h());
            }
            #[test]
            fn same_name_same_tree() {
                suite::same_name_same_tree(&h());
            }
            #[test]
            fn len_first_is_empty() {
                suite::len_first_is_empty(&h());
            }
            #[test]
            fn range_bounds_directions_limits() {
                suite::range_bounds_directions_limits(&h());
            }
            #[test]
            fn multi_tree_transaction_commits() {
                suite::multi_tree_transaction_commits(&h());
            }
            #[test]
            fn abort_rolls_back() {
                suite::abort_rolls_back(&h());
            }
            #[test]
            fn transaction_reads_own_writes() {
                suite::transaction_reads_own_writes(&h());
            }
            #[test]
            fn list_trees() {
                suite::list_trees(&h());
            }
            #[test]
            fn reopen_keeps_data() {
                suite::reopen_keeps_data(&h());
            }
            #[test]
            fn concurrent_increments_are_not_lost() {
                suite::concurrent_increments_are_not_lost(&h());
            }
            #[test]
            fn readers_never_see_half_a_transaction() {
                suite::readers_never_see_half_a_transaction(&h());
            }

            proptest! {
                #![proptest_config(model::config())]
                #[test]
                fn matches_btreemap_model(ops in model::ops()) {
                    model::check(&h(), &ops)?;
                }
            }
        }
    };
}

engine_suite!(memory_engine, crate::Engine::Memory);
#[cfg(feature = "redb")]
engine_suite!(redb_engine, crate::Engine::Redb);
#[cfg(feature = "sled")]
engine_suite!(sled_engine, crate::Engine::Sled);
