//! Validation of decoded series, modelled on Mimir's distributor.
//!
//! Order of work for one series, and why:
//! 1. Labels with an empty value are dropped: in Prometheus' data model an empty value is the
//!    same as an absent label (Prometheus' own receiver does the same, see
//!    `testdata/reference-answers.md` in the shared fixtures).
//! 2. Labels are sorted by name when they are not already. **Decision on unsorted labels:** Mimir's
//!    distributor sorts them before validating (its validation code has a "labels not sorted"
//!    error, but the distributor's sort runs first, so senders never see it), and Prometheus 2.42
//!    accepts unsorted labels with 204. We sort too; a sorted label set is also what the store keys
//!    series by and what the shard hash must see, so `{b,a}` and `{a,b}` are one series.
//! 3. Native histograms are refused (4xx): the store keeps float samples only, and dropping them
//!    silently would make the sender believe they were stored.
//! 4. The label checks of Mimir, in its order: metric name present, metric name charset, number of
//!    labels, then per label: name charset, name length, value length, duplicate name.
//! 5. Sample timestamps against `now + creation_grace_period` (and `now - past_grace_period` when
//!    that is set).
//!
//! Exemplars are dropped without error, as Mimir does with its default of zero stored exemplars.
//! Invalid series are removed from the request and the first error is kept; the valid rest can
//! still be written, and the caller answers 400 with the first error afterwards (Mimir's
//! behaviour for a partly invalid request).

use std::fmt::{self, Write as _};

use std::ops::Range;

use crate::labels::LabelPair;
use crate::prompb::{Sample, TimeSeries, WriteRequest};
use crate::view::{LabelRef, MetadataView, WriteRequestView};

/// The label holding the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// Per-tenant validation limits, named after Mimir's `limits` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `max_label_names_per_series` (`-validation.max-label-names-per-series`), default 30.
    /// Counts `__name__`. Raising it mostly costs index memory in the ingesters.
    pub max_label_names_per_series: usize,
    /// `max_label_name_length` (`-validation.max-length-label-name`), default 1024 bytes.
    pub max_label_name_length: usize,
    /// `max_label_value_length` (`-validation.max-length-label-value`), default 2048 bytes.
    pub max_label_value_length: usize,
    /// `creation_grace_period` (`-validation.create-grace-period`), default 10 minutes, in ms:
    /// how far ahead of the receiver's clock a sample may be (sender clock skew).
    pub creation_grace_period_ms: i64,
    /// `past_grace_period` (`-validation.past-grace-period`), default 0 = disabled, in ms. When
    /// set, samples older than `now - past_grace_period` are refused here; otherwise old samples
    /// are left to the store's "out of bounds" rule.
    pub past_grace_period_ms: i64,
    /// `max_metadata_length` (`-validation.max-metadata-length`), default 1024 bytes: the limit
    /// on a metadata entry's metric name and unit; longer help text is truncated instead.
    pub max_metadata_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Values are Mimir's documented defaults for the limits of the same names.
        Limits {
            max_label_names_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            creation_grace_period_ms: 10 * 60 * 1000,
            past_grace_period_ms: 0,
            max_metadata_length: 1024,
        }
    }
}

/// A label set printed the Prometheus way (`{__name__="up", job="x"}`) and cut to 200 bytes,
/// so an error names its series without echoing a huge request back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesText(pub String);

impl SeriesText {
    /// Formats `labels` (in the order given).
    pub fn new<L: LabelPair>(labels: &[L]) -> Self {
        const MAX: usize = 200;
        let mut s = String::from("{");
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "{}={:?}", l.name(), l.value());
            if s.len() > MAX {
                break;
            }
        }
        s.push('}');
        if s.len() > MAX {
            let mut cut = MAX;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        SeriesText(s)
    }
}

impl fmt::Display for SeriesText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a series or metadata entry was refused. Every variant is bad input (HTTP 400); the
/// offending series was removed from the request, nothing else was changed. The text names the
/// series and ends with Mimir's error id, so operators can look the rule up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// No `__name__` label (after dropping empty values).
    #[error(
        "received a series without a metric name, series: '{series}' (err-mimir-missing-metric-name)"
    )]
    MissingMetricName {
        /// The series.
        series: SeriesText,
    },
    /// `__name__` does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error(
        "received a series with invalid metric name: {name:?}, series: '{series}' (err-mimir-metric-name-invalid)"
    )]
    InvalidMetricName {
        /// The metric name.
        name: String,
        /// The series.
        series: SeriesText,
    },
    /// More labels than `max_label_names_per_series`.
    #[error(
        "received a series whose number of labels exceeds the limit (actual: {actual}, limit: {limit}) series: '{series}' (err-mimir-max-label-names-per-series)"
    )]
    TooManyLabels {
        /// Labels in the series.
        actual: usize,
        /// The limit.
        limit: usize,
        /// The series.
        series: SeriesText,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error(
        "received a series with an invalid label: {label:?} series: '{series}' (err-mimir-label-invalid)"
    )]
    InvalidLabelName {
        /// The label name.
        label: String,
        /// The series.
        series: SeriesText,
    },
    /// A label name longer than `max_label_name_length`.
    #[error(
        "received a series whose label name length exceeds the limit ({length} > {limit}), label: {label:?} series: '{series}' (err-mimir-label-name-too-long)"
    )]
    LabelNameTooLong {
        /// The label name, cut to 200 bytes.
        label: String,
        /// Its length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
        /// The series.
        series: SeriesText,
    },
    /// A label value longer than `max_label_value_length`.
    #[error(
        "received a series whose label value length exceeds the limit ({length} > {limit}), label: {label:?} series: '{series}' (err-mimir-label-value-too-long)"
    )]
    LabelValueTooLong {
        /// The label name.
        label: String,
        /// The value's length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
        /// The series.
        series: SeriesText,
    },
    /// Two labels with the same name.
    #[error(
        "received a series with duplicate label name, label: {label:?} series: '{series}' (err-mimir-duplicate-label-names)"
    )]
    DuplicateLabelName {
        /// The repeated name.
        label: String,
        /// The series.
        series: SeriesText,
    },
    /// A sample newer than `now + creation_grace_period`.
    #[error(
        "received a sample whose timestamp is too far in the future, timestamp: {timestamp} series: '{series}' (err-mimir-too-far-in-future)"
    )]
    TooFarInFuture {
        /// The sample's timestamp, ms.
        timestamp: i64,
        /// The series.
        series: SeriesText,
    },
    /// A sample older than `now - past_grace_period` (when that limit is set).
    #[error(
        "received a sample whose timestamp is too far in the past, timestamp: {timestamp} series: '{series}' (err-mimir-too-far-in-past)"
    )]
    TooFarInPast {
        /// The sample's timestamp, ms.
        timestamp: i64,
        /// The series.
        series: SeriesText,
    },
    /// The series carries native histogram samples, which ringkit does not store.
    #[error(
        "received {count} native histogram sample(s), which this server does not store (float samples only), series: '{series}'"
    )]
    NativeHistogramsUnsupported {
        /// Number of histogram samples.
        count: usize,
        /// The series.
        series: SeriesText,
    },
    /// A metadata entry without a metric family name.
    #[error(
        "received a metric metadata with no metric name (err-mimir-metadata-missing-metric-name)"
    )]
    MetadataMissingMetricName,
    /// A metadata entry whose metric name or unit is longer than `max_metadata_length`.
    #[error(
        "received a metric metadata whose {what} length exceeds the limit ({length} > {limit}), metric name: {metric:?} (err-mimir-metric-{what}-too-long)"
    )]
    MetadataTooLong {
        /// `name` or `unit`.
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
        /// The metric family name, cut to 200 bytes.
        metric: String,
    },
}

impl ValidationError {
    /// The HTTP status to answer with: always 400.
    pub fn http_status(&self) -> u16 {
        400
    }
}

/// Whether `name` is a valid metric name in Prometheus' legacy charset `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// Whether `name` is a valid label name in Prometheus' legacy charset `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Normalises and checks one series in place (see the module doc for the steps). On success the
/// labels are sorted by name, free of empty values, and valid; exemplars are gone.
pub fn validate_series(
    limits: &Limits,
    now_ms: i64,
    series: &mut TimeSeries,
) -> Result<(), ValidationError> {
    normalize(&mut series.labels);
    series.exemplars.clear();
    check_series(
        limits,
        now_ms,
        &series.labels,
        series.histograms.len(),
        &series.samples,
    )
}

/// Steps 1 and 2 of the module doc: empty values dropped, sorted by name (stable, so
/// duplicate names stay adjacent for the check). Returns whether anything changed.
fn normalize<L: LabelPair>(labels: &mut Vec<L>) -> bool {
    let before = labels.len();
    labels.retain(|l| !l.value().is_empty());
    let mut changed = labels.len() != before;
    if !labels.is_sorted_by(|a, b| a.name() <= b.name()) {
        labels.sort_by(|a, b| a.name().cmp(b.name()));
        changed = true;
    }
    changed
}

/// Steps 3 to 5 of the module doc on normalised labels.
fn check_series<L: LabelPair>(
    limits: &Limits,
    now_ms: i64,
    labels: &[L],
    histograms: usize,
    samples: &[Sample],
) -> Result<(), ValidationError> {
    let text = || SeriesText::new(labels);

    if histograms > 0 {
        return Err(ValidationError::NativeHistogramsUnsupported {
            count: histograms,
            series: text(),
        });
    }

    let Some(name) = labels.iter().find(|l| l.name() == METRIC_NAME_LABEL) else {
        return Err(ValidationError::MissingMetricName { series: text() });
    };
    if !is_valid_metric_name(name.value()) {
        return Err(ValidationError::InvalidMetricName {
            name: cut(name.value()),
            series: text(),
        });
    }
    if labels.len() > limits.max_label_names_per_series {
        return Err(ValidationError::TooManyLabels {
            actual: labels.len(),
            limit: limits.max_label_names_per_series,
            series: text(),
        });
    }
    let mut previous: Option<&str> = None;
    for l in labels {
        let (name, value) = (l.name(), l.value());
        if !is_valid_label_name(name) {
            return Err(ValidationError::InvalidLabelName {
                label: cut(name),
                series: text(),
            });
        }
        if name.len() > limits.max_label_name_length {
            return Err(ValidationError::LabelNameTooLong {
                label: cut(name),
                length: name.len(),
                limit: limits.max_label_name_length,
                series: text(),
            });
        }
        if value.len() > limits.max_label_value_length {
            return Err(ValidationError::LabelValueTooLong {
                label: cut(name),
                length: value.len(),
                limit: limits.max_label_value_length,
                series: text(),
            });
        }
        if previous == Some(name) {
            return Err(ValidationError::DuplicateLabelName {
                label: cut(name),
                series: text(),
            });
        }
        previous = Some(name);
    }

    let newest_allowed = now_ms.saturating_add(limits.creation_grace_period_ms);
    let oldest_allowed = if limits.past_grace_period_ms > 0 {
        now_ms.saturating_sub(limits.past_grace_period_ms)
    } else {
        i64::MIN
    };
    for s in samples {
        if s.timestamp > newest_allowed {
            return Err(ValidationError::TooFarInFuture {
                timestamp: s.timestamp,
                series: text(),
            });
        }
        if s.timestamp < oldest_allowed {
            return Err(ValidationError::TooFarInPast {
                timestamp: s.timestamp,
                series: text(),
            });
        }
    }
    Ok(())
}

/// The metadata rules of [`validate_request`]: `Some(error)` when the entry is refused.
fn check_metadata(limits: &Limits, name: &str, unit: &str) -> Option<ValidationError> {
    if name.is_empty() {
        Some(ValidationError::MetadataMissingMetricName)
    } else if name.len() > limits.max_metadata_length {
        Some(ValidationError::MetadataTooLong {
            what: "name",
            length: name.len(),
            limit: limits.max_metadata_length,
            metric: cut(name),
        })
    } else if unit.len() > limits.max_metadata_length {
        Some(ValidationError::MetadataTooLong {
            what: "unit",
            length: unit.len(),
            limit: limits.max_metadata_length,
            metric: cut(name),
        })
    } else {
        None
    }
}

/// What [`validate_request`] did to a request.
#[derive(Debug, Default, PartialEq)]
pub struct ValidationReport {
    /// The first refusal, to answer with (400) once the valid rest has been written.
    pub first_error: Option<ValidationError>,
    /// Series removed from the request.
    pub rejected_series: usize,
    /// Float samples in those series.
    pub rejected_samples: usize,
    /// Metadata entries removed from the request.
    pub rejected_metadata: usize,
}

/// Validates a whole request in place: invalid series and metadata are removed, valid ones are
/// normalised (see [`validate_series`]), long metadata help is truncated.
pub fn validate_request(limits: &Limits, now_ms: i64, req: &mut WriteRequest) -> ValidationReport {
    let mut report = ValidationReport::default();
    req.timeseries
        .retain_mut(|ts| match validate_series(limits, now_ms, ts) {
            Ok(()) => true,
            Err(e) => {
                report.rejected_series += 1;
                report.rejected_samples += ts.samples.len();
                report.first_error.get_or_insert(e);
                false
            }
        });
    req.metadata.retain_mut(|m| {
        let err = check_metadata(limits, &m.metric_family_name, &m.unit);
        match err {
            Some(e) => {
                report.rejected_metadata += 1;
                report.first_error.get_or_insert(e);
                false
            }
            None => {
                if m.help.len() > limits.max_metadata_length {
                    let mut end = limits.max_metadata_length;
                    while !m.help.is_char_boundary(end) {
                        end -= 1;
                    }
                    m.help.truncate(end);
                }
                true
            }
        }
    });
    report
}

/// One valid series of a [`WriteRequestView`], as [`validate_view`] left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidEntry {
    /// Its index in [`WriteRequestView::series`].
    pub series: usize,
    /// Its normalised labels in [`ValidSeries::labels`].
    pub labels: Range<usize>,
    /// Whether validation changed nothing: labels already sorted, none empty, no exemplars.
    /// The series' encoded bytes ([`crate::view::SeriesView::raw`]) then stand for the
    /// validated series as they are.
    pub unchanged: bool,
}

/// The valid series of a view, normalised (the borrowed form of a validated `WriteRequest`).
/// Reusable: [`validate_view`] clears it first and keeps its capacity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidSeries<'a> {
    /// Every valid series' labels, one after the other.
    pub labels: Vec<LabelRef<'a>>,
    /// The valid series, in request order.
    pub series: Vec<ValidEntry>,
    scratch: Vec<LabelRef<'a>>,
}

impl<'a> ValidSeries<'a> {
    /// The normalised labels of `e`.
    pub fn labels_of(&self, e: &ValidEntry) -> &[LabelRef<'a>] {
        &self.labels[e.labels.clone()]
    }
}

/// [`validate_request`] on a view: the same rules, errors and report, without copying a
/// label. Valid series go to `out` with their labels normalised; the view is not changed.
pub fn validate_view<'a>(
    limits: &Limits,
    now_ms: i64,
    view: &WriteRequestView<'a>,
    out: &mut ValidSeries<'a>,
) -> ValidationReport {
    let mut report = ValidationReport::default();
    out.labels.clear();
    out.series.clear();
    let mut scratch = std::mem::take(&mut out.scratch);
    for (i, s) in view.series.iter().enumerate() {
        scratch.clear();
        scratch.extend_from_slice(view.labels_of(s));
        let changed = normalize(&mut scratch);
        let samples = view.samples_of(s);
        match check_series(limits, now_ms, &scratch, s.histograms.len(), samples) {
            Ok(()) => {
                let start = out.labels.len();
                out.labels.extend_from_slice(&scratch);
                out.series.push(ValidEntry {
                    series: i,
                    labels: start..out.labels.len(),
                    unchanged: !changed && s.exemplars.is_empty(),
                });
            }
            Err(e) => {
                report.rejected_series += 1;
                report.rejected_samples += samples.len();
                report.first_error.get_or_insert(e);
            }
        }
    }
    out.scratch = scratch;
    for m in &view.metadata {
        let MetadataView {
            metric_family_name,
            unit,
            ..
        } = m;
        if let Some(e) = check_metadata(limits, metric_family_name, unit) {
            report.rejected_metadata += 1;
            report.first_error.get_or_insert(e);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Histogram, Label, MetricMetadata, Sample};

    const NOW: i64 = 1_795_546_100_000;

    fn series(labels: &[(&str, &str)]) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
            samples: vec![Sample {
                value: 1.0,
                timestamp: NOW,
            }],
            ..Default::default()
        }
    }

    fn check(labels: &[(&str, &str)]) -> Result<TimeSeries, ValidationError> {
        let mut ts = series(labels);
        validate_series(&Limits::default(), NOW, &mut ts).map(|()| ts)
    }

    #[test]
    fn defaults_are_mimirs() {
        let l = Limits::default();
        assert_eq!(l.max_label_names_per_series, 30);
        assert_eq!(l.max_label_name_length, 1024);
        assert_eq!(l.max_label_value_length, 2048);
        assert_eq!(l.creation_grace_period_ms, 600_000);
        assert_eq!(l.past_grace_period_ms, 0);
    }

    #[test]
    fn unsorted_labels_are_sorted_and_accepted() {
        let ts = check(&[("job", "a"), ("__name__", "up")]).unwrap();
        let names: Vec<_> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job"]);
    }

    #[test]
    fn empty_label_values_are_dropped_not_refused() {
        let ts = check(&[("__name__", "up"), ("a", "")]).unwrap();
        assert_eq!(ts.labels, vec![Label::new("__name__", "up")]);
    }

    #[test]
    fn a_series_without_metric_name_is_refused_and_named() {
        let err = check(&[("job", "x"), ("x", "y")]).unwrap_err();
        assert!(matches!(err, ValidationError::MissingMetricName { .. }));
        assert!(err.to_string().contains(r#"{job="x", x="y"}"#), "{err}");
    }

    #[test]
    fn an_empty_metric_name_counts_as_missing() {
        let err = check(&[("__name__", ""), ("job", "x")]).unwrap_err();
        assert!(matches!(err, ValidationError::MissingMetricName { .. }));
    }

    #[test]
    fn metric_names_may_contain_colons_but_label_names_may_not() {
        assert!(check(&[("__name__", "job:rate5m"), ("a_1", "x")]).is_ok());
        assert!(matches!(
            check(&[("__name__", "1up")]).unwrap_err(),
            ValidationError::InvalidMetricName { .. }
        ));
        assert!(matches!(
            check(&[("__name__", "up"), ("a:b", "x")]).unwrap_err(),
            ValidationError::InvalidLabelName { .. }
        ));
        assert!(matches!(
            check(&[("__name__", "up"), ("0a", "x")]).unwrap_err(),
            ValidationError::InvalidLabelName { .. }
        ));
        assert!(matches!(
            check(&[("__name__", "up"), ("é", "x")]).unwrap_err(),
            ValidationError::InvalidLabelName { .. }
        ));
    }

    #[test]
    fn duplicate_label_names_are_refused_even_when_sent_apart() {
        let err = check(&[("a", "1"), ("__name__", "dup"), ("a", "2")]).unwrap_err();
        assert!(matches!(&err, ValidationError::DuplicateLabelName { label, .. } if label == "a"));
        assert!(err.to_string().contains("duplicate label name"), "{err}");
    }

    #[test]
    fn the_label_count_limit_includes_the_metric_name() {
        let names: Vec<String> = (0..29).map(|i| format!("l{i:02}")).collect();
        let mut labels = vec![("__name__", "up")];
        labels.extend(names.iter().map(|n| (n.as_str(), "v")));
        assert!(check(&labels).is_ok());
        labels.push(("zz", "v"));
        let err = check(&labels).unwrap_err();
        assert!(matches!(
            err,
            ValidationError::TooManyLabels {
                actual: 31,
                limit: 30,
                ..
            }
        ));
    }

    #[test]
    fn label_name_and_value_lengths_are_limited_at_the_boundary() {
        let name = "n".repeat(1024);
        let value = "v".repeat(2048);
        assert!(check(&[("__name__", "up"), (&name, &value)]).is_ok());
        let long_name = "n".repeat(1025);
        assert!(matches!(
            check(&[("__name__", "up"), (&long_name, "v")]).unwrap_err(),
            ValidationError::LabelNameTooLong { length: 1025, .. }
        ));
        let long_value = "v".repeat(2049);
        assert!(matches!(
            check(&[("__name__", "up"), ("a", &long_value)]).unwrap_err(),
            ValidationError::LabelValueTooLong { length: 2049, .. }
        ));
    }

    #[test]
    fn samples_up_to_the_creation_grace_period_ahead_are_accepted() {
        let mut ts = series(&[("__name__", "up")]);
        ts.samples[0].timestamp = NOW + 600_000;
        assert!(validate_series(&Limits::default(), NOW, &mut ts).is_ok());
        ts.samples[0].timestamp = NOW + 600_001;
        let err = validate_series(&Limits::default(), NOW, &mut ts).unwrap_err();
        assert!(matches!(err, ValidationError::TooFarInFuture { .. }));
    }

    #[test]
    fn old_samples_pass_validation_unless_a_past_grace_period_is_set() {
        let mut ts = series(&[("__name__", "up")]);
        ts.samples[0].timestamp = NOW - 86_400_000;
        assert!(validate_series(&Limits::default(), NOW, &mut ts).is_ok());
        let limits = Limits {
            past_grace_period_ms: 3_600_000,
            ..Default::default()
        };
        let err = validate_series(&limits, NOW, &mut ts).unwrap_err();
        assert!(matches!(err, ValidationError::TooFarInPast { .. }));
    }

    #[test]
    fn native_histograms_are_refused_not_dropped() {
        let mut ts = series(&[("__name__", "h")]);
        ts.histograms.push(Histogram::default());
        let err = validate_series(&Limits::default(), NOW, &mut ts).unwrap_err();
        assert!(err.to_string().contains("native histogram"), "{err}");
        assert_eq!(err.http_status(), 400);
    }

    #[test]
    fn long_series_text_is_cut_to_about_200_bytes() {
        let v = "é".repeat(300);
        let text = SeriesText::new(&[Label::new("a", v)]);
        assert!(text.0.len() <= 203 && text.0.ends_with("..."));
    }

    #[test]
    fn a_request_keeps_valid_series_and_reports_the_first_error() {
        let mut req = WriteRequest {
            timeseries: vec![
                series(&[("__name__", "ok")]),
                series(&[("job", "no-name")]),
                series(&[("__name__", "bad-name")]),
            ],
            metadata: vec![
                MetricMetadata {
                    metric_family_name: "ok".into(),
                    help: "h".repeat(2000),
                    ..Default::default()
                },
                MetricMetadata::default(),
            ],
        };
        let report = validate_request(&Limits::default(), NOW, &mut req);
        assert_eq!(req.timeseries.len(), 1);
        assert_eq!(report.rejected_series, 2);
        assert_eq!(report.rejected_samples, 2);
        assert_eq!(report.rejected_metadata, 1);
        assert!(matches!(
            report.first_error,
            Some(ValidationError::MissingMetricName { .. })
        ));
        assert_eq!(req.metadata.len(), 1);
        assert_eq!(req.metadata[0].help.len(), 1024);
    }
}
