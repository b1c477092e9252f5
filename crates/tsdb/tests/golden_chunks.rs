//! Golden tests against a block written by real Prometheus tooling: `testdata/promtool-block`
//! was made by Debian's `promtool` 2.42 (`promtool tsdb create-blocks-from openmetrics`) from
//! `input.om` (three series: a counter, a gauge, and a series of odd gaps and special values).
//!
//! - our reader returns exactly the input's samples from it;
//! - our chunk encoder rebuilds every chunk byte for byte;
//! - our block writer, given the same series and chunks, writes the same `index` and
//!   `chunks/000001` bytes as Prometheus did.

mod common;

use std::path::Path;

use common::{assert_samples_eq, input_samples, promtool_block};
use ringkit_tsdb::{
    Block, BlockOptions, BlockSeries, MatchType, Matcher, XorChunk, write_block_with,
};

fn all_series() -> Matcher {
    Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()
}

#[test]
fn our_reader_returns_the_input_samples_of_a_prometheus_block() {
    let block = Block::open(promtool_block()).unwrap();
    let meta = block.meta();
    assert_eq!(meta.stats.num_samples, 800);
    assert_eq!(meta.stats.num_series, 3);
    assert_eq!(meta.stats.num_chunks, 8);
    assert_eq!(
        block.label_names(),
        vec!["__name__", "code", "job", "kind", "room"]
    );
    assert_eq!(
        block.label_values("__name__"),
        vec!["http_requests_total", "odd", "temperature"]
    );

    let got = block.query(&[all_series()], i64::MIN, i64::MAX).unwrap();
    let want = input_samples();
    assert_eq!(got.len(), want.len());
    for s in &got {
        assert_samples_eq(&want[&s.labels], &s.samples, &format!("{:?}", s.labels));
    }
}

#[test]
fn prometheus_chunks_reencode_byte_for_byte() {
    let block = Block::open(promtool_block()).unwrap();
    let mut chunks = 0;
    for sref in block.select(&[all_series()]).unwrap() {
        for meta in block.series(sref).unwrap().chunks {
            let theirs = block.chunk(&meta).unwrap();
            let mut ours = XorChunk::new();
            for (t, v) in theirs.iter() {
                ours.append(t, v);
            }
            assert_eq!(ours.bytes(), theirs.bytes(), "chunk {:#x}", meta.chunk_ref);
            assert_eq!(ours.min_time(), Some(meta.min_time));
            assert_eq!(ours.max_time(), Some(meta.max_time));
            chunks += 1;
        }
    }
    assert_eq!(chunks, 8);
}

#[test]
fn our_writer_writes_prometheus_identical_index_and_chunks() {
    let theirs = Block::open(promtool_block()).unwrap();
    let mut series = Vec::new();
    for sref in theirs.select(&[all_series()]).unwrap() {
        let s = theirs.series(sref).unwrap();
        let chunks = s.chunks.iter().map(|m| theirs.chunk(m).unwrap()).collect();
        series.push(BlockSeries {
            labels: s.labels,
            chunks,
        });
    }
    // Reverse the order: the writer sorts series itself.
    series.reverse();
    let out = tempfile::tempdir().unwrap();
    let meta = theirs.meta();
    let opts = BlockOptions {
        ulid: Some(meta.ulid.parse().unwrap()),
        ..BlockOptions::default()
    };
    let ulid = write_block_with(out.path(), &opts, meta.min_time, meta.max_time, series).unwrap();
    let ours = out.path().join(ulid.to_string());
    for file in ["index", "chunks/000001", "tombstones"] {
        let a = std::fs::read(promtool_block().join(file)).unwrap();
        let b = std::fs::read(ours.join(file)).unwrap();
        assert!(
            a == b,
            "{file} differs from Prometheus' ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
    let ours = Block::open(&ours).unwrap();
    assert_eq!(ours.meta().stats, meta.stats);
    assert_eq!(ours.meta().min_time, meta.min_time);
    assert!(!Path::new(&format!("{}.tmp-for-creation", ours.dir().display())).exists());
}
