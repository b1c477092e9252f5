//! Distributor throughput and push latency over loopback: three ingester gRPC servers with
//! real WALs (fsync per push unless `--no-fsync`), a ring with RF 3, the distributor's HTTP
//! endpoint, and `--concurrency` clients replaying the captured Prometheus 2.42 body (500
//! series, one sample each) with fresh timestamps for `--seconds`.
//!
//! ```sh
//! cargo run --release -p ringkit-dataplane --example distributor_load -- --seconds 10 --concurrency 8
//! ```
//!
//! Each client owns its series (an extra `client` label), so its pushes are in order.

use std::sync::Arc;

use axum::serve::ListenerExt as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringkit_dataplane::distributor::{Distributor, DistributorConfig};
use ringkit_dataplane::ingester::{IngesterConfig, IngesterService, load};
use ringkit_ingest::decode::{DecodeLimits, decode_write_request, encode_snappy};
use ringkit_ingest::head::HeadOptions;
use ringkit_ingest::prompb::Label;
use ringkit_ingest::validate::Limits;
use ringkit_ingest::wal::WalConfig;
use ringkit_lifecycle::RingWatcher;
use ringkit_ring::{Desc, InstanceState, RingConfig};

struct Args {
    seconds: u64,
    concurrency: usize,
    fsync: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        concurrency: 8,
        fsync: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok());
        match flag.as_str() {
            "--seconds" => a.seconds = value().expect("--seconds N"),
            "--concurrency" => a.concurrency = value().expect("--concurrency N") as usize,
            "--no-fsync" => a.fsync = false,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::main]
async fn main() {
    let a = args();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ingest/testdata/rw-prometheus242-samples-500series.snappy-proto.bin"
    );
    let template =
        decode_write_request(&std::fs::read(fixture).unwrap(), &DecodeLimits::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut desc = Desc::new();
    for i in 0..3u32 {
        let cfg = IngesterConfig {
            tsdb_dir: dir.path().join(format!("tsdb-{i}")),
            head: HeadOptions {
                wal: WalConfig {
                    sync_every_write: a.fsync,
                    ..WalConfig::default()
                },
                ..HeadOptions::default()
            },
            limits: Limits::default(),
        };
        let (head, _) = load(&cfg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let service = IngesterService::new(head, Limits::default());
        tokio::spawn(service.serve(listener, std::future::pending()));
        let tokens = (0..128u32)
            .map(|t| t.wrapping_mul(33_554_467).wrapping_add(i * 101))
            .collect();
        let s = now() / 1000;
        desc.add_instance(
            &format!("ing-{i}"),
            &addr,
            "",
            tokens,
            InstanceState::Active,
            s,
            s,
        );
    }
    let watcher = RingWatcher::new(RingConfig {
        replication_factor: 3,
        heartbeat_timeout: Duration::from_secs(3600),
        ..RingConfig::default()
    })
    .expect("valid ring config");
    watcher.publish(desc);
    let distributor = Arc::new(Distributor::new(DistributorConfig::default(), watcher));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/push", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, ringkit_dataplane::http::router(distributor))
            .await
            .unwrap()
    });

    // Each client builds its next body (fresh timestamp) between pushes: that work shares
    // the cores with the servers, so throughput is a conservative figure; latency covers the
    // HTTP call only.
    let base = now();
    let template = Arc::new(template);
    let samples_per_push = template
        .timeseries
        .iter()
        .map(|t| t.samples.len())
        .sum::<usize>();

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.concurrency {
        let (http, url, template) = (http.clone(), url.clone(), Arc::clone(&template));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut k = 0;
            while Instant::now() < deadline {
                let mut req = (*template).clone();
                for ts in &mut req.timeseries {
                    ts.labels.push(Label::new("client", c.to_string()));
                    for s in &mut ts.samples {
                        s.timestamp = base + k;
                    }
                }
                k += 1;
                let body = encode_snappy(&req);
                let t0 = Instant::now();
                let resp = http
                    .post(&url)
                    .header("Content-Encoding", "snappy")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let ok = resp.status().is_success();
                let _ = resp.bytes().await;
                latencies.push(t0.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let pushes = latencies.len();
    println!(
        "fsync={} concurrency={} pushes={} errors={} elapsed={:.1}s",
        a.fsync,
        a.concurrency,
        pushes,
        errors,
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.0} samples/s ({:.0} pushes/s of {samples_per_push} samples), RF 3",
        (pushes * samples_per_push) as f64 / elapsed.as_secs_f64(),
        pushes as f64 / elapsed.as_secs_f64()
    );
    println!(
        "push latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}
