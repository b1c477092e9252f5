//! Times the gossip KV receive path phase by phase (the `kv_receive` bench's workload),
//! for profiling: `cargo run --release -p ringkit-memberlist --example kv_receive_profile`.

use std::sync::Arc;
use std::time::Instant;

use ringkit_kv::{ClientOptions, Codec};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::wire::kv::KeyValuePair;
use ringkit_ring::model::{Desc, InstanceState};

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

fn main() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut ring = Desc::new();
    for i in 0..600usize {
        let tokens = (0..128usize)
            .map(|t| (i * 100_000 + t * 10) as u32)
            .collect();
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
    let _c = kv
        .client(Arc::new(RingDescCodec), ClientOptions::default())
        .unwrap();
    let mut rx = kv.subscribe_broadcasts();
    kv.notify_msg(&message(&ring));
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut inst = ring.ingesters["instance-0"].clone();
            inst.timestamp = now + 1 + i as i64;
            let mut delta = Desc::new();
            delta.ingesters.insert("instance-0".into(), inst);
            message(&delta)
        })
        .collect();
    println!("message size {} bytes", msgs[0].len());
    let t = Instant::now();
    for m in &msgs {
        let p = KeyValuePair::decode_bytes(m).unwrap();
        std::hint::black_box(RingDescCodec.decode(&p.value).unwrap());
    }
    println!("decode only: {:?}/msg", t.elapsed() / n as u32);
    let t = Instant::now();
    for m in &msgs {
        kv.notify_msg(m);
    }
    println!("notify_msg: {:?}/msg", t.elapsed() / n as u32);
    let mut sizes = 0;
    let mut count = 0;
    while let Ok(b) = rx.try_recv() {
        sizes += b.len();
        count += 1;
    }
    println!(
        "{count} broadcasts, {} bytes each on average",
        sizes / count.max(1)
    );
}
