//! Command-line definitions (clap). The verbs, flags and output lines match
//! Garage's CLI so scripts written for it run unchanged.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// A K2V store compatible with Garage: server and operator CLI.
#[derive(Parser, Debug)]
#[command(name = "garage", version, disable_help_flag = true)]
pub struct Cli {
    /// Path of the configuration file.
    #[arg(short = 'c', long = "config", env = "GARAGE_CONFIG_FILE")]
    pub config: Option<PathBuf>,

    /// Host to connect to for admin operations, `<node id>@<host>:<port>`.
    #[arg(short = 'h', long = "rpc-host", env = "GARAGE_RPC_HOST")]
    pub rpc_host: Option<String>,

    /// RPC secret (overrides the config file).
    #[arg(short = 's', long = "rpc-secret", env = "GARAGE_RPC_SECRET")]
    pub rpc_secret: Option<String>,

    /// File holding the RPC secret.
    #[arg(long = "rpc-secret-file", env = "GARAGE_RPC_SECRET_FILE")]
    pub rpc_secret_file: Option<PathBuf>,

    /// Admin API token (replaces `admin.admin_token` of the config when
    /// running the server).
    #[arg(long = "admin-token", env = "GARAGE_ADMIN_TOKEN")]
    pub admin_token: Option<String>,

    /// File holding the admin API token (replaces `admin.admin_token_file`).
    #[arg(long = "admin-token-file", env = "GARAGE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Metrics token (replaces `admin.metrics_token`).
    #[arg(long = "metrics-token", env = "GARAGE_METRICS_TOKEN")]
    pub metrics_token: Option<String>,

    /// File holding the metrics token (replaces `admin.metrics_token_file`).
    #[arg(long = "metrics-token-file", env = "GARAGE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,

    /// Accept admin and metrics token files that other users may read.
    #[arg(
        long = "allow-world-readable-secrets",
        env = "GARAGE_ALLOW_WORLD_READABLE_SECRETS"
    )]
    pub allow_world_readable_secrets: bool,

    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,

    /// The command.
    #[command(subcommand)]
    pub cmd: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Server(ServerOpt),
    /// Show the cluster's nodes.
    Status,
    /// Node operations.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Cluster layout operations.
    #[command(subcommand)]
    Layout(LayoutCmd),
    /// Access keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Buckets.
    #[command(subcommand)]
    Bucket(BucketCmd),
    /// Background workers of the node.
    #[command(subcommand)]
    Worker(WorkerCmd),
    /// Start a repair on the node.
    Repair(RepairOpt),
    /// The data blocks of the node.
    #[command(subcommand)]
    Block(BlockCmd),
    /// Inspect the node's internal state.
    #[command(subcommand)]
    Debug(DebugCmd),
}

/// `garage worker`.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum WorkerCmd {
    /// List the background workers with their state and queues.
    List,
}

/// `garage block`.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum BlockCmd {
    /// List the blocks whose last resync check failed.
    ListErrors,
    /// Show what the node knows of one block: file, reference count,
    /// references, resync errors.
    Info {
        /// The block hash (64 hex digits).
        hash: String,
    },
    /// Check failing blocks now instead of at their next retry time.
    RetryNow {
        /// Every failing block.
        #[arg(long = "all")]
        all: bool,
        /// These blocks (64 hex digits each).
        blocks: Vec<String>,
    },
}

/// `garage repair`.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct RepairOpt {
    /// Confirm the repair.
    #[arg(long = "yes")]
    pub yes: bool,
    /// What to repair.
    #[command(subcommand)]
    pub what: RepairWhat,
}

/// What `garage repair` repairs.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum RepairWhat {
    /// Run a full anti-entropy pass of every table with every peer now.
    Tables,
    /// Check every block this node stores or references: fetch missing
    /// ones, hand off those it no longer stores, delete unreferenced ones
    /// past their delay.
    Blocks,
    /// Read back every stored block and check it against its hash.
    Scrub {
        /// What to do with the scrub.
        #[command(subcommand)]
        cmd: ScrubCmd,
    },
}

/// `garage repair scrub`.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum ScrubCmd {
    /// Start a scrub now (corrupt copies are replaced from other nodes).
    Start,
}

/// `garage debug`.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum DebugCmd {
    /// Print the Merkle root of every partition of a table on this node
    /// (after hashing pending changes), to compare replicas.
    MerkleRoots {
        /// The table: k2v_item, k2v_index_counter, key, bucket, bucket_alias,
        /// block_ref, object, version.
        table: String,
    },
    /// Count the entries (and tombstones among them) a table stores on
    /// this node.
    Entries {
        /// The table, as for `merkle-roots`.
        table: String,
    },
}

/// `garage server`.
#[derive(Args, Debug)]
pub struct ServerOpt {
    /// Start a local single-node cluster without a hand-written config: the
    /// config is created (./garage-data/garage.toml unless -c is given), the
    /// node lays itself out and a key and a bucket named `default` exist.
    #[arg(long = "single-node")]
    pub single_node: bool,
}

/// `garage node`.
#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Print this node's id (works with the daemon stopped).
    Id {
        /// Print only the `<id>@<addr>` line.
        #[arg(short = 'q', long = "quiet")]
        quiet: bool,
    },
    /// Connect the node to another one, `<node id>@<host>:<port>`.
    Connect {
        /// The peer.
        node: String,
    },
}

/// `garage layout`.
#[derive(Subcommand, Debug)]
pub enum LayoutCmd {
    /// Stage a role for one or more nodes.
    Assign {
        /// Node ids or unique prefixes.
        #[arg(required = true)]
        node_ids: Vec<String>,
        /// Zone.
        #[arg(short = 'z', long = "zone")]
        zone: Option<String>,
        /// Capacity (e.g. 1G, 500GB, 2TiB).
        #[arg(short = 'c', long = "capacity", conflicts_with = "gateway")]
        capacity: Option<String>,
        /// Gateway node (no data).
        #[arg(short = 'g', long = "gateway")]
        gateway: bool,
        /// Tags (repeatable; replaces all tags).
        #[arg(short = 't', long = "tag")]
        tags: Vec<String>,
        /// Nodes this one replaces.
        #[arg(long = "replace")]
        replace: Vec<String>,
    },
    /// Stage the removal of a node.
    Remove {
        /// Node id or unique prefix.
        node_id: String,
    },
    /// Stage layout parameters.
    Config {
        /// Zone redundancy: none, max, maximum, or a number.
        #[arg(short = 'r', long = "redundancy")]
        redundancy: Option<String>,
    },
    /// Show the current layout and the staged changes.
    Show,
    /// Apply the staged changes.
    Apply {
        /// The new version number (current + 1).
        #[arg(long = "version")]
        version: Option<u64>,
    },
    /// Forget the staged changes.
    Revert {
        /// Confirm.
        #[arg(long = "yes")]
        yes: bool,
    },
    /// Show the layout versions.
    History,
    /// Let the cluster move on without dead nodes.
    SkipDeadNodes {
        /// Version to skip to.
        #[arg(long = "version")]
        version: u64,
        /// Also mark data as synced.
        #[arg(long = "allow-missing-data")]
        allow_missing_data: bool,
    },
}

/// `garage key`.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum KeyCmd {
    /// List keys.
    List,
    /// Show a key.
    Info {
        /// Key id prefix or name.
        key_pattern: String,
        /// Show the secret.
        #[arg(long = "show-secret")]
        show_secret: bool,
    },
    /// Create a key.
    Create {
        /// Name.
        #[arg(default_value = "Unnamed key")]
        name: String,
    },
    /// Rename a key.
    Rename {
        /// Key id prefix or name.
        key_pattern: String,
        /// New name.
        new_name: String,
    },
    /// Delete a key.
    Delete {
        /// Key id prefix or name.
        key_pattern: String,
        /// Confirm.
        #[arg(long = "yes")]
        yes: bool,
    },
    /// Allow a key to create buckets.
    Allow {
        /// Key id prefix or name.
        key_pattern: String,
        /// Allow creating buckets.
        #[arg(long = "create-bucket")]
        create_bucket: bool,
    },
    /// Deny a key to create buckets.
    Deny {
        /// Key id prefix or name.
        key_pattern: String,
        /// Deny creating buckets.
        #[arg(long = "create-bucket")]
        create_bucket: bool,
    },
    /// Import a key created elsewhere.
    Import {
        /// Key id.
        key_id: String,
        /// Secret.
        secret_key: String,
        /// Name.
        #[arg(short = 'n', default_value = "Imported key")]
        name: String,
        /// Confirm.
        #[arg(long = "yes")]
        yes: bool,
    },
}

/// `garage bucket`.
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum BucketCmd {
    /// List buckets.
    List,
    /// Show a bucket.
    Info {
        /// Name or hex id.
        name: String,
    },
    /// Create a bucket.
    Create {
        /// Name.
        name: String,
    },
    /// Delete an empty bucket.
    Delete {
        /// Name.
        name: String,
        /// Confirm.
        #[arg(long = "yes")]
        yes: bool,
    },
    /// Add an alias to a bucket.
    Alias {
        /// Existing name or hex id.
        existing_bucket: String,
        /// New name.
        new_name: String,
        /// Make it local to this key.
        #[arg(long = "local")]
        local: Option<String>,
    },
    /// Remove an alias.
    Unalias {
        /// The alias.
        name: String,
        /// Local alias of this key.
        #[arg(long = "local")]
        local: Option<String>,
    },
    /// Grant permissions.
    Allow(PermOpt),
    /// Revoke permissions.
    Deny(PermOpt),
}

/// Flags of `bucket allow|deny`.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct PermOpt {
    /// Read.
    #[arg(long = "read")]
    pub read: bool,
    /// Write.
    #[arg(long = "write")]
    pub write: bool,
    /// Owner.
    #[arg(long = "owner")]
    pub owner: bool,
    /// Bucket name or hex id.
    pub bucket: String,
    /// Key id prefix or name.
    #[arg(long = "key")]
    pub key_pattern: String,
}
