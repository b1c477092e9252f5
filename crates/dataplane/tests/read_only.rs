//! A read-only ingester takes no new series: the distributor writes through the ring
//! without its read-only instances (dskit's shuffle shard of size 0, as Mimir does), here
//! with four real in-process ingester gRPC servers.

mod common;

use std::sync::Arc;

use common::{now_ms, now_s, series, start_ingester};
use ringkit_dataplane::distributor::{Distributor, DistributorConfig};
use ringkit_ingest::prompb::WriteRequest;
use ringkit_lifecycle::RingWatcher;
use ringkit_ring::{Desc, InstanceState, RingConfig};

#[tokio::test]
async fn a_read_only_ingester_gets_no_new_series_and_the_others_get_all_replicas() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut ingesters = Vec::new();
    for d in &dirs {
        ingesters.push(start_ingester(d.path()).await);
    }
    let mut desc = Desc::new();
    for (i, ing) in ingesters.iter().enumerate() {
        let tokens: Vec<u32> = (0..64u32)
            .map(|t| {
                t.wrapping_mul(67_108_864)
                    .wrapping_add(i as u32 * 7_919_191)
            })
            .collect();
        let id = format!("ing-{i}");
        desc.add_instance(
            &id,
            &ing.addr,
            "",
            tokens,
            InstanceState::Active,
            now_s(),
            now_s(),
        );
    }
    let ro = desc.ingesters.get_mut("ing-3").unwrap();
    ro.read_only = true;
    ro.read_only_updated_timestamp = now_s();
    let watcher = RingWatcher::new(RingConfig {
        replication_factor: 3,
        ..RingConfig::default()
    })
    .expect("valid ring config");
    watcher.publish(desc);
    let distributor = Distributor::new(DistributorConfig::default(), Arc::clone(&watcher));

    let t = now_ms();
    let batch: Vec<_> = (0..200)
        .map(|i| series(&[("__name__", "m"), ("i", &i.to_string())], &[(1.0, t)]))
        .collect();
    let req = WriteRequest {
        timeseries: batch,
        metadata: Vec::new(),
    };
    distributor.push("tenant-1", req).await.unwrap();
    assert_eq!(
        ingesters[3].head.store().series_count("tenant-1"),
        0,
        "read-only: no new series"
    );
    for ing in &ingesters[..3] {
        // The answer comes once a quorum (2 of 3) took each series; the third replica's
        // call may still be running (a first push to a tenant creates its WAL), so wait
        // for it, bounded.
        for _ in 0..250 {
            if ing.head.store().series_count("tenant-1") == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            ing.head.store().series_count("tenant-1"),
            200,
            "RF 3 over the 3 writable ingesters"
        );
    }
}
