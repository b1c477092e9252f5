//! Prints who owns how much of a ring: reads it from etcd or memberlist gossip (a Mimir,
//! Loki or ringkit cluster) without registering in it.
//!
//! ```text
//! cargo run -p ringkit-member --example ownership -- --join 10.0.0.5:7946
//! cargo run -p ringkit-member --example ownership -- --etcd 127.0.0.1:2379
//! ```

use clap::Parser;
use ringkit_member::{RingReader, Store, ownership};

#[derive(Parser)]
struct Args {
    /// Read the ring from gossip, joining through this member (repeat for more).
    #[arg(long, required_unless_present = "etcd")]
    join: Vec<String>,
    /// Read the ring from these etcd endpoints instead.
    #[arg(long, conflicts_with = "join")]
    etcd: Vec<String>,
    /// Where this program's own gossip node listens (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:0")]
    bind: std::net::SocketAddr,
    /// Full ring key (Mimir's store-gateway ring: collectors/store-gateway).
    #[arg(long, default_value = ringkit_member::DEFAULT_RING_KEY)]
    key: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let store = if args.etcd.is_empty() {
        // A gossip node of our own, only to receive the cluster's state.
        Store::gossip(args.bind, args.join)
    } else {
        Store::etcd(args.etcd)
    };
    let reader = RingReader::builder(store)
        .key(args.key)
        .local_testing()
        .open()
        .await?;
    let ring = reader.snapshot();

    println!(
        "{:<30} {:<10} {:<10} {:>7} {:>10}",
        "instance", "zone", "state", "tokens", "ownership"
    );
    for (instance, share) in ownership(&ring) {
        let (zone, state) = (&instance.zone, instance.state().as_str_name());
        println!(
            "{:<30} {:<10} {:<10} {:>7} {:>9.2}%",
            instance.id,
            zone,
            state,
            instance.tokens.len(),
            100.0 * share
        );
    }
    println!(
        "{} instances, {} tokens",
        ring.instances_count(),
        ring.tokens().len()
    );
    reader.close().await;
    Ok(())
}
