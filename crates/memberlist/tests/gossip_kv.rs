//! The gossip KV: the shared store behaviour suite on one node, and real clusters of
//! nodes on 127.0.0.1 (both transports) converging on a ring.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use ringkit_kv::testsuite::{self, StoreFactory, TestSet};
use ringkit_kv::{CancellationToken, CasDecision, Client, ClientOptions, Codec, Value};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig, TransportKind};
use ringkit_memberlist::swim::{self, Event, State};
use ringkit_ring::model::InstanceState;
use tokio::sync::mpsc;

/// Clients of one node's store: merged clients for mergeable test values, raw
/// clients for the rest (the suite plants raw bytes with a bytes codec).
struct GossipFactory {
    kv: GossipKv,
}

impl StoreFactory for GossipFactory {
    fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> Arc<dyn Client<V>> {
        let boxed: Box<dyn Any> = Box::new(codec.clone());
        if let Ok(set_codec) = boxed.downcast::<Arc<dyn Codec<TestSet>>>() {
            let c: Arc<dyn Client<TestSet>> =
                Arc::new(self.kv.client(*set_codec, options).expect("registers"));
            let any: Box<dyn Any> = Box::new(c);
            return *any
                .downcast::<Arc<dyn Client<V>>>()
                .expect("V is TestSet here");
        }
        Arc::new(self.kv.raw_client(codec, options))
    }
}

#[tokio::test]
async fn gossip_store_passes_the_store_behaviour_suite() {
    let f = GossipFactory {
        kv: GossipKv::new(KvConfig::default()),
    };
    testsuite::run_all(&f).await;
}

#[tokio::test]
async fn gossip_store_backed_by_a_running_node_passes_the_suite() {
    let kv = GossipKv::new(KvConfig::default());
    let node = Memberlist::start(test_config(TransportKind::DskitTcp, ""), kv.clone())
        .await
        .unwrap();
    testsuite::run_all(&GossipFactory { kv }).await;
    node.shutdown().await;
}

/// Fast timers so failure detection finishes within a test.
fn test_config(transport: TransportKind, label: &str) -> MemberlistConfig {
    let mut c = match transport {
        TransportKind::DskitTcp => MemberlistConfig::dskit(),
        TransportKind::Udp => MemberlistConfig::lan(),
    };
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = 0;
    c.node_name = "test".into();
    c.cluster_label = label.into();
    c.swim.probe_interval = Duration::from_millis(200);
    c.swim.probe_timeout = Duration::from_millis(100);
    c.swim.gossip_interval = Duration::from_millis(50);
    c.swim.push_pull_interval = Duration::from_secs(2);
    c.swim.suspicion_mult = 2;
    c.broadcast_timeout_on_shutdown = Duration::from_secs(2);
    c.leave_timeout = Duration::from_secs(2);
    c.min_join_backoff = Duration::from_millis(100);
    c
}

struct Cluster {
    nodes: Vec<Memberlist>,
    clients: Vec<Arc<dyn Client<RingDesc>>>,
}

async fn cluster(n: usize, transport: TransportKind, label: &str) -> Cluster {
    let mut nodes: Vec<Memberlist> = Vec::new();
    let mut clients: Vec<Arc<dyn Client<RingDesc>>> = Vec::new();
    for i in 0..n {
        let kv = GossipKv::new(KvConfig::default());
        let client = kv
            .client(RingDescCodec::shared(), ClientOptions::default())
            .unwrap();
        let node = Memberlist::start(test_config(transport, label), kv)
            .await
            .unwrap();
        if i > 0 {
            let seed = nodes[0].advertise_addr().to_string();
            node.join(&[seed]).await.expect("join");
        }
        nodes.push(node);
        clients.push(Arc::new(client));
    }
    Cluster { nodes, clients }
}

async fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unix_secs_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn register(c: &dyn Client<RingDesc>, id: &str, tokens: Vec<u32>) {
    let id = id.to_owned();
    c.cas("collectors/ring", &mut |cur: Option<RingDesc>| {
        let mut d = cur.unwrap_or_default();
        d.0.add_instance(
            &id,
            &format!("{id}:9095"),
            "",
            tokens.clone(),
            InstanceState::Active,
            unix_secs_now(),
            unix_secs_now(),
        );
        CasDecision::Write(d)
    })
    .await
    .unwrap();
}

async fn ring_of(c: &dyn Client<RingDesc>) -> Vec<String> {
    c.get("collectors/ring")
        .await
        .unwrap()
        .map(|d| d.0.ingesters.keys().cloned().collect())
        .unwrap_or_default()
}

async fn ring_converges(cluster: &Cluster, expect: &[&str], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    for (i, c) in cluster.clients.iter().enumerate() {
        loop {
            if ring_of(&**c).await == expect {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} still sees {:?}, want {expect:?}",
                ring_of(&**c).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn members_see(cluster: &Cluster, n: usize) {
    for (i, node) in cluster.nodes.iter().enumerate() {
        wait_until(
            &format!("node {i} to see {n} alive members"),
            Duration::from_secs(10),
            || node.alive_members() == n,
        )
        .await;
    }
}

async fn ring_gossip_end_to_end(transport: TransportKind) {
    let c = cluster(3, transport, "ringkit-test").await;
    members_see(&c, 3).await;

    // Each node writes its own instance; every node ends with all three.
    register(&*c.clients[0], "ing-a", vec![1, 100]).await;
    register(&*c.clients[1], "ing-b", vec![2, 200]).await;
    register(&*c.clients[2], "ing-c", vec![3, 300]).await;
    ring_converges(&c, &["ing-a", "ing-b", "ing-c"], Duration::from_secs(10)).await;

    // A watcher on node 2 sees a change made on node 0.
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = {
        let (client, cancel) = (c.clients[2].clone(), cancel.clone());
        tokio::spawn(async move {
            client
                .watch_key("collectors/ring", &cancel, &mut |v| {
                    tx.send(v.map(|d| d.0.ingesters.len())).is_ok()
                })
                .await
        })
    };
    register(&*c.clients[0], "ing-d", vec![4]).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(v) = rx.recv().await {
            if v == Some(4) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "watch on node 2 never saw the 4th instance");
    cancel.cancel();
    watcher.await.unwrap();

    ring_converges(
        &c,
        &["ing-a", "ing-b", "ing-c", "ing-d"],
        Duration::from_secs(10),
    )
    .await;

    // Removing an instance on node 1 becomes a LEFT tombstone that reaches everyone and
    // hides the instance from readers.
    c.clients[1]
        .cas("collectors/ring", &mut |cur: Option<RingDesc>| {
            let mut d = cur.unwrap();
            d.0.ingesters.remove("ing-d");
            CasDecision::Write(d)
        })
        .await
        .unwrap();
    ring_converges(&c, &["ing-a", "ing-b", "ing-c"], Duration::from_secs(10)).await;
    for node in &c.nodes {
        let raw = node.kv().encoded("collectors/ring").unwrap().1;
        let d = RingDescCodec.decode(&raw).unwrap();
        assert_eq!(
            d.0.ingesters.get("ing-d").map(|i| i.state),
            Some(InstanceState::Left as i32),
            "{} keeps the tombstone",
            node.name()
        );
    }

    // Graceful leave: the others see the node as left, not dead.
    let mut events = c.nodes[0].subscribe();
    let leaver = c.nodes[2].name().to_owned();
    c.nodes[2].leave().await;
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Event::MemberLeft(m)) if *m.name == *leaver.as_bytes() => return true,
                Ok(Event::MemberDead(m)) if *m.name == *leaver.as_bytes() => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(left, Ok(true), "node 0 did not see node 2 leave");

    // A node that stops without a word is found dead by the failure detector.
    let crashed = c.nodes[1].name().to_owned();
    c.nodes[1].shutdown().await;
    wait_until(
        "node 1 to be declared dead",
        Duration::from_secs(15),
        || {
            c.nodes[0]
                .members()
                .iter()
                .any(|m| *m.name == *crashed.as_bytes() && m.state == State::Dead)
        },
    )
    .await;
    assert!(c.nodes[0].transport_metrics().packets_received.get() > 0);
    c.nodes[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dskit_tcp_cluster_converges_leaves_and_detects_failure() {
    ring_gossip_end_to_end(TransportKind::DskitTcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_cluster_converges_leaves_and_detects_failure() {
    ring_gossip_end_to_end(TransportKind::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_another_cluster_label_never_merge() {
    let kv_a = GossipKv::new(KvConfig::default());
    let a = Memberlist::start(test_config(TransportKind::DskitTcp, "cluster-a"), kv_a)
        .await
        .unwrap();
    let kv_b = GossipKv::new(KvConfig::default());
    let ring_b = kv_b
        .client(RingDescCodec::shared(), ClientOptions::default())
        .unwrap();
    register(&ring_b, "from-b", vec![7]).await;
    let b = Memberlist::start(test_config(TransportKind::DskitTcp, "cluster-b"), kv_b)
        .await
        .unwrap();
    let err = b
        .join(&[a.advertise_addr().to_string()])
        .await
        .expect_err("a node of another cluster must not be joinable");
    assert!(err.to_string().contains("could not join"), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.alive_members(), 1);
    assert!(
        a.kv().encoded("collectors/ring").is_none(),
        "ring leaked across clusters"
    );
    assert!(
        a.transport_metrics().packets_invalid.get() + a.transport_metrics().incoming_streams.get()
            > 0
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn joining_an_address_where_nothing_listens_fails_clearly() {
    let kv = GossipKv::new(KvConfig::default());
    let node = Memberlist::start(test_config(TransportKind::DskitTcp, ""), kv)
        .await
        .unwrap();
    // A port we bound and released: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = node.join(&[free.to_string()]).await.unwrap_err();
    assert!(err.to_string().contains(&free.to_string()), "{err}");
    node.shutdown().await;
}

#[test]
fn swim_state_is_reexported_for_callers() {
    // The page and CLI print member states; keep the names stable.
    assert_eq!(format!("{:?}", swim::State::Suspect), "Suspect");
}

#[tokio::test]
async fn own_writes_and_relayed_changes_reach_the_node_tagged_and_a_full_channel_drops_and_counts()
{
    let kv = GossipKv::new(KvConfig::default());
    let client = kv
        .client(RingDescCodec::shared(), ClientOptions::default())
        .unwrap();
    let mut rx = kv.subscribe_broadcasts(2);
    register(&client, "ing-1", vec![1, 2]).await;
    let own = rx.try_recv().expect("our write is queued for gossip");
    assert_eq!(own.origin, swim::Origin::Local);
    let c = own.cover.expect("a covered change");
    assert_eq!(
        (c.key.as_str(), c.content.as_slice()),
        ("collectors/ring", &["ing-1".to_string()][..])
    );
    // A peer's change is relayed: same bytes path, other queue.
    let mut d = ringkit_ring::model::Desc::new();
    let now = unix_secs_now();
    d.add_instance("ing-2", "b:1", "", vec![7], InstanceState::Active, now, now);
    let pair = ringkit_memberlist::wire::kv::KeyValuePair {
        key: "collectors/ring".into(),
        value: RingDescCodec.encode(&RingDesc(d)),
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    };
    kv.notify_msg(&pair.encode_bytes());
    let relayed = rx.try_recv().expect("the change is relayed");
    assert_eq!(relayed.origin, swim::Origin::Relayed);
    assert_eq!(relayed.cover.unwrap().content, vec!["ing-2".to_string()]);
    // Nobody drains: two fit, the next ones are dropped and counted.
    assert_eq!(kv.broadcasts_dropped(), 0);
    for i in 3..7 {
        register(&client, &format!("ing-{i}"), vec![i * 10]).await;
    }
    assert_eq!(kv.broadcasts_dropped(), 2);
    assert_eq!(
        client
            .get("collectors/ring")
            .await
            .unwrap()
            .unwrap()
            .0
            .ingesters
            .len(),
        6
    );
}

#[tokio::test]
async fn a_node_reports_its_broadcast_queues_with_dskits_metric_names() {
    let c = cluster(2, TransportKind::DskitTcp, "").await;
    register(c.clients[0].as_ref(), "ing-1", vec![1, 2, 3]).await;
    let mut registry = prometheus_client::registry::Registry::default();
    ringkit_memberlist::runtime::register_broadcast_queue_metrics(&mut registry, &c.nodes[0]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for name in [
        "memberlist_client_messages_in_broadcast_queue{queue=\"local\"}",
        "memberlist_client_messages_in_broadcast_queue{queue=\"gossip\"}",
        "memberlist_client_messages_in_broadcast_queue_bytes ",
        "memberlist_client_messages_to_broadcast_dropped_total 0",
        "memberlist_client_received_broadcasts_dropped_total 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // The change reaches the other node, and the queues drain.
    ring_converges(&c, &["ing-1"], Duration::from_secs(10)).await;
    wait_until("the queues drained", Duration::from_secs(10), || {
        c.nodes
            .iter()
            .all(|n| n.broadcast_queue_stats().messages() == 0)
    })
    .await;
    for n in &c.nodes {
        n.shutdown().await;
    }
}

/// dskit's `-memberlist.compression-algorithm=snappy`: a node compressing with snappy and
/// one compressing with LZW (compression on for both) still share one ring both ways.
#[tokio::test]
async fn a_snappy_node_and_an_lzw_node_share_a_ring() {
    use ringkit_memberlist::wire::compress::CompressionAlgo;
    let mut nodes = Vec::new();
    let mut clients: Vec<Arc<dyn Client<RingDesc>>> = Vec::new();
    for algo in [CompressionAlgo::Snappy, CompressionAlgo::Lzw] {
        let kv = GossipKv::new(KvConfig::default());
        let client = kv
            .client(RingDescCodec::shared(), ClientOptions::default())
            .unwrap();
        let mut cfg = test_config(TransportKind::DskitTcp, "");
        cfg.compression_algorithm = algo;
        assert_eq!(cfg.compression_algorithm, algo);
        let node = Memberlist::start(cfg, kv).await.unwrap();
        if let Some(first) = nodes.first() {
            let seed = Memberlist::advertise_addr(first).to_string();
            node.join(&[seed]).await.expect("join");
        }
        nodes.push(node);
        clients.push(Arc::new(client));
    }
    register(&*clients[0], "snappy-node", vec![1, 2]).await;
    register(&*clients[1], "lzw-node", vec![3, 4]).await;
    let cluster = Cluster { nodes, clients };
    ring_converges(
        &cluster,
        &["lzw-node", "snappy-node"],
        Duration::from_secs(10),
    )
    .await;
    for n in &cluster.nodes {
        n.shutdown().await;
    }
}
