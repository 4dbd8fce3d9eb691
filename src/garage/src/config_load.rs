//! Finding and loading the config file, with its notices logged once.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use garage_util::config::{Config, ConfigNotice};

use crate::cli::Cli;

/// The default config path.
pub const DEFAULT_CONFIG: &str = "/etc/garage.toml";

/// The config path given by `-c` / `GARAGE_CONFIG_FILE`, else `default`.
pub fn config_path(cli: &Cli, default: &Path) -> PathBuf {
    cli.config.clone().unwrap_or_else(|| default.to_path_buf())
}

/// Loads the config, applying the CLI's secret overrides, and logs notices.
pub fn load(cli: &Cli, path: &Path) -> Result<Config> {
    let (mut cfg, notices) = Config::load(path).map_err(anyhow::Error::new)?;
    for n in notices {
        match n {
            ConfigNotice::Unused { key } => {
                tracing::info!(key = %key, "config key accepted but not used by this node")
            }
            ConfigNotice::Unknown {
                key,
                suggestion: Some(s),
            } => tracing::warn!(key = %key, "unknown config key; did you mean `{s}`?"),
            ConfigNotice::Unknown {
                key,
                suggestion: None,
            } => tracing::warn!(key = %key, "unknown config key, ignored"),
        }
    }
    if let Some(s) = &cli.rpc_secret {
        cfg.rpc_secret = Some(s.clone());
        cfg.rpc_secret_file = None;
    } else if let Some(f) = &cli.rpc_secret_file {
        cfg.rpc_secret = None;
        cfg.rpc_secret_file = Some(f.clone());
    }
    cfg.admin
        .override_admin_token(cli.admin_token.clone(), cli.admin_token_file.clone());
    cfg.admin
        .override_metrics_token(cli.metrics_token.clone(), cli.metrics_token_file.clone());
    if cli.allow_world_readable_secrets {
        cfg.allow_world_readable_secrets = true;
    }
    Ok(cfg)
}

/// The RPC secret, from the CLI, the environment or the config.
pub fn secret(cli: &Cli, cfg: Option<&Config>) -> Result<[u8; 32]> {
    if let Some(s) = &cli.rpc_secret {
        return garage_util::config::parse_rpc_secret(s.trim()).map_err(anyhow::Error::new);
    }
    if let Some(f) = &cli.rpc_secret_file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the RPC secret file {}", f.display()))?;
        return garage_util::config::parse_rpc_secret(s.trim()).map_err(anyhow::Error::new);
    }
    match cfg {
        Some(c) => c.rpc_secret_bytes().map_err(anyhow::Error::new),
        None => anyhow::bail!("no RPC secret: use -s, GARAGE_RPC_SECRET or a config file"),
    }
}
