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

use ringkit_ingest::decode::encode_snappy;
use ringkit_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};
use tokio::net::TcpStream;

fn proc_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn body(i: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    encode_snappy(&WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label::new("__name__", "idle_flood"),
                Label::new("i", i.to_string()),
            ],
            samples: vec![Sample {
                value: i as f64,
                timestamp: now,
            }],
            ..Default::default()
        }],
        metadata: Vec::new(),
    })
}

async fn flood(port: u16, n: usize) -> (Vec<TcpStream>, Duration) {
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    // In waves of 1,000: connections past the server's limit wait in (or overflow) the
    // listen backlog, so each attempt gets a bound.
    for wave in (0..n).step_by(1000) {
        let tries = (wave..n.min(wave + 1000)).map(|_| {
            tokio::time::timeout(
                Duration::from_secs(3),
                TcpStream::connect(("127.0.0.1", port)),
            )
        });
        for r in futures::future::join_all(tries).await {
            if let Ok(Ok(s)) = r {
                conns.push(s);
            }
        }
    }
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
                .body(body(i))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            (status, t.elapsed())
        }
    };
    println!(
        "before: push {:?}, node fds {}, RSS {} kB",
        push(0).await,
        fds(pid),
        proc_kb(pid, "VmRSS:")
    );
    for (what, port) in [("http", http), ("memberlist", gossip)] {
        let (conns, took) = flood(port, n).await;
        let peak_fds = fds(pid);
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
            proc_kb(pid, "VmRSS:"),
            proc_kb(pid, "VmHWM:")
        );
        drop(conns);
    }
}
