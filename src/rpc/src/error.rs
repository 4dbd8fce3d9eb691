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
