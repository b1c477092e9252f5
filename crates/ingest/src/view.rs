//! Remote-write requests read in place: [`WriteRequestView`] borrows every label name and
//! value from the decompressed body instead of copying each into its own `String`.
//!
//! Why: decoding with prost allocates two strings per label, ~20 allocations per series for
//! node_exporter-like series, and that allocator traffic was the largest single cost of a
//! distributor's and an ingester's push path. A view holds four flat vectors per request
//! (series, labels, samples, metadata) whatever the number of series, and keeps each
//! series' encoded bytes, so a distributor can forward a series it did not change by copying
//! those bytes instead of encoding it again.
//!
//! # What is accepted
//! Exactly what prost's decoding of [`crate::prompb::WriteRequest`] accepts, with the same
//! values: the same wire-type checks per known field, UTF-8 checks of every string (metadata,
//! exemplar labels and labels), unknown fields skipped (groups included, with prost's
//! recursion limit of 100), "last one wins" for repeated scalar fields, varints of at most 10
//! bytes. `tests/view_vs_prost.rs` and the `remote_write` fuzz body check that the two agree
//! on random messages, on mutated ones and on the Prometheus 2.42 captures. Errors are found
//! here but worded by prost: [`crate::decode::decode_write_request_view`] runs prost on a
//! body this reader refused, so a 400 reads the same as before.

use std::ops::Range;

use crate::prompb::{Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

/// prost's recursion budget for nested messages and groups (`prost::RECURSION_LIMIT`).
const RECURSION_LIMIT: u32 = 100;

/// A label borrowed from the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    /// `Label.name`.
    pub name: &'a str,
    /// `Label.value`.
    pub value: &'a str,
}

impl<'a> LabelRef<'a> {
    /// The owned label (for answers and tests).
    pub fn to_label(&self) -> Label {
        Label::new(self.name, self.value)
    }
}

/// One series of a [`WriteRequestView`]: where its parts are in the view's flat vectors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesView<'a> {
    /// The encoded `TimeSeries` message (its fields, without the key and length in front).
    pub raw: &'a [u8],
    /// Its labels in [`WriteRequestView::labels`], in the order sent.
    pub labels: Range<usize>,
    /// Its samples in [`WriteRequestView::samples`].
    pub samples: Range<usize>,
    /// Its exemplars in [`WriteRequestView::exemplars`].
    pub exemplars: Range<usize>,
    /// Its native histograms in [`WriteRequestView::histograms`].
    pub histograms: Range<usize>,
}

/// An exemplar borrowed from the body; its labels are in [`WriteRequestView::exemplar_labels`].
#[derive(Clone, Debug, PartialEq)]
pub struct ExemplarView {
    /// Its labels in [`WriteRequestView::exemplar_labels`].
    pub labels: Range<usize>,
    /// `Exemplar.value`.
    pub value: f64,
    /// `Exemplar.timestamp`.
    pub timestamp: i64,
}

/// A metadata entry borrowed from the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataView<'a> {
    /// `MetricMetadata.type` (any value, as prost keeps it).
    pub r#type: i32,
    /// `MetricMetadata.metric_family_name`.
    pub metric_family_name: &'a str,
    /// `MetricMetadata.help`.
    pub help: &'a str,
    /// `MetricMetadata.unit`.
    pub unit: &'a str,
}

/// A `prometheus.WriteRequest` read in place (see the module doc).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteRequestView<'a> {
    /// The series, in request order.
    pub series: Vec<SeriesView<'a>>,
    /// Every series' labels, one after the other.
    pub labels: Vec<LabelRef<'a>>,
    /// Every series' samples, one after the other.
    pub samples: Vec<Sample>,
    /// Every series' exemplars (rare; empty without allocating when none).
    pub exemplars: Vec<ExemplarView>,
    /// The exemplars' labels.
    pub exemplar_labels: Vec<LabelRef<'a>>,
    /// Every series' native histograms, reduced as in [`crate::prompb::Histogram`].
    pub histograms: Vec<Histogram>,
    /// The metadata entries.
    pub metadata: Vec<MetadataView<'a>>,
}

/// Why a body is not a valid `WriteRequest`. Only where and what: the text a client sees is
/// prost's (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid protobuf at byte {offset}: {what}")]
pub struct ViewError {
    /// Offset in the body where reading stopped.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over the body; offsets are kept for error reports.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, what: &'static str) -> Result<T, ViewError> {
        Err(ViewError {
            offset: self.pos,
            what,
        })
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, ViewError> {
        let rest = &self.buf[self.pos..];
        let mut value = 0u64;
        for (i, &byte) in rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte >= 0x02 {
                    return self.err("varint overflows 64 bits");
                }
                self.pos += i + 1;
                return Ok(value);
            }
        }
        self.err("invalid varint")
    }

    /// A field key: (tag, wire type), with prost's checks.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), ViewError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return self.err("invalid key value");
        }
        let wire = (key & 7) as u8;
        if wire > FIXED32 {
            return self.err("invalid wire type value");
        }
        let tag = (key as u32) >> 3;
        if tag < 1 {
            return self.err("invalid tag value: 0");
        }
        Ok((tag, wire))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], ViewError> {
        let len = self.varint()?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if len > remaining {
            return self.err("buffer underflow");
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    #[inline]
    fn string(&mut self, wire: u8) -> Result<&'a str, ViewError> {
        if wire != LEN {
            return self.err("invalid wire type for a string");
        }
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).or(Err(ViewError {
            offset: start,
            what: "invalid string value: data is not UTF-8 encoded",
        }))
    }

    #[inline]
    fn double(&mut self, wire: u8) -> Result<f64, ViewError> {
        if wire != FIXED64 {
            return self.err("invalid wire type for a double");
        }
        match self.buf.get(self.pos..self.pos + 8) {
            Some(b) => {
                self.pos += 8;
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                Ok(f64::from_le_bytes(le))
            }
            None => self.err("buffer underflow"),
        }
    }

    #[inline]
    fn int(&mut self, wire: u8) -> Result<u64, ViewError> {
        if wire != VARINT {
            return self.err("invalid wire type for a varint field");
        }
        self.varint()
    }

    /// A nested message's bytes, with prost's recursion check (`depth` is the budget of the
    /// message holding the field).
    #[inline]
    fn message(&mut self, wire: u8, depth: u32) -> Result<Reader<'a>, ViewError> {
        if wire != LEN {
            return self.err("invalid wire type for a message");
        }
        if depth == 0 {
            return self.err("recursion limit reached");
        }
        let inner = self.bytes()?;
        Ok(Reader {
            buf: &self.buf[..self.pos],
            pos: self.pos - inner.len(),
        })
    }

    /// Skips an unknown field as prost's `skip_field` does.
    fn skip(&mut self, wire: u8, tag: u32, depth: u32) -> Result<(), ViewError> {
        if depth == 0 {
            return self.err("recursion limit reached");
        }
        let len = match wire {
            VARINT => {
                self.varint()?;
                0
            }
            FIXED64 => 8,
            LEN => self.varint()?,
            START_GROUP => loop {
                let (inner_tag, inner_wire) = self.key()?;
                if inner_wire == END_GROUP {
                    if inner_tag != tag {
                        return self.err("unexpected end group tag");
                    }
                    break 0;
                }
                self.skip(inner_wire, inner_tag, depth - 1)?;
            },
            END_GROUP => return self.err("unexpected end group tag"),
            _ => 4,
        };
        if len > (self.buf.len() - self.pos) as u64 {
            return self.err("buffer underflow");
        }
        self.pos += len as usize;
        Ok(())
    }
}

impl<'a> WriteRequestView<'a> {
    /// Reads a decompressed `WriteRequest` (see the module doc for what is accepted).
    pub fn decode(body: &'a [u8]) -> Result<Self, ViewError> {
        let mut view = WriteRequestView::default();
        view.decode_into(body)?;
        Ok(view)
    }

    /// [`WriteRequestView::decode`] into this view's vectors, cleared first, so their
    /// capacity is reused.
    pub fn decode_into(&mut self, body: &'a [u8]) -> Result<(), ViewError> {
        self.series.clear();
        self.labels.clear();
        self.samples.clear();
        self.exemplars.clear();
        self.exemplar_labels.clear();
        self.histograms.clear();
        self.metadata.clear();
        let mut r = Reader { buf: body, pos: 0 };
        let depth = RECURSION_LIMIT;
        while !r.at_end() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let mut m = r.message(wire, depth)?;
                    self.time_series(&mut m, depth - 1)?;
                }
                3 => {
                    let mut m = r.message(wire, depth)?;
                    self.metadata.push(metadata(&mut m, depth - 1)?);
                }
                _ => r.skip(wire, tag, depth)?,
            }
        }
        Ok(())
    }

    fn time_series(&mut self, r: &mut Reader<'a>, depth: u32) -> Result<(), ViewError> {
        let raw = &r.buf[r.pos..];
        let labels = self.labels.len();
        let samples = self.samples.len();
        let exemplars = self.exemplars.len();
        let histograms = self.histograms.len();
        while !r.at_end() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let mut m = r.message(wire, depth)?;
                    self.labels.push(label(&mut m, depth - 1)?);
                }
                2 => {
                    let mut m = r.message(wire, depth)?;
                    self.samples.push(sample(&mut m, depth - 1)?);
                }
                3 => {
                    let mut m = r.message(wire, depth)?;
                    self.exemplar(&mut m, depth - 1)?;
                }
                4 => {
                    let mut m = r.message(wire, depth)?;
                    self.histograms.push(histogram(&mut m, depth - 1)?);
                }
                _ => r.skip(wire, tag, depth)?,
            }
        }
        self.series.push(SeriesView {
            raw,
            labels: labels..self.labels.len(),
            samples: samples..self.samples.len(),
            exemplars: exemplars..self.exemplars.len(),
            histograms: histograms..self.histograms.len(),
        });
        Ok(())
    }

    fn exemplar(&mut self, r: &mut Reader<'a>, depth: u32) -> Result<(), ViewError> {
        let start = self.exemplar_labels.len();
        let mut e = ExemplarView {
            labels: 0..0,
            value: 0.0,
            timestamp: 0,
        };
        while !r.at_end() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let mut m = r.message(wire, depth)?;
                    self.exemplar_labels.push(label(&mut m, depth - 1)?);
                }
                2 => e.value = r.double(wire)?,
                3 => e.timestamp = r.int(wire)? as i64,
                _ => r.skip(wire, tag, depth)?,
            }
        }
        e.labels = start..self.exemplar_labels.len();
        self.exemplars.push(e);
        Ok(())
    }

    /// The labels of `s`, as sent.
    pub fn labels_of(&self, s: &SeriesView<'a>) -> &[LabelRef<'a>] {
        &self.labels[s.labels.clone()]
    }

    /// The samples of `s`.
    pub fn samples_of(&self, s: &SeriesView<'a>) -> &[Sample] {
        &self.samples[s.samples.clone()]
    }

    /// The owned request prost would have decoded from the same body (tests, and callers
    /// that need owned series).
    pub fn to_owned(&self) -> WriteRequest {
        let labels = |r: &[LabelRef<'_>]| r.iter().map(LabelRef::to_label).collect();
        WriteRequest {
            timeseries: self
                .series
                .iter()
                .map(|s| TimeSeries {
                    labels: labels(&self.labels[s.labels.clone()]),
                    samples: self.samples[s.samples.clone()].to_vec(),
                    exemplars: self.exemplars[s.exemplars.clone()]
                        .iter()
                        .map(|e| Exemplar {
                            labels: labels(&self.exemplar_labels[e.labels.clone()]),
                            value: e.value,
                            timestamp: e.timestamp,
                        })
                        .collect(),
                    histograms: self.histograms[s.histograms.clone()].to_vec(),
                })
                .collect(),
            metadata: self
                .metadata
                .iter()
                .map(|m| MetricMetadata {
                    r#type: m.r#type,
                    metric_family_name: m.metric_family_name.to_owned(),
                    help: m.help.to_owned(),
                    unit: m.unit.to_owned(),
                })
                .collect(),
        }
    }
}

/// Appends the fields of a `TimeSeries` message with `labels` and `samples` to `out` (what
/// prost would write, except that every sample writes both of its fields, so a `-0.0` value
/// keeps its sign). For series validation changed; unchanged ones keep their own bytes.
pub fn encode_series<L: crate::labels::LabelPair>(
    labels: &[L],
    samples: &[Sample],
    out: &mut Vec<u8>,
) {
    use prost::encoding::{encode_varint, encoded_len_varint};
    for l in labels {
        let (name, value) = (l.name(), l.value());
        let len = 1
            + encoded_len_varint(name.len() as u64)
            + name.len()
            + 1
            + encoded_len_varint(value.len() as u64)
            + value.len();
        out.push(0x0a);
        encode_varint(len as u64, out);
        out.push(0x0a);
        encode_varint(name.len() as u64, out);
        out.extend_from_slice(name.as_bytes());
        out.push(0x12);
        encode_varint(value.len() as u64, out);
        out.extend_from_slice(value.as_bytes());
    }
    for s in samples {
        let ts = s.timestamp as u64;
        out.push(0x12);
        encode_varint((1 + 8 + 1 + encoded_len_varint(ts)) as u64, out);
        out.push(0x09);
        out.extend_from_slice(&s.value.to_le_bytes());
        out.push(0x10);
        encode_varint(ts, out);
    }
}

fn label<'a>(r: &mut Reader<'a>, depth: u32) -> Result<LabelRef<'a>, ViewError> {
    let mut l = LabelRef::default();
    while !r.at_end() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => l.name = r.string(wire)?,
            2 => l.value = r.string(wire)?,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(l)
}

fn sample(r: &mut Reader<'_>, depth: u32) -> Result<Sample, ViewError> {
    let mut s = Sample {
        value: 0.0,
        timestamp: 0,
    };
    while !r.at_end() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => s.value = r.double(wire)?,
            2 => s.timestamp = r.int(wire)? as i64,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(s)
}

fn histogram(r: &mut Reader<'_>, depth: u32) -> Result<Histogram, ViewError> {
    let mut h = Histogram::default();
    while !r.at_end() {
        let (tag, wire) = r.key()?;
        match tag {
            3 => h.sum = r.double(wire)?,
            4 => {
                // sint32: the low 32 bits, zigzag-decoded.
                let v = r.int(wire)? as u32;
                h.schema = ((v >> 1) as i32) ^ (-((v & 1) as i32));
            }
            15 => h.timestamp = r.int(wire)? as i64,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(h)
}

fn metadata<'a>(r: &mut Reader<'a>, depth: u32) -> Result<MetadataView<'a>, ViewError> {
    let mut m = MetadataView::default();
    while !r.at_end() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => m.r#type = r.int(wire)? as i32,
            2 => m.metric_family_name = r.string(wire)?,
            4 => m.help = r.string(wire)?,
            5 => m.unit = r.string(wire)?,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn req() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up"), Label::new("job", "ünï")],
                samples: vec![
                    Sample {
                        value: 1.5,
                        timestamp: -3,
                    },
                    Sample {
                        value: f64::NAN,
                        timestamp: 1 << 40,
                    },
                ],
                exemplars: vec![Exemplar {
                    labels: vec![Label::new("trace_id", "abc")],
                    value: 2.0,
                    timestamp: 9,
                }],
                histograms: vec![Histogram {
                    sum: 3.0,
                    schema: -4,
                    timestamp: 5,
                }],
            }],
            metadata: vec![MetricMetadata {
                r#type: 99,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: "u".into(),
            }],
        }
    }

    #[test]
    fn a_request_reads_back_as_prost_decodes_it_and_keeps_each_series_bytes() {
        let want = req();
        let bytes = want.encode_to_vec();
        let view = WriteRequestView::decode(&bytes).unwrap();
        let got = view.to_owned();
        assert_eq!(got.encode_to_vec(), bytes, "NaN compared by bits");
        assert_eq!(view.series[0].raw, want.timeseries[0].encode_to_vec());
        assert_eq!(view.labels_of(&view.series[0])[1].value, "ünï");
    }

    #[test]
    fn an_encoded_series_decodes_to_its_labels_and_samples() {
        let labels = [
            Label::new("__name__", "up"),
            Label::new("j", "x".repeat(300)),
        ];
        let samples = [
            Sample {
                value: -0.0,
                timestamp: -1,
            },
            Sample {
                value: 2.5,
                timestamp: 0,
            },
        ];
        let mut out = Vec::new();
        encode_series(&labels, &samples, &mut out);
        let ts = TimeSeries::decode(&out[..]).unwrap();
        assert_eq!(ts.labels, labels);
        assert_eq!(ts.samples, samples);
        assert!(ts.samples[0].value.is_sign_negative());
    }

    #[test]
    fn what_prost_refuses_is_refused() {
        // Field 1 as a varint; a label that is not UTF-8; a truncated sample; an end group
        // without start; a group nested past prost's recursion limit.
        let mut deep = Vec::new();
        for _ in 0..101 {
            deep.push((5 << 3) | START_GROUP);
        }
        for _ in 0..101 {
            deep.push((5 << 3) | END_GROUP);
        }
        let cases: Vec<Vec<u8>> = vec![
            vec![0x08, 0x01],
            vec![0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe],
            vec![0x0a, 0x04, 0x12, 0x02, 0x09, 0x00],
            vec![(7 << 3) | END_GROUP],
            deep,
        ];
        for c in cases {
            assert!(WriteRequest::decode(&c[..]).is_err(), "{c:?}");
            assert!(WriteRequestView::decode(&c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn groups_within_the_limit_are_skipped_like_prost() {
        let mut ok = Vec::new();
        for _ in 0..99 {
            ok.push((5 << 3) | START_GROUP);
        }
        for _ in 0..99 {
            ok.push((5 << 3) | END_GROUP);
        }
        assert!(WriteRequest::decode(&ok[..]).is_ok());
        assert!(WriteRequestView::decode(&ok).is_ok());
    }
}
