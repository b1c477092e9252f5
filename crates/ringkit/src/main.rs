//! `ringkit`: the command-line entry point.
//!
//! Subcommands:
//! - `demo`: the ring's story in one process (ingesters join, series are placed with
//!   RF=3, a newcomer takes over a share, an ingester fails).

use clap::{Parser, Subcommand};

mod demo;
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
    /// Run the ring demo in one process, with no network and no set-up.
    Demo(demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args, &mut std::io::stdout().lock()),
    }
}
