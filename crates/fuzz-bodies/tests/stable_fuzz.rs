//! Every fuzz target's body on stable Rust, in CI: over the seed corpus (the captures in
//! crates/memberlist/testdata, the ring fixtures in testdata/, a few remote-write bodies)
//! and deterministic mutations of it (bit flips, interesting bytes, cuts, splices,
//! repeats). Bounded by count per target (`RINGKIT_FUZZ_INPUTS`, default 4,000) and by
//! wall time (`RINGKIT_FUZZ_SECS` per target, default 10); libFuzzer runs of the same
//! bodies are in fuzz/README.md.

use std::path::Path;
use std::time::{Duration, Instant};

use ringkit_fuzz_bodies::TARGETS;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seeds per target, as fuzz/seed_corpus.py files them.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    let mut put = |t: &'static str, b: &[u8]| out.push((t, b.to_vec()));
    let testdata = root.join("crates/memberlist/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&testdata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for key in [
                "client_bytes_hex",
                "server_bytes_hex",
                "payload_hex",
                "value_hex",
            ] {
                let Some(h) = v[key].as_str() else { continue };
                let b = hex::decode(h).unwrap();
                if b.is_empty() {
                    continue;
                }
                match (key, b[0]) {
                    ("value_hex", _) => put("gossip_kv_receive", &b),
                    ("client_bytes_hex", 1) => {
                        put("dskit_tcp_frame", &b);
                        let n = usize::from(b[1]);
                        if b.len() >= 2 + n + 16 {
                            let pkt = &b[2 + n..b.len() - 16];
                            put("packet_decode", pkt);
                            if pkt.len() > 1 {
                                put("msgpack_value", &pkt[1..]);
                            }
                            if pkt.len() > 6 && pkt[0] == 0x0c && pkt[5] == 0x08 {
                                put("kv_pair", &pkt[6..]);
                                put("gossip_kv_receive", &pkt[6..]);
                            }
                        }
                    }
                    ("client_bytes_hex", 2) => {
                        put("dskit_tcp_frame", &b);
                        put("stream_decode", &b[1..]);
                    }
                    ("payload_hex", _) => put("packet_decode", &b),
                    _ => {
                        put("stream_decode", &b);
                        put("msgpack_value", &b[1..]);
                    }
                }
            }
        }
    }
    for f in [
        "testdata/ring-desc-3x128.snappy-proto.bin",
        "testdata/ring-desc-dskit-interop.snappy-proto.bin",
    ] {
        let b = std::fs::read(root.join(f)).unwrap();
        put("gossip_kv_receive", &b);
    }
    // Remote-write bodies: snappy blocks of small WriteRequests.
    use ringkit_ingest::decode::encode_snappy;
    use ringkit_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};
    for n in [0usize, 1, 3] {
        let req = WriteRequest {
            timeseries: (0..n)
                .map(|i| TimeSeries {
                    labels: vec![
                        Label::new("__name__", "up"),
                        Label::new("job", format!("j{i}")),
                    ],
                    samples: vec![Sample {
                        value: i as f64,
                        timestamp: 1_800_000_000_000,
                    }],
                    ..Default::default()
                })
                .collect(),
            metadata: Vec::new(),
        };
        put("remote_write", &encode_snappy(&req));
    }
    out
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc1, 0xdf, 0xce];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if !b.is_empty() => {
                let n = rng.below(b.len());
                b.truncate(n);
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len());
                let n = rng.below(b.len() - i).min(64);
                b.drain(i..i + n);
            }
            4 => {
                let i = rng.below(b.len() + 1);
                let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, junk);
            }
            5 if !other.is_empty() => {
                let i = rng.below(b.len() + 1);
                let j = rng.below(other.len());
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            6 if !b.is_empty() && b.len() < 1 << 16 => {
                let i = rng.below(b.len());
                let n = (b.len() - i).min(32);
                let chunk = b[i..i + n].to_vec();
                for _ in 0..rng.below(8) {
                    b.splice(i..i, chunk.iter().copied());
                }
            }
            _ => {}
        }
    }
    b
}

#[test]
fn every_fuzz_target_survives_its_seeds_and_their_mutations() {
    let inputs = env_or("RINGKIT_FUZZ_INPUTS", 4_000) as usize;
    let budget = Duration::from_secs(env_or("RINGKIT_FUZZ_SECS", 10));
    let all = seeds();
    for (name, body) in TARGETS {
        let mine: Vec<&[u8]> = all
            .iter()
            .filter(|(t, _)| *t == name)
            .map(|(_, b)| b.as_slice())
            .collect();
        assert!(!mine.is_empty(), "no seeds for {name}");
        let started = Instant::now();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        let mut ran = 0;
        for s in &mine {
            body(s);
            ran += 1;
        }
        body(&[]);
        while ran < inputs && started.elapsed() < budget {
            let seed = mine[rng.below(mine.len())];
            let other = mine[rng.below(mine.len())];
            let input = mutate(&mut rng, seed, other);
            // A panic names the target and the input, to turn into a regression test.
            let r = std::panic::catch_unwind(|| body(&input));
            assert!(
                r.is_ok(),
                "{name} panicked on input {}",
                hex::encode(&input)
            );
            ran += 1;
        }
        eprintln!(
            "{name}: {} seeds, {ran} inputs in {:?}",
            mine.len(),
            started.elapsed()
        );
    }
}
