//! Errors of the storage layer.
//!
//! [`Error`] is what every engine operation returns; [`TxError`] adds the
//! caller's own abort reason for [`Db::transaction`](crate::Db::transaction).
//! Engine errors are turned into strings at this boundary on purpose: no
//! caller may branch on which engine failed, only on the kind of failure.

use std::path::PathBuf;

/// An error of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage engine reported a failure (I/O inside the engine, a lock held
    /// by another process, a transaction it could not commit, ...).
    #[error("{engine} engine error: {message}")]
    Engine {
        /// Name of the engine, as in [`Engine`](crate::Engine)'s `Display`.
        engine: &'static str,
        /// What the engine said, prefixed by the operation that failed.
        message: String,
    },
    /// The engine found data on disk it cannot trust.
    #[error("{engine} database is corrupted: {message}")]
    Corrupted {
        /// Name of the engine.
        engine: &'static str,
        /// What the engine said.
        message: String,
    },
    /// A file system operation done by this crate itself failed.
    #[error("I/O error on {path}: {source}", path = path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The options given to [`Db::open`](crate::Db::open) cannot be honoured.
    #[error("invalid database configuration: {message}")]
    Config {
        /// Why, in words meant for the operator.
        message: String,
    },
    /// The engine name is not one of `redb`, `sled`, `memory`.
    #[error("unknown db engine {name:?} (expected one of: redb, sled, memory)")]
    UnknownEngine {
        /// The name that was given.
        name: String,
    },
    /// The engine exists but this binary was built without its cargo feature.
    #[error("db engine {engine} is not compiled in (enable the `{feature}` feature)")]
    EngineNotCompiled {
        /// Name of the engine.
        engine: &'static str,
        /// The cargo feature of `garage_db` that enables it.
        feature: &'static str,
    },
    /// A tree name the engine reserves for itself.
    #[error("invalid tree name {name:?}: {reason}")]
    InvalidTreeName {
        /// The rejected name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A [`Tree`](crate::Tree) opened from one [`Db`](crate::Db) was used in a
    /// transaction of another.
    #[error("tree {tree:?} does not belong to the database running this transaction")]
    ForeignTree {
        /// Name of the tree.
        tree: String,
    },
}

/// Result of a storage operation.
pub type Result<T> = std::result::Result<T, Error>;

/// Error of a transaction: either the closure aborted with its own error, or
/// the engine failed. In both cases nothing the transaction wrote is visible.
#[derive(Debug, thiserror::Error)]
pub enum TxError<E> {
    /// The transaction closure returned this error; everything was rolled back.
    #[error("transaction aborted: {0}")]
    Abort(E),
    /// The engine failed while running or committing the transaction.
    #[error(transparent)]
    Db(#[from] Error),
}

/// Result of [`Db::transaction`](crate::Db::transaction) and of its closure.
pub type TxResult<R, E> = std::result::Result<R, TxError<E>>;

impl From<TxError<Error>> for Error {
    /// Flattens a transaction whose abort reason is itself a storage error.
    fn from(e: TxError<Error>) -> Error {
        match e {
            TxError::Abort(e) | TxError::Db(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_error_flattens_and_displays() {
        let e: TxError<Error> = TxError::Abort(Error::Config {
            message: "nope".into(),
        });
        assert_eq!(
            e.to_string(),
            "transaction aborted: invalid database configuration: nope"
        );
        let flat: Error = e.into();
        assert!(matches!(flat, Error::Config { .. }));

        let db: TxError<String> = Error::ForeignTree { tree: "t".into() }.into();
        assert!(matches!(db, TxError::Db(Error::ForeignTree { .. })));
    }
}
