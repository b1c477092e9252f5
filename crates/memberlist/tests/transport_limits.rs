//! Inbound connection bounds of the memberlist transport (issue 14): a flood of idle
//! connections is capped (extra ones closed at once and counted), idle ones are cut by
//! the read deadline, and the node keeps gossiping with real peers throughout.

use std::time::Duration;

use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn config(name: &str) -> MemberlistConfig {
    let mut c = MemberlistConfig::dskit();
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = 0;
    c.node_name = name.into();
    c.randomize_node_name = false;
    c.stream_timeout = Duration::from_millis(500);
    c.swim.probe_interval = Duration::from_millis(200);
    c.swim.probe_timeout = Duration::from_millis(100);
    c.swim.gossip_interval = Duration::from_millis(50);
    c.min_join_backoff = Duration::from_millis(100);
    c.max_incoming_connections = 16;
    c
}

/// Reads until EOF or error; true when the peer closed within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_cut_and_do_not_stop_gossip() {
    let a = Memberlist::start(config("a"), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let addr = a.advertise_addr();
    let m = a.transport_metrics().clone();

    // 200 idle connections: at most 16 are served at once, the rest closed at once.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while m.incoming_connections_refused.get() < 150 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refused only {}",
            m.incoming_connections_refused.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        m.incoming_connections.get() <= 16,
        "{}",
        m.incoming_connections.get()
    );

    // Every idle connection is closed: refused ones at once, served ones by the
    // 500 ms read deadline (a bound of 5 s leaves room for a loaded machine).
    let mut closed = 0;
    for s in &mut idle {
        if closed_within(s, Duration::from_secs(5)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, idle.len());
    drop(idle);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while m.incoming_connections.get() != 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A real peer still joins and both see each other.
    let b = Memberlist::start(config("b"), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    b.join(&[addr.to_string()])
        .await
        .expect("join after the flood");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.alive_members() < 2 || b.alive_members() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no convergence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(m.read_buffer_bytes.get(), 0);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn a_stream_larger_than_the_read_budget_is_closed_and_counted() {
    let mut c = config("budget");
    c.max_read_buffer_bytes = 64 << 10;
    c.stream_timeout = Duration::from_secs(5);
    let a = Memberlist::start(c, GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let m = a.transport_metrics().clone();
    let mut s = TcpStream::connect(a.advertise_addr()).await.unwrap();
    use tokio::io::AsyncWriteExt;
    // Stream marker, then a push/pull header announcing a big user state, then filler.
    s.write_all(&[0x02]).await.unwrap();
    let mut junk = vec![0x06, 0x83];
    junk.extend_from_slice(b"\xa4Join\xc2\xa5Nodes\x00\xacUserStateLen\xce\x01\x00\x00\x00");
    s.write_all(&junk).await.unwrap();
    let filler = vec![0u8; 16 << 10];
    for _ in 0..8 {
        if s.write_all(&filler).await.is_err() {
            break;
        }
    }
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(m.read_buffer_exhausted.get() >= 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while m.read_buffer_bytes.get() != 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
}
