//! The gossip KV's receive path, shaped like dskit's `BenchmarkMemberlistReceiveWithRingDesc`:
//! a store holding a 600-instance × 128-token ring receives `KeyValuePair` user messages,
//! each a one-instance heartbeat delta (newer timestamp, same tokens), through
//! [`GossipKv::notify_msg_owned`]: envelope decode, merge (the heartbeat fast path), tombstone
//! rules, the change queued for gossip, watchers notified. All synchronous here (dskit
//! queues the merge to a worker goroutine).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ringkit_memberlist::kv::GossipKv;

#[path = "support/receive_workload.rs"]
mod workload;

/// Messages made and handed over per timed run.
const CHUNK: u64 = 256;

fn bench_receive(c: &mut Criterion) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ring = workload::ring(now);
    let kv: GossipKv = workload::store(&ring);
    // Drained by nobody, as in dskit's benchmark (no memberlist peers): keep the
    // receiver alive so sends succeed, and empty it outside the timed part.
    let mut broadcasts = kv.subscribe_broadcasts(CHUNK as usize);
    let mut ts = now;
    let mut group = c.benchmark_group("gossip_kv");
    group.bench_function("receive_heartbeat_600x128", |b| {
        b.iter_custom(|iters| {
            // In chunks, as a node gets them: each message was just read off the socket
            // (warm in cache) when it is handed over; making and draining are not timed.
            let mut elapsed = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                let msgs: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        ts += 1;
                        workload::heartbeat(&ring, ts)
                    })
                    .collect();
                // Owned, as the node hands them over (the buffer may be forwarded as is).
                let start = std::time::Instant::now();
                for m in msgs {
                    kv.notify_msg_owned(black_box(m));
                }
                elapsed += start.elapsed();
                while broadcasts.try_recv().is_ok() {}
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_receive);
criterion_main!(benches);
