//! The gossip store's and node's Prometheus metrics: dskit's names, labels and
//! counting directions, read back from the text exposition.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use ringkit_kv::{ClientOptions, Codec};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};
use ringkit_memberlist::wire::kv::KeyValuePair;
use ringkit_ring::model::{Desc, InstanceState};

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn ring_message(instances: &[(&str, i64, InstanceState)]) -> Vec<u8> {
    let mut d = Desc::new();
    for (id, ts, st) in instances {
        d.add_instance(id, "a:1", "", vec![], *st, 1, *ts);
    }
    KeyValuePair {
        key: "collectors/ring".into(),
        value: RingDescCodec.encode(&RingDesc(d)),
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    }
    .encode_bytes()
}

fn store(now: SystemTime) -> GossipKv {
    let kv = GossipKv::with_clock(KvConfig::default(), Arc::new(move || now));
    kv.client(RingDescCodec::shared(), ClientOptions::default())
        .unwrap();
    kv
}

#[test]
fn push_pull_is_counted_in_dskit_direction() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (a, b) = (store(now), store(now));
    a.notify_msg(&ring_message(&[(
        "ing-1",
        1_800_000_000,
        InstanceState::Active,
    )]));
    let (mut ra, mut rb) = (Registry::default(), Registry::default());
    a.register_metrics(&mut ra);
    b.register_metrics(&mut rb);

    // `a` answers a push/pull with its state: dskit counts that as a pull (LocalState)...
    let state = a.local_state();
    // ...and `b`, merging it, as a push (MergeRemoteState).
    b.merge_remote_state(&state);
    let len = state.len() as f64;
    let (ta, tb) = (exposition(&ra), exposition(&rb));
    assert_eq!(
        sample(&ta, "memberlist_client_state_pulls_total"),
        Some(1.0),
        "{ta}"
    );
    assert_eq!(
        sample(&ta, "memberlist_client_state_pulls_bytes_total"),
        Some(len)
    );
    assert_eq!(
        sample(&ta, "memberlist_client_state_pushes_total"),
        Some(0.0)
    );
    assert_eq!(
        sample(&tb, "memberlist_client_state_pushes_total"),
        Some(1.0),
        "{tb}"
    );
    assert_eq!(
        sample(&tb, "memberlist_client_state_pushes_bytes_total"),
        Some(len)
    );
    assert_eq!(
        sample(&tb, "memberlist_client_state_pulls_total"),
        Some(0.0)
    );
    assert!(
        b.encoded("collectors/ring").is_some(),
        "the state was merged"
    );
}

#[test]
fn tombstones_are_reported_per_key() {
    let t0: i64 = 1_800_000_000;
    let now = UNIX_EPOCH + Duration::from_secs(t0 as u64);
    let kv = store(now);
    let mut r = Registry::default();
    kv.register_metrics(&mut r);
    let text = exposition(&r);
    assert!(
        text.contains("# TYPE memberlist_client_kv_store_value_tombstones gauge"),
        "{text}"
    );
    // One live member, one fresh LEFT tombstone, one an hour old (the left-ingesters
    // timeout is 5 minutes): the old one is purged, the fresh one stays.
    kv.notify_msg(&ring_message(&[
        ("live", t0, InstanceState::Active),
        ("fresh", t0 - 10, InstanceState::Left),
        ("old", t0 - 3600, InstanceState::Left),
    ]));
    let text = exposition(&r);
    let key = "{key=\"collectors/ring\"}";
    assert_eq!(
        sample(
            &text,
            &format!("memberlist_client_kv_store_value_tombstones{key}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("memberlist_client_kv_store_value_tombstones_removed_total{key}")
        ),
        Some(1.0),
        "{text}"
    );
}

fn node_config() -> MemberlistConfig {
    let mut c = MemberlistConfig::dskit();
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = 0;
    c.node_name = "metrics".into();
    c.swim.probe_interval = Duration::from_millis(200);
    c.swim.probe_timeout = Duration::from_millis(100);
    c.swim.gossip_interval = Duration::from_millis(50);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_exports_members_health_queue_and_byte_counts() {
    let a = Memberlist::start(node_config(), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let b = Memberlist::start(node_config(), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let mut r = Registry::default();
    a.kv().register_metrics(&mut r);
    a.register_metrics(&mut r);
    let alone = exposition(&r);
    assert_eq!(
        sample(&alone, "memberlist_client_cluster_members_count"),
        Some(1.0),
        "{alone}"
    );
    b.join(&[a.advertise_addr().to_string()]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = exposition(&r);
        if sample(&text, "memberlist_client_cluster_members_count") == Some(2.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never 2 members:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        sample(&text, "memberlist_client_cluster_node_health_score"),
        Some(f64::from(a.health_score()))
    );
    for q in ["gossip", "local"] {
        let series = format!("memberlist_client_messages_in_broadcast_queue{{queue=\"{q}\"}}");
        assert!(sample(&text, &series).is_some(), "{series} in\n{text}");
    }
    assert!(sample(&text, "memberlist_client_messages_in_broadcast_queue_bytes").is_some());
    // The node's drop counters (queue bounds, full channel, handoff) exist before any drop.
    for name in [
        "memberlist_client_received_broadcasts_dropped_total",
        "memberlist_client_messages_to_broadcast_dropped_total",
    ] {
        assert_eq!(sample(&text, name), Some(0.0), "{name} in\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            "memberlist_client_zone_aware_routing_select_nodes_skipped_total"
        ),
        Some(0.0)
    );
    // The join was a push/pull stream: the all-traffic byte counters saw it, the
    // packet-only ones do not count streams.
    let received = sample(&text, "memberlist_tcp_transport_received_bytes_total").unwrap();
    let sent = sample(&text, "memberlist_tcp_transport_sent_bytes_total").unwrap();
    let state_bytes = sample(&text, "memberlist_client_state_pushes_bytes_total").unwrap();
    assert!(
        received > state_bytes,
        "{received} vs {state_bytes}:\n{text}"
    );
    assert!(sent > 0.0, "{text}");
    assert!(
        sample(
            &text,
            "memberlist_tcp_transport_packets_received_errors_total"
        )
        .is_some()
    );
    a.shutdown().await;
    b.shutdown().await;
}
