//! `ringkit ring show` of a partition ring (Mimir's ingest storage) stored in a gossip KV
//! (a memberlist node in this test process, the CLI joining it) and in a real etcd: the
//! kind is told from the stored codec / bytes, and the JSON is the stored descriptor.

mod common;

use std::time::Duration;

use common::{ring_cli_via_gossip, ringkit};
use ringkit_kv::testsuite::{EtcdServer, skip_etcd};
use ringkit_kv::{CasDecision, Client, ClientOptions, EtcdConfig, EtcdStore};
use ringkit_lifecycle::{PartitionRingCodec, PartitionRingValue};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};
use ringkit_ring::partition::codec::json;
use ringkit_ring::partition::{OwnerState, PartitionRingDesc, PartitionState};

const LABEL: &str = "ringkit-partition-test";
const KEY: &str = "collectors/ingester-partitions";

fn partitions() -> PartitionRingDesc {
    let now = 1_800_000_000;
    let mut d = PartitionRingDesc::new();
    for id in 0..3 {
        d.add_partition(id, PartitionState::PartitionActive, now - 600)
            .unwrap();
        d.add_or_update_owner(
            &format!("ingester-zone-a-{id}"),
            OwnerState::OwnerActive,
            id,
            now,
        );
    }
    d.add_partition(3, PartitionState::PartitionPending, now)
        .unwrap();
    d.change_partition_state(2, PartitionState::PartitionInactive, now + 60)
        .unwrap();
    d
}

async fn store(client: &dyn Client<PartitionRingValue>, desc: &PartitionRingDesc) {
    let value = PartitionRingValue(desc.clone());
    client
        .cas(KEY, &mut |_| CasDecision::Write(value.clone()))
        .await
        .unwrap();
}

fn shown(stdout: &[u8]) -> PartitionRingDesc {
    json::decode(std::str::from_utf8(stdout).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_show_prints_a_partition_ring_kept_in_a_gossip_kv() {
    let kv = GossipKv::new(KvConfig::default());
    let client = kv
        .client(PartitionRingCodec::shared(), ClientOptions::default())
        .unwrap();
    let mut cfg = MemberlistConfig::dskit();
    cfg.bind_addr = [127, 0, 0, 1].into();
    cfg.bind_port = 0;
    cfg.node_name = "partition-holder".into();
    cfg.cluster_label = LABEL.into();
    cfg.leave_timeout = Duration::from_secs(2);
    cfg.broadcast_timeout_on_shutdown = Duration::from_secs(2);
    let node = Memberlist::start(cfg, kv.clone()).await.unwrap();
    let desc = partitions();
    store(&client, &desc).await;
    let port = node.advertise_addr().port();

    // Detected from the codec id the gossip KV keeps with the value.
    let out = ring_cli_via_gossip(&["show", "--key", KEY, "--output=json"], port, LABEL);
    assert_eq!(shown(&out), desc);
    let table = ring_cli_via_gossip(&["show", "--key", KEY], port, LABEL);
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains("4 partitions, 3 owners"), "{table}");
    for want in ["Active", "Inactive", "Pending", "ingester-zone-a-2"] {
        assert!(table.contains(want), "{want} missing:\n{table}");
    }
    // Asked for explicitly, too.
    let out = ring_cli_via_gossip(
        &[
            "show",
            "--key",
            KEY,
            "--ring.kind=partition",
            "--output=json",
        ],
        port,
        LABEL,
    );
    assert_eq!(shown(&out), desc);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_show_prints_a_partition_ring_kept_in_etcd() {
    if skip_etcd() {
        eprintln!("RINGKIT_SKIP_ETCD is set: skipping");
        return;
    }
    let etcd = EtcdServer::start().expect("etcd starts (install etcd-server)");
    let endpoint = etcd.endpoint();
    let cfg = EtcdConfig {
        endpoints: vec![endpoint.clone()],
        ..EtcdConfig::default()
    };
    let client = EtcdStore::new(&cfg)
        .unwrap()
        .client(PartitionRingCodec::shared(), ClientOptions::default());
    let desc = partitions();
    store(&client, &desc).await;

    let etcd_flag = format!("--etcd.endpoints={endpoint}");
    let show = |extra: &[&str]| {
        let mut args = vec!["ring", "show", "--kv.store=etcd", &etcd_flag, "--key", KEY];
        args.extend_from_slice(extra);
        let out = ringkit(&args, Duration::from_secs(20));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // etcd keeps no codec id: told from the bytes.
    assert_eq!(shown(&show(&["--output=json"])), desc);
    assert_eq!(
        shown(&show(&["--output=json", "--ring.kind=partition"])),
        desc
    );
    let table = String::from_utf8(show(&[])).unwrap();
    assert!(table.contains("4 partitions, 3 owners"), "{table}");
}
