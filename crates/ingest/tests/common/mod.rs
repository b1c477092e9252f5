//! Helpers shared by the integration tests: one process doing what distributor and ingester do
//! together, answering like an HTTP handler would (status, body).

#![allow(dead_code)]

use ringkit_ingest::decode::{DecodeLimits, decode_write_request};
use ringkit_ingest::head::Head;
use ringkit_ingest::prompb::{Label, Sample, TimeSeries};
use ringkit_ingest::validate::{Limits, validate_request};

/// Decodes, validates and pushes `body`; returns the HTTP status and body text a handler would
/// send (204 with an empty body on success).
pub(crate) fn answer(head: &Head, tenant: &str, body: &[u8], now_ms: i64) -> (u16, String) {
    let mut req = match decode_write_request(body, &DecodeLimits::default()) {
        Ok(r) => r,
        Err(e) => return (e.http_status(), e.to_string()),
    };
    let report = validate_request(&Limits::default(), now_ms, &mut req);
    let summary = match head.push(tenant, &req.timeseries) {
        Ok(s) => s,
        Err(e) => return (500, e.to_string()),
    };
    if let Some(e) = report.first_error {
        return (e.http_status(), e.to_string());
    }
    if let Some(e) = summary.first_error {
        return (e.error.http_status(), e.to_string());
    }
    (204, String::new())
}

/// A series from `(name, value)` pairs, in the order given, with samples `(value, ts)`.
pub(crate) fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// Reads a fixture from `testdata/`.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The captured 500-series body (500 samples).
pub(crate) const SAMPLES_500: &str = "rw-prometheus242-samples-500series.snappy-proto.bin";
/// The captured metadata-only body (449 entries).
pub(crate) const METADATA_449: &str = "rw-prometheus242-metadata-449.snappy-proto.bin";

/// Labels and `(timestamp, value bits)` of one series.
pub(crate) type SeriesBits = (Vec<Label>, Vec<(i64, u64)>);

/// A comparable form of series: NaN samples (Prometheus' stale markers and empty summaries)
/// make `TimeSeries: PartialEq` useless, so values are compared by their bits.
pub(crate) fn bits(series: &[TimeSeries]) -> Vec<SeriesBits> {
    series
        .iter()
        .map(|ts| {
            (
                ts.labels.clone(),
                ts.samples
                    .iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}
