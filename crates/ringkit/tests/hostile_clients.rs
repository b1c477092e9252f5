//! Hostile clients against a real `ringkit node` process (issue 14, scaled down for CI):
//! 2,000 idle connections to its HTTP port and 2,000 to its memberlist port. Pushes are
//! still answered, every idle connection is cut by the server's timeouts, the process
//! never holds more descriptors than its limits allow, and its memory stays bounded.
//! The 20,000-connection version is `examples/idle_flood.rs` (numbers in the README).

mod common;

use std::time::{Duration, Instant};

use common::{spawn_node, wait_for};
use ringkit_testkit::conn::{open_fds, open_idle, status_kb};
use ringkit_testkit::{port, push};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const IDLE: usize = 2_000;
const HTTP_CONN_LIMIT: usize = 1_000;
const GOSSIP_CONN_LIMIT: usize = 64;

/// How many of `conns` the server closed within `limit` (all of them are read at once).
async fn closed_by_server(conns: Vec<TcpStream>, limit: Duration) -> usize {
    let reads = conns.into_iter().map(|mut s| async move {
        let mut b = [0u8; 256];
        loop {
            match tokio::time::timeout(limit, s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue, // e.g. an error response before closing
                Err(_) => return false,
            }
        }
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .filter(|&c| c)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_floods_on_http_and_gossip_ports_leave_pushes_served() {
    let gossip = port::free();
    let wal = tempfile::tempdir().unwrap();
    let args = vec![
        "--target=all".to_owned(),
        "--kv.store=memberlist".to_owned(),
        "--memberlist.bind-addr=127.0.0.1".to_owned(),
        format!("--memberlist.bind-port={gossip}"),
        format!("--memberlist.max-incoming-connections={GOSSIP_CONN_LIMIT}"),
        "--ingester.lifecycler.ID=hostile-1".to_owned(),
        "--ingester.num-tokens=16".to_owned(),
        "--ingester.min-ready-duration=0s".to_owned(),
        "--distributor.replication-factor=1".to_owned(),
        "--server.grpc-listen-port=0".to_owned(),
        format!("--ingester.wal-dir={}", wal.path().display()),
        format!("--server.http-conn-limit={HTTP_CONN_LIMIT}"),
        "--server.http-read-header-timeout=2s".to_owned(),
        "--server.http-idle-timeout=5s".to_owned(),
    ];
    let (mut child, url) = spawn_node(&args, std::process::Stdio::null(), None);
    let pid = child.id();
    let http_port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    wait_for(&url, "one ACTIVE instance", |r| {
        r["shards"]
            .as_array()
            .is_some_and(|s| s.len() == 1 && s[0]["state"] == "ACTIVE")
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let push = |i: usize| {
        let client = client.clone();
        let url = format!("{url}/api/v1/push");
        async move {
            let r = client
                .post(url)
                .header("Content-Encoding", "snappy")
                .body(push::one_sample("hostile_test", i))
                .send()
                .await
                .expect("push answered");
            r.status().as_u16()
        }
    };
    assert_eq!(push(0).await, 200);
    let rss_before = status_kb(pid, "VmRSS:").unwrap();

    // One after another, each connect bounded: past the server's limit they wait in (or
    // overflow) the listen backlog.
    let http_idle = open_idle(http_port, IDLE, 1, Duration::from_secs(5)).await;
    let gossip_idle = open_idle(gossip, IDLE, 1, Duration::from_secs(5)).await;
    assert!(http_idle.len() >= HTTP_CONN_LIMIT, "{}", http_idle.len());
    assert!(gossip_idle.len() >= IDLE / 2, "{}", gossip_idle.len());

    // The server holds at most its limits (plus its own listeners, WAL, gossip, gRPC).
    let fds = open_fds(pid);
    assert!(
        fds <= HTTP_CONN_LIMIT + GOSSIP_CONN_LIMIT + 100,
        "{fds} descriptors open"
    );

    // Pushes during the flood are answered (once the idle ones ahead of them are cut).
    let started = Instant::now();
    for i in 1..=5 {
        assert_eq!(push(i).await, 200, "push {i} during the flood");
    }
    let during = started.elapsed();

    // Every idle connection is closed by the server (refused, or cut by a timeout).
    let closed_http = closed_by_server(http_idle, Duration::from_secs(30)).await;
    let closed_gossip = closed_by_server(gossip_idle, Duration::from_secs(30)).await;
    assert!(
        closed_http >= HTTP_CONN_LIMIT,
        "{closed_http} HTTP connections closed"
    );
    assert!(
        closed_gossip >= IDLE / 2,
        "{closed_gossip} gossip connections closed"
    );

    let rss_after = status_kb(pid, "VmRSS:").unwrap();
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
    // Metrics tell the operator what happened.
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "cortex_tcp_connections_limit{{protocol=\"http\"}} {HTTP_CONN_LIMIT}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("memberlist_tcp_transport_incoming_connections_refused_total"));
    eprintln!(
        "hostile_clients: {IDLE}+{IDLE} idle connections, 5 pushes answered in {during:?}, \
         {fds} fds at peak, RSS {rss_before} -> {rss_after} kB"
    );
    common::signal(&child, "-KILL");
    let _ = child.wait();
}
