//! The data path on the captured Prometheus body (500 series, one sample each):
//! - `decode_validate_hash`: what a distributor does per push before any network I/O, with
//!   prost's owned decoding (`500_series`) and read in place (`500_series_view`: borrowed
//!   labels, plus the bytes of each series' forwarding copy).
//! - `head_push_memory`: store appends of a whole push (timestamps advance each iteration);
//!   `500_series_view` is an ingester's whole push without the WAL: the encoded request read
//!   in place, validated, appended.
//! - `wal_append/{fsync,no_fsync}`: one WAL write of a whole push (one samples record of 500
//!   samples by series reference), with and without `fdatasync`; throughput is reported in
//!   samples.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use ringkit_ingest::decode::{
    DecodeLimits, decode_write_request, decode_write_request_view, decompress,
};
use ringkit_ingest::hash::series_key;
use ringkit_ingest::head::Head;
use ringkit_ingest::prompb::WriteRequest;
use ringkit_ingest::record::RefSample;
use ringkit_ingest::store::StoreConfig;
use ringkit_ingest::validate::{Limits, ValidSeries, validate_request, validate_view};
use ringkit_ingest::view::encode_series;
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
    group.bench_function("500_series_view", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut valid = ValidSeries::default();
            let raw = decompress(black_box(BODY), &decode_limits).unwrap();
            let view = decode_write_request_view(&raw).unwrap();
            let report = validate_view(&limits, NOW, &view, &mut valid);
            let mut acc = 0u32;
            out.clear();
            for e in &valid.series {
                acc ^= series_key("tenant-1", valid.labels_of(e));
                let s = &view.series[e.series];
                if e.unchanged {
                    out.extend_from_slice(s.raw);
                } else {
                    encode_series(valid.labels_of(e), view.samples_of(s), &mut out);
                }
            }
            black_box((report.rejected_series, acc, out.len()))
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
    // The same pushes as an ingester receives them: one encoded request, read in place.
    let head = Head::in_memory(StoreConfig::default());
    let mut req = decoded();
    let limits = Limits::default();
    group.bench_function("500_series_view", |b| {
        b.iter(|| {
            let mut valid = ValidSeries::default();
            for ts in &mut req.timeseries {
                for s in &mut ts.samples {
                    s.timestamp += 1;
                }
            }
            let raw = req.encode_to_vec();
            let view = decode_write_request_view(&raw).unwrap();
            // Far-future "now": the timestamps run ahead of the fixture's clock.
            validate_view(&limits, i64::MAX / 2, &view, &mut valid);
            let series = valid
                .series
                .iter()
                .map(|e| (valid.labels_of(e), view.samples_of(&view.series[e.series])));
            black_box(head.push_series("tenant-1", series).unwrap())
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
