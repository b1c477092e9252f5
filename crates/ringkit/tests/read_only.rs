//! The rollout-operator's scale-down calls against real `ringkit node` processes sharing
//! their ring over memberlist: POST `/ingester/prepare-instance-ring-downscale` makes the
//! instance read-only in every node's ring and out of every new shuffle shard, DELETE
//! clears it; `ringkit ring read-only` does the same from outside and the instance keeps
//! the change; `/ingester/prepare-shutdown` makes the next shutdown unregister.

mod common;

use std::sync::Arc;

use common::{Node, NodeOpts, all_active, ring, ring_cli_via_gossip, wait_for};
use ringkit_ring::{RingConfig, RingSnapshot};
use ringkit_testkit::port;

const LABEL: &str = "ringkit-ro-test";
const KEY: &str = "collectors/ring";

fn entry<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {r}"))
}

/// The ring as a node's gossip KV holds it (the stored codec bytes), as a snapshot.
async fn snapshot(url: &str) -> Arc<RingSnapshot> {
    let raw = reqwest::get(format!("{url}/memberlist?downloadKey={KEY}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let desc = ringkit_ring::codec::decode(&raw).unwrap();
    let cfg = RingConfig {
        heartbeat_timeout: std::time::Duration::from_secs(60),
        ..RingConfig::default()
    };
    Arc::new(RingSnapshot::new(desc, cfg).expect("valid ring config"))
}

/// How many of 100 tenants' shards of size 2 hold `id`.
fn shards_holding(ring: &Arc<RingSnapshot>, id: &str) -> usize {
    (0..100)
        .filter(|t| {
            let shard = ring.shuffle_shard(&format!("tenant-{t}"), 2);
            shard.instances().iter().any(|i| i.id == id)
        })
        .count()
}

async fn call(method: reqwest::Method, url: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn timestamp(body: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["timestamp"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_downscale_makes_an_instance_read_only_in_every_ring_and_shard() {
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    let ports = [port::free(), port::free(), port::free()];
    let flags = |i: usize, join: Option<u16>| common::gossip_flags(ports[i], join, LABEL);
    let n1 = Node::start_with("ing-1", &flags(0, None), &opts);
    let n2 = Node::start_with("ing-2", &flags(1, Some(ports[0])), &opts);
    let n3 = Node::start_with("ing-3", &flags(2, Some(ports[0])), &opts);
    for n in [&n1, &n2, &n3] {
        wait_for(&n.url, "3 ACTIVE instances via gossip", |r| {
            all_active(r, 3, 64)
        })
        .await;
    }
    let downscale = format!("{}/ingester/prepare-instance-ring-downscale", n1.url);
    let (status, body) = call(reqwest::Method::GET, &downscale).await;
    assert_eq!((status, timestamp(&body)), (200, 0), "not read-only yet");
    assert!(shards_holding(&snapshot(&n2.url).await, "ing-1") > 0);

    // POST: read-only, stamped; a second POST keeps the first timestamp.
    let (status, body) = call(reqwest::Method::POST, &downscale).await;
    assert_eq!(status, 200, "{body}");
    let since = timestamp(&body);
    assert!(since > 0, "{body}");
    let (_, again) = call(reqwest::Method::POST, &downscale).await;
    assert_eq!(timestamp(&again), since);
    for n in [&n1, &n2, &n3] {
        wait_for(&n.url, "ing-1 read-only in this node's ring", |r| {
            entry(r, "ing-1")["read_only"] == true
                && entry(r, "ing-1")["read_only_updated_timestamp"] == since
        })
        .await;
    }
    let seen_by_n2 = snapshot(&n2.url).await;
    assert!(seen_by_n2.instance("ing-1").unwrap().read_only);
    assert_eq!(
        shards_holding(&seen_by_n2, "ing-1"),
        0,
        "a read-only instance is in no new shuffle shard"
    );
    assert_eq!(shards_holding(&seen_by_n2, "ing-2"), 100, "2 of 2 writable");

    // DELETE: writable again everywhere, back in the shards.
    let (status, body) = call(reqwest::Method::DELETE, &downscale).await;
    assert_eq!((status, timestamp(&body)), (200, 0), "{body}");
    for n in [&n1, &n2, &n3] {
        wait_for(&n.url, "ing-1 writable in this node's ring", |r| {
            entry(r, "ing-1")["read_only"] == false
        })
        .await;
    }
    assert!(shards_holding(&snapshot(&n3.url).await, "ing-1") > 0);

    // The CLI from outside: ing-3 read-only; its own lifecycler adopts the change (its
    // endpoint reports it) and keeps it through its heartbeats.
    let out = ring_cli_via_gossip(&["read-only", "ing-3", "--set"], ports[1], LABEL);
    assert!(String::from_utf8_lossy(&out).contains("ing-3 is now read-only"));
    let n3_downscale = format!("{}/ingester/prepare-instance-ring-downscale", n3.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let adopted = loop {
        let (_, body) = call(reqwest::Method::GET, &n3_downscale).await;
        let ts = timestamp(&body);
        if ts > 0 || std::time::Instant::now() > deadline {
            break ts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        adopted > 0,
        "ing-3's lifecycler never adopted the CLI's change"
    );
    let r = ring(&n1.url).await;
    assert_eq!(entry(&r, "ing-3")["read_only"], true);
    assert!(entry(&r, "ing-3")["timestamp"].as_i64().unwrap() > 0);
    let out = ring_cli_via_gossip(&["read-only", "ing-3", "--clear"], ports[1], LABEL);
    assert!(String::from_utf8_lossy(&out).contains("ing-3 is now writable"));
    wait_for(&n2.url, "ing-3 writable again", |r| {
        entry(r, "ing-3")["read_only"] == false
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_shutdown_makes_the_next_shutdown_unregister() {
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    let ports = [port::free(), port::free()];
    let n1 = Node::start_with("ing-1", &common::gossip_flags(ports[0], None, LABEL), &opts);
    let mut keep = common::gossip_flags(ports[1], Some(ports[0]), LABEL);
    keep.push("--ingester.unregister-on-shutdown=false".to_owned());
    let n2 = Node::start_with("ing-2", &keep, &opts);
    wait_for(&n1.url, "2 ACTIVE instances", |r| all_active(r, 2, 64)).await;

    let url = format!("{}/ingester/prepare-shutdown", n2.url);
    assert_eq!(
        call(reqwest::Method::GET, &url).await,
        (200, "unset\n".into())
    );
    assert_eq!(call(reqwest::Method::POST, &url).await.0, 204);
    assert_eq!(
        call(reqwest::Method::GET, &url).await,
        (200, "set\n".into())
    );
    let metrics = reqwest::get(format!("{}/metrics", n2.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "cortex_ingester_prepare_shutdown_requested 1"),
        "{metrics}"
    );
    assert_eq!(call(reqwest::Method::PUT, &url).await.0, 405);
    assert_eq!(call(reqwest::Method::DELETE, &url).await.0, 204);
    assert_eq!(
        call(reqwest::Method::GET, &url).await,
        (200, "unset\n".into())
    );
    assert_eq!(call(reqwest::Method::POST, &url).await.0, 204);

    // Configured to stay in the ring on shutdown, but prepared: it unregisters.
    n2.signal("-TERM");
    wait_for(&n1.url, "ing-2 to leave the ring", |r| {
        common::ids(r) == ["ing-1"]
    })
    .await;
}
