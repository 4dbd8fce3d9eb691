//! `garage server --single-node`: a working local node with no hand-written
//! config. The config is created on first start (with a generated RPC
//! secret), the node assigns itself a role and applies the layout, and a
//! key and a bucket named `default` are created (or reused on restart).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use garage_model::garage::Garage;
use garage_rpc::layout::NodeRole;
use garage_util::config::Config;
use garage_util::rng::Rng;

use crate::cli::Cli;
use crate::config_load;
use crate::server;

/// Where the single-node mode keeps everything by default.
pub const DEFAULT_DIR: &str = "garage-data";

const ZONE: &str = "dc1";
const CAPACITY: u64 = 1_000_000_000;

fn default_config_text(dir: &Path, secret_hex: &str, admin_token: &str) -> String {
    format!(
        r#"# Created by `garage server --single-node`. Edit freely.
metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "redb"
metadata_fsync = false

replication_factor = 1

rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "{secret_hex}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"

[k2v_api]
api_bind_addr = "127.0.0.1:3904"

[admin]
api_bind_addr = "127.0.0.1:3903"
admin_token = "{admin_token}"
"#,
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    )
}

fn ensure_config(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let secret = hex::encode(Rng::from_os().bytes32());
    let admin_token = hex::encode(Rng::from_os().bytes32());
    std::fs::write(path, default_config_text(&dir, &secret, &admin_token))
        .with_context(|| format!("cannot write {}", path.display()))?;
    restrict_permissions(path);
    tracing::info!(path = %path.display(), "created a single-node config");
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Fails unless the config can run the single-node mode.
fn check_runnable(cfg: &Config) -> Result<()> {
    if cfg.k2v_api.is_none() {
        bail!("the config has no [k2v_api] section: the single-node mode needs the K2V API");
    }
    Ok(())
}

/// Lays the node out (if needed) and creates the default key and bucket.
pub async fn bootstrap(garage: &Garage) -> Result<(String, String)> {
    let system = &garage.system;
    let layout = system.layout();
    if layout.current().node_role(&system.id).is_none() {
        let mut l = (*layout).clone();
        l.stage_assign(
            system.id,
            NodeRole {
                zone: ZONE.into(),
                capacity: Some(CAPACITY),
                tags: vec![],
            },
        )
        .map_err(|e| anyhow!("{e}"))?;
        let next = l.current().version + 1;
        let (applied, _msg) = l
            .apply_staged_changes(Some(next))
            .map_err(|e| anyhow!("cannot apply the single-node layout: {e}"))?;
        system
            .merge_layout(&applied)
            .await
            .map_err(|e| anyhow!("cannot store the layout: {e}"))?;
        tracing::info!(version = next, "single-node layout applied");
    }
    let key = match garage
        .list_keys(false)
        .await?
        .into_iter()
        .find(|k| k.name() == "default")
    {
        Some(k) => k,
        None => garage.create_key("default").await?,
    };
    if garage.find_bucket("default").await.is_err() {
        garage.create_bucket("default").await?;
    }
    garage
        .change_permissions("default", &key.key_id, true, true, true, true)
        .await?;
    let secret = key
        .params()
        .map(|p| p.secret_key.clone())
        .ok_or_else(|| anyhow!("the default key was deleted"))?;
    Ok((key.key_id, secret))
}

/// Runs the single-node mode until a signal.
pub async fn run(cli: &Cli) -> Result<()> {
    let path = config_load::config_path(cli, &Path::new(DEFAULT_DIR).join("garage.toml"));
    ensure_config(&path)?;
    let cfg = config_load::load(cli, &path)?;
    check_runnable(&cfg)?;
    let k2v_addr = cfg
        .k2v_api
        .as_ref()
        .map(|k| k.api_bind_addr.clone())
        .unwrap_or_default();
    let region = cfg.s3_api.s3_region.clone();
    let s3_addr = cfg.s3_api.api_bind_addr.clone();
    let admin = match (&cfg.admin.api_bind_addr, &cfg.admin.admin_token) {
        (Some(addr), Some(token)) => Some((addr.clone(), token.clone())),
        _ => None,
    };
    let node = server::start(cfg).await?;
    let (key_id, secret) = match bootstrap(&node.garage).await {
        Ok(x) => x,
        Err(e) => {
            node.shutdown().await;
            return Err(e);
        }
    };
    let endpoint = format!("http://{k2v_addr}");
    let abs = path.canonicalize().unwrap_or(path.clone());
    // One write, whose failure is ignored: the node must keep running when
    // whoever started it stops reading its output.
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "==== SINGLE-NODE K2V / S3 STORE READY ====");
    let _ = writeln!(out, "K2V endpoint: {endpoint}");
    let _ = writeln!(out, "Region: {region}");
    let _ = writeln!(out, "Bucket: default");
    let _ = writeln!(out, "Key ID: {key_id}");
    let _ = writeln!(out, "Secret key: {secret}");
    let _ = writeln!(out, "Config: {}", abs.display());
    let _ = writeln!(out);
    let _ = writeln!(out, "Try it (write, then read):");
    let _ = writeln!(
        out,
        "  curl --aws-sigv4 \"aws:amz:{region}:k2v\" --user '{key_id}:{secret}' \
         -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT --data-binary hello \
         '{endpoint}/default/mypk?sort_key=mysk'"
    );
    let _ = writeln!(
        out,
        "  curl --aws-sigv4 \"aws:amz:{region}:k2v\" --user '{key_id}:{secret}' \
         -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' '{endpoint}/default/mypk?sort_key=mysk'"
    );
    if let Some(s3) = &s3_addr {
        let _ = writeln!(out, "S3 endpoint: http://{s3}");
        let _ = writeln!(out, "Try it with the AWS CLI (list, upload, read):");
        let env = format!(
            "AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}"
        );
        let _ = writeln!(
            out,
            "  {env} aws --endpoint-url http://{s3} s3 ls s3://default"
        );
        let _ = writeln!(
            out,
            "  echo hello | {env} aws --endpoint-url http://{s3} s3 cp - s3://default/hello.txt"
        );
        let _ = writeln!(
            out,
            "  {env} aws --endpoint-url http://{s3} s3 cp s3://default/hello.txt -"
        );
    }
    let _ = writeln!(out, "Cluster status:");
    let _ = writeln!(out, "  garage -c {} status", abs.display());
    if let Some((addr, token)) = admin {
        let _ = writeln!(out, "Admin API (token in the config's [admin] section):");
        let _ = writeln!(
            out,
            "  curl -H 'Authorization: Bearer {token}' http://{addr}/v1/health"
        );
    }
    use std::io::Write;
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    node.run_until_signal().await
}
