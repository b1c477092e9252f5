//! The in-place reader (`view`) against prost: same accepted bodies, same values, and the
//! same validation answers, on random requests, on mutated encodings of them and on the
//! two bodies Prometheus 2.42 sent.

mod common;

use common::{METADATA_449, SAMPLES_500, fixture};
use proptest::prelude::*;
use prost::Message;
use ringkit_ingest::decode::{DecodeLimits, decode_write_request_view, decompress};
use ringkit_ingest::hash::series_key;
use ringkit_ingest::prompb::{
    Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};
use ringkit_ingest::validate::{Limits, ValidSeries, validate_request, validate_view};
use ringkit_ingest::view::WriteRequestView;

const NOW: i64 = 1_795_546_102_344;

/// Both readers on `bytes`: they agree on whether it decodes, and on what.
fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let prost = WriteRequest::decode(bytes);
    let view = WriteRequestView::decode(bytes);
    prop_assert_eq!(
        prost.is_ok(),
        view.is_ok(),
        "prost {:?} view {:?}",
        prost,
        view
    );
    if let (Ok(p), Ok(v)) = (prost, view) {
        // Compared through their encodings, so NaN values compare by bits.
        prop_assert_eq!(v.to_owned().encode_to_vec(), p.encode_to_vec());
        for s in &v.series {
            let alone = TimeSeries::decode(s.raw).expect("a series' bytes decode alone");
            let i = v.series.iter().position(|x| std::ptr::eq(x, s)).unwrap();
            prop_assert_eq!(alone.encode_to_vec(), p.timeseries[i].encode_to_vec());
        }
        same_validation(&p, &v)?;
    }
    Ok(())
}

/// `validate_view` answers as `validate_request` does, series for series.
fn same_validation(p: &WriteRequest, v: &WriteRequestView<'_>) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let mut owned = p.clone();
    let want = validate_request(&limits, NOW, &mut owned);
    let mut valid = ValidSeries::default();
    let got = validate_view(&limits, NOW, v, &mut valid);
    prop_assert_eq!(&got.first_error, &want.first_error);
    prop_assert_eq!(got.rejected_series, want.rejected_series);
    prop_assert_eq!(got.rejected_samples, want.rejected_samples);
    prop_assert_eq!(got.rejected_metadata, want.rejected_metadata);
    prop_assert_eq!(valid.series.len(), owned.timeseries.len());
    for (e, ts) in valid.series.iter().zip(&owned.timeseries) {
        let labels: Vec<Label> = valid.labels_of(e).iter().map(|l| l.to_label()).collect();
        prop_assert_eq!(&labels, &ts.labels);
        prop_assert_eq!(
            series_key("t", valid.labels_of(e)),
            series_key("t", &ts.labels)
        );
        let samples = v.samples_of(&v.series[e.series]);
        prop_assert_eq!(
            samples
                .iter()
                .map(|s| (s.timestamp, s.value.to_bits()))
                .collect::<Vec<_>>(),
            ts.samples
                .iter()
                .map(|s| (s.timestamp, s.value.to_bits()))
                .collect::<Vec<_>>()
        );
        if e.unchanged {
            // Forwarding the series' bytes as they are sends what validation left.
            let raw = TimeSeries::decode(v.series[e.series].raw).unwrap();
            prop_assert_eq!(raw.encode_to_vec(), ts.encode_to_vec());
        }
    }
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("__name__".to_owned()),
        "[a-c_]{1,3}",
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        ".{0,6}",
    ]
}

fn label() -> impl Strategy<Value = Label> {
    (text(), text()).prop_map(|(name, value)| Label { name, value })
}

fn sample() -> impl Strategy<Value = Sample> {
    (any::<f64>(), prop_oneof![Just(NOW), any::<i64>()])
        .prop_map(|(value, timestamp)| Sample { value, timestamp })
}

fn series() -> impl Strategy<Value = TimeSeries> {
    (
        prop::collection::vec(label(), 0..6),
        prop::collection::vec(sample(), 0..3),
        prop::collection::vec(
            (
                prop::collection::vec(label(), 0..2),
                any::<f64>(),
                any::<i64>(),
            )
                .prop_map(|(labels, value, timestamp)| Exemplar {
                    labels,
                    value,
                    timestamp,
                }),
            0..2,
        ),
        prop::collection::vec(
            (any::<f64>(), any::<i32>(), any::<i64>()).prop_map(|(sum, schema, timestamp)| {
                Histogram {
                    sum,
                    schema,
                    timestamp,
                }
            }),
            0..2,
        ),
    )
        .prop_map(|(labels, samples, exemplars, histograms)| TimeSeries {
            labels,
            samples,
            exemplars,
            histograms,
        })
}

fn request() -> impl Strategy<Value = WriteRequest> {
    (
        prop::collection::vec(series(), 0..5),
        prop::collection::vec(
            (any::<i32>(), text(), text(), text()).prop_map(|(t, name, help, unit)| {
                MetricMetadata {
                    r#type: t,
                    metric_family_name: name,
                    help,
                    unit,
                }
            }),
            0..2,
        ),
    )
        .prop_map(|(timeseries, metadata)| WriteRequest {
            timeseries,
            metadata,
        })
}

/// An edit of an encoding: overwrite a byte, insert bytes, or cut the tail.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize),
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Set(at, b) => {
                if !bytes.is_empty() {
                    bytes[at % n] = *b;
                }
            }
            Edit::Insert(at, b) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Cut(at) => bytes.truncate(at % n),
        }
    }
    bytes
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Set(a, b)),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(a, b)| Edit::Insert(a, b)),
        1 => any::<usize>().prop_map(Edit::Cut),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_requests_read_the_same(req in request()) {
        agree(&req.encode_to_vec())?;
    }

    #[test]
    fn mutated_requests_are_accepted_or_refused_alike(
        req in request(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        agree(&apply(req.encode_to_vec(), &edits))?;
    }

    #[test]
    fn random_bytes_are_accepted_or_refused_alike(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        agree(&bytes)?;
    }
}

#[test]
fn the_prometheus_bodies_read_the_same_and_their_series_are_forwarded_as_sent() {
    for name in [SAMPLES_500, METADATA_449] {
        let raw = decompress(&fixture(name), &DecodeLimits::default()).unwrap();
        agree(&raw).unwrap();
        let view = decode_write_request_view(&raw).unwrap();
        let mut valid = ValidSeries::default();
        let report = validate_view(&Limits::default(), NOW, &view, &mut valid);
        assert_eq!(report.first_error, None, "{name}");
        assert!(valid.series.iter().all(|e| e.unchanged), "{name}");
    }
}

#[test]
fn a_refused_body_reports_prosts_error() {
    let bad = [0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
    let err = decode_write_request_view(&bad).unwrap_err();
    let prost_err = WriteRequest::decode(&bad[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("protobuf: cannot decode prometheus.WriteRequest: {prost_err}")
    );
}
