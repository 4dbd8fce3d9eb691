//! Errors of RPC calls.

use garage_util::data::Uuid;

/// Why an RPC call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The peer is not connected.
    #[error("node {node:?} is not connected")]
    NotConnected {
        /// The peer.
        node: Uuid,
    },
    /// No answer in time.
    #[error("RPC to {node:?} timed out")]
    Timeout {
        /// The peer.
        node: Uuid,
    },
    /// The transport failed.
    #[error("network error talking to {node:?}: {message}")]
    Network {
        /// The peer.
        node: Uuid,
        /// The transport's message.
        message: String,
    },
    /// The message could not be encoded or decoded.
    #[error("RPC encoding error: {message}")]
    Encoding {
        /// What failed.
        message: String,
    },
    /// The remote handler answered with an error.
    #[error("remote error: {message}")]
    Remote {
        /// The remote error, as text.
        message: String,
    },
    /// Not enough nodes answered.
    #[error("quorum not reached: {succeeded} of {needed} needed answers; errors: {errors:?}")]
    Quorum {
        /// Answers needed.
        needed: usize,
        /// Answers received.
        succeeded: usize,
        /// The errors of the failed calls.
        errors: Vec<String>,
    },
    /// No node can serve this request (e.g. no layout yet).
    #[error("no node available: {reason}")]
    NoNodes {
        /// Why.
        reason: String,
    },
}

impl RpcError {
    /// Whether this is an availability problem (timeouts, unreachable
    /// peers, quorum), as opposed to a bug or a refused request.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, Self::Encoding { .. } | Self::Remote { .. })
    }
}

/// Why a membership or layout operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The stored layout file does not decode.
    #[error("cannot decode the layout in {path}")]
    LayoutDecode {
        /// The file.
        path: String,
    },
    /// The stored layout has another replication factor than the config.
    #[error(
        "the stored layout uses replication factor {stored}, the config says {config}: \
         delete {path} on every node to change it"
    )]
    StoredReplicationFactor {
        /// In the layout.
        stored: usize,
        /// In the config.
        config: usize,
        /// The layout file.
        path: String,
    },
    /// A received layout has another replication factor.
    #[error("layout with replication factor {theirs} refused (ours is {ours})")]
    ReplicationFactor {
        /// The peer's.
        theirs: usize,
        /// Ours.
        ours: usize,
    },
    /// A received layout fails its checks.
    #[error("refusing an invalid layout: {0}")]
    InvalidLayout(#[from] crate::layout::LayoutError),
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", "write".
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The layout could not be encoded.
    #[error("cannot encode the layout: {0}")]
    Encode(#[from] garage_util::encode::EncodeError),
    /// A peer address is not `<64 hex id>@<host>:<port>`.
    #[error("invalid peer `{peer}`: {reason}")]
    BadPeer {
        /// What was given.
        peer: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting to a peer failed.
    #[error("cannot connect to {peer}: {source}")]
    Connect {
        /// The peer.
        peer: String,
        /// The cause.
        source: RpcError,
    },
    /// A peer answered a message with an unexpected one.
    #[error("unexpected answer to {0}")]
    UnexpectedAnswer(&'static str),
}
