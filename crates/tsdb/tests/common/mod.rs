//! Helpers shared by the integration tests: the promtool-made block in testdata and the
//! OpenMetrics text it was made from.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use ringkit_tsdb::{Label, labels_from_pairs};

/// `testdata/promtool-block`: made by Debian's promtool 2.42 with
/// `promtool tsdb create-blocks-from openmetrics input.om out`.
pub fn promtool_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/promtool-block")
}

/// The block directory inside [`promtool_dir`].
pub fn promtool_block() -> PathBuf {
    promtool_dir().join("01M956MN3WX0QF9DW7XZZ0A3PX")
}

/// Parses `name{a="b",...}` into sorted labels (no escapes in our test data).
pub fn parse_series(text: &str) -> Vec<Label> {
    let (name, rest) = text.split_once('{').unwrap_or((text, "}"));
    let mut pairs = vec![("__name__".to_string(), name.to_string())];
    let inner = rest.trim_end_matches('}');
    for part in inner.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap();
        pairs.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    labels_from_pairs(pairs)
}

/// The samples of `input.om` per series, timestamps in ms.
pub fn input_samples() -> BTreeMap<Vec<Label>, Vec<(i64, f64)>> {
    let text = std::fs::read_to_string(promtool_dir().join("input.om")).unwrap();
    let mut out: BTreeMap<Vec<Label>, Vec<(i64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.rsplitn(3, ' ');
        let ts = parts.next().unwrap();
        let value = parts.next().unwrap();
        let series = parts.next().unwrap();
        let (secs, ms) = ts.split_once('.').unwrap();
        let t = secs.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap();
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other.parse().unwrap(),
        };
        out.entry(parse_series(series)).or_default().push((t, v));
    }
    out
}

/// Equal values, with every NaN equal to every NaN (promtool stores Go's NaN payload).
pub fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Asserts two sample lists are equal (NaN-aware).
pub fn assert_samples_eq(want: &[(i64, f64)], got: &[(i64, f64)], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: sample count");
    for (w, g) in want.iter().zip(got) {
        assert_eq!(w.0, g.0, "{what}: timestamp");
        assert!(
            same_value(w.1, g.1),
            "{what}: at t={} want {} got {}",
            w.0,
            w.1,
            g.1
        );
    }
}
