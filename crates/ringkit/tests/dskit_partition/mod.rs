//! What the opt-in partition ring tests against a dskit peer share
//! (`dskit_partition_peer.rs`, `dskit_zone_aware_peer.rs`): the stored value every node
//! serves, its summary, the wait until all nodes agree, and the page rows.
#![allow(dead_code)]

use std::time::Duration;

use ringkit_ring::partition::PartitionRingDesc;
use serde_json::Value;

/// The partition ring key both sides use (Mimir's, under dskit's `collectors/` prefix).
pub(crate) const KEY: &str = "collectors/ingester-partitions";
/// The longest any one wait for the nodes to converge may take.
pub(crate) const WAIT: Duration = Duration::from_secs(40);

/// The partition ring value a node stores (ringkit's and dskit's memberlist pages both
/// serve it, tombstones included, as `?downloadKey=`), decoded with ringkit's codec.
pub(crate) async fn stored(base: &str) -> Option<PartitionRingDesc> {
    let resp = reqwest::get(format!("{base}/memberlist?downloadKey={KEY}"))
        .await
        .unwrap();
    if !resp.status().is_success() {
        return None;
    }
    let raw = resp.bytes().await.unwrap();
    Some(ringkit_ring::partition::codec::decode(&raw).expect("the stored value decodes"))
}

/// Partitions as (id, state, state time, tokens) and owners as (owner, partition,
/// state, update time), sorted: what must match between stores, beside the tokens.
pub(crate) type Detail = (
    Vec<(i32, String, i64, usize)>,
    Vec<(String, i32, String, i64)>,
);

/// A stored value in short: partitions as (id, state, token count) and owners as
/// (owner, partition, state), sorted.
pub(crate) type Summary = (Vec<(i32, String, usize)>, Vec<(String, i32, String)>);

pub(crate) fn detail(d: &PartitionRingDesc) -> Detail {
    let mut parts: Vec<_> = d
        .partitions
        .iter()
        .map(|(id, p)| {
            (
                *id,
                p.state().clean_name().to_owned(),
                p.state_timestamp,
                p.tokens.len(),
            )
        })
        .collect();
    parts.sort();
    let mut owners: Vec<_> = d
        .owners
        .iter()
        .map(|(id, o)| {
            (
                id.clone(),
                o.owned_partition,
                o.state().as_str_name().to_owned(),
                o.updated_timestamp,
            )
        })
        .collect();
    owners.sort();
    (parts, owners)
}

pub(crate) fn summary(d: &Detail) -> Summary {
    (
        d.0.iter()
            .map(|(id, s, _, n)| (*id, s.clone(), *n))
            .collect(),
        d.1.iter()
            .map(|(o, p, s, _)| (o.clone(), *p, s.clone()))
            .collect(),
    )
}

/// Polls the stored values of all `bases` until each summarizes to `want` and all are
/// equal in detail (times too); then checks they are equal field for field (tokens
/// too) and returns the value. Fails after [`WAIT`] with the last details.
pub(crate) async fn agree(what: &str, bases: &[&str], want: &Summary) -> PartitionRingDesc {
    ringkit_testkit::wait::until_ok(
        what,
        WAIT,
        async || {
            let mut v = Vec::new();
            for b in bases {
                v.push(stored(b).await.as_ref().map(detail));
            }
            v
        },
        |v| {
            v.iter()
                .all(|d| d.as_ref().is_some_and(|d| summary(d) == *want))
                && v.windows(2).all(|w| w[0] == w[1])
        },
    )
    .await;
    let mut all = Vec::new();
    for b in bases {
        all.push(stored(b).await.unwrap());
    }
    for (b, d) in bases.iter().zip(&all).skip(1) {
        assert!(
            *d == all[0],
            "{b}'s stored value differs from {}'s",
            bases[0]
        );
    }
    all.swap_remove(0)
}

/// Partition `id`'s row on a ringkit node's `/ingester/partition-ring` JSON.
pub(crate) async fn ringkit_row(url: &str, id: i32) -> Option<Value> {
    crate::common::partition_row(url, i64::from(id)).await
}

/// A dskit peer's view (`/partition-ring.json` at `http`): its KV client's value,
/// tombstones left out, and its `PartitionRingWatcher`'s partition IDs by state.
pub(crate) async fn peer_view(http: &str) -> Value {
    crate::common::get_json(&format!("{http}/partition-ring.json")).await
}

/// Asks the dskit peer at `http` to move its partition to `state` (ACTIVE, INACTIVE)
/// through its lifecycler; the peer's answer.
pub(crate) async fn peer_change_state(http: &str, state: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{http}/change-state?state={state}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

/// Partition `id` in a dskit peer's view (`/partition-ring.json`).
pub(crate) fn peer_partition(v: &Value, id: i32) -> Option<&Value> {
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
}
