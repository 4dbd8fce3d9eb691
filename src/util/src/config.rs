//! The node configuration (`garage.toml`).
//!
//! A config written for Garage loads unchanged: keys Garage knows but we do
//! not use are accepted and reported once, a key nobody knows is warned
//! about with the closest known key, and a wrong type or a missing required
//! key is an error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Errors while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error, wrong type or missing key (the message names it).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value is present but not acceptable.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Where metadata (the database, node key, layout) lives.
    pub metadata_dir: PathBuf,
    /// Where the data blocks of objects live (see [`DataDir::dirs`]).
    pub data_dir: DataDir,
    /// fsync every data block (and its directory) before acknowledging it.
    #[serde(default)]
    pub data_fsync: bool,
    /// Do not verify every stored data block periodically (`garage repair
    /// scrub` still can).
    #[serde(default)]
    pub disable_scrub: bool,
    /// Size of the data blocks objects are cut into (`1MiB` by default).
    #[serde(default = "default_block_size", deserialize_with = "deserialize_size")]
    pub block_size: u64,
    /// The metadata engine: `redb` (default) or `sled`, `memory`.
    #[serde(default = "default_db_engine")]
    pub db_engine: String,
    /// fsync every metadata commit before acknowledging it.
    #[serde(default)]
    pub metadata_fsync: bool,
    /// Number of copies of each partition.
    #[serde(default)]
    pub replication_factor: Option<usize>,
    /// `consistent` (default), `degraded` or `dangerous`.
    #[serde(default)]
    pub consistency_mode: Option<String>,
    /// Legacy Garage key ("3", "3-degraded", "2-dangerous", ...).
    #[serde(default)]
    pub replication_mode: Option<String>,
    /// Address the node-to-node RPC listens on.
    pub rpc_bind_addr: SocketAddr,
    /// Address other nodes (and the CLI) use to reach this node.
    #[serde(default)]
    pub rpc_public_addr: Option<String>,
    /// Shared network secret, 32 bytes as hex.
    #[serde(default)]
    pub rpc_secret: Option<String>,
    /// File holding the secret.
    #[serde(default)]
    pub rpc_secret_file: Option<PathBuf>,
    /// Peers to connect to at start-up, `<hex id>@<host:port>`.
    #[serde(default)]
    pub bootstrap_peers: Vec<String>,
    /// Timeout of one RPC call.
    #[serde(default = "default_rpc_timeout")]
    pub rpc_timeout_msec: u64,
    /// How long a tombstone is kept before it may be collected.
    #[serde(default = "default_gc_delay")]
    pub tombstone_gc_delay_secs: u64,
    /// Interval between full anti-entropy passes.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_secs: u64,
    /// Allow secret files readable by anyone.
    #[serde(default)]
    pub allow_world_readable_secrets: bool,
    /// The S3 API section (its region signs K2V requests too).
    pub s3_api: S3ApiConfig,
    /// The K2V API section.
    #[serde(default)]
    pub k2v_api: Option<K2vApiConfig>,
    /// The admin API section.
    #[serde(default)]
    pub admin: AdminConfig,
}

/// `data_dir`: a path, or Garage's list of `{path, capacity}` /
/// `{path, read_only = true}` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DataDir {
    /// One directory.
    Single(PathBuf),
    /// Several directories, as TOML tables (checked by [`DataDir::dirs`]).
    Multiple(Vec<toml::Table>),
}

/// One directory of `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirEntry {
    /// The directory.
    pub path: PathBuf,
    /// Its share of new blocks, in bytes (None: read-only, or the single
    /// directory of a plain `data_dir = "..."`).
    pub capacity: Option<u64>,
    /// Blocks are read from it but never written to it.
    pub read_only: bool,
}

impl DataDir {
    /// The directories, checked: each list entry has a `path` and either a
    /// `capacity` (a size, > 0) or `read_only = true`, not both; paths are
    /// distinct; at least one directory is writable.
    pub fn dirs(&self) -> Result<Vec<DataDirEntry>, ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            key: "data_dir",
            message,
        };
        let list = match self {
            DataDir::Single(p) => {
                return Ok(vec![DataDirEntry {
                    path: p.clone(),
                    capacity: None,
                    read_only: false,
                }])
            }
            DataDir::Multiple(list) => list,
        };
        let mut out: Vec<DataDirEntry> = Vec::with_capacity(list.len());
        for (i, t) in list.iter().enumerate() {
            for k in t.keys() {
                if !["path", "capacity", "read_only"].contains(&k.as_str()) {
                    return Err(bad(format!("entry {i}: unknown key `{k}`")));
                }
            }
            let path = match t.get("path") {
                Some(toml::Value::String(s)) if !s.is_empty() => PathBuf::from(s),
                _ => return Err(bad(format!("entry {i}: `path` (a string) is required"))),
            };
            let read_only = match t.get("read_only") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err(bad(format!("entry {i}: `read_only` must be a boolean"))),
            };
            let capacity = match t.get("capacity") {
                None => None,
                Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as u64),
                Some(toml::Value::String(s)) => {
                    Some(parse_size(s).map_err(|e| bad(format!("entry {i}: capacity: {e}")))?)
                }
                Some(_) => {
                    return Err(bad(format!(
                        "entry {i}: `capacity` must be a positive size"
                    )))
                }
            };
            match (capacity, read_only) {
                (Some(0), false) => {
                    return Err(bad(format!("entry {i}: `capacity` must be above 0")))
                }
                (Some(_), true) => {
                    return Err(bad(format!(
                        "entry {i}: a read-only directory takes no `capacity`"
                    )))
                }
                (None, false) => {
                    return Err(bad(format!(
                        "entry {i}: set `capacity` or `read_only = true`"
                    )))
                }
                _ => (),
            }
            if out.iter().any(|d| d.path == path) {
                return Err(bad(format!("{} is listed twice", path.display())));
            }
            out.push(DataDirEntry {
                path,
                capacity,
                read_only,
            });
        }
        if !out.iter().any(|d| !d.read_only) {
            return Err(bad("no writable directory (all are read_only)".into()));
        }
        Ok(out)
    }
}

/// `[s3_api]`.
#[derive(Debug, Clone, Deserialize)]
pub struct S3ApiConfig {
    /// The region that request signatures must name.
    pub s3_region: String,
    /// Where the S3 API listens (none: no S3 listener).
    #[serde(default)]
    pub api_bind_addr: Option<String>,
    /// Domain of virtual-hosted buckets (`bucket.<root_domain>`); path-style
    /// requests work with or without it.
    #[serde(default)]
    pub root_domain: Option<String>,
}

/// `[k2v_api]`.
#[derive(Debug, Clone, Deserialize)]
pub struct K2vApiConfig {
    /// Where the K2V HTTP API listens.
    pub api_bind_addr: String,
    /// Largest accepted request body.
    #[serde(default = "default_max_body", deserialize_with = "deserialize_size")]
    pub max_body_size: u64,
    /// Seconds a client has to send a request's headers (and how long an
    /// idle keep-alive connection is kept); a client that stalls is
    /// disconnected.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may stall (no byte received) before the
    /// request is refused with a 408.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
}

fn default_header_read_timeout() -> u64 {
    30
}

fn default_body_read_timeout() -> u64 {
    60
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdminConfig {
    /// Where the admin HTTP API listens.
    #[serde(default)]
    pub api_bind_addr: Option<String>,
    /// Bearer token of the admin endpoints.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// File holding the admin token.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Bearer token of `/metrics`.
    #[serde(default)]
    pub metrics_token: Option<String>,
    /// File holding the metrics token.
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
}

impl AdminConfig {
    /// Replaces where the admin token comes from (the command line or the
    /// environment): a token wins over a file, and either one replaces both
    /// keys of the config file. `None, None` leaves the config as it is.
    pub fn override_admin_token(&mut self, token: Option<String>, file: Option<PathBuf>) {
        override_secret(
            &mut self.admin_token,
            &mut self.admin_token_file,
            token,
            file,
        );
    }

    /// As [`Self::override_admin_token`], for the metrics token.
    pub fn override_metrics_token(&mut self, token: Option<String>, file: Option<PathBuf>) {
        override_secret(
            &mut self.metrics_token,
            &mut self.metrics_token_file,
            token,
            file,
        );
    }

    /// The admin token from `admin_token` or `admin_token_file`; `None`
    /// when neither is set (the admin endpoints are then disabled).
    pub fn admin_token(&self, allow_world_readable: bool) -> Result<Option<String>, ConfigError> {
        resolve_secret(
            "admin.admin_token",
            &self.admin_token,
            &self.admin_token_file,
            allow_world_readable,
        )
    }

    /// The metrics token from `metrics_token` or `metrics_token_file`;
    /// `None` when neither is set (`/metrics` is then open).
    pub fn metrics_token(&self, allow_world_readable: bool) -> Result<Option<String>, ConfigError> {
        resolve_secret(
            "admin.metrics_token",
            &self.metrics_token,
            &self.metrics_token_file,
            allow_world_readable,
        )
    }
}

fn override_secret(
    value: &mut Option<String>,
    file: &mut Option<PathBuf>,
    new_value: Option<String>,
    new_file: Option<PathBuf>,
) {
    match (new_value, new_file) {
        (Some(v), _) => {
            *value = Some(v);
            *file = None;
        }
        (None, Some(f)) => {
            *value = None;
            *file = Some(f);
        }
        (None, None) => (),
    }
}

/// A secret given inline or in a file, never both; an empty one is refused
/// (no bearer token could match it).
fn resolve_secret(
    key: &'static str,
    value: &Option<String>,
    file: &Option<PathBuf>,
    allow_world_readable: bool,
) -> Result<Option<String>, ConfigError> {
    let secret = match (value, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key,
                message: format!("set only one of `{key}` and `{key}_file`"),
            })
        }
        (Some(v), None) => v.clone(),
        (None, Some(f)) => read_secret_file(f, allow_world_readable)?,
        (None, None) => return Ok(None),
    };
    if secret.trim().is_empty() {
        return Err(ConfigError::Invalid {
            key,
            message: "the token is empty".into(),
        });
    }
    Ok(Some(secret))
}

/// Reads a secret file, without its trailing whitespace (`echo` and editors
/// add a newline). As in Garage, a file that others may read is refused
/// unless `allow_world_readable` (`allow_world_readable_secrets`).
pub fn read_secret_file(path: &Path, allow_world_readable: bool) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    if !allow_world_readable {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(ConfigError::Invalid {
                key: "allow_world_readable_secrets",
                message: format!(
                    "the secret file {} can be read by other users (mode {:o}, expected 600); \
                     fix its permissions or set allow_world_readable_secrets = true",
                    path.display(),
                    mode & 0o777
                ),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = allow_world_readable;
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    Ok(text.trim_end().to_string())
}

fn default_db_engine() -> String {
    "redb".into()
}
fn default_rpc_timeout() -> u64 {
    30_000
}
fn default_gc_delay() -> u64 {
    86_400
}
fn default_sync_interval() -> u64 {
    600
}
fn default_max_body() -> u64 {
    64 << 20
}
fn default_block_size() -> u64 {
    1 << 20
}

fn deserialize_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        N(u64),
        S(String),
    }
    match S::deserialize(d)? {
        S::N(n) => Ok(n),
        S::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size `{input}`: {reason}")]
pub struct SizeError {
    /// What was given.
    pub input: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses a size with an optional SI (`K`, `M`, `G`, `T`, `KB`, ...) or IEC
/// (`KiB`, `MiB`, ...) suffix; case-insensitive, spaces allowed.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let bad = |reason: &'static str| SizeError {
        input: s.to_string(),
        reason,
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "p" | "pb" => 1_000_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        "pi" | "pib" => 1 << 50,
        _ => return Err(bad("unknown unit")),
    };
    if num.is_empty() {
        return Err(bad("no number"));
    }
    let value: f64 = num.parse().map_err(|_| bad("bad number"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes.round() as u64)
}

/// Formats a byte count the way Garage's CLI does (decimal units, one decimal).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let exp = exp.clamp(1, UNITS.len());
    let v = bytes as f64 / 1000f64.powi(exp as i32);
    format!("{:.1} {}", v, UNITS[exp - 1])
}

/// Keys we read, per section ("" = top level).
const USED_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "metadata_dir",
            "data_dir",
            "db_engine",
            "metadata_fsync",
            "data_fsync",
            "block_size",
            "disable_scrub",
            "replication_factor",
            "consistency_mode",
            "replication_mode",
            "rpc_bind_addr",
            "rpc_public_addr",
            "rpc_secret",
            "rpc_secret_file",
            "bootstrap_peers",
            "rpc_timeout_msec",
            "tombstone_gc_delay_secs",
            "sync_interval_secs",
            "allow_world_readable_secrets",
            "s3_api",
            "k2v_api",
            "admin",
        ],
    ),
    ("s3_api", &["s3_region", "api_bind_addr", "root_domain"]),
    (
        "k2v_api",
        &[
            "api_bind_addr",
            "max_body_size",
            "header_read_timeout_secs",
            "body_read_timeout_secs",
        ],
    ),
    (
        "admin",
        &[
            "api_bind_addr",
            "admin_token",
            "admin_token_file",
            "metrics_token",
            "metrics_token_file",
        ],
    ),
];

/// Keys Garage knows that this node accepts without using them.
const GARAGE_ONLY_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "metadata_snapshots_dir",
            "metadata_auto_snapshot_interval",
            "use_local_tz",
            "block_ram_buffer_max",
            "block_max_concurrent_reads",
            "lmdb_map_size",
            "sled_cache_capacity",
            "sled_flush_every_ms",
            "compression_level",
            "rpc_bind_outgoing",
            "rpc_public_addr_subnet",
            "rpc_ping_timeout_msec",
            "consul_discovery",
            "kubernetes_discovery",
            "allow_punycode",
            "s3_web",
        ],
    ),
    ("s3_api", &[]),
    ("k2v_api", &[]),
    ("admin", &["trace_sink"]),
];

fn section_keys(
    table: &[(&str, &'static [&'static str])],
    section: &str,
) -> &'static [&'static str] {
    table
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
        .unwrap_or(&[])
}

/// A remark about the file that does not stop loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigNotice {
    /// A Garage key this node does not use.
    Unused {
        /// `section.key` or `key`.
        key: String,
    },
    /// A key nobody knows, with the closest known key.
    Unknown {
        /// `section.key` or `key`.
        key: String,
        /// The closest known key, if any is close.
        suggestion: Option<String>,
    },
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn check_keys(root: &toml::Table) -> Vec<ConfigNotice> {
    let mut out = vec![];
    let mut visit = |section: &str, t: &toml::Table| {
        let used = section_keys(USED_KEYS, section);
        let garage = section_keys(GARAGE_ONLY_KEYS, section);
        for k in t.keys() {
            let full = if section.is_empty() {
                k.clone()
            } else {
                format!("{section}.{k}")
            };
            if used.contains(&k.as_str()) {
                continue;
            }
            if garage.contains(&k.as_str()) {
                out.push(ConfigNotice::Unused { key: full });
                continue;
            }
            let suggestion = used
                .iter()
                .chain(garage.iter())
                .map(|c| (edit_distance(k, c), *c))
                .min()
                .filter(|(d, c)| *d <= std::cmp::max(2, c.len() / 3))
                .map(|(_, c)| c.to_string());
            out.push(ConfigNotice::Unknown {
                key: full,
                suggestion,
            });
        }
    };
    visit("", root);
    for section in ["s3_api", "k2v_api", "admin"] {
        if let Some(toml::Value::Table(t)) = root.get(section) {
            visit(section, t);
        }
    }
    out
}

/// Names the key and line of a TOML error when its position is known.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e
        .span()
        .filter(|_| !e.message().starts_with("missing field"))
    else {
        return e.message().to_string();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !line.trim_start().starts_with('[') => {
            format!("key `{}` (line {line_no}): {}", key.trim(), e.message())
        }
        _ => format!("line {line_no}: {}", e.message()),
    }
}

impl Config {
    /// Parses a config from TOML text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<ConfigNotice>), ConfigError> {
        let perr = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        };
        let table: toml::Table = toml::from_str(text).map_err(perr)?;
        let notices = check_keys(&table);
        let mut cfg: Config = toml::from_str(text).map_err(perr)?;
        cfg.normalize()?;
        Ok((cfg, notices))
    }

    /// Reads and parses a config file, applying `GARAGE_RPC_SECRET`,
    /// `GARAGE_ADMIN_TOKEN[_FILE]` and `GARAGE_METRICS_TOKEN[_FILE]`.
    pub fn load(path: &Path) -> Result<(Config, Vec<ConfigNotice>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut cfg, notices) = Self::parse(&text, path)?;
        if let Ok(s) = std::env::var("GARAGE_RPC_SECRET") {
            cfg.rpc_secret = Some(s);
            cfg.rpc_secret_file = None;
        }
        // Empty variables count as unset, so `GARAGE_ADMIN_TOKEN=` does not
        // turn a configured token into an unusable empty one.
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        cfg.admin.override_admin_token(
            env("GARAGE_ADMIN_TOKEN"),
            env("GARAGE_ADMIN_TOKEN_FILE").map(PathBuf::from),
        );
        cfg.admin.override_metrics_token(
            env("GARAGE_METRICS_TOKEN"),
            env("GARAGE_METRICS_TOKEN_FILE").map(PathBuf::from),
        );
        Ok((cfg, notices))
    }

    fn normalize(&mut self) -> Result<(), ConfigError> {
        if let Some(mode) = self.replication_mode.clone() {
            if self.replication_factor.is_some() || self.consistency_mode.is_some() {
                return Err(ConfigError::Invalid {
                    key: "replication_mode",
                    message: "cannot be combined with replication_factor or consistency_mode"
                        .into(),
                });
            }
            let (rf, cm) = match mode.as_str() {
                "none" | "1" => (1, "consistent"),
                "2" => (2, "consistent"),
                "2-dangerous" => (2, "dangerous"),
                "3" => (3, "consistent"),
                "3-degraded" => (3, "degraded"),
                "3-dangerous" => (3, "dangerous"),
                other => {
                    return Err(ConfigError::Invalid {
                        key: "replication_mode",
                        message: format!("unknown mode `{other}`"),
                    })
                }
            };
            self.replication_factor = Some(rf);
            self.consistency_mode = Some(cm.into());
        }
        match self.replication_factor {
            None => {
                return Err(ConfigError::Invalid {
                    key: "replication_factor",
                    message: "missing required key".into(),
                })
            }
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: "replication_factor",
                    message: "must be at least 1".into(),
                })
            }
            Some(_) => (),
        }
        self.data_dir.dirs()?;
        if self.block_size == 0 {
            return Err(ConfigError::Invalid {
                key: "block_size",
                message: "must be above 0".into(),
            });
        }
        let cm = self
            .consistency_mode
            .get_or_insert_with(|| "consistent".into());
        if !["consistent", "degraded", "dangerous"].contains(&cm.as_str()) {
            return Err(ConfigError::Invalid {
                key: "consistency_mode",
                message: format!("`{cm}`: expected consistent, degraded or dangerous"),
            });
        }
        Ok(())
    }

    /// The replication factor (checked present by `parse`).
    pub fn rf(&self) -> usize {
        self.replication_factor.unwrap_or(1)
    }

    /// The consistency mode (checked by `parse`).
    pub fn consistency(&self) -> &str {
        self.consistency_mode.as_deref().unwrap_or("consistent")
    }

    /// The 32-byte RPC secret from `rpc_secret` or `rpc_secret_file`.
    pub fn rpc_secret_bytes(&self) -> Result<[u8; 32], ConfigError> {
        let text = match (&self.rpc_secret, &self.rpc_secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?,
            (None, None) => {
                return Err(ConfigError::Invalid {
                    key: "rpc_secret",
                    message: "missing: set rpc_secret, rpc_secret_file or GARAGE_RPC_SECRET".into(),
                })
            }
        };
        parse_rpc_secret(text.trim())
    }
}

/// Parses a 32-byte hex secret.
pub fn parse_rpc_secret(s: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = hex::decode(s).map_err(|_| ConfigError::Invalid {
        key: "rpc_secret",
        message: "not valid hex".into(),
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| ConfigError::Invalid {
        key: "rpc_secret",
        message: format!("expected 32 bytes (64 hex digits), got {}", bytes.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GARAGE_CFG: &str = r#"
metadata_dir = "/tmp/meta"
data_dir = "/tmp/data"
db_engine = "lmdb"
metadata_fsync = true
replication_factor = 3
consistency_mode = "consistent"
rpc_bind_addr = "[::]:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "1799bccfd7411eddcf9ebd316bc1f5287ad12a68094e1c6ac6abde7e6feae1ec"
compression_level = 2
block_size = "1M"
bootstrap_peers = []
metdata_dir = "typo"

[s3_api]
s3_region = "garage"
api_bind_addr = "[::]:3900"
root_domain = ".s3.garage"

[s3_web]
bind_addr = "[::]:3902"
root_domain = ".web.garage"

[k2v_api]
api_bind_addr = "[::]:3904"

[admin]
api_bind_addr = "0.0.0.0:3903"
admin_token = "x"
"#;

    #[test]
    fn loads_a_garage_config() {
        let (cfg, notices) = Config::parse(GARAGE_CFG, Path::new("g.toml")).expect("parse");
        assert_eq!(cfg.rf(), 3);
        assert_eq!(cfg.s3_api.s3_region, "garage");
        let k2v = cfg.k2v_api.as_ref().expect("k2v");
        assert_eq!(k2v.max_body_size, 64 << 20);
        assert!(notices.contains(&ConfigNotice::Unused {
            key: "compression_level".into()
        }));
        assert!(notices.contains(&ConfigNotice::Unused {
            key: "s3_web".into()
        }));
        assert!(notices.contains(&ConfigNotice::Unknown {
            key: "metdata_dir".into(),
            suggestion: Some("metadata_dir".into())
        }));
        assert_eq!(cfg.rpc_secret_bytes().expect("secret")[0], 0x17);
    }

    #[test]
    fn errors_name_the_key() {
        let missing = GARAGE_CFG.replace("rpc_bind_addr = \"[::]:3901\"\n", "");
        let e = Config::parse(&missing, Path::new("g.toml")).expect_err("missing");
        assert!(e.to_string().contains("rpc_bind_addr"), "{e}");

        let wrong = GARAGE_CFG.replace("metadata_fsync = true", "metadata_fsync = \"yes\"");
        let e = Config::parse(&wrong, Path::new("g.toml")).expect_err("type");
        assert!(e.to_string().contains("metadata_fsync"), "{e}");

        let norf = GARAGE_CFG.replace("replication_factor = 3\n", "");
        let e = Config::parse(&norf, Path::new("g.toml")).expect_err("rf");
        assert!(e.to_string().contains("replication_factor"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("500GB"), Ok(500_000_000_000));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1.5k"), Ok(1500));
        assert!(parse_size("12 bananas").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(format_size(999), "999 B");
        assert_eq!(format_size(3_900_000), "3.9 MB");
        assert_eq!(format_size(1_000_000_000), "1.0 GB");
    }

    #[test]
    fn admin_tokens() {
        let dir = std::env::temp_dir().join(format!("k2v-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }

        let (cfg, _) = Config::parse(GARAGE_CFG, Path::new("g.toml")).expect("parse");
        let mut admin = cfg.admin.clone();
        assert_eq!(admin.admin_token(false).expect("token"), Some("x".into()));
        assert_eq!(admin.metrics_token(false).expect("none"), None);

        // Inline and file together is ambiguous.
        admin.admin_token_file = Some(file.clone());
        let e = admin.admin_token(true).expect_err("both");
        assert!(e.to_string().contains("admin_token_file"), "{e}");

        // An override replaces both keys; the file loses its newline.
        admin.override_admin_token(None, Some(file.clone()));
        assert_eq!(admin.admin_token, None);
        assert_eq!(
            admin.admin_token(true).expect("file"),
            Some("from-file".into())
        );
        #[cfg(unix)]
        {
            let e = admin.admin_token(false).expect_err("world-readable");
            assert!(
                e.to_string().contains("allow_world_readable_secrets"),
                "{e}"
            );
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            assert_eq!(
                admin.admin_token(false).expect("private file"),
                Some("from-file".into())
            );
        }
        admin.override_admin_token(Some("cli".into()), Some(file.clone()));
        assert_eq!(admin.admin_token(false).expect("cli"), Some("cli".into()));
        admin.override_admin_token(None, None);
        assert_eq!(admin.admin_token(false).expect("kept"), Some("cli".into()));

        admin.override_metrics_token(Some("  ".into()), None);
        assert!(admin.metrics_token(false).is_err());
        admin.metrics_token_file = Some(dir.join("missing"));
        admin.metrics_token = None;
        assert!(matches!(
            admin.metrics_token(true),
            Err(ConfigError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn data_dirs_and_block_keys() {
        let (cfg, notices) = Config::parse(GARAGE_CFG, Path::new("g.toml")).expect("parse");
        assert_eq!(cfg.block_size, 1_000_000);
        assert!(!cfg.data_fsync);
        assert!(!notices
            .iter()
            .any(|n| matches!(n, ConfigNotice::Unused { key } if key == "block_size")));
        let d = cfg.data_dir.dirs().expect("single");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, PathBuf::from("/tmp/data"));

        let multi = GARAGE_CFG.replace(
            "data_dir = \"/tmp/data\"\n",
            "data_dir = [{ path = \"/a\", capacity = \"2T\" }, \
             { path = \"/b\", read_only = true }, { path = \"/c\", capacity = 1000 }]\n\
             data_fsync = true\n",
        );
        let (cfg, _) = Config::parse(&multi, Path::new("g.toml")).expect("multi");
        assert!(cfg.data_fsync);
        let d = cfg.data_dir.dirs().expect("dirs");
        assert_eq!(d[0].capacity, Some(2_000_000_000_000));
        assert!(d[1].read_only && d[1].capacity.is_none());
        assert_eq!(d[2].capacity, Some(1000));

        for wrong in [
            "data_dir = [{ path = \"/a\" }]\n",
            "data_dir = [{ path = \"/a\", capacity = \"1G\", read_only = true }]\n",
            "data_dir = [{ path = \"/a\", read_only = true }]\n",
            "data_dir = [{ capacity = \"1G\" }]\n",
            "data_dir = [{ path = \"/a\", capacity = \"1G\" }, { path = \"/a\", capacity = 5 }]\n",
            "data_dir = [{ path = \"/a\", capacity = \"many\" }]\n",
        ] {
            let text = GARAGE_CFG.replace("data_dir = \"/tmp/data\"\n", wrong);
            let e = Config::parse(&text, Path::new("g.toml")).expect_err(wrong);
            assert!(e.to_string().contains("data_dir"), "{wrong}: {e}");
        }
        let zero = GARAGE_CFG.replace("block_size = \"1M\"", "block_size = 0");
        assert!(Config::parse(&zero, Path::new("g.toml")).is_err());
    }

    #[test]
    fn legacy_replication_mode() {
        let cfg = GARAGE_CFG
            .replace(
                "replication_factor = 3\n",
                "replication_mode = \"3-degraded\"\n",
            )
            .replace("consistency_mode = \"consistent\"\n", "");
        let (c, _) = Config::parse(&cfg, Path::new("g.toml")).expect("parse");
        assert_eq!((c.rf(), c.consistency()), (3, "degraded"));
    }
}
