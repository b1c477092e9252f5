//! Real `ringkit node` processes sharing a ring in a real etcd (started by the test on
//! 127.0.0.1): three ingesters join, a clean shutdown unregisters, a SIGKILLed one is
//! auto-forgotten by a live member.

mod common;

use common::{Node, NodeOpts, ids, ring, wait_for};
use ringkit_kv::testsuite::{EtcdServer, skip_etcd};

fn zone(z: &str) -> NodeOpts {
    NodeOpts {
        zone: z.to_owned(),
        ..NodeOpts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_ring_in_etcd_and_leave_or_get_forgotten() {
    if skip_etcd() {
        eprintln!("RINGKIT_SKIP_ETCD is set: skipping");
        return;
    }
    let etcd = EtcdServer::start().expect("etcd starts (install etcd-server)");
    let endpoint = etcd.endpoint();
    let a = Node::start("ing-a", &endpoint, &zone("a"));
    let b = Node::start("ing-b", &endpoint, &zone("b"));
    let mut c = Node::start("ing-c", &endpoint, &zone("c"));

    wait_for(&a.url, "3 ACTIVE instances with tokens", |r| {
        common::all_active(r, 3, 64)
    })
    .await;
    // One instance per zone: each owns its whole zone ring.
    let r = ring(&b.url).await;
    for s in r["shards"].as_array().unwrap() {
        assert!((s["ownership_percent"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    }
    let ready = reqwest::get(format!("{}/ready", a.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", a.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kv_request_duration_seconds"), "{metrics}");

    // Clean shutdown: LEAVING then unregistered.
    c.signal("-TERM");
    let status = c.child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
    wait_for(&a.url, "ing-c unregistered", |r| {
        ids(r) == ["ing-a", "ing-b"]
    })
    .await;

    // Crash: b stays in the ring, turns unhealthy, and a forgets it after 2 timeouts.
    b.signal("-KILL");
    wait_for(&a.url, "ing-b unhealthy", |r| {
        r["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "ing-b" && s["state"] == "UNHEALTHY")
    })
    .await;
    wait_for(&a.url, "ing-b auto-forgotten", |r| ids(r) == ["ing-a"]).await;
    drop(a);
    drop(b);
}
