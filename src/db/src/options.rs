//! How a database is chosen and opened: the [`Engine`] and its [`OpenOptions`].
//!
//! `Engine` parses the `db_engine` configuration value; `OpenOptions::fsync`
//! is `metadata_fsync`. Which engines are usable depends on cargo features:
//! `memory` always is, `redb` and `sled` only when their feature is on.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::Error;

/// A storage engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// redb: one copy-on-write B-tree file (`db.redb`). The default.
    #[default]
    Redb,
    /// sled 0.34: a log-structured store (`db.sled/`). Cannot honour fsync.
    Sled,
    /// Plain in-memory maps; nothing survives the process. For tests.
    Memory,
}

impl Engine {
    /// The engine's configuration name: `redb`, `sled` or `memory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Redb => "redb",
            Engine::Sled => "sled",
            Engine::Memory => "memory",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = Error;

    fn from_str(s: &str) -> Result<Engine, Error> {
        match s {
            "redb" => Ok(Engine::Redb),
            "sled" => Ok(Engine::Sled),
            "memory" => Ok(Engine::Memory),
            _ => Err(Error::UnknownEngine { name: s.into() }),
        }
    }
}

/// Options of [`Db::open`](crate::Db::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Which engine stores the data.
    pub engine: Engine,
    /// A directory, created if absent; the engine picks its file name inside
    /// (`db.redb` or `db.sled`). Ignored by the memory engine.
    pub path: PathBuf,
    /// Make every acknowledged commit survive a power loss (fsync before the
    /// commit returns). Without it, acknowledged commits still survive a crash
    /// of the process. Refused by sled, which cannot guarantee it.
    pub fsync: bool,
}

impl OpenOptions {
    /// Options for `engine` in directory `path`, without fsync.
    pub fn new(engine: Engine, path: impl Into<PathBuf>) -> OpenOptions {
        OpenOptions {
            engine,
            path: path.into(),
            fsync: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip() {
        for e in [Engine::Redb, Engine::Sled, Engine::Memory] {
            assert_eq!(e.to_string().parse::<Engine>().ok(), Some(e));
        }
        assert!(matches!(
            "lmdb".parse::<Engine>(),
            Err(Error::UnknownEngine { name }) if name == "lmdb"
        ));
        assert_eq!(Engine::default(), Engine::Redb);
    }
}
