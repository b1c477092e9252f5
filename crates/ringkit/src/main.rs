//! `ringkit`: the command-line entry point.
//!
//! Subcommands:
//! - `demo`: the ring's story told by real processes on 127.0.0.1 (ingesters and a
//!   distributor gossiping over memberlist, remote write, a newcomer, a kill -9, remote
//!   read); `demo --offline` tells it in one process with no network.
//! - `node`: a process that joins a ring kept in a KV store (in-memory, etcd or multi),
//!   heartbeats, and serves `/ring`, `/ready` and `/metrics`.
//! - `ring`: operator commands on a shared ring (`show`, `forget`, `lookup`).

use clap::{Parser, Subcommand};

mod demo;
mod demo_net;
mod distributor;
mod duration;
mod http;
mod ingester;
mod kvstore;
mod memberlist_page;
mod node;
mod ring_cli;
mod ring_metrics;
mod ring_page;
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    }
}
