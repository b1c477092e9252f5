//! The gossip KV's receive path, shaped like dskit's `BenchmarkMemberlistReceiveWithRingDesc`:
//! a store holding a 600-instance × 128-token ring receives `KeyValuePair` user messages,
//! each a one-instance heartbeat delta (newer timestamp, same tokens), through
//! [`GossipKv::notify_msg`]: envelope decode, snappy + protobuf decode, merge, tombstone
//! rules, the change queued for gossip, watchers notified. All synchronous here (dskit
//! queues the merge to a worker goroutine).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ringkit_kv::{ClientOptions, Codec};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::wire::kv::KeyValuePair;
use ringkit_ring::model::{Desc, InstanceState};

const INSTANCES: usize = 600;
const TOKENS: usize = 128;

fn message(d: &Desc) -> Vec<u8> {
    KeyValuePair {
        key: "collectors/ring".into(),
        value: RingDescCodec.encode(&RingDesc(d.clone())),
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    }
    .encode_bytes()
}

fn bench_receive(c: &mut Criterion) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut ring = Desc::new();
    for i in 0..INSTANCES {
        // Unique tokens without an RNG, as dskit's benchmark does.
        let tokens = (0..TOKENS).map(|t| (i * 100_000 + t * 10) as u32).collect();
        ring.add_instance(
            &format!("instance-{i}"),
            "127.0.0.1",
            "zone",
            tokens,
            InstanceState::Active,
            now,
            now,
        );
    }
    let kv = GossipKv::new(KvConfig::default());
    let _client = kv
        .client(Arc::new(RingDescCodec), ClientOptions::default())
        .unwrap();
    // Drained by nobody, as in dskit's benchmark (no memberlist peers): keep the
    // receiver alive so sends succeed, and empty it outside the timed part.
    let mut broadcasts = kv.subscribe_broadcasts();
    kv.notify_msg(&message(&ring));
    let mut ts = now;
    let mut group = c.benchmark_group("gossip_kv");
    group.bench_function("receive_heartbeat_600x128", |b| {
        b.iter_custom(|iters| {
            let msgs: Vec<Vec<u8>> = (0..iters)
                .map(|_| {
                    ts += 1;
                    let mut inst = ring.ingesters["instance-0"].clone();
                    inst.timestamp = ts;
                    let mut delta = Desc::new();
                    delta.ingesters.insert("instance-0".into(), inst);
                    message(&delta)
                })
                .collect();
            let start = std::time::Instant::now();
            for m in &msgs {
                kv.notify_msg(black_box(m));
            }
            let elapsed = start.elapsed();
            while broadcasts.try_recv().is_ok() {}
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_receive);
criterion_main!(benches);
