//! `garage server`: start-up and teardown of a node, in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use garage_api::admin::{AdminApiServer, AdminTokens, BuildInfo};
use garage_db::{Db, Engine, OpenOptions};
use garage_model::garage::Garage;
use garage_rpc::mesh::{MeshTiming, MeshTransport};
use garage_rpc::system::{parse_peer, System, SystemConfig};
use garage_util::background::BackgroundRunner;
use garage_util::config::Config;
use garage_util::rng::Rng;
use garage_util::time::Clock;

use crate::admin::AdminRpcHandler;
use crate::cli::Cli;
use crate::config_load;

/// Chooses the engine from `db_engine`; engines Garage has and we do not
/// fall back to the default with a log line.
fn engine_of(cfg: &Config) -> Result<Engine> {
    match cfg.db_engine.as_str() {
        "lmdb" | "sqlite" => {
            tracing::warn!(
                engine = %cfg.db_engine,
                "this engine is not built in; using redb instead (a new, empty database)"
            );
            Ok(Engine::Redb)
        }
        other => other
            .parse::<Engine>()
            .map_err(|e| anyhow!("invalid db_engine `{other}`: {e}")),
    }
}

/// Resolves a bind address like `[::]:3901` or `127.0.0.1:3904`.
fn bind_addr(s: &str, key: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .with_context(|| format!("invalid {key} `{s}`"))?
        .next()
        .ok_or_else(|| anyhow!("invalid {key} `{s}`: no address"))
}

/// What `GET /v1/status` reports about this binary.
fn build_info() -> BuildInfo {
    let features = [
        ("k2v", cfg!(feature = "k2v")),
        ("redb", cfg!(feature = "redb")),
        ("sled", cfg!(feature = "sled")),
    ];
    BuildInfo {
        version: format!("v{}", env!("CARGO_PKG_VERSION")),
        features: features
            .iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| f.to_string())
            .collect(),
        // The compiler version is not recorded at build time.
        rust_version: "unknown".into(),
    }
}

/// Everything a running node holds, for the single-node set-up and tests.
pub struct RunningNode {
    /// The node's state.
    pub garage: Arc<Garage>,
    stop_tx: watch::Sender<bool>,
    bg: Arc<BackgroundRunner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts a node from its config; it runs until `shutdown` is called.
pub async fn start(cfg: Config) -> Result<RunningNode> {
    // 0. Admin API tokens: a bad or unreadable token file stops the start
    //    before anything is created.
    let allow_world_readable = cfg.allow_world_readable_secrets;
    let admin_tokens = AdminTokens::new(
        cfg.admin.admin_token(allow_world_readable)?.as_deref(),
        cfg.admin.metrics_token(allow_world_readable)?.as_deref(),
    );

    // 1. Storage directory, identity and database.
    std::fs::create_dir_all(&cfg.metadata_dir)
        .with_context(|| format!("cannot create {}", cfg.metadata_dir.display()))?;
    let key = garage_rpc::node_key::read_or_create(&cfg.metadata_dir)?;
    let engine = engine_of(&cfg)?;
    let db_path: PathBuf = cfg.metadata_dir.join("db");
    let db = Db::open(&OpenOptions {
        engine,
        path: db_path,
        fsync: cfg.metadata_fsync,
    })
    .map_err(|e| anyhow!("cannot open the metadata database: {e}"))?;
    tracing::info!(
        engine = db.engine(),
        fsync = cfg.metadata_fsync,
        "database open"
    );

    // 2. Peer-to-peer transport and membership.
    let secret = cfg.rpc_secret_bytes()?;
    let mut bootstrap = vec![];
    for p in cfg.bootstrap_peers.iter() {
        bootstrap.push(parse_peer(p).map_err(|e| anyhow!("invalid bootstrap_peers entry: {e}"))?);
    }
    bootstrap.extend(System::saved_peers(&cfg.metadata_dir));
    let public_addr = match &cfg.rpc_public_addr {
        Some(a) => Some(bind_addr(a, "rpc_public_addr")?),
        None => None,
    };
    // The RPC listener is bound here, once, and handed to the transport.
    let rpc_bind = cfg.rpc_bind_addr;
    let rpc_listener = TcpListener::bind(rpc_bind)
        .await
        .with_context(|| format!("cannot listen for RPC on {rpc_bind}"))?;
    let announce = public_addr.unwrap_or(rpc_listener.local_addr()?);
    let transport =
        MeshTransport::new_node(&secret, &key, bootstrap, announce, MeshTiming::default());
    let system = System::new(
        transport.clone(),
        SystemConfig {
            metadata_dir: cfg.metadata_dir.clone(),
            rf: cfg.rf(),
            consistency: cfg.consistency().to_string(),
            rpc_timeout: Duration::from_millis(cfg.rpc_timeout_msec),
            rpc_public_addr: public_addr,
        },
    )
    .map_err(|e| anyhow!(e))?;
    tracing::info!(node = %system.id.to_hex(), "node identity");

    // 3. Tables and the admin RPC.
    let garage = Garage::new(
        cfg.clone(),
        db,
        system.clone(),
        Clock::system(),
        Rng::from_os(),
    )?;

    // 4. Listeners: bind everything before serving, so a busy port is a clear error.
    let (stop_tx, stop_rx) = watch::channel(false);
    let k2v_listener = match &cfg.k2v_api {
        Some(k) => {
            let a = bind_addr(&k.api_bind_addr, "k2v_api.api_bind_addr")?;
            Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen for the K2V API on {a}"))?,
            )
        }
        None => None,
    };
    let admin_listener = match &cfg.admin.api_bind_addr {
        Some(s) => {
            let a = bind_addr(s, "admin.api_bind_addr")?;
            Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen for the admin API on {a}"))?,
            )
        }
        None => None,
    };
    let s3_listener = match &cfg.s3_api.api_bind_addr {
        Some(s) => {
            let a = bind_addr(s, "s3_api.api_bind_addr")?;
            Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen for the S3 API on {a}"))?,
            )
        }
        None => None,
    };

    // 5. Background workers.
    let bg = BackgroundRunner::new(stop_rx.clone());
    garage.spawn_workers(&bg);
    AdminRpcHandler::register(garage.clone(), bg.clone());

    // 6. Serve.
    let mut tasks = vec![];
    let t = transport.clone();
    let rx = stop_rx.clone();
    tasks.push(tokio::spawn(async move { t.run(rpc_listener, rx).await }));
    tracing::info!(addr = %rpc_bind, "RPC listening");
    if let Some(l) = k2v_listener {
        tracing::info!(addr = %l.local_addr()?, "K2V API listening");
        tasks.push(spawn_k2v(garage.clone(), &cfg, l, stop_rx.clone())?);
    }
    if let Some(l) = s3_listener {
        tracing::info!(addr = %l.local_addr()?, "S3 API listening");
        let server = garage_api::s3::S3ApiServer::new(
            garage.clone(),
            cfg.s3_api.s3_region.clone(),
            cfg.s3_api.root_domain.clone(),
            usize::try_from(cfg.block_size).unwrap_or(1 << 20),
        );
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            garage_api::server::run(l, rx, move |req| server.clone().handle(req)).await
        }));
    }
    if let Some(l) = admin_listener {
        tracing::info!(addr = %l.local_addr()?, "admin API listening");
        let server = AdminApiServer::new(garage.clone(), admin_tokens, build_info());
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            garage_api::server::run(l, rx, move |req| server.clone().handle(req)).await
        }));
    }
    Ok(RunningNode {
        garage,
        stop_tx,
        bg,
        tasks,
    })
}

#[cfg(feature = "k2v")]
fn spawn_k2v(
    garage: Arc<Garage>,
    cfg: &Config,
    l: TcpListener,
    rx: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let k2v_cfg = cfg
        .k2v_api
        .as_ref()
        .ok_or_else(|| anyhow!("no [k2v_api] section"))?;
    let server = garage_api::k2v::K2VApiServer::new(
        garage,
        cfg.s3_api.s3_region.clone(),
        k2v_cfg.max_body_size,
        Duration::from_secs(k2v_cfg.body_read_timeout_secs.max(1)),
    );
    let limits = garage_api::server::ServerLimits {
        header_read_timeout: Duration::from_secs(k2v_cfg.header_read_timeout_secs.max(1)),
        ..Default::default()
    };
    Ok(tokio::spawn(async move {
        garage_api::server::run_with_limits(l, rx, limits, move |req| server.clone().handle(req))
            .await
    }))
}

#[cfg(not(feature = "k2v"))]
fn spawn_k2v(
    _garage: Arc<Garage>,
    _cfg: &Config,
    _l: TcpListener,
    _rx: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    tracing::error!("[k2v_api] is configured but this binary was built without the k2v feature");
    Ok(tokio::spawn(async {}))
}

impl RunningNode {
    /// Runs until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) -> Result<()> {
        wait_for_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }

    /// Stops every listener and worker.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        self.bg.join(Duration::from_secs(8)).await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(8), t).await;
        }
    }
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => (),
                    _ = t.recv() => (),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `garage server` without `--single-node`: runs the node of the config
/// file until SIGINT or SIGTERM.
pub async fn run(cli: &Cli) -> Result<()> {
    let path = config_load::config_path(cli, std::path::Path::new(config_load::DEFAULT_CONFIG));
    let cfg = config_load::load(cli, &path)?;
    start(cfg).await?.run_until_signal().await
}
