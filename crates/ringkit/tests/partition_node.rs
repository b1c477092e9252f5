//! Ingest storage's partition ring on real `ringkit node` processes sharing it over
//! memberlist: each ingester creates and owns the partition its instance ID names, the
//! lifecycler makes it ACTIVE, a state change made through one node's
//! `/ingester/partition-ring` page reaches the other node and the gossiped KV value,
//! Mimir's `/ingester/prepare-partition-downscale` scales the owned partition down and
//! back up, `/metrics` lists dskit's partition ring metrics, and an ingester prepared for
//! shutdown leaves its partition's owners when it stops.

mod common;

use std::time::{Duration, Instant};

use common::{Node, NodeOpts, downscale, partition_row, prepare_shutdown};
use ringkit_ring::partition::{PartitionRingDesc, PartitionState};
use ringkit_testkit::port;

const LABEL: &str = "ringkit-partition-test";
const KEY: &str = "collectors/ingester-partitions";

fn start(id: &str, port: u16, join: Option<u16>) -> Node {
    let mut flags = common::gossip_flags(port, join, LABEL);
    flags.extend(
        [
            "--ingest-storage.enabled=true",
            "--ingester.partition-ring.min-partition-owners-count=1",
            "--ingester.partition-ring.min-partition-owners-duration=0s",
            "--ingester.partition-ring.lifecycler-polling-interval=200ms",
        ]
        .map(str::to_owned),
    );
    Node::start_with(id, &flags, &NodeOpts::default())
}

/// Polls until partition `id` on `url`'s page is in `state` (enum number) with `owners`;
/// fails after 30 s.
async fn wait_state(url: &str, id: i64, state: PartitionState, owners: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = partition_row(url, id).await;
        if let Some(r) = &r
            && r["state"] == state as i32
            && r["owner_ids"] == serde_json::json!(owners)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for partition {id} {state} on {url}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until partition `id` on `url`'s page shows `locked`; fails after 30 s.
async fn wait_locked(url: &str, id: i64, locked: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = partition_row(url, id).await;
        if r.as_ref()
            .is_some_and(|r| r["state_change_locked"] == locked)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for partition {id} locked={locked} on {url}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The partition ring as a node's gossip KV stores it.
async fn stored(url: &str) -> PartitionRingDesc {
    let raw = reqwest::get(format!("{url}/memberlist?downloadKey={KEY}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    ringkit_ring::partition::codec::decode(&raw).unwrap()
}

async fn post_form(url: &str, body: &str) -> (u16, String, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(format!("{url}/ingester/partition-ring"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.text().await.unwrap(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_ring_is_owned_shown_changed_through_the_page_and_measured() {
    let ports = [port::free(), port::free()];
    let a = start("ingester-zone-a-0", ports[0], None);
    let b = start("ingester-zone-a-1", ports[1], Some(ports[0]));

    // Each ingester created its partition; both go ACTIVE, seen by both nodes.
    for n in [&a, &b] {
        wait_state(
            &n.url,
            0,
            PartitionState::PartitionActive,
            &["ingester-zone-a-0"],
        )
        .await;
        wait_state(
            &n.url,
            1,
            PartitionState::PartitionActive,
            &["ingester-zone-a-1"],
        )
        .await;
    }
    let r = partition_row(&a.url, 1).await.unwrap();
    assert_eq!(r["tokens"].as_array().unwrap().len(), 512);
    assert_eq!(r["corrupted"], false);
    let html = reqwest::get(format!("{}/ingester/partition-ring", a.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Partitions Ring Status"));
    assert!(html.contains("Change state to Inactive"));

    // Scale partition 1 down through node a's page; node b and the gossiped value see it.
    let (status, _, location) = post_form(
        &a.url,
        "csrf_token=%24__CSRF_TOKEN_PLACEHOLDER__&partition_id=1&partition_state=PartitionInactive&action=change_state",
    )
    .await;
    assert_eq!((status, location.as_deref()), (302, Some("#")));
    wait_state(
        &b.url,
        1,
        PartitionState::PartitionInactive,
        &["ingester-zone-a-1"],
    )
    .await;
    let desc = stored(&b.url).await;
    assert_eq!(
        desc.partitions[&1].state(),
        PartitionState::PartitionInactive
    );
    assert_eq!(desc.partitions[&0].state(), PartitionState::PartitionActive);

    // dskit's refusals.
    let (status, body, _) = post_form(
        &a.url,
        "partition_id=1&partition_state=PartitionPending&action=change_state",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains(
            "failed to change partition state: change partition state from Inactive to Pending"
        ),
        "{body}"
    );
    let (status, body, _) = post_form(
        &a.url,
        "partition_id=x&partition_state=PartitionActive&action=change_state",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid partition ID"), "{body}");
    let (status, body, _) = post_form(
        &a.url,
        "partition_id=1&partition_state=Bogus&action=change_state",
    )
    .await;
    assert_eq!((status, body.trim()), (400, "invalid partition state"));
    let (status, _, _) = post_form(
        &a.url,
        "partition_id=7&partition_state=PartitionActive&action=change_state",
    )
    .await;
    assert_eq!(status, 400, "a missing partition");
    let put = reqwest::Client::new()
        .put(format!("{}/ingester/partition-ring", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 405);

    // Mimir's downscale endpoint on the owner of partition 1: DELETE makes it ACTIVE again
    // (timestamp 0), POST INACTIVE (timestamp = since when), seen on the other node.
    let (status, ts) = downscale(reqwest::Method::GET, &b.url).await;
    assert_eq!(status, 200);
    assert!(ts > 0, "inactive since {ts}");
    assert_eq!(downscale(reqwest::Method::DELETE, &b.url).await, (200, 0));
    wait_state(
        &a.url,
        1,
        PartitionState::PartitionActive,
        &["ingester-zone-a-1"],
    )
    .await;
    let (status, ts) = downscale(reqwest::Method::POST, &b.url).await;
    assert_eq!(status, 200);
    assert!(ts > 0);
    wait_state(
        &a.url,
        1,
        PartitionState::PartitionInactive,
        &["ingester-zone-a-1"],
    )
    .await;

    // dskit #799's lock through node a's page: the lock reaches node b's store, a locked
    // state does not change (not even through the owner's downscale endpoint), unlocking
    // allows it again, and change_state_and_lock does both.
    let (status, _, _) = post_form(
        &a.url,
        "partition_id=1&locked=true&action=state_change_lock",
    )
    .await;
    assert_eq!(status, 302);
    wait_locked(&b.url, 1, true).await;
    assert!(stored(&b.url).await.partitions[&1].state_change_locked);
    let (status, body, _) = post_form(
        &a.url,
        "partition_id=1&partition_state=PartitionActive&action=change_state",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("partition state change is locked"), "{body}");
    assert_eq!(downscale(reqwest::Method::DELETE, &b.url).await.0, 500);
    let (status, body, _) = post_form(
        &a.url,
        "partition_id=1&locked=maybe&action=state_change_lock",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid locked value"), "{body}");
    let (status, _, _) = post_form(
        &a.url,
        "partition_id=1&locked=false&action=state_change_lock",
    )
    .await;
    assert_eq!(status, 302);
    wait_locked(&b.url, 1, false).await;
    let (status, _, _) = post_form(
        &a.url,
        "partition_id=1&partition_state=PartitionActive&action=change_state_and_lock",
    )
    .await;
    assert_eq!(status, 302);
    wait_state(
        &b.url,
        1,
        PartitionState::PartitionActive,
        &["ingester-zone-a-1"],
    )
    .await;
    wait_locked(&b.url, 1, true).await;
    let (status, _, _) =
        post_form(&a.url, "partition_id=1&locked=0&action=state_change_lock").await;
    assert_eq!(status, 302);
    wait_locked(&b.url, 1, false).await;
    let (status, _) = downscale(reqwest::Method::POST, &b.url).await;
    assert_eq!(status, 200);
    wait_state(
        &a.url,
        1,
        PartitionState::PartitionInactive,
        &["ingester-zone-a-1"],
    )
    .await;

    // dskit's partition ring metrics, under dskit's names and Mimir's cortex_ prefix.
    let metrics = reqwest::get(format!("{}/metrics", a.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for prefix in ["", "cortex_"] {
        for line in [
            format!(
                "{prefix}partition_ring_partitions{{name=\"ingester-partitions\",state=\"Active\"}} 1"
            ),
            format!(
                "{prefix}partition_ring_partitions{{name=\"ingester-partitions\",state=\"Inactive\"}} 1"
            ),
            format!(
                "{prefix}partition_ring_partitions{{name=\"ingester-partitions\",state=\"Pending\"}} 0"
            ),
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "{line} missing:\n{metrics}"
            );
        }
        for kind in ["owned-partition", "other-partitions"] {
            for family in ["reconciles_total", "reconciles_failed_total"] {
                let start = format!(
                    "{prefix}partition_ring_lifecycler_{family}{{name=\"ingester-partitions\",type=\"{kind}\"}} "
                );
                assert!(
                    metrics.lines().any(|l| l.starts_with(&start)),
                    "{start} missing"
                );
            }
        }
    }
    let reconciles = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "partition_ring_lifecycler_reconciles_total{name=\"ingester-partitions\",type=\"owned-partition\"} ",
            )
        })
        .unwrap();
    assert!(reconciles.parse::<u64>().unwrap() >= 1);

    // Mimir's prepare-shutdown also prepares the partition lifecycler: on SIGTERM the
    // owner entry goes (the partition keeps its state), seen on the other node.
    assert_eq!(prepare_shutdown(&b.url).await, 204);
    b.signal("-TERM");
    wait_state(&a.url, 1, PartitionState::PartitionInactive, &[]).await;
    wait_state(
        &a.url,
        0,
        PartitionState::PartitionActive,
        &["ingester-zone-a-0"],
    )
    .await;
    drop((a, b));
}
