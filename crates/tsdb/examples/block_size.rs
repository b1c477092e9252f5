//! Writes one 2-hour block of realistic scrape data (15 s interval, a few ms of jitter;
//! counters and gauges) and prints its size per sample, the README's storage numbers.
//!
//! Usage: `cargo run --release -p ringkit-tsdb --example block_size [-- <series> <out-dir>]`
//! (defaults: 10000 series, a temporary directory).

use std::time::Instant;

use ringkit_tsdb::{BlockSeries, XorChunk, labels_from_pairs, write_block};

/// A small deterministic generator (splitmix64), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The kinds of series a node exporter / service scrape is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Histogram bucket counts: integers that rarely move (most requests land in few buckets).
    Bucket,
    /// `up`, build info, limits, sizes: changes about once in 100 scrapes.
    Steady,
    /// Request, byte and packet counts: integer increments, idle a third of the time.
    IntCounter,
    /// CPU seconds and the like: increments in hundredths.
    FloatCounter,
    /// Memory in bytes: moves by whole 4 KiB pages.
    IntGauge,
    /// Load averages, temperatures: two decimals, wandering.
    FloatGauge,
}

/// Share of each kind in percent.
const MIX: [(Kind, usize); 6] = [
    (Kind::Bucket, 40),
    (Kind::Steady, 20),
    (Kind::IntCounter, 15),
    (Kind::IntGauge, 10),
    (Kind::FloatCounter, 10),
    (Kind::FloatGauge, 5),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let series_count: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let tmp;
    let out = match args.get(2) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            tmp = std::env::temp_dir().join(format!("ringkit-block-size-{}", std::process::id()));
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&out).expect("create output dir");

    let block_start: i64 = 1_700_002_800_000; // a 2 h boundary
    let block_end = block_start + 2 * 3600 * 1000;
    let mut rng = Rng(42);
    let mut series = Vec::with_capacity(series_count);
    let mut samples_total = 0u64;
    // Chunk data bytes and samples per kind.
    let mut per_kind = [(0u64, 0u64); MIX.len()];
    let started = Instant::now();
    for i in 0..series_count {
        let pick = i * 100 / series_count.max(1);
        let mut acc = 0;
        let mut kind = Kind::Steady;
        for (k, share) in MIX {
            acc += share;
            if pick < acc {
                kind = k;
                break;
            }
        }
        let labels = labels_from_pairs([
            (
                "__name__",
                format!("metric_{:?}_{}", kind, i % 50).to_lowercase(),
            ),
            (
                "instance",
                format!("10.0.{}.{}:9100", i / 250 % 256, i % 250),
            ),
            ("job", ["node", "api", "db", "cache"][i % 4].to_string()),
            ("series", i.to_string()),
        ]);
        // Each target scrapes at its own phase in the interval.
        let phase = rng.below(15_000) as i64;
        let mut value: f64 = match kind {
            Kind::Bucket => rng.below(10_000) as f64,
            Kind::Steady => rng.below(100) as f64,
            Kind::IntCounter => rng.below(1_000_000) as f64,
            Kind::FloatCounter => (rng.unit() * 1_000_000.0).round() / 100.0,
            Kind::IntGauge => (rng.below(1 << 18) * 4096) as f64,
            Kind::FloatGauge => (rng.unit() * 5000.0).round() / 100.0,
        };
        let rate = 1 + rng.below(20);
        let mut chunks = Vec::new();
        let mut chunk = XorChunk::new();
        let mut t = block_start + phase;
        let kind_index = MIX.iter().position(|(k, _)| k == &kind).unwrap_or(0);
        while t < block_end {
            // Prometheus' scrape loop aligns timestamps that are within 2 ms of the
            // interval; the rest (here 2 %) carry a few ms of jitter.
            let ts = if rng.below(50) == 0 {
                t + rng.below(40) as i64 - 20
            } else {
                t
            };
            value = match kind {
                Kind::Bucket if rng.below(4) == 0 => value + 1.0 + rng.below(3) as f64,
                Kind::Bucket => value,
                Kind::Steady if rng.below(100) == 0 => value + 1.0,
                Kind::Steady => value,
                Kind::IntCounter if rng.below(3) == 0 => value,
                Kind::IntCounter => value + rng.below(rate * 2) as f64,
                Kind::FloatCounter => ((value * 100.0).round() + rng.below(30) as f64) / 100.0,
                Kind::IntGauge => (value + (rng.below(64) as f64 - 32.0) * 4096.0).max(0.0),
                Kind::FloatGauge => ((value * 100.0).round() + rng.below(21) as f64 - 10.0) / 100.0,
            };
            if chunk.num_samples() == 120 {
                chunks.push(std::mem::take(&mut chunk));
            }
            chunk.append(ts, value);
            samples_total += 1;
            t += 15_000;
        }
        chunks.push(chunk);
        let entry = &mut per_kind[kind_index];
        entry.0 += chunks.iter().map(|c| c.bytes().len() as u64).sum::<u64>();
        entry.1 += chunks
            .iter()
            .map(|c| u64::from(c.num_samples()))
            .sum::<u64>();
        series.push(BlockSeries { labels, chunks });
    }
    let generated = started.elapsed();
    let started = Instant::now();
    let ulid = write_block(&out, block_start, block_end, series).expect("write block");
    let written = started.elapsed();
    let dir = out.join(ulid.to_string());
    let size = |p: &str| std::fs::metadata(dir.join(p)).map(|m| m.len()).unwrap_or(0);
    let chunks = size("chunks/000001");
    let index = size("index");
    println!("block {}", dir.display());
    println!("series {series_count}, samples {samples_total}");
    println!(
        "chunks/000001 {chunks} B = {:.3} B/sample; index {index} B = {:.1} B/series; total {:.3} B/sample",
        chunks as f64 / samples_total as f64,
        index as f64 / series_count as f64,
        (chunks + index) as f64 / samples_total as f64
    );
    for ((kind, share), (bytes, samples)) in MIX.iter().zip(per_kind) {
        println!(
            "  {kind:?} ({share}% of series): {:.3} B/sample of chunk data",
            bytes as f64 / samples.max(1) as f64
        );
    }
    println!(
        "encode {:.0} ms ({:.1} M samples/s), write_block {:.0} ms",
        generated.as_secs_f64() * 1000.0,
        samples_total as f64 / generated.as_secs_f64() / 1e6,
        written.as_secs_f64() * 1000.0
    );
}
