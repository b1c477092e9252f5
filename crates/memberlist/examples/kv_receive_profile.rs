//! Times the gossip KV receive path (the `kv_receive` bench's workload) outside criterion,
//! for profilers: `N=20000 valgrind --tool=callgrind target/release/examples/kv_receive_profile`
//! (build with `cargo build --release -p ringkit-memberlist --example kv_receive_profile`).

use std::time::Instant;

use ringkit_kv::Codec;
use ringkit_lifecycle::RingDescCodec;
use ringkit_memberlist::wire::kv::KeyValuePair;

#[path = "../benches/support/receive_workload.rs"]
mod workload;

fn main() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ring = workload::ring(now);
    let kv = workload::store(&ring);
    let mut rx = kv.subscribe_broadcasts(usize::MAX >> 4);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| workload::heartbeat(&ring, now + 1 + i as i64))
        .collect();
    println!("message size {} bytes", msgs[0].len());
    let t = Instant::now();
    for m in &msgs {
        let p = KeyValuePair::decode_bytes(m).unwrap();
        std::hint::black_box(RingDescCodec.decode(&p.value).unwrap());
    }
    println!(
        "full decode (general path), for comparison: {:?}/msg",
        t.elapsed() / n as u32
    );
    let t = Instant::now();
    for m in msgs {
        kv.notify_msg_owned(m);
    }
    println!("notify_msg: {:?}/msg", t.elapsed() / n as u32);
    let (mut bytes, mut count) = (0, 0);
    while let Ok(b) = rx.try_recv() {
        bytes += b.bytes.len();
        count += 1;
    }
    println!(
        "{count} broadcasts, {} bytes each on average",
        bytes / count.max(1)
    );
}
