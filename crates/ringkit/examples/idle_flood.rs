//! The full-size hostile-clients run of issue 14: N idle connections to a running node's
//! HTTP port, then N to its memberlist port, while pushes keep going; prints how long
//! pushes took, the node's descriptors and RSS. CI runs a 2,000-connection version
//! (tests/hostile_clients.rs); this one is for the README's numbers.
//!
//! ```sh
//! ringkit node --target=all --kv.store=memberlist --memberlist.bind-addr=127.0.0.1 \
//!     --memberlist.bind-port=7946 --distributor.replication-factor=1 \
//!     --server.grpc-listen-port=0 --ingester.wal-dir=/tmp/wal-flood &
//! cargo run -p ringkit --example idle_flood -- 8080 7946 $! 9000
//! ```
//! Arguments: HTTP port, memberlist port, the node's pid, connections per port. The
//! client holds one descriptor per connection: keep N under this shell's `ulimit -n`.

use std::time::{Duration, Instant};

use ringkit_testkit::conn::{open_fds, open_idle, status_kb};
use ringkit_testkit::push;
use tokio::net::TcpStream;

/// Opens `n` idle connections in waves of 1,000 (3 s per attempt); returns them and the
/// time it took.
async fn flood(port: u16, n: usize) -> (Vec<TcpStream>, Duration) {
    let started = Instant::now();
    let conns = open_idle(port, n, 1000, Duration::from_secs(3)).await;
    (conns, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [http, gossip, pid, n] = args.as_slice() else {
        eprintln!("usage: idle_flood HTTP_PORT GOSSIP_PORT NODE_PID CONNECTIONS");
        std::process::exit(2);
    };
    let (http, gossip): (u16, u16) = (http.parse().unwrap(), gossip.parse().unwrap());
    let (pid, n): (u32, usize) = (pid.parse().unwrap(), n.parse().unwrap());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let push = |i: usize| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let status = client
                .post(format!("http://127.0.0.1:{http}/api/v1/push"))
                .header("Content-Encoding", "snappy")
                .body(push::one_sample("idle_flood", i))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            (status, t.elapsed())
        }
    };
    println!(
        "before: push {:?}, node fds {}, RSS {} kB",
        push(0).await,
        open_fds(pid),
        status_kb(pid, "VmRSS:").unwrap_or(0)
    );
    for (what, port) in [("http", http), ("memberlist", gossip)] {
        let (conns, took) = flood(port, n).await;
        let peak_fds = open_fds(pid);
        let mut worst = Duration::ZERO;
        let mut failed = 0;
        for i in 1..=10 {
            let (status, t) = push(i).await;
            worst = worst.max(t);
            failed += usize::from(status != 200);
        }
        println!(
            "{what}: {} of {n} connections opened in {took:?}; 10 pushes during the flood: \
             {failed} failed, slowest {worst:?}; node fds {peak_fds}, RSS {} kB (peak {} kB)",
            conns.len(),
            status_kb(pid, "VmRSS:").unwrap_or(0),
            status_kb(pid, "VmHWM:").unwrap_or(0)
        );
        drop(conns);
    }
}
