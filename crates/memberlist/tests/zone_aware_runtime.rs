//! Zone-aware routing on running nodes (dskit TCP transport on 127.0.0.1): two zones,
//! each with a bridge and two members. Every node announces its zone and role in its
//! metadata, the ring every node writes reaches every node, and the routing counters
//! dskit exports move (and never count a skip: both zones have a bridge). ringkit's own
//! traffic counters show gossip and push/pulls crossing zones only bridge to bridge.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use ringkit_kv::{CasDecision, Client, ClientOptions};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{JoinStatus, Memberlist, MemberlistConfig};
use ringkit_memberlist::swim::ZoneAwareRouting;
use ringkit_memberlist::wire::node_meta::{NodeMeta, NodeRole};
use ringkit_ring::model::InstanceState;

const ZONES: [&str; 2] = ["zone-a", "zone-b"];
const PER_ZONE: usize = 3;

fn config(i: usize, seed: Option<String>) -> MemberlistConfig {
    config_with(i, seed, i.is_multiple_of(PER_ZONE))
}

fn config_with(i: usize, seed: Option<String>, bridge: bool) -> MemberlistConfig {
    let mut c = MemberlistConfig::dskit();
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = 0;
    c.node_name = format!("node-{i}");
    c.randomize_node_name = false;
    c.join_members = seed.into_iter().collect();
    // Probes at a pace a loaded test machine keeps up with: this test is about
    // routing, and a false suspicion only delays the check below.
    c.swim.probe_interval = Duration::from_secs(1);
    c.swim.probe_timeout = Duration::from_millis(500);
    c.swim.gossip_interval = Duration::from_millis(50);
    c.swim.push_pull_interval = Duration::from_secs(1);
    c.min_join_backoff = Duration::from_millis(100);
    c.swim.push_pull_nodes = if bridge { 2 } else { 1 };
    c.swim.zone_aware_routing = Some(ZoneAwareRouting {
        role: if bridge {
            NodeRole::Bridge
        } else {
            NodeRole::Member
        },
        zone: ZONES[i / PER_ZONE].as_bytes().to_vec(),
    });
    c
}

/// Node `i` writes its own ring entry `ingester-<i>` (ACTIVE, one token, in its zone)
/// with heartbeat `heartbeat`.
async fn write_own_instance(c: &dyn Client<RingDesc>, i: usize, heartbeat: i64) {
    let id = format!("ingester-{i}");
    let zone = ZONES[i / PER_ZONE].to_owned();
    c.cas("ring", &mut |cur: Option<RingDesc>| {
        let mut d = cur.unwrap_or_default();
        d.0.add_instance(
            &id,
            &format!("{id}:9095"),
            &zone,
            vec![i as u32 * 1000 + 1],
            InstanceState::Active,
            unix_secs_now(),
            heartbeat,
        );
        CasDecision::Write(d)
    })
    .await
    .unwrap();
}

fn unix_secs_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The node's metrics in the text format.
fn scrape(node: &Memberlist) -> String {
    let mut reg = Registry::default();
    node.register_metrics(&mut reg);
    let mut text = String::new();
    encode(&mut text, &reg).unwrap();
    text
}

/// The value of `name{labels}` (labels exactly as the text format writes them).
fn labeled(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix}in:\n{text}"))
}

fn sent(text: &str, kind: &str, to: &str) -> f64 {
    labeled(
        text,
        "memberlist_client_zone_aware_routing_sent_total",
        &format!("kind=\"{kind}\",destination=\"{to}\""),
    )
}

fn received(text: &str, kind: &str, from: &str) -> f64 {
    labeled(
        text,
        "memberlist_client_zone_aware_routing_received_packets_total",
        &format!("kind=\"{kind}\",source=\"{from}\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_nodes_announce_zone_and_role_and_the_ring_reaches_every_zone() {
    let n = ZONES.len() * PER_ZONE;
    let mut nodes: Vec<Memberlist> = Vec::new();
    let mut clients: Vec<Arc<dyn Client<RingDesc>>> = Vec::new();
    for i in 0..n {
        let kv = GossipKv::new(KvConfig::default());
        let client = kv
            .client(RingDescCodec::shared(), ClientOptions::default())
            .unwrap();
        let seed = nodes.first().map(|s| s.advertise_addr().to_string());
        let node = Memberlist::start(config(i, seed), kv).await.unwrap();
        nodes.push(node);
        clients.push(Arc::new(client));
    }
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            matches!(node.startup_join().await, JoinStatus::Joined(_)),
            "node {i} joined"
        );
    }
    // Each node writes its own instance, in its zone.
    for (i, c) in clients.iter().enumerate() {
        write_own_instance(&**c, i, unix_secs_now()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for (i, node) in nodes.iter().enumerate() {
        loop {
            let members = node.members();
            let ring = clients[i].get("ring").await.unwrap();
            let entries = ring.map_or(0, |d| d.0.ingesters.len());
            if node.num_members() == n && entries == n {
                // Everyone's metadata as announced.
                for m in &members {
                    let j: usize = String::from_utf8_lossy(&m.name)
                        .trim_start_matches("node-")
                        .parse()
                        .unwrap();
                    let meta = NodeMeta(m.meta.as_deref());
                    assert_eq!(meta.zone(), ZONES[j / PER_ZONE].as_bytes());
                    assert_eq!(meta.role() == NodeRole::Bridge, j.is_multiple_of(PER_ZONE));
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} sees {} members and {entries} ring entries, want {n}: {:?}",
                node.num_members(),
                members
                    .iter()
                    .map(|m| (
                        String::from_utf8_lossy(&m.name).into_owned(),
                        m.state,
                        m.incarnation
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Wait (bounded) until every node has gossiped, push/pulled (once a second) and
    // heard a probe, and each bridge has gossiped with the other.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut texts = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let bridge = i.is_multiple_of(PER_ZONE);
        loop {
            let text = scrape(node);
            let probes: f64 = ["same_zone", "other_zone_bridge", "other_zone_member"]
                .iter()
                .map(|p| received(&text, "probe", p))
                .sum();
            let done = sent(&text, "gossip", "same_zone") > 0.0
                && sent(&text, "push_pull", "same_zone") > 0.0
                && probes > 0.0
                && (!bridge
                    || (sent(&text, "gossip", "other_zone_bridge") > 0.0
                        && received(&text, "gossip", "other_zone_bridge") > 0.0));
            if done {
                texts.push(text);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} did not gossip, push/pull and hear probes in time:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (i, text) in texts.iter().enumerate() {
        let text = text.as_str();
        let calls = sample(
            text,
            "memberlist_client_zone_aware_routing_select_nodes_total",
        )
        .unwrap();
        assert!(calls > 0.0, "node {i}:\n{text}");
        assert_eq!(
            sample(
                text,
                "memberlist_client_zone_aware_routing_select_nodes_skipped_total"
            ),
            Some(0.0),
            "node {i}: both zones have an alive bridge"
        );
        // Where gossip and push/pulls went (and, for packets, came from): members
        // stay in their zone; bridges cross only to the other zone's bridge.
        let bridge = i.is_multiple_of(PER_ZONE);
        for kind in ["gossip", "push_pull"] {
            assert_eq!(
                sent(text, kind, "other_zone_member"),
                0.0,
                "node {i} {kind}"
            );
            assert_eq!(sent(text, kind, "unknown_zone"), 0.0, "node {i} {kind}");
        }
        assert_eq!(
            received(text, "gossip", "other_zone_member"),
            0.0,
            "node {i}"
        );
        if !bridge {
            for kind in ["gossip", "push_pull"] {
                assert_eq!(
                    sent(text, kind, "other_zone_bridge"),
                    0.0,
                    "node {i} {kind}"
                );
            }
            assert_eq!(
                received(text, "gossip", "other_zone_bridge"),
                0.0,
                "node {i}"
            );
        }
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// The counters also see traffic that crosses zones: with no bridge in zone b, routing
/// is skipped (dskit's fallback, so zone b is not cut off) and members of both zones
/// gossip with members of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bridge_in_a_zone_the_counters_show_members_gossiping_across_zones() {
    let n = ZONES.len() * PER_ZONE;
    let mut nodes: Vec<Memberlist> = Vec::new();
    let mut clients: Vec<Arc<dyn Client<RingDesc>>> = Vec::new();
    for i in 0..n {
        let kv = GossipKv::new(KvConfig::default());
        let client = kv
            .client(RingDescCodec::shared(), ClientOptions::default())
            .unwrap();
        let seed = nodes.first().map(|s| s.advertise_addr().to_string());
        // Only node 0 (zone a) is a bridge.
        let node = Memberlist::start(config_with(i, seed, i == 0), kv)
            .await
            .unwrap();
        nodes.push(node);
        clients.push(Arc::new(client));
    }
    for node in &nodes {
        assert!(matches!(node.startup_join().await, JoinStatus::Joined(_)));
    }
    // Writes to gossip about: every node heartbeats its instance until the check ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let watched = [1, PER_ZONE];
    let mut done = [false; 2];
    let mut round = 0u32;
    while !done.iter().all(|d| *d) {
        round += 1;
        for (i, c) in clients.iter().enumerate() {
            write_own_instance(&**c, i, unix_secs_now() + i64::from(round)).await;
        }
        for (k, &i) in watched.iter().enumerate() {
            let text = scrape(&nodes[i]);
            let skipped = sample(
                &text,
                "memberlist_client_zone_aware_routing_select_nodes_skipped_total",
            )
            .unwrap();
            // A member of zone a (node 1) and of zone b (node 3) both reach the other
            // zone's members directly.
            done[k] = skipped > 0.0 && sent(&text, "gossip", "other_zone_member") > 0.0;
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} never gossiped across zones with routing skipped:\n{text}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in nodes {
        node.shutdown().await;
    }
}
