//! Prints the ring each time its shape changes (instances, states, tokens; heartbeats
//! alone are not shown), from etcd or memberlist gossip, until Ctrl-C.
//!
//! ```text
//! cargo run -p ringkit-member --example watch -- --join 10.0.0.5:7946
//! cargo run -p ringkit-member --example watch -- --etcd 127.0.0.1:2379
//! ```

use clap::Parser;
use ringkit_member::{RingReader, RingSnapshot, Store};

#[derive(Parser)]
struct Args {
    /// Follow the ring in gossip, joining through this member (repeat for more).
    #[arg(long, required_unless_present = "etcd")]
    join: Vec<String>,
    /// Follow the ring in these etcd endpoints instead.
    #[arg(long, conflicts_with = "join")]
    etcd: Vec<String>,
    /// Where this program's own gossip node listens (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:0")]
    bind: std::net::SocketAddr,
    /// Full ring key.
    #[arg(long, default_value = ringkit_member::DEFAULT_RING_KEY)]
    key: String,
    /// Stop after printing this many changes (0: never).
    #[arg(long, default_value_t = 0)]
    max_changes: usize,
}

/// What a change is: each instance's id, state and token count.
fn shape(ring: &RingSnapshot) -> Vec<String> {
    let instances = ring.instances().iter();
    instances
        .map(|i| format!("{}={}/{}", i.id, i.state().as_str_name(), i.tokens.len()))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let store = match args.etcd.is_empty() {
        true => Store::gossip(args.bind, args.join),
        false => Store::etcd(args.etcd),
    };
    let reader = RingReader::builder(store)
        .key(args.key)
        .local_testing()
        .open()
        .await?;
    let mut changes = reader.changes();
    let (mut last, mut printed) = (None, 0);
    let mut ring = reader.snapshot();
    loop {
        let now = shape(&ring);
        if last.as_ref() != Some(&now) {
            println!(
                "ring: {}",
                if now.is_empty() {
                    "empty".to_owned()
                } else {
                    now.join(" ")
                }
            );
            printed += 1;
            if printed == args.max_changes {
                break;
            }
            last = Some(now);
        }
        tokio::select! {
            next = changes.next() => match next { Some(next) => ring = next, None => break },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    reader.close().await;
    Ok(())
}
