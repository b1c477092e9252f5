//! The data path on the captured Prometheus body (500 series, one sample each):
//! - `decode_validate_hash`: what a distributor does per push before any network I/O.
//! - `head_push_memory`: store appends of a whole push (timestamps advance each iteration).
//! - `wal_append/{fsync,no_fsync}`: one WAL write of a whole push (one samples record of 500
//!   samples by series reference), with and without `fdatasync`; throughput is reported in
//!   samples.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringkit_ingest::decode::{DecodeLimits, decode_write_request};
use ringkit_ingest::hash::series_key;
use ringkit_ingest::head::Head;
use ringkit_ingest::prompb::WriteRequest;
use ringkit_ingest::record::RefSample;
use ringkit_ingest::store::StoreConfig;
use ringkit_ingest::validate::{Limits, validate_request};
use ringkit_ingest::wal::{Wal, WalConfig};

const BODY: &[u8] =
    include_bytes!("../testdata/rw-prometheus242-samples-500series.snappy-proto.bin");
const NOW: i64 = 1_795_546_102_344;

fn decoded() -> WriteRequest {
    let mut req = decode_write_request(BODY, &DecodeLimits::default()).expect("fixture decodes");
    validate_request(&Limits::default(), NOW, &mut req);
    req
}

fn bench_distributor(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_validate_hash");
    group.throughput(Throughput::Elements(500));
    let limits = Limits::default();
    let decode_limits = DecodeLimits::default();
    group.bench_function("decode_only", |b| {
        b.iter(|| decode_write_request(black_box(BODY), &decode_limits).unwrap())
    });
    group.bench_function("500_series", |b| {
        b.iter(|| {
            let mut req = decode_write_request(black_box(BODY), &decode_limits).unwrap();
            let report = validate_request(&limits, NOW, &mut req);
            let mut acc = 0u32;
            for ts in &req.timeseries {
                acc ^= series_key("tenant-1", &ts.labels);
            }
            black_box((report.rejected_series, acc))
        })
    });
    group.finish();
}

fn bench_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("head_push_memory");
    group.throughput(Throughput::Elements(500));
    let mut req = decoded();
    let head = Head::in_memory(StoreConfig::default());
    group.bench_function("500_series", |b| {
        b.iter(|| {
            for ts in &mut req.timeseries {
                for s in &mut ts.samples {
                    s.timestamp += 1;
                }
            }
            black_box(head.push("tenant-1", &req.timeseries).unwrap())
        })
    });
    group.finish();
}

fn bench_wal(c: &mut Criterion) {
    let req = decoded();
    // Series references 1..=500, timestamps moving on 15 s per push as a scrape would.
    let mut samples: Vec<RefSample> = req
        .timeseries
        .iter()
        .enumerate()
        .map(|(i, ts)| RefSample {
            series_ref: i as u64 + 1,
            t: ts.samples[0].timestamp,
            v: ts.samples[0].value,
        })
        .collect();
    let mut group = c.benchmark_group("wal_append");
    group.throughput(Throughput::Elements(500));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, sync) in [("fsync", true), ("no_fsync", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(
            dir.path(),
            WalConfig {
                sync_every_write: sync,
                ..Default::default()
            },
        )
        .unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                for s in &mut samples {
                    s.t += 15_000;
                }
                wal.log(&[], black_box(&samples)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_distributor, bench_store, bench_wal);
criterion_main!(benches);
