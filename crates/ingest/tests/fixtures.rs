//! The two bodies real Prometheus 2.42 sent (`testdata/*.bin`, described in
//! `testdata/rw-prometheus242.README.jsonl`) go through the whole data path: decode, validate,
//! hash, store, WAL, replay, read back.

mod common;

use std::collections::HashSet;

use common::{METADATA_449, SAMPLES_500, answer, bits, fixture};
use ringkit_ingest::decode::{DecodeLimits, decode_write_request};
use ringkit_ingest::hash::series_key;
use ringkit_ingest::head::Head;
use ringkit_ingest::prompb::MatcherType;
use ringkit_ingest::store::{Matcher, StoreConfig};
use ringkit_ingest::validate::{Limits, validate_request};
use ringkit_ingest::wal::WalConfig;

/// Newest timestamp in the samples body, from the README.
const MAX_TS: i64 = 1_795_546_102_344;
const MIN_TS: i64 = 1_795_546_099_235;

#[test]
fn the_samples_body_decodes_to_500_series_of_one_float_sample_each() {
    let req = decode_write_request(&fixture(SAMPLES_500), &DecodeLimits::default()).unwrap();
    assert_eq!(req.timeseries.len(), 500);
    assert!(req.metadata.is_empty());
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    assert_eq!(samples, 500);
    assert!(req.timeseries.iter().all(|t| t.histograms.is_empty()));
    let ts: Vec<i64> = req
        .timeseries
        .iter()
        .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
        .collect();
    assert_eq!(ts.iter().min(), Some(&MIN_TS));
    assert_eq!(ts.iter().max(), Some(&MAX_TS));
    let names: HashSet<&str> = req
        .timeseries
        .iter()
        .filter_map(|t| t.labels.iter().find(|l| l.name == "__name__"))
        .map(|l| l.value.as_str())
        .collect();
    assert_eq!(names.len(), 282);
}

#[test]
fn every_series_of_the_samples_body_is_valid_and_already_sorted() {
    let mut req = decode_write_request(&fixture(SAMPLES_500), &DecodeLimits::default()).unwrap();
    let before = req.clone();
    let report = validate_request(&Limits::default(), MAX_TS, &mut req);
    assert_eq!(report.first_error, None);
    assert_eq!(req.timeseries.len(), 500);
    // Prometheus sends sorted labels without empty values, so validation changed nothing.
    // (Compared by bits: the body holds NaN samples.)
    assert!(
        bits(&req.timeseries) == bits(&before.timeseries),
        "validation changed the series"
    );
}

#[test]
fn the_metadata_body_decodes_to_449_entries_and_no_series() {
    let mut req = decode_write_request(&fixture(METADATA_449), &DecodeLimits::default()).unwrap();
    assert_eq!(req.metadata.len(), 449);
    assert!(req.timeseries.is_empty());
    assert!(
        req.metadata
            .iter()
            .all(|m| !m.metric_family_name.is_empty())
    );
    let report = validate_request(&Limits::default(), MAX_TS, &mut req);
    assert_eq!(report.first_error, None);
    assert_eq!(req.metadata.len(), 449);
}

#[test]
fn the_500_series_hash_to_distinct_keys_that_depend_on_the_tenant() {
    let req = decode_write_request(&fixture(SAMPLES_500), &DecodeLimits::default()).unwrap();
    let a: HashSet<u32> = req
        .timeseries
        .iter()
        .map(|t| series_key("tenant-a", &t.labels))
        .collect();
    let b: HashSet<u32> = req
        .timeseries
        .iter()
        .map(|t| series_key("tenant-b", &t.labels))
        .collect();
    assert_eq!(
        a.len(),
        500,
        "32-bit collisions among 500 series are very unlikely"
    );
    assert!(a.is_disjoint(&b) || a.intersection(&b).count() < 3);
    // Keys spread over the ring: every quarter of the u32 space gets some.
    let mut quarters = [0; 4];
    for k in &a {
        quarters[(k >> 30) as usize] += 1;
    }
    assert!(quarters.iter().all(|&q| q > 60), "{quarters:?}");
}

#[test]
fn every_series_of_the_samples_body_is_stored_and_read_back_by_its_labels() {
    let head = Head::in_memory(StoreConfig::default());
    assert_eq!(
        answer(&head, "t", &fixture(SAMPLES_500), MAX_TS),
        (204, String::new())
    );
    let req = decode_write_request(&fixture(SAMPLES_500), &DecodeLimits::default()).unwrap();
    assert_eq!(head.store().series_count("t"), 500);
    for ts in &req.timeseries {
        let sel: Vec<Matcher> = ts
            .labels
            .iter()
            .map(|l| Matcher::new(MatcherType::Eq, l.name.clone(), l.value.clone()).unwrap())
            .collect();
        let got = head.store().query("t", &sel, MIN_TS, MAX_TS);
        // Series whose labels are a subset of another's also match; find the exact one.
        let exact: Vec<_> = got.iter().filter(|g| g.labels == ts.labels).collect();
        assert_eq!(exact.len(), 1);
        assert_eq!(exact[0].samples.len(), 1);
        assert_eq!(
            exact[0].samples[0].value.to_bits(),
            ts.samples[0].value.to_bits()
        );
        assert_eq!(exact[0].samples[0].timestamp, ts.samples[0].timestamp);
    }
    // Sending the same body again is all exact duplicates: accepted, nothing added.
    assert_eq!(answer(&head, "t", &fixture(SAMPLES_500), MAX_TS).0, 204);
    assert_eq!(head.store().sample_count("t"), 500);
}

#[test]
fn the_samples_body_survives_a_crash_through_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (head, stats) =
            Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
        assert_eq!(stats.records, 0);
        assert_eq!(answer(&head, "t", &fixture(SAMPLES_500), MAX_TS).0, 204);
        bits(&head.store().query("t", &[], i64::MIN, i64::MAX))
        // The head is dropped without any shutdown step.
    };
    let (head, stats) =
        Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
    // One series record (500 series) and one samples record (500 samples by reference).
    assert_eq!(stats.records, 2);
    assert_eq!(stats.samples, 500);
    assert_eq!(stats.truncated_segments, 0);
    let after = bits(&head.store().query("t", &[], i64::MIN, i64::MAX));
    assert_eq!(after.len(), 500);
    assert!(after == before, "replayed store differs");
}

#[test]
fn regex_queries_over_the_fixture_select_by_metric_family() {
    let head = Head::in_memory(StoreConfig::default());
    answer(&head, "t", &fixture(SAMPLES_500), MAX_TS);
    let sel = [Matcher::new(MatcherType::Re, "__name__", "go_.*").unwrap()];
    let got = head.store().query("t", &sel, i64::MIN, i64::MAX);
    assert!(!got.is_empty());
    assert!(got.iter().all(|ts| ts.labels[0].value.starts_with("go_")));
    let not = [
        Matcher::new(MatcherType::Nre, "__name__", "go_.*").unwrap(),
        Matcher::new(MatcherType::Re, "__name__", ".+").unwrap(),
    ];
    let rest = head.store().query("t", &not, i64::MIN, i64::MAX);
    assert_eq!(got.len() + rest.len(), 500);
}
