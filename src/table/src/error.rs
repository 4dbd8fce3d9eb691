//! Errors of the table layer.

use garage_rpc::RpcError;

/// Why a table operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Local storage failed.
    #[error("storage error: {0}")]
    Db(#[from] garage_db::Error),
    /// Talking to replicas failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// An entry could not be encoded.
    #[error("cannot encode an entry of {table}: {message}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The cause.
        message: String,
    },
    /// Bytes from disk or from a peer are not a valid entry.
    #[error("corrupted entry in {table}")]
    Corrupted {
        /// The table.
        table: &'static str,
    },
    /// A peer answered something unexpected.
    #[error("unexpected RPC answer from a replica of {table}")]
    UnexpectedAnswer {
        /// The table.
        table: &'static str,
    },
    /// A background task failed to run.
    #[error("background task failed: {0}")]
    Task(String),
    /// The grouped merge holding this update failed.
    #[error("merging peers' updates failed: {message}")]
    Merge {
        /// The failure of the group's transaction.
        message: String,
    },
}
