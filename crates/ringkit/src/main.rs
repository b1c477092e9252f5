//! `ringkit`: the command-line entry point.
//!
//! Subcommands:
//! - `demo`: the ring's story told by real processes on 127.0.0.1 (ingesters and a
//!   distributor gossiping over memberlist, remote write, a newcomer, a kill -9, remote
//!   read); `demo --offline` tells it in one process with no network.
//! - `node`: a process that joins a ring kept in a KV store (in-memory, etcd, memberlist
//!   gossip or multi), heartbeats, and serves `/ring`, `/memberlist`, `/ready` and
//!   `/metrics`; flags may also come from `--config.file` (YAML).
//! - `ring`: operator commands on a shared ring (`show`, `forget`, `lookup`).
//! - `ship`: uploads a TSDB directory's finished blocks to object storage once.
//! - `loadgen`: remote-write load (and read-back) against a running distributor.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc instead of the system allocator: a block cut or a WAL checkpoint builds and frees
/// tens of MB at once, and glibc's malloc kept those freed pages, so an ingester's RSS
/// climbed with every cut (soak: 660 MB resident for a 76 MB head, 180 MB after a manual
/// `malloc_trim`); mimalloc returns freed memory to the system on its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod blocks_storage;
mod cli_defaults;
mod config_file;
mod demo;
mod demo_net;
mod distributor;
mod duration;
mod http;
mod ingester;
mod kvstore;
mod loadgen;
mod memberlist_page;
mod mimir_flags;
mod netaddr;
mod node;
mod partition;
mod prepare;
mod remote_read;
mod ring_cli;
mod ring_metrics;
mod ring_page;
mod server_args;
mod table;

/// ringkit: a Rust implementation of the Cortex/Mimir/Loki hash ring.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ring demo: real loopback processes (or one process with --offline), no set-up.
    Demo(demo::DemoArgs),
    /// Run a ring member (ingester and/or distributor) against a KV store.
    Node(Box<node::NodeArgs>),
    /// Inspect and repair a ring in a shared KV store: show, forget, lookup.
    Ring(Box<ring_cli::RingArgs>),
    /// Ship the finished TSDB blocks of a directory to object storage once.
    Ship(Box<blocks_storage::ShipArgs>),
    /// Push node_exporter-like remote-write load at a running distributor (and read it back).
    Loadgen(Box<loadgen::LoadgenArgs>),
}

/// Parses the command line, with `--config.file` expanded and Mimir's spellings rewritten
/// (see [`mimir_flags`]); a flag given twice (file, then command line) takes the last value.
fn parse_cli() -> anyhow::Result<Cli> {
    let args = config_file::expand(&Cli::command(), std::env::args_os().collect())?;
    let args = mimir_flags::rewrite(&Cli::command(), args)?;
    let command = Cli::command()
        .args_override_self(true)
        .mut_subcommands(|c| {
            c.args_override_self(true)
                .mut_subcommands(|c| c.args_override_self(true))
        });
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

fn main() -> anyhow::Result<()> {
    let cli = parse_cli()?;
    match cli.command {
        Command::Demo(args) if args.offline => demo::run(&args, &mut std::io::stdout().lock()),
        Command::Demo(args) => std::process::exit(demo_net::main(&args)),
        Command::Node(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            tokio::runtime::Runtime::new()?.block_on(node::run(*args))
        }
        Command::Ring(args) => std::process::exit(ring_cli::main(*args)),
        Command::Ship(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            std::process::exit(blocks_storage::main(*args))
        }
        Command::Loadgen(args) => std::process::exit(loadgen::main(*args)),
    }
}
