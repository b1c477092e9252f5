//! A `ringkit node` started with a Mimir ingester's own flag list (Go single-dash spelling,
//! `-ingester.ring.*` names, `-target=ingester`, a `dns+` join) joins a gossip cluster
//! with the same meaning Mimir gives those flags.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Node, NodeOpts, ring, ringkit, spawn_node, wait_for};
use ringkit_testkit::port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mimir_ingester_flag_set_starts_a_node_with_the_same_meaning() {
    let seed_port = port::free();
    let opts = NodeOpts {
        zone: "zone-b".to_owned(),
        num_tokens: 32,
        ..NodeOpts::default()
    };
    // The seed uses ringkit's own spellings.
    let seed = Node::start_with(
        "ingester-zone-b-0",
        &common::gossip_flags(seed_port, None, "mimir"),
        &opts,
    );

    let wal = tempfile::tempdir().unwrap();
    let port = port::free();
    let args: Vec<String> = [
        "-target=ingester",
        "-ingester.ring.instance-id=ingester-zone-a-0",
        "-ingester.ring.instance-addr=127.0.0.1",
        "-ingester.ring.instance-availability-zone=zone-a",
        "-ingester.ring.store=memberlist",
        &format!("-memberlist.join=dns+localhost:{seed_port}"),
        "-memberlist.cluster-label=mimir",
        "-memberlist.bind-addr=127.0.0.1",
        &format!("-memberlist.bind-port={port}"),
        "-ingester.ring.num-tokens=32",
        "-ingester.ring.heartbeat-period=300ms",
        "-ingester.ring.heartbeat-timeout=2s",
        "-ingester.ring.min-ready-duration=0s",
        "-ingester.ring.replication-factor=2",
        "-ingester.ring.zone-awareness-enabled",
        "-ingester.ring.token-generation-strategy=spread-minimizing",
        "-ingester.ring.spread-minimizing-zones=zone-a,zone-b",
        "-server.grpc-listen-port=0",
        &format!("-ingester.wal-dir={}", wal.path().display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (child, url) = spawn_node(&args, Stdio::null(), None);
    let _mimir = child;

    for u in [&url, &seed.url] {
        wait_for(u, "both ingesters ACTIVE via gossip", |r| {
            common::all_active(r, 2, 32)
        })
        .await;
    }
    let page = ring(&url).await;
    let me = page["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "ingester-zone-a-0")
        .unwrap_or_else(|| panic!("no ingester-zone-a-0 in {page}"));
    assert_eq!(me["zone"], "zone-a");
    // A bare instance address gets the gRPC port, as in Mimir.
    let addr = me["address"].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_ne!(addr, "127.0.0.1:0");
    // Zone-aware with two zones: each instance owns all of its zone's ring.
    for s in page["shards"].as_array().unwrap() {
        assert_eq!(s["ownership_percent"], 100.0, "{s}");
    }
}

#[test]
fn a_misconfigured_spread_minimizing_strategy_stops_the_node_with_mimirs_reason() {
    let wal = tempfile::tempdir().unwrap();
    let out = ringkit(
        &[
            "node",
            "-target=ingester",
            "-ingester.ring.instance-id=ingester-without-ordinal",
            "-ingester.ring.instance-availability-zone=zone-a",
            "-ingester.ring.token-generation-strategy=spread-minimizing",
            "-ingester.ring.spread-minimizing-zones=zone-a",
            "-server.http-listen-port=0",
            "-server.grpc-listen-port=0",
            &format!("-ingester.wal-dir={}", wal.path().display()),
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spread-minimizing"), "{err}");
    assert!(err.contains("instance id"), "{err}");
}

#[test]
fn a_mimir_module_ringkit_does_not_run_is_refused_by_name() {
    let out = ringkit(
        &["node", "-target=ingester,querier"],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("querier"), "{err}");
}
