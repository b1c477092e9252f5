//! `dnssrv+` and `dnssrvnoa+` join addresses against a DNS server this test runs on
//! 127.0.0.1 (a few lines on hickory's wire types): the joining node resolves the SRV
//! record (and, for `dnssrv+`, the target's A record over DNS) and joins a real node.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr as _;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};
use tokio::net::UdpSocket;

/// Answers SRV `_gossip._tcp.ringkit.test.` with target `node-a.ringkit.test.` (A record
/// 127.0.0.1) and SRV `_noa._tcp.ringkit.test.` with target `localhost.`, both at `port`;
/// NXDOMAIN for other names. Serves until the task is aborted.
async fn dns_server(port: u16) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
            resp.metadata.recursion_desired = req.metadata.recursion_desired;
            resp.metadata.recursion_available = true;
            resp.metadata.authoritative = true;
            resp.queries = req.queries.clone();
            let mut known = false;
            for q in &req.queries {
                let name = q.name().to_ascii().to_lowercase();
                let srv_target = match name.as_str() {
                    "_gossip._tcp.ringkit.test." => Some("node-a.ringkit.test."),
                    "_noa._tcp.ringkit.test." => Some("localhost."),
                    _ => None,
                };
                known |= srv_target.is_some() || name == "node-a.ringkit.test.";
                match (q.query_type(), srv_target) {
                    (RecordType::SRV, Some(target)) => {
                        let rdata =
                            RData::SRV(SRV::new(0, 0, port, Name::from_str(target).unwrap()));
                        resp.add_answer(Record::from_rdata(q.name().clone(), 5, rdata));
                    }
                    (RecordType::A, None) if name == "node-a.ringkit.test." => {
                        let rdata = RData::A(A(Ipv4Addr::LOCALHOST));
                        resp.add_answer(Record::from_rdata(q.name().clone(), 5, rdata));
                    }
                    _ => {}
                }
            }
            if !known {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = resp.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    (addr, task)
}

fn config(dns: Vec<SocketAddr>) -> MemberlistConfig {
    let mut c = MemberlistConfig::dskit();
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = 0;
    c.cluster_label = "srv-test".into();
    c.leave_timeout = Duration::from_secs(2);
    c.broadcast_timeout_on_shutdown = Duration::from_secs(2);
    c.dns_servers = dns;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssrv_and_dnssrvnoa_entries_resolve_and_join_a_real_node() {
    let seed = Memberlist::start(config(Vec::new()), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let (dns, server) = dns_server(seed.advertise_addr().port()).await;

    for entry in [
        "dnssrv+_gossip._tcp.ringkit.test",
        "dnssrvnoa+_noa._tcp.ringkit.test",
    ] {
        let node = Memberlist::start(config(vec![dns]), GossipKv::new(KvConfig::default()))
            .await
            .unwrap();
        let joined = tokio::time::timeout(Duration::from_secs(20), node.join(&[entry.to_owned()]))
            .await
            .expect("join within 20 s")
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
        assert_eq!(joined, 1, "{entry}");
        assert_eq!(node.alive_members(), 2, "{entry}");
        node.leave().await;
    }

    // A name the server does not know: no address, a clear error naming the entry.
    let node = Memberlist::start(config(vec![dns]), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let err = node
        .join(&["dnssrv+_missing._tcp.ringkit.test".to_owned()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("_missing._tcp.ringkit.test"), "{err}");
    node.leave().await;
    seed.leave().await;
    server.abort();
}
