//! `garage`: the server and the operator CLI of a K2V store compatible with
//! Garage.
//!
//! Layout: [`cli`] holds the clap definitions; [`server`] starts and stops a
//! node; [`single_node`] is the one-command local node, built on [`server`]
//! (`main` dispatches `server --single-node` to it); [`cli_cmds`] runs the
//! operator verbs over RPC; [`admin`] is the daemon side of the key and
//! bucket verbs; [`fmt`] prints tables.

mod admin;
mod cli;
mod cli_cmds;
mod config_load;
mod fmt;
mod server;
mod single_node;

use clap::Parser;

/// The hot paths allocate many small buffers per request (keys, values,
/// encodings): with glibc's allocator, malloc and free took about a third of
/// the server's CPU in a ReadBatch profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::{Cli, Command};

fn main() {
    // A panic anywhere means a bug: abort rather than run half-broken.
    // Except a closed stdout (`garage status | head -1`): print! panics on
    // it, which for a CLI means the reader has seen enough. Exit as a
    // process killed by SIGPIPE would, quietly.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
        std::process::abort();
    }));

    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let default = if matches!(cli.cmd, Command::Server(_)) {
            "info"
        } else {
            "warn"
        };
        tracing_subscriber::EnvFilter::new(default)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Command::Server(ref opt) if opt.single_node => single_node::run(&cli).await,
            Command::Server(_) => server::run(&cli).await,
            _ => cli_cmds::run(cli).await,
        }
    });
    if let Err(e) = res {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
