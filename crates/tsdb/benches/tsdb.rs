//! Costs the ingester pays per sample and per block:
//! - `xor_chunk/append_120`: filling one chunk with 120 samples of a 15 s counter;
//! - `xor_chunk/iterate_120`: decoding them again (remote read, block cuts);
//! - `block/write_1000_series` and `block/query_1000_series`: a 2 h block of 1000 series ×
//!   480 samples written to a temporary directory (with fsync) and read back whole.
//!
//! Throughput is reported in samples.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringkit_tsdb::{Block, BlockSeries, XorChunk, labels_from_pairs, write_block};

const START: i64 = 1_700_002_800_000;

/// A counter scraped every 15 s: integer increments, timestamps on the interval.
fn counter_samples(n: i64, seed: i64) -> Vec<(i64, f64)> {
    let mut v = 1000.0 * seed as f64;
    (0..n)
        .map(|k| {
            v += ((k * 7 + seed) % 13) as f64;
            (START + k * 15_000, v)
        })
        .collect()
}

fn chunk_of(samples: &[(i64, f64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in samples {
        c.append(t, v);
    }
    c
}

fn bench_chunk(c: &mut Criterion) {
    let samples = counter_samples(120, 3);
    let chunk = chunk_of(&samples);
    let mut group = c.benchmark_group("xor_chunk");
    group.throughput(Throughput::Elements(120));
    group.bench_function("append_120", |b| b.iter(|| chunk_of(black_box(&samples))));
    group.bench_function("iterate_120", |b| {
        b.iter(|| black_box(&chunk).iter().fold(0.0, |acc, (_, v)| acc + v))
    });
    group.finish();
}

fn block_series() -> Vec<BlockSeries> {
    (0..1000)
        .map(|i| BlockSeries {
            labels: labels_from_pairs([
                ("__name__", format!("metric_{}", i % 20)),
                ("instance", format!("host-{i}")),
                ("job", "bench".to_string()),
            ]),
            chunks: counter_samples(480, i).chunks(120).map(chunk_of).collect(),
        })
        .collect()
}

fn bench_block(c: &mut Criterion) {
    let series = block_series();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Elements(1000 * 480));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("write_1000_series", |b| {
        b.iter(|| {
            let ulid = write_block(dir.path(), START, START + 7_200_000, series.clone())
                .expect("block written");
            std::fs::remove_dir_all(dir.path().join(ulid.to_string())).expect("removed");
        })
    });
    let ulid = write_block(dir.path(), START, START + 7_200_000, series).expect("block written");
    let path = dir.path().join(ulid.to_string());
    group.bench_function("query_1000_series", |b| {
        b.iter(|| {
            let block = Block::open(&path).expect("opens");
            let all = block.query(&[], i64::MIN, i64::MAX).expect("query");
            assert_eq!(all.len(), 1000);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_chunk, bench_block);
criterion_main!(benches);
