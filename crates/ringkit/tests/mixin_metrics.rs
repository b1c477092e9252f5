//! Real `ringkit node` processes (an ingester and a distributor sharing the ring over
//! memberlist) expose every ring, lifecycler, memberlist and KV metric that the Mimir
//! mixin's alerts, recording rules and dashboards read, with the labels they select on;
//! and a member of another cluster shows in the log at WARN.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Node, NodeOpts, all_active, spawn_node, wait_for};
use ringkit_testkit::port;

/// Every ring / lifecycler / memberlist / KV series name in grafana/mimir's compiled
/// mixin (operations/mimir-mixin-compiled): alerts.yaml at commit 01217a9c01ee
/// (MimirIngesterUnhealthy, MimirRingMembersMismatch, MimirKVStoreFailure,
/// MimirGossipMembersTooHigh/TooLow, MimirMemberlistZoneAwareRoutingAutoFailover,
/// MimirIngesterInstanceHasNoTenants), rules.yaml at 14b3139dd7fd (group
/// mimir_storage) and the "Mimir / Writes" dashboard (operations/mimir-mixin/
/// dashboards/writes.libsonnet at 9f0cbe35629e, whose KV rows select
/// `kv_name=~"ingester-.*"` and whose replicas panel reads the lifecycler gauge).
/// `true` marks the metrics only a ring member (a node with a lifecycler) has.
///
/// Not listed: `cortex_partition_ring_partitions` (the partition ring, which ringkit
/// does not have), and the native-histogram variant of MimirKVStoreFailure (ringkit
/// exposes the classic histogram, which the classic variant of that alert reads).
const MIMIR_MIXIN: &[(&str, bool)] = &[
    ("cortex_ring_members", false),
    ("cortex_kv_request_duration_seconds_count", false),
    ("cortex_kv_request_duration_seconds_bucket", false),
    ("cortex_kv_request_duration_seconds_sum", false),
    ("memberlist_client_cluster_members_count", false),
    (
        "memberlist_client_zone_aware_routing_select_nodes_skipped_total",
        false,
    ),
    ("cortex_lifecycler_read_only", true),
];

/// dskit's memberlist metrics that issue 14 found missing (the Loki mixin's memberlist
/// dashboard reads them), and the push/pull counters whose direction it fixed.
const DSKIT_MEMBERLIST: &[&str] = &[
    "memberlist_client_cluster_node_health_score",
    "memberlist_client_messages_in_broadcast_queue",
    "memberlist_client_messages_in_broadcast_queue_bytes",
    "memberlist_client_messages_to_broadcast_dropped_total",
    "memberlist_client_received_broadcasts_dropped_total",
    "memberlist_client_kv_store_value_tombstones",
    "memberlist_client_kv_store_value_tombstones_removed_total",
    "memberlist_client_state_pushes_total",
    "memberlist_client_state_pulls_total",
    "memberlist_tcp_transport_sent_bytes_total",
    "memberlist_tcp_transport_received_bytes_total",
];

const LABEL: &str = "mixin-test";

/// Sample lines of an exposition as (series name, labels, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_owned(), labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|want| l.contains(want)))
        .map(|(_, _, v)| v)
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn gossip(port: u16, join: Option<u16>, label: &str) -> Vec<String> {
    common::gossip_flags(port, join, label)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mixin_metric_is_exposed_with_its_labels() {
    let ports = [port::free(), port::free()];
    let ingester = Node::start_with(
        "ing-1",
        &gossip(ports[0], None, LABEL),
        &NodeOpts::default(),
    );
    let mut args = gossip(ports[1], Some(ports[0]), LABEL);
    args.extend([
        "--target=distributor".to_owned(),
        "--server.grpc-listen-port=0".to_owned(),
        "--ring.heartbeat-timeout=2s".to_owned(),
    ]);
    let (_distributor, url) = spawn_node(&args, Stdio::null(), None);
    for url in [&ingester.url, &url] {
        wait_for(url, "the ingester ACTIVE", |r| all_active(r, 1, 64)).await;
    }
    // Both see both members once the join's push/pull is through.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (ing, dist) = loop {
        let (ing, dist) = (metrics(&ingester.url).await, metrics(&url).await);
        let members = |t: &str| value(t, "memberlist_client_cluster_members_count", &[]);
        if members(&ing) == Some(2.0) && members(&dist) == Some(2.0) {
            break (ing, dist);
        }
        assert!(
            Instant::now() < deadline,
            "never 2 gossip members:\n{ing}\n{dist}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    for (text, who, member) in [(&ing, "ingester", true), (&dist, "distributor", false)] {
        let names: BTreeSet<String> = samples(text).into_iter().map(|(n, _, _)| n).collect();
        for (name, needs_lifecycler) in MIMIR_MIXIN {
            if *needs_lifecycler && !member {
                continue;
            }
            assert!(names.contains(*name), "{who}: no {name} in\n{text}");
        }
        for name in DSKIT_MEMBERLIST {
            assert!(names.contains(*name), "{who}: no {name} in\n{text}");
        }
        // The alerts' selectors find the series they need, with real values.
        let ring = |state: &str| {
            value(
                text,
                "cortex_ring_members",
                &["name=\"ingester\"", &format!("state=\"{state}\"")],
            )
        };
        assert_eq!(ring("ACTIVE"), Some(1.0), "{who}:\n{text}");
        assert_eq!(ring("Unhealthy"), Some(0.0), "{who}:\n{text}");
        // dskit's own names stay, for tools that read them.
        assert_eq!(
            value(text, "ring_members", &["state=\"ACTIVE\""]),
            Some(1.0)
        );
        // Every ring read of the watcher is a KV request of the `ingester-ring` client.
        let watch = value(
            text,
            "cortex_kv_request_duration_seconds_count",
            &["kv_name=\"ingester-ring\"", "status_code=\"200\""],
        );
        assert!(watch.is_some(), "{who}: {text}");
    }
    // The ingester's lifecycler writes through its own client, as dskit names it.
    let cas = value(
        &ing,
        "cortex_kv_request_duration_seconds_count",
        &[
            "kv_name=\"ingester-lifecycler\"",
            "operation=\"CAS\"",
            "status_code=\"200\"",
        ],
    );
    assert!(cas.is_some_and(|n| n >= 1.0), "{ing}");
    assert_eq!(
        value(&ing, "cortex_lifecycler_read_only", &["name=\"ingester\""]),
        Some(0.0)
    );
    // The distributor joined through the ingester: the ingester's state was pulled
    // (dskit counts that in LocalState), the distributor merged it (a push, dskit's
    // MergeRemoteState). The distributor's own state was empty: nothing to merge.
    let pulls = value(&ing, "memberlist_client_state_pulls_total", &[]);
    assert!(pulls.is_some_and(|n| n >= 1.0), "{ing}");
    let pushes = value(&dist, "memberlist_client_state_pushes_total", &[]);
    assert!(pushes.is_some_and(|n| n >= 1.0), "{dist}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_logged_at_warn() {
    let dir = tempfile::tempdir().unwrap();
    let wal = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("a.log");
    let ports = [port::free(), port::free()];
    let mut args = gossip(ports[0], None, "cluster-a");
    args.extend([
        "--target=ingester".to_owned(),
        "--ingester.lifecycler.ID=ing-a".to_owned(),
        "--ingester.min-ready-duration=0s".to_owned(),
        "--server.grpc-listen-port=0".to_owned(),
        format!("--ingester.wal-dir={}", wal.path().display()),
    ]);
    let log = std::fs::File::create(&log_path).unwrap();
    let (a, _url) = spawn_node(&args, Stdio::from(log), Some(&log_path));
    // A node of another cluster keeps trying to join `a`.
    let mut args = gossip(ports[1], Some(ports[0]), "cluster-b");
    args.extend([
        "--target=distributor".to_owned(),
        "--server.grpc-listen-port=0".to_owned(),
    ]);
    let (_b, _) = spawn_node(&args, Stdio::null(), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("another cluster label")) {
            break l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no cluster-label warning:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("cluster-b") && line.contains("cluster-a"),
        "{line}"
    );
    drop(a);
}
