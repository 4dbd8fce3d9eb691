//! The messages between block stores, on the endpoint [`BLOCK_RPC_PATH`].
//!
//! The path carries the protocol version: a change of these messages that
//! old nodes cannot read gets a new path.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use garage_rpc::RpcMessage;
use garage_util::data::Hash;

/// Endpoint path of the block RPC (version 1).
pub const BLOCK_RPC_PATH: &str = "block/v1";

/// A block store request or answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum BlockRpc {
    /// Success.
    Ok,
    /// Store this block (the receiver checks the hash).
    PutBlock {
        /// The block's hash.
        hash: Hash,
        /// Its content.
        data: ByteBuf,
    },
    /// Send this block if stored here.
    GetBlock {
        /// The block's hash.
        hash: Hash,
    },
    /// Answer to `GetBlock`: the content.
    Block {
        /// The block's content.
        data: ByteBuf,
    },
    /// Answer to `GetBlock`: not stored here.
    NotFound,
    /// Does the receiver reference this block without holding it?
    NeedBlock {
        /// The block's hash.
        hash: Hash,
    },
    /// Answer to `NeedBlock`.
    Need(bool),
}

impl RpcMessage for BlockRpc {
    type Response = BlockRpc;
}
