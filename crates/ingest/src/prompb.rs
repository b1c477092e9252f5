//! Prometheus remote-write 1.0 and remote-read messages, declared by hand with `prost` derives.
//!
//! Why by hand: the node only needs these few messages, and deriving them keeps the crate free of
//! a build script and of `protoc`. Field numbers and enum values are the wire facts of
//! Prometheus' `prompb/types.proto` and `prompb/remote.proto` (remote write 1.0); names are ours
//! where Rust style differs. Fields we do not model (gogoproto options, chunked read responses)
//! are skipped by prost like any unknown field.
//!
//! Native histograms are declared only far enough to notice them (`TimeSeries::histograms`): the
//! store keeps float samples only, so validation rejects them with a 4xx instead of dropping them
//! silently (see [`crate::validate`]).

/// A remote-write request: series with their samples, plus optional metric metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Field 3 (field 2 is reserved upstream).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// One series: its labels and what was sampled for it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Field 1. Senders should sort these by name; receivers must not rely on it.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Field 2.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Field 3.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Field 4: native histograms, decoded only enough to reject them.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// A label pair. `Eq`, `Hash` and `Ord` (by name, then value) let a sorted label list key the
/// series store directly.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Label {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Label {
    /// Builds a label from anything string-like; a convenience for tests and callers.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A float sample.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// Field 1 (double).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Field 2 (int64): milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// An exemplar attached to a series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Field 2.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Field 3: milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// A native histogram, reduced to the fields that identify it. The bucket fields (1, 2 and 6..14)
/// are skipped on decode; the presence of the message is what matters to us.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Field 3.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Field 4: resolution schema.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Field 15: milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// Metadata of a metric family (type, help, unit).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// Field 1, a [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Field 4.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Field 5.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `MetricMetadata.MetricType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Type not given.
    Unknown = 0,
    /// Monotonic counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Classic histogram (`_bucket`, `_sum`, `_count` series).
    Histogram = 3,
    /// Gauge histogram.
    Gaugehistogram = 4,
    /// Summary (quantile series).
    Summary = 5,
    /// Info metric.
    Info = 6,
    /// State set.
    Stateset = 7,
}

/// A remote-read request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Field 2, [`ResponseType`] values the client accepts; empty means samples only.
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `ReadRequest.ResponseType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// A snappy-compressed [`ReadResponse`].
    Samples = 0,
    /// Streamed XOR chunks (not served by ringkit).
    StreamedXorChunks = 1,
}

/// One query of a remote-read request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    /// Field 1: inclusive start, ms.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// Field 2: inclusive end, ms.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Field 3.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// Field 4.
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// A label matcher of a query.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    /// Field 1, a [`MatcherType`].
    #[prost(enumeration = "MatcherType", tag = "1")]
    pub r#type: i32,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Field 3.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `LabelMatcher.Type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatcherType {
    /// `=`
    Eq = 0,
    /// `!=`
    Neq = 1,
    /// `=~`
    Re = 2,
    /// `!~`
    Nre = 3,
}

/// Hints a querier may pass along; ringkit ignores them but keeps them on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    /// Field 1.
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub func: String,
    /// Field 3.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// Field 4.
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    /// Field 5.
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    /// Field 6.
    #[prost(bool, tag = "6")]
    pub by: bool,
    /// Field 7.
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// A remote-read response (samples form): one result per query, in query order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// The series answering one query.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn sample_encodes_value_as_field_1_double_and_timestamp_as_field_2_varint() {
        let bytes = Sample {
            value: 1.0,
            timestamp: 5,
        }
        .encode_to_vec();
        let mut want = vec![0x09];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0x05]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn write_request_keeps_metadata_on_field_3() {
        let req = WriteRequest {
            timeseries: vec![],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Counter as i32,
                metric_family_name: "up".into(),
                help: String::new(),
                unit: String::new(),
            }],
        };
        let bytes = req.encode_to_vec();
        assert_eq!(bytes[0], (3 << 3) | 2);
        assert_eq!(WriteRequest::decode(&bytes[..]).unwrap(), req);
    }

    #[test]
    fn histogram_on_field_4_is_seen_even_with_unknown_bucket_fields() {
        // TimeSeries{histograms: [Histogram{count_int(1)=3, schema(4)=zigzag(1), timestamp(15)=7}]}
        let hist = [0x08, 0x03, 0x20, 0x02, 0x78, 0x07];
        let mut ts = vec![(4 << 3) | 2, hist.len() as u8];
        ts.extend_from_slice(&hist);
        let decoded = TimeSeries::decode(&ts[..]).unwrap();
        assert_eq!(decoded.histograms.len(), 1);
        assert_eq!(decoded.histograms[0].schema, 1);
        assert_eq!(decoded.histograms[0].timestamp, 7);
    }

    #[test]
    fn label_matcher_types_have_the_wire_values_of_prometheus() {
        assert_eq!(MatcherType::Eq as i32, 0);
        assert_eq!(MatcherType::Neq as i32, 1);
        assert_eq!(MatcherType::Re as i32, 2);
        assert_eq!(MatcherType::Nre as i32, 3);
    }
}
