//! Real processes (3 ingesters + a distributor, ring in a real etcd): the 15 malformed or
//! edge-case remote-write requests of the shared `rw_probe` harness, built here in Rust,
//! each answered 2xx or 4xx with a clear body (never 5xx); the node keeps serving; and the
//! two captured Prometheus 2.42 bodies replayed through the distributor read back intact.

mod cluster;
mod common;

use cluster::{Cluster, eq, fixture, now_ms, post, re, read, series, write_body};
use prost::Message;
use ringkit_ingest::decode::{DecodeLimits, decode_write_request};
use ringkit_ingest::prompb::{MetricMetadata, MetricType, WriteRequest};
use ringkit_ingest::validate::{Limits, validate_request};

/// A valid snappy block of `data`.
fn snappy_block(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_remote_writes_get_4xx_with_a_reason_and_the_node_keeps_serving() {
    if cluster::skip() {
        return;
    }
    let cluster = Cluster::start().await;
    let http = reqwest::Client::new();
    let url = cluster.push_url();
    let now = now_ms();
    let lbl: &[(&str, &str)] = &[
        ("__name__", "harness_probe_total"),
        ("instance", "x"),
        ("job", "rw-probe"),
    ];
    let one = |labels: &[(&str, &str)], v: f64, t: i64| write_body(vec![series(labels, &[(v, t)])]);
    let metadata_only = ringkit_ingest::decode::encode_snappy(&WriteRequest {
        timeseries: Vec::new(),
        metadata: vec![MetricMetadata {
            r#type: MetricType::Counter as i32,
            metric_family_name: "harness_probe_total".into(),
            help: "help text".into(),
            unit: String::new(),
        }],
    });
    let raw_protobuf = WriteRequest {
        timeseries: vec![series(lbl, &[(6.0, now + 2000)])],
        metadata: Vec::new(),
    }
    .encode_to_vec();
    // (case, body, expected status, expected start of the body)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("valid 1 series 1 sample", one(lbl, 1.0, now), 200, ""),
        ("exact duplicate", one(lbl, 1.0, now), 200, ""),
        (
            "same timestamp, other value",
            one(lbl, 2.0, now),
            400,
            "duplicate sample for timestamp",
        ),
        (
            "out of order (60 s older)",
            one(lbl, 3.0, now - 60_000),
            400,
            "out of order sample",
        ),
        (
            "very old (now - 24 h)",
            one(lbl, 4.0, now - 86_400_000),
            400,
            "out of bounds",
        ),
        ("newer (now + 1 s)", one(lbl, 5.0, now + 1000), 200, ""),
        ("empty WriteRequest", write_body(Vec::new()), 200, ""),
        ("metadata only", metadata_only, 200, ""),
        (
            "missing __name__",
            one(&[("job", "rw-probe"), ("x", "y")], 1.0, now),
            400,
            "received a series without a metric name",
        ),
        (
            "unsorted labels",
            one(
                &[("job", "rw-probe"), ("__name__", "harness_unsorted")],
                1.0,
                now,
            ),
            200,
            "",
        ),
        (
            "duplicate label name",
            one(
                &[("__name__", "harness_dup"), ("a", "1"), ("a", "2")],
                1.0,
                now,
            ),
            400,
            "received a series with duplicate label name",
        ),
        (
            "empty label value",
            one(&[("__name__", "harness_emptyval"), ("a", "")], 1.0, now),
            200,
            "",
        ),
        (
            "invalid snappy",
            b"\xff\xff\xff\xff\x0fnot-snappy".to_vec(),
            400,
            "snappy: corrupt input",
        ),
        (
            "valid snappy, invalid protobuf",
            snappy_block(b"\x0a\xff\xff\xff\xff\x0f"),
            400,
            "protobuf: cannot decode prometheus.WriteRequest",
        ),
        (
            "protobuf without snappy",
            raw_protobuf,
            400,
            "snappy: corrupt input",
        ),
    ];
    assert_eq!(cases.len(), 15);
    for (case, body, want_status, want_body) in cases {
        let (status, text) = post(&http, &url, body, None).await;
        eprintln!("{case}: {status} {}", text.trim());
        assert_eq!(status, want_status, "{case}: {text}");
        assert!(text.starts_with(want_body), "{case}: {text:?}");
        if status >= 400 {
            assert!(
                text.len() > 10 && text.ends_with('\n'),
                "{case}: a clear reason: {text:?}"
            );
        }
    }

    // Other client errors the endpoint itself decides.
    let gzip = http
        .post(&url)
        .header("Content-Encoding", "gzip")
        .body(one(lbl, 1.0, now))
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.status().as_u16(), 415);
    assert!(gzip.text().await.unwrap().contains("snappy"));
    let (status, text) = post(&http, &url, one(lbl, 7.0, now + 5000), Some("a|b")).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("unsupported character"), "{text}");

    // Still serving: what was accepted reads back, normalised as validation promised.
    let got = read(
        &http,
        &cluster.read_url(),
        None,
        vec![re("__name__", "harness_.*")],
        now - 1000,
        now + 10_000,
    )
    .await;
    let by_name = |n: &str| {
        got.iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == n)
            })
            .unwrap_or_else(|| panic!("{n} in {got:?}"))
    };
    let probe: Vec<(i64, f64)> = by_name("harness_probe_total")
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(probe, [(now, 1.0), (now + 1000, 5.0)]);
    let unsorted = by_name("harness_unsorted");
    assert_eq!(unsorted.labels[0].name, "__name__", "stored sorted");
    assert_eq!(
        by_name("harness_emptyval").labels.len(),
        1,
        "empty label dropped"
    );
    assert!(
        got.iter()
            .all(|s| s.labels.iter().all(|l| l.value != "harness_dup"))
    );
    let (status, _) = post(&http, &url, one(lbl, 8.0, now + 3000), None).await;
    assert_eq!(status, 200);
    let metrics = reqwest::get(format!("{}/metrics", cluster.distributor.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cortex_distributor_received_samples_total{user=\"anonymous\"}"),
        "{metrics}"
    );
    for n in &cluster.ingesters {
        let ready = reqwest::get(format!("{}/ready", n.url)).await.unwrap();
        assert_eq!(ready.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_prometheus_bodies_replay_through_the_distributor_and_read_back() {
    if cluster::skip() {
        return;
    }
    let cluster = Cluster::start().await;
    let http = reqwest::Client::new();
    let samples_body = fixture("rw-prometheus242-samples-500series.snappy-proto.bin");
    let metadata_body = fixture("rw-prometheus242-metadata-449.snappy-proto.bin");
    for body in [samples_body.clone(), metadata_body] {
        let (status, text) = post(&http, &cluster.push_url(), body, Some("replay")).await;
        assert_eq!(status, 200, "{text}");
    }
    // What the distributor should have stored: the body, validated the same way.
    let mut want = decode_write_request(&samples_body, &DecodeLimits::default()).unwrap();
    let report = validate_request(&Limits::default(), i64::MAX / 2, &mut want);
    assert!(report.first_error.is_none());
    let mut want = want.timeseries;
    want.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(want.len(), 500);

    let got = read(
        &http,
        &cluster.read_url(),
        Some("replay"),
        vec![re("__name__", ".+")],
        0,
        i64::MAX,
    )
    .await;
    let bits = |v: &[ringkit_ingest::prompb::TimeSeries]| -> Vec<_> {
        v.iter()
            .map(|s| {
                let samples: Vec<(i64, u64)> = s
                    .samples
                    .iter()
                    .map(|x| (x.timestamp, x.value.to_bits()))
                    .collect();
                (s.labels.clone(), samples)
            })
            .collect()
    };
    assert_eq!(bits(&got), bits(&want));
    // The tenant is part of the key: the default tenant sees none of it.
    let other = read(
        &http,
        &cluster.read_url(),
        None,
        vec![eq("job", "prometheus")],
        0,
        i64::MAX,
    )
    .await;
    assert!(other.is_empty());
}
