//! Joining: a lifecycler's writes within one second all reach the gossip store and its
//! peers, and the node's join, fast join and rejoin (dskit's `-memberlist.*join*`
//! flags) on real nodes on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_kv::{Client, ClientOptions};
use ringkit_lifecycle::{Lifecycler, LifecyclerConfig, RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_ring::model::InstanceState;
use ringkit_ring::tokens::RandomTokenGenerator;

const KEY: &str = "collectors/ring";

fn fixed_clock(secs: u64) -> Arc<dyn Fn() -> SystemTime + Send + Sync> {
    Arc::new(move || UNIX_EPOCH + Duration::from_secs(secs))
}

fn ring_client(kv: &GossipKv) -> Arc<dyn Client<RingDesc>> {
    Arc::new(
        kv.client(RingDescCodec::shared(), ClientOptions::default())
            .unwrap(),
    )
}

async fn instance_state(c: &dyn Client<RingDesc>, id: &str) -> Option<(InstanceState, usize)> {
    let d = c.get(KEY).await.unwrap()?;
    d.0.ingesters.get(id).map(|i| (i.state(), i.tokens.len()))
}

#[tokio::test]
async fn a_claim_in_the_second_of_the_registration_reaches_the_store_and_its_peers() {
    // The clock never moves: PENDING and ACTIVE are written in the same second, the
    // case where the ring merge (only strictly newer timestamps win) used to keep
    // PENDING everywhere until the next heartbeat.
    const T: u64 = 1_800_000_000;
    let kv = GossipKv::with_clock(KvConfig::default(), fixed_clock(T));
    let mut gossip = kv.subscribe_broadcasts(1024);
    let peer = GossipKv::with_clock(KvConfig::default(), fixed_clock(T));
    let peer_client = ring_client(&peer);
    let cfg = LifecyclerConfig {
        id: "ing-a".into(),
        addr: "ing-a:9095".into(),
        num_tokens: 32,
        min_ready_duration: Duration::ZERO,
        ..LifecyclerConfig::default()
    };
    let l = Lifecycler::new(
        cfg,
        ring_client(&kv),
        KEY,
        Arc::new(RandomTokenGenerator::new()),
    )
    .unwrap()
    .with_clock(fixed_clock(T))
    .with_seed(7);
    l.register().await.unwrap();
    l.claim_tokens().await.unwrap();

    let own = ring_client(&kv);
    assert_eq!(
        instance_state(&*own, "ing-a").await,
        Some((InstanceState::Active, 32)),
        "our own store holds the claim"
    );
    // A peer that merges what the node gossiped (both changes, in order) sees ACTIVE.
    let mut sent = 0;
    while let Ok(msg) = gossip.try_recv() {
        peer.notify_msg(&msg.bytes);
        sent += 1;
    }
    assert_eq!(sent, 2, "registration and claim are both gossiped");
    assert_eq!(
        instance_state(&*peer_client, "ing-a").await,
        Some((InstanceState::Active, 32))
    );
    assert_eq!(peer.metrics().received_broadcasts_invalid.get(), 0);
}

#[tokio::test]
async fn joining_and_leaving_at_once_leaves_no_trace_on_a_peer() {
    // Real clocks: register, claim and leave within a second or two. Every write of
    // ours is newer than the last (so may be a second ahead of the clock), and the
    // removal waits for the clock to catch up, so its tombstone wins on the peer.
    let kv = GossipKv::new(KvConfig::default());
    let mut gossip = kv.subscribe_broadcasts(1024);
    let peer = GossipKv::new(KvConfig::default());
    let peer_client = ring_client(&peer);
    let cfg = LifecyclerConfig {
        id: "ing-b".into(),
        addr: "ing-b:9095".into(),
        num_tokens: 16,
        min_ready_duration: Duration::ZERO,
        ..LifecyclerConfig::default()
    };
    let l = Lifecycler::new(
        cfg,
        ring_client(&kv),
        KEY,
        Arc::new(RandomTokenGenerator::new()),
    )
    .unwrap();
    l.register().await.unwrap();
    l.claim_tokens().await.unwrap();
    l.heartbeat().await.unwrap();
    let mut forward = |peer: &GossipKv| {
        while let Ok(msg) = gossip.try_recv() {
            peer.notify_msg(&msg.bytes);
        }
    };
    forward(&peer);
    assert_eq!(
        instance_state(&*peer_client, "ing-b").await,
        Some((InstanceState::Active, 16))
    );
    l.leave().await.unwrap();
    forward(&peer);
    assert_eq!(instance_state(&*peer_client, "ing-b").await, None);
}

#[tokio::test]
async fn with_a_notify_interval_a_burst_of_changes_costs_a_watcher_one_notification() {
    use ringkit_kv::{CancellationToken, CasDecision};
    let kv = GossipKv::new(KvConfig {
        notify_interval: Duration::from_secs(3),
        ..KvConfig::default()
    });
    let client = ring_client(&kv);
    let write = |n: usize| {
        let client = client.clone();
        async move {
            client
                .cas(KEY, &mut |cur: Option<RingDesc>| {
                    let mut d = cur.unwrap_or_default();
                    d.0.add_instance(
                        &format!("ing-{n}"),
                        "h:1",
                        "",
                        vec![n as u32 + 1],
                        InstanceState::Active,
                        1_800_000_000,
                        1_800_000_000,
                    );
                    CasDecision::Write(d)
                })
                .await
                .unwrap();
        }
    };
    write(0).await;
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = {
        let (client, cancel) = (client.clone(), cancel.clone());
        tokio::spawn(async move {
            client
                .watch_key(KEY, &cancel, &mut |v| {
                    tx.send(v.map_or(0, |d| d.0.ingesters.len())).is_ok()
                })
                .await;
        })
    };
    assert_eq!(rx.recv().await, Some(1), "the current value first");
    // Five changes in a burst, 20 ms apart (far within one interval), each giving the
    // watcher task time to run: without the interval it would be told of each.
    for n in 1..=5 {
        write(n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&6) {
        let next = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the last change is delivered")
            .expect("watcher alive");
        seen.push(next);
    }
    // The first change may be told at once; the rest wait for the interval and come
    // as one read of the latest value.
    assert!(seen.len() <= 2, "{seen:?}");
    cancel.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn keys_of_codecs_we_do_not_know_are_dropped_as_dskit_drops_them() {
    use ringkit_kv::Codec;
    use ringkit_memberlist::wire::kv::{KeyValuePair, encode_user_state};
    // dskit's propagation delay tracker: a key whose codec this node has not
    // registered. dskit counts such a broadcast invalid and drops it, and skips the
    // pair in a push/pull state (the rest of the state still merges).
    let tracker = KeyValuePair {
        key: "memberlist-propagation-delay-tracker".into(),
        value: vec![0x0a, 0x02, 0x08, 0x01],
        codec: "propagationDelayTracker".into(),
        deleted: false,
        update_time_millis: 1_800_000_000_000,
    };
    let kv = GossipKv::new(KvConfig::default());
    let client = ring_client(&kv);
    let mut gossip = kv.subscribe_broadcasts(1024);
    kv.notify_msg(&tracker.encode_bytes());
    assert_eq!(kv.metrics().received_broadcasts_invalid.get(), 1);
    assert!(gossip.try_recv().is_err(), "not gossiped on");

    let mut ring = ringkit_ring::model::Desc::new();
    ring.add_instance(
        "ing-a",
        "h:1",
        "",
        vec![1],
        InstanceState::Active,
        1_800_000_000,
        1_800_000_000,
    );
    let ring_pair = KeyValuePair {
        key: KEY.into(),
        value: RingDescCodec.encode(&RingDesc(ring)),
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 1_800_000_000_000,
    };
    kv.merge_remote_state(&encode_user_state([&tracker, &ring_pair]));
    assert_eq!(
        instance_state(&*client, "ing-a").await,
        Some((InstanceState::Active, 1))
    );
    let keys: Vec<String> = kv.describe().into_iter().map(|k| k.key).collect();
    assert_eq!(keys, [KEY], "the unknown key is not kept, so never sent on");
}

/// Fast timers so failure detection finishes within a test; a fixed node name.
fn node_config(name: &str, port: u16) -> ringkit_memberlist::runtime::MemberlistConfig {
    let mut c = ringkit_memberlist::runtime::MemberlistConfig::dskit();
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = port;
    c.node_name = name.into();
    c.randomize_node_name = false;
    c.swim.probe_interval = Duration::from_millis(200);
    c.swim.probe_timeout = Duration::from_millis(100);
    c.swim.gossip_interval = Duration::from_millis(50);
    c.swim.suspicion_mult = 2;
    c.broadcast_timeout_on_shutdown = Duration::from_secs(1);
    c.leave_timeout = Duration::from_secs(1);
    c.min_join_backoff = Duration::from_millis(100);
    c
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn seen(node: &ringkit_memberlist::runtime::Memberlist, name: &str) -> Option<(State, u32)> {
    node.members()
        .into_iter()
        .find(|m| *m.name == *name.as_bytes())
        .map(|m| (m.state, m.incarnation))
}

use ringkit_memberlist::runtime::{JoinStatus, Memberlist};
use ringkit_memberlist::swim::State;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_restarted_with_its_name_and_address_is_taken_back_and_rejoined() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seed_addr = format!("127.0.0.1:{port}");
    // The seed lists itself, as one configuration shared by every node would.
    let mut seed_cfg = node_config("seed", port);
    seed_cfg.join_members = vec![seed_addr.clone()];
    let seed = Memberlist::start(seed_cfg.clone(), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    assert_eq!(seed.startup_join().await, JoinStatus::Joined(1));
    let mut others = Vec::new();
    for name in ["b", "c"] {
        let mut cfg = node_config(name, 0);
        cfg.join_members = vec![seed_addr.clone()];
        cfg.rejoin_interval = Duration::from_millis(500);
        let n = Memberlist::start(cfg, GossipKv::new(KvConfig::default()))
            .await
            .unwrap();
        others.push(n);
    }
    for n in &others {
        eventually("3 alive members", || n.alive_members() == 3).await;
    }

    // The seed stops without a word (as after SIGKILL); the others find it dead.
    seed.shutdown().await;
    for n in &others {
        eventually("the seed dead", || {
            seen(n, "seed").is_some_and(|(s, _)| s.is_dead_or_left())
        })
        .await;
    }
    let dead_inc = seen(&others[0], "seed").unwrap().1;

    // Same name, same address, incarnation 1 again, knowing nobody. The others' rejoin
    // reaches it; it hears that they hold it dead and refutes with a higher
    // incarnation, which they take.
    let seed = Memberlist::start(seed_cfg, GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    for n in &others {
        eventually("the restarted seed alive again", || {
            seen(n, "seed").is_some_and(|(s, inc)| s == State::Alive && inc > dead_inc)
        })
        .await;
    }
    eventually("the seed sees everyone", || seed.alive_members() == 3).await;
    for n in others.iter().chain([&seed]) {
        n.shutdown().await;
    }
}
