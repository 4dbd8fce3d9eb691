//! Errors of the block store.

use std::path::PathBuf;

use garage_rpc::RpcError;
use garage_util::data::Hash;

/// Why a block operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read", "write", "rename", ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No node holding the block could return it.
    #[error("block {hash} not found on any node ({tried} asked): {errors:?}")]
    NotFound {
        /// The block.
        hash: Hash,
        /// How many nodes were asked.
        tried: usize,
        /// The errors of the nodes that failed (not those that answered
        /// that they do not have it).
        errors: Vec<String>,
    },
    /// Data given or received does not match its hash.
    #[error("data of block {hash} does not match its hash")]
    Corrupt {
        /// The block.
        hash: Hash,
    },
    /// Handing a block to the nodes that now store it failed.
    #[error("cannot hand block {hash} off: {errors:?}")]
    HandOff {
        /// The block.
        hash: Hash,
        /// The errors of the nodes that failed.
        errors: Vec<String>,
    },
    /// The layout assigns the block's partition to no node.
    #[error("no node stores block {hash} (no layout applied yet?)")]
    NoNodes {
        /// The block.
        hash: Hash,
    },
    /// The `data_dir` setting is not acceptable.
    #[error(transparent)]
    Config(#[from] garage_util::config::ConfigError),
    /// The local database failed.
    #[error(transparent)]
    Db(#[from] garage_db::Error),
    /// The block reference table failed.
    #[error(transparent)]
    Table(#[from] garage_table::Error),
    /// A call to other nodes failed (quorum not reached, ...).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A peer answered with the wrong message.
    #[error("unexpected answer to {0}")]
    UnexpectedAnswer(&'static str),
    /// A blocking file task did not finish.
    #[error("file task failed: {0}")]
    Task(String),
}

impl BlockError {
    /// Whether this is an availability problem (nodes down, quorum not
    /// reached, block not found anywhere), as opposed to a local failure.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::NotFound { .. } | Self::NoNodes { .. } => true,
            Self::Rpc(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

impl From<tokio::task::JoinError> for BlockError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Task(e.to_string())
    }
}
