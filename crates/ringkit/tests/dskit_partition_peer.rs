//! Opt-in interop test of the partition ring against a real dskit node (Go, built from
//! grafana/dskit outside this repo; see README "Interop with dskit" for what that binary
//! must do). It runs only when `RINGKIT_DSKIT_PARTITION_PEER=/path/to/peer` is set and
//! otherwise prints why it skipped.
//!
//! Checked, all on 127.0.0.1 with bounded waits: two `ringkit node --ingest-storage.enabled`
//! ingesters and a dskit node running dskit's `PartitionInstanceLifecycler` share one
//! partition ring over memberlist; the three stored values (downloaded from each side's
//! memberlist page and decoded) become equal; a state change made by dskit's lifecycler
//! shows on ringkit's `/ingester/partition-ring`; changes made through ringkit's page and
//! its downscale endpoint show in dskit's view; an owner ringkit removes on shutdown lets
//! dskit's lifecycler delete the inactive partition, and the DELETED tombstone reaches
//! ringkit; the owner dskit removes on shutdown leaves ringkit's page.

mod common;
mod dskit_partition;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Node, NodeOpts, downscale, prepare_shutdown};
use dskit_partition::{KEY, Summary, WAIT, agree, peer_partition, ringkit_row, stored};
use ringkit_ring::partition::{OwnerState, PartitionState};
use ringkit_testkit::port;
use ringkit_testkit::proc::Guard;
use serde_json::{Value, json};

const LABEL: &str = "dskit-partition-interop";
/// dskit's owner ID for the partition it owns.
const DSKIT_OWNER: &str = "dskit-zone-a-5";
const DSKIT_PARTITION: i32 = 5;

/// The Go dskit partition peer; killed (by its pid) when dropped.
struct Peer {
    child: Guard,
    http: String,
}

impl Peer {
    /// Starts the peer owning [`DSKIT_PARTITION`] on gossip port `port`; it deletes
    /// partitions INACTIVE for 3 s without owners and removes its owner entry on SIGTERM.
    fn start(bin: &str, port: u16) -> Peer {
        let mut cmd = Command::new(bin);
        cmd.args([
            "-memberlist.bind-addr=127.0.0.1".to_owned(),
            format!("-memberlist.bind-port={port}"),
            "-memberlist.nodename=dskit-p5".to_owned(),
            "-memberlist.randomize-node-name=false".to_owned(),
            format!("-memberlist.cluster-label={LABEL}"),
            "-memberlist.pullpush-interval=2s".to_owned(),
            format!("-partition-id={DSKIT_PARTITION}"),
            format!("-instance-id={DSKIT_OWNER}"),
            format!("-partition-ring.key={KEY}"),
            "-ingester.partition-ring.min-partition-owners-count=1".to_owned(),
            "-ingester.partition-ring.min-partition-owners-duration=0s".to_owned(),
            "-ingester.partition-ring.delete-inactive-partition-after=3s".to_owned(),
            "-ingester.partition-ring.lifecycler-polling-interval=200ms".to_owned(),
            "-remove-owner-on-shutdown=true".to_owned(),
            "-http.listen=127.0.0.1:0".to_owned(),
        ]);
        if std::env::var_os("RINGKIT_DSKIT_PEER_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        let (child, addr) = Guard::spawn_announcing(&mut cmd, "HTTP ").expect("dskit peer starts");
        Peer {
            child,
            http: format!("http://{addr}"),
        }
    }

    /// The peer's view (see [`dskit_partition::peer_view`]).
    async fn view(&self) -> Value {
        dskit_partition::peer_view(&self.http).await
    }

    /// Asks the peer's lifecycler to move its partition to `state` (ACTIVE, INACTIVE).
    async fn change_state(&self, state: &str) -> Value {
        dskit_partition::peer_change_state(&self.http, state).await
    }
}

/// The peer's owners as (owner, partition) pairs, sorted.
fn peer_owners(v: &Value) -> Vec<(String, i64)> {
    v["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["owned_partition"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn expect(parts: &[(i32, &str)], owners: &[(&str, i32, &str)]) -> Summary {
    (
        parts
            .iter()
            .map(|(id, s)| (*id, (*s).to_owned(), 512))
            .collect(),
        owners
            .iter()
            .map(|(o, p, s)| ((*o).to_owned(), *p, (*s).to_owned()))
            .collect(),
    )
}

/// Polls ringkit's page until partition `id` is in `state` with `owners`.
async fn ringkit_sees(url: &str, id: i32, state: PartitionState, owners: &[&str]) -> Value {
    ringkit_testkit::wait::until_ok(
        &format!("{url} to show partition {id} {state:?} owned by {owners:?}"),
        WAIT,
        async || ringkit_row(url, id).await,
        |r| {
            r.as_ref()
                .is_some_and(|r| r["state"] == state as i32 && r["owner_ids"] == json!(owners))
        },
    )
    .await
    .unwrap()
}

/// Polls the peer's view until `ok` holds.
async fn peer_sees(peer: &Peer, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    ringkit_testkit::wait::until_ok(what, WAIT, async || peer.view().await, ok).await
}

fn start_ringkit(id: &str, port: u16, join: u16) -> Node {
    let mut flags = common::gossip_flags(port, Some(join), LABEL);
    flags.extend([
        format!("--memberlist.nodename={id}"),
        "--memberlist.randomize-node-name=false".to_owned(),
        "--ingest-storage.enabled=true".to_owned(),
        "--ingester.partition-ring.min-partition-owners-count=1".to_owned(),
        "--ingester.partition-ring.min-partition-owners-duration=0s".to_owned(),
        "--ingester.partition-ring.lifecycler-polling-interval=200ms".to_owned(),
    ]);
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    Node::start_with(id, &flags, &opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringkit_and_a_dskit_partition_lifecycler_share_one_partition_ring() {
    let Some(bin) = std::env::var_os("RINGKIT_DSKIT_PARTITION_PEER") else {
        eprintln!(
            "skipping dskit partition interop: set RINGKIT_DSKIT_PARTITION_PEER=/path/to/peer \
             (see README \"Interop with dskit\")"
        );
        return;
    };
    let bin = bin.to_str().unwrap().to_owned();
    let peer_port = port::free();
    let mut peer = Peer::start(&bin, peer_port);
    let a = start_ringkit("ingester-zone-a-1", port::free(), peer_port);
    let mut b = start_ringkit("ingester-zone-a-2", port::free(), peer_port);

    // 1. All three store the same value: three ACTIVE partitions of 512 tokens, one owner
    // each; dskit's watcher sees them ACTIVE too.
    let all = [a.url.as_str(), b.url.as_str(), peer.http.as_str()];
    let first = agree(
        "the three stores to agree on partitions 1, 2 and 5",
        &all,
        &expect(
            &[(1, "Active"), (2, "Active"), (5, "Active")],
            &[
                (DSKIT_OWNER, 5, "OwnerActive"),
                ("ingester-zone-a-1", 1, "OwnerActive"),
                ("ingester-zone-a-2", 2, "OwnerActive"),
            ],
        ),
    )
    .await;
    let v = peer_sees(&peer, "dskit's watcher to see 1, 2, 5 ACTIVE", |v| {
        v["watcher_active"] == json!([1, 2, 5])
    })
    .await;
    for id in [1, 2, 5] {
        let p = peer_partition(&v, id).unwrap();
        let want: Vec<u32> = first.partitions[&id].tokens.clone();
        let got: Vec<u32> = p["token_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| u32::try_from(t.as_u64().unwrap()).unwrap())
            .collect();
        assert_eq!(got, want, "tokens of partition {id}");
        assert_eq!(
            p["state_timestamp"].as_i64().unwrap(),
            first.partitions[&id].state_timestamp,
            "state time of partition {id}"
        );
    }
    let r = ringkit_sees(
        &a.url,
        DSKIT_PARTITION,
        PartitionState::PartitionActive,
        &[DSKIT_OWNER],
    )
    .await;
    assert_eq!(r["tokens"].as_array().unwrap().len(), 512);

    // 2. dskit's lifecycler scales its partition down; both ringkit pages show it, with
    // dskit's state time in ringkit's store.
    let changed = peer.change_state("INACTIVE").await;
    assert_eq!(changed["state"], "Inactive");
    for n in [&a, &b] {
        ringkit_sees(
            &n.url,
            DSKIT_PARTITION,
            PartitionState::PartitionInactive,
            &[DSKIT_OWNER],
        )
        .await;
    }
    let d = stored(&a.url).await.unwrap();
    assert_eq!(
        d.partitions[&DSKIT_PARTITION].state_timestamp,
        changed["state_timestamp"].as_i64().unwrap()
    );

    // 3. ringkit's page (dskit's form) makes dskit's partition ACTIVE again; dskit sees it.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/ingester/partition-ring", a.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "partition_id={DSKIT_PARTITION}&partition_state=PartitionActive&action=change_state"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    peer_sees(&peer, "dskit to see partition 5 ACTIVE again", |v| {
        peer_partition(v, DSKIT_PARTITION).is_some_and(|p| p["state"] == "Active")
            && v["watcher_active"] == json!([1, 2, 5])
    })
    .await;

    // 4. ringkit's downscale endpoint on the owner of partition 2: INACTIVE, ACTIVE,
    // INACTIVE again, each seen by dskit (with ringkit's state time).
    let (status, since) = downscale(reqwest::Method::POST, &b.url).await;
    assert_eq!(status, 200);
    assert!(since > 0);
    peer_sees(&peer, "dskit to see partition 2 INACTIVE", |v| {
        peer_partition(v, 2)
            .is_some_and(|p| p["state"] == "Inactive" && p["state_timestamp"] == since)
            && v["watcher_inactive"] == json!([2])
    })
    .await;
    assert_eq!(downscale(reqwest::Method::DELETE, &b.url).await, (200, 0));
    peer_sees(&peer, "dskit to see partition 2 ACTIVE", |v| {
        peer_partition(v, 2).is_some_and(|p| p["state"] == "Active")
    })
    .await;
    let (status, since) = downscale(reqwest::Method::POST, &b.url).await;
    assert_eq!(status, 200);
    peer_sees(&peer, "dskit to see partition 2 INACTIVE again", |v| {
        peer_partition(v, 2)
            .is_some_and(|p| p["state"] == "Inactive" && p["state_timestamp"] == since)
    })
    .await;

    // 5. ringkit's prepare-shutdown, then SIGTERM: its owner entry goes; dskit's lifecycler
    // (delete-inactive-partition-after 3s) removes the inactive, ownerless partition 2;
    // ringkit stores dskit's DELETED tombstone and drops the partition from its page.
    assert_eq!(prepare_shutdown(&b.url).await, 204);
    b.signal("-TERM");
    assert!(b.child.wait_exit(Duration::from_secs(30)).is_some());
    peer_sees(
        &peer,
        "dskit to drop ingester-zone-a-2 and partition 2",
        |v| {
            peer_owners(v)
                == [
                    (DSKIT_OWNER.to_owned(), 5),
                    ("ingester-zone-a-1".to_owned(), 1),
                ]
                && peer_partition(v, 2).is_none()
        },
    )
    .await;
    let both = [a.url.as_str(), peer.http.as_str()];
    let after = agree(
        "ringkit and dskit to agree on the deletion",
        &both,
        &expect(
            &[(1, "Active"), (2, "Deleted"), (5, "Active")],
            &[
                (DSKIT_OWNER, 5, "OwnerActive"),
                ("ingester-zone-a-1", 1, "OwnerActive"),
                ("ingester-zone-a-2", 2, "OwnerDeleted"),
            ],
        ),
    )
    .await;
    assert_eq!(
        after.partitions[&2].state(),
        PartitionState::PartitionDeleted
    );
    assert!(
        ringkit_row(&a.url, 2).await.is_none(),
        "a deleted partition is not shown"
    );

    // 6. dskit's SIGTERM with remove-owner-on-shutdown: its owner entry leaves ringkit's
    // page while the partition stays ACTIVE.
    peer.child.signal("-TERM");
    assert!(peer.child.wait_exit(Duration::from_secs(30)).is_some());
    ringkit_sees(
        &a.url,
        DSKIT_PARTITION,
        PartitionState::PartitionActive,
        &[],
    )
    .await;
    let d = stored(&a.url).await.unwrap();
    assert_eq!(d.owners[DSKIT_OWNER].state(), OwnerState::OwnerDeleted);
    drop(a);
}
