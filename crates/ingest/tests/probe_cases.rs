//! Every case of the shared `rw_probe.py` list, in its order, against one head: the expected
//! class (accept = 204, or 4xx with a clear message) and how it compares with what Prometheus
//! 2.42's own receiver answers (`testdata/reference-answers.md`).
//!
//! Known, deliberate differences from Prometheus (we follow Mimir's distributor there):
//! - missing `__name__`: Prometheus 204, ringkit 400 (Mimir rejects it).
//! - duplicate label name: Prometheus **500**, ringkit 400 (bad input is never a 5xx).

mod common;

use common::{METADATA_449, SAMPLES_500, answer, fixture, series};
use prost::Message;
use ringkit_ingest::decode::encode_snappy;
use ringkit_ingest::head::Head;
use ringkit_ingest::prompb::{Label, MetricMetadata, MetricType, TimeSeries, WriteRequest};
use ringkit_ingest::store::{Matcher, StoreConfig};

/// "now" of the probe run: just after the captured bodies, as when the probe replays them first.
const NOW: i64 = 1_795_546_200_000;
const LBL: &[(&str, &str)] = &[
    ("__name__", "harness_probe_total"),
    ("instance", "x"),
    ("job", "rw-probe"),
];

fn body(ts: Vec<TimeSeries>) -> Vec<u8> {
    encode_snappy(&WriteRequest {
        timeseries: ts,
        metadata: vec![],
    })
}

fn one(labels: &[(&str, &str)], value: f64, ts: i64) -> Vec<u8> {
    body(vec![series(labels, &[(value, ts)])])
}

/// A snappy block made of literals only, as the probe script builds it.
fn snappy_literal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = data.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    for chunk in data.chunks(65536) {
        let n = chunk.len() - 1;
        if n < 60 {
            out.push((n as u8) << 2);
        } else if n < 256 {
            out.extend_from_slice(&[60 << 2, n as u8]);
        } else {
            out.push(61 << 2);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        out.extend_from_slice(chunk);
    }
    out
}

enum Want {
    Accept,
    Reject(&'static str),
}

fn cases() -> Vec<(&'static str, Vec<u8>, Want)> {
    use Want::*;
    vec![
        ("replay samples fixture", fixture(SAMPLES_500), Accept),
        ("replay metadata fixture", fixture(METADATA_449), Accept),
        ("valid 1 series 1 sample", one(LBL, 1.0, NOW), Accept),
        ("exact duplicate of previous", one(LBL, 1.0, NOW), Accept),
        (
            "same timestamp, different value",
            one(LBL, 2.0, NOW),
            Reject("duplicate sample for timestamp"),
        ),
        (
            "out-of-order (60 s older than head sample)",
            one(LBL, 3.0, NOW - 60_000),
            Reject("out of order sample"),
        ),
        (
            "very old sample (now - 24 h)",
            one(LBL, 4.0, NOW - 86_400_000),
            Reject("out of bounds"),
        ),
        (
            "newer sample (now + 1 s)",
            one(LBL, 5.0, NOW + 1000),
            Accept,
        ),
        ("empty WriteRequest", body(vec![]), Accept),
        (
            "metadata only",
            encode_snappy(&WriteRequest {
                timeseries: vec![],
                metadata: vec![MetricMetadata {
                    r#type: MetricType::Counter as i32,
                    metric_family_name: "harness_probe_total".into(),
                    help: "help text".into(),
                    unit: String::new(),
                }],
            }),
            Accept,
        ),
        (
            "missing __name__",
            one(&[("job", "rw-probe"), ("x", "y")], 1.0, NOW),
            Reject("received a series without a metric name"),
        ),
        (
            "unsorted labels",
            one(
                &[("job", "rw-probe"), ("__name__", "harness_unsorted")],
                1.0,
                NOW,
            ),
            Accept,
        ),
        (
            "duplicate label name",
            one(
                &[("__name__", "harness_dup"), ("a", "1"), ("a", "2")],
                1.0,
                NOW,
            ),
            Reject("received a series with duplicate label name, label: \"a\""),
        ),
        (
            "empty label value",
            one(&[("__name__", "harness_emptyval"), ("a", "")], 1.0, NOW),
            Accept,
        ),
        (
            "invalid snappy",
            b"\xff\xff\xff\xff\x0fnot-snappy".to_vec(),
            Reject("snappy: corrupt input"),
        ),
        (
            "valid snappy, invalid protobuf",
            snappy_literal(b"\x0a\xff\xff\xff\xff\x0f"),
            Reject("protobuf: cannot decode prometheus.WriteRequest"),
        ),
        (
            "uncompressed protobuf (no snappy)",
            WriteRequest {
                timeseries: vec![series(LBL, &[(6.0, NOW + 2000)])],
                metadata: vec![],
            }
            .encode_to_vec(),
            Reject("snappy: corrupt input"),
        ),
    ]
}

#[test]
fn every_probe_case_gets_the_expected_class_and_a_clear_message() {
    let head = Head::in_memory(StoreConfig::default());
    let mut failures = Vec::new();
    for (name, body, want) in cases() {
        let (status, text) = answer(&head, "probe", &body, NOW);
        let ok = match want {
            Want::Accept => status == 204 && text.is_empty(),
            Want::Reject(prefix) => (400..500).contains(&status) && text.starts_with(prefix),
        };
        if !ok {
            failures.push(format!("{name}: got {status} {text:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn no_probe_case_is_answered_with_a_5xx_whatever_the_order() {
    // Run the list backwards on a fresh head: the classes change (e.g. no duplicate), never 5xx.
    let head = Head::in_memory(StoreConfig::default());
    for (name, body, _) in cases().into_iter().rev() {
        let (status, text) = answer(&head, "probe", &body, NOW);
        assert!(
            status == 204 || (400..500).contains(&status),
            "{name}: {status} {text}"
        );
        assert!(
            status == 204 || !text.is_empty(),
            "{name}: empty error body"
        );
    }
}

#[test]
fn probe_writes_leave_exactly_the_accepted_samples_readable() {
    let head = Head::in_memory(StoreConfig::default());
    for (_, body, _) in cases() {
        answer(&head, "probe", &body, NOW);
    }
    let sel = [Matcher::new(
        ringkit_ingest::prompb::MatcherType::Eq,
        "__name__",
        "harness_probe_total",
    )
    .unwrap()];
    let got = head.store().query("probe", &sel, i64::MIN, i64::MAX);
    assert_eq!(got.len(), 1);
    let values: Vec<(i64, f64)> = got[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(values, [(NOW, 1.0), (NOW + 1000, 5.0)]);

    // The unsorted series is stored sorted; the empty-valued label is gone.
    let all = head.store().query("probe", &[], i64::MIN, i64::MAX);
    let unsorted = all
        .iter()
        .find(|ts| ts.labels[0].value == "harness_unsorted")
        .unwrap();
    assert_eq!(unsorted.labels[1], Label::new("job", "rw-probe"));
    let emptyval = all
        .iter()
        .find(|ts| ts.labels[0].value == "harness_emptyval")
        .unwrap();
    assert_eq!(
        emptyval.labels,
        vec![Label::new("__name__", "harness_emptyval")]
    );
    // Rejected series were not stored at all.
    assert!(!all.iter().any(|ts| ts.labels[0].value == "harness_dup"));
}

/// Runs the probe list in order on a fresh head up to `case` and returns that case's answer,
/// so each case below is its own test with the history the probe gives it.
fn answer_of(case: &str) -> (u16, String) {
    let head = Head::in_memory(StoreConfig::default());
    for (name, body, _) in cases() {
        let got = answer(&head, "probe", &body, NOW);
        if name == case {
            return got;
        }
    }
    panic!("no probe case {case:?}");
}

fn assert_accepted(case: &str) {
    assert_eq!(answer_of(case), (204, String::new()), "{case}");
}

fn assert_rejected(case: &str, prefix: &str) {
    let (status, text) = answer_of(case);
    assert_eq!(status, 400, "{case}: {text}");
    assert!(text.starts_with(prefix), "{case}: {text}");
}

#[test]
fn the_captured_prometheus_bodies_are_accepted() {
    assert_accepted("replay samples fixture");
    assert_accepted("replay metadata fixture");
}

#[test]
fn a_valid_sample_is_accepted() {
    assert_accepted("valid 1 series 1 sample");
}

#[test]
fn an_exact_duplicate_is_accepted_silently() {
    assert_accepted("exact duplicate of previous");
}

#[test]
fn same_timestamp_with_another_value_is_a_400_duplicate_sample() {
    assert_rejected(
        "same timestamp, different value",
        "duplicate sample for timestamp",
    );
}

#[test]
fn a_sample_older_than_the_series_head_is_a_400_out_of_order() {
    assert_rejected(
        "out-of-order (60 s older than head sample)",
        "out of order sample",
    );
}

#[test]
fn a_day_old_sample_is_a_400_out_of_bounds() {
    assert_rejected("very old sample (now - 24 h)", "out of bounds");
}

#[test]
fn a_newer_sample_after_refusals_is_accepted() {
    assert_accepted("newer sample (now + 1 s)");
}

#[test]
fn an_empty_write_request_is_accepted() {
    assert_accepted("empty WriteRequest");
}

#[test]
fn a_metadata_only_request_is_accepted() {
    assert_accepted("metadata only");
}

#[test]
fn a_series_without_metric_name_is_a_400_unlike_prometheus() {
    assert_rejected(
        "missing __name__",
        "received a series without a metric name, series: '{job=\"rw-probe\", x=\"y\"}'",
    );
}

#[test]
fn unsorted_labels_are_accepted() {
    assert_accepted("unsorted labels");
}

#[test]
fn a_duplicate_label_name_is_a_400_where_prometheus_answers_500() {
    assert_rejected(
        "duplicate label name",
        "received a series with duplicate label name, label: \"a\"",
    );
}

#[test]
fn an_empty_label_value_is_accepted_and_dropped() {
    assert_accepted("empty label value");
}

#[test]
fn invalid_snappy_is_a_400_corrupt_input() {
    assert_rejected("invalid snappy", "snappy: corrupt input");
}

#[test]
fn valid_snappy_around_truncated_protobuf_is_a_400_protobuf_error() {
    assert_rejected(
        "valid snappy, invalid protobuf",
        "protobuf: cannot decode prometheus.WriteRequest",
    );
}

#[test]
fn an_uncompressed_protobuf_is_a_400_corrupt_input() {
    assert_rejected("uncompressed protobuf (no snappy)", "snappy: corrupt input");
    let (_, text) = answer_of("uncompressed protobuf (no snappy)");
    assert_eq!(text.matches("snappy").count(), 1, "{text}");
}

#[test]
#[ignore = "prints the answers for the report: cargo test -- --ignored --nocapture"]
fn print_probe_answers() {
    let head = Head::in_memory(StoreConfig::default());
    for (name, body, _) in cases() {
        let (status, text) = answer(&head, "probe", &body, NOW);
        println!("| {name} | {status} | `{text}` |");
    }
}
