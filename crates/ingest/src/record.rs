//! WAL record payloads in the Prometheus TSDB model: a series is logged once with its
//! reference, later samples only name that reference.
//!
//! # Kinds (Prometheus' numbers where Prometheus has the kind)
//! - `1` **series**: `n:uvarint (ref:uvarint labels_len:uvarint packed_labels)*`, the labels
//!   packed as in [`crate::labels`].
//! - `2` **samples**: columns, so that snappy finds the repetition in each:
//!   `n:uvarint ref0:uvarint (ref delta:zigzag){n-1} base_t:zigzag (t code){n} (v code){n}`.
//! - `64` **chunks** (ours; checkpoints only): `n:uvarint (ref:uvarint len:uvarint xor_chunk)*`,
//!   each chunk as Prometheus' XOR encoding stores it.
//!
//! The first payload byte is the kind; bit 7 set means the rest is a snappy block (Prometheus
//! compresses WAL records with snappy too). A record is compressed only when that makes it
//! smaller.
//!
//! # Sample codes: state per segment
//! A sample is coded against the previous sample of the same series **in the same segment**
//! ([`SampleCoder`], reset at every segment start, on both the writing and the reading side):
//! the timestamp as the zigzag varint of its delta-of-delta (a series' first sample in the
//! segment: its distance to `base_t`), the value as the XOR with the previous value's bits,
//! written as one control byte (`0` = same value; else `1 + 8·leading_zero_bytes +
//! trailing_zero_bytes`) and the remaining middle bytes. At a 15 s scrape a sample costs
//! about one value byte or two before snappy squeezes the ref and time columns; Prometheus'
//! own record spends 8 bytes on every value.
//!
//! Because of that state, a segment must be read from its start and stops at the first record
//! that does not decode (the rest of it could be misread). The writer keeps the state in step
//! with what is durable: a failed append undoes the state changes it made.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::labels::{PackedLabels, get_uvarint, put_uvarint};

/// Payload kind of a series record.
pub const KIND_SERIES: u8 = 1;
/// Payload kind of a samples record.
pub const KIND_SAMPLES: u8 = 2;
/// Payload kind of a chunks record (checkpoints).
pub const KIND_CHUNKS: u8 = 64;
/// Flag bit of the kind byte: the rest of the payload is a snappy block.
const SNAPPY: u8 = 0x80;

/// A series and its reference, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSeries {
    /// The series reference, unique within a tenant's head for its lifetime.
    pub series_ref: u64,
    /// The series' labels.
    pub labels: PackedLabels,
}

/// One sample of a series named by reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample {
    /// The series reference.
    pub series_ref: u64,
    /// Timestamp, ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One XOR chunk of a series (checkpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefChunk {
    /// The series reference.
    pub series_ref: u64,
    /// The chunk, Prometheus' XOR encoding.
    pub bytes: Vec<u8>,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// New series.
    Series(Vec<RefSeries>),
    /// Samples of known series.
    Samples(Vec<RefSample>),
    /// Chunks of known series.
    Chunks(Vec<RefChunk>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Last {
    t: i64,
    dt: i64,
    v: u64,
}

/// The per-segment sample state (see the module doc). The writer and the reader each hold one
/// and reset it at every segment start.
#[derive(Default, Debug)]
pub struct SampleCoder {
    /// foldhash: three lookups per sample on a map as large as the head's series.
    last: HashMap<u64, Last, foldhash::fast::RandomState>,
    /// The writer's undo log: previous state of every reference the pending records changed.
    undo: Vec<(u64, Option<Last>)>,
}

impl SampleCoder {
    /// Forgets everything (a new segment starts).
    pub fn reset(&mut self) {
        self.last.clear();
        self.undo.clear();
    }

    /// Number of series with state (bounded by the head's series).
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no series has state.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The records encoded since the last call were written: keep their state.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The records encoded since the last [`SampleCoder::commit`] were not written: restore the
    /// state from before them.
    pub fn rollback(&mut self) {
        while let Some((r, prev)) = self.undo.pop() {
            match prev {
                Some(p) => self.last.insert(r, p),
                None => self.last.remove(&r),
            };
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

fn get_varint(b: &mut &[u8]) -> Option<i64> {
    get_uvarint(b).map(unzigzag)
}

fn put_xor(buf: &mut Vec<u8>, x: u64) {
    if x == 0 {
        buf.push(0);
        return;
    }
    let lead = (x.leading_zeros() / 8) as usize;
    let trail = (x.trailing_zeros() / 8) as usize;
    buf.push(1 + (lead as u8) * 8 + trail as u8);
    let bytes = x.to_be_bytes();
    buf.extend_from_slice(&bytes[lead..8 - trail]);
}

fn get_xor(b: &mut &[u8]) -> Option<u64> {
    let (&ctl, rest) = b.split_first()?;
    *b = rest;
    if ctl == 0 {
        return Some(0);
    }
    let c = usize::from(ctl - 1);
    let (lead, trail) = (c / 8, c % 8);
    if c >= 64 || lead + trail >= 8 {
        return None;
    }
    let n = 8 - lead - trail;
    if b.len() < n {
        return None;
    }
    let mut bytes = [0u8; 8];
    bytes[lead..8 - trail].copy_from_slice(&b[..n]);
    *b = &b[n..];
    Some(u64::from_be_bytes(bytes))
}

/// Reusable buffers for encoding records.
pub struct Encoder {
    raw: Vec<u8>,
    snappy: snap::raw::Encoder,
    compressed: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            raw: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            compressed: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// Appends the payload in `self.raw` (kind byte first) to `out`, compressed when smaller.
    fn finish(&mut self, out: &mut Vec<u8>) {
        let body = &self.raw[1..];
        self.compressed
            .resize(snap::raw::max_compress_len(body.len()), 0);
        match self.snappy.compress(body, &mut self.compressed) {
            Ok(n) if n + 1 < self.raw.len() => {
                out.push(self.raw[0] | SNAPPY);
                out.extend_from_slice(&self.compressed[..n]);
            }
            _ => out.extend_from_slice(&self.raw),
        }
    }

    /// Encodes a series record of `(ref, labels)` pairs into `out`.
    pub fn series<'a>(
        &mut self,
        series: impl ExactSizeIterator<Item = (u64, &'a PackedLabels)>,
        out: &mut Vec<u8>,
    ) {
        self.raw.clear();
        self.raw.push(KIND_SERIES);
        put_uvarint(&mut self.raw, series.len() as u64);
        for (r, labels) in series {
            put_uvarint(&mut self.raw, r);
            put_uvarint(&mut self.raw, labels.as_bytes().len() as u64);
            self.raw.extend_from_slice(labels.as_bytes());
        }
        self.finish(out);
    }

    /// Encodes a samples record into `out`, updating `coder` (undo-logged until
    /// [`SampleCoder::commit`]). `samples` must not be empty.
    pub fn samples(&mut self, samples: &[RefSample], coder: &mut SampleCoder, out: &mut Vec<u8>) {
        let Some(first) = samples.first() else {
            return;
        };
        self.raw.clear();
        self.raw.push(KIND_SAMPLES);
        put_uvarint(&mut self.raw, samples.len() as u64);
        put_uvarint(&mut self.raw, first.series_ref);
        for w in samples.windows(2) {
            put_varint(
                &mut self.raw,
                (w[1].series_ref as i64).wrapping_sub(w[0].series_ref as i64),
            );
        }
        let base = first.t;
        put_varint(&mut self.raw, base);
        // Timestamps then values; the state of a reference is updated as each column goes, so
        // the reader, decoding column by column, sees the same states.
        let mut values = Vec::with_capacity(samples.len());
        for s in samples {
            let prev = coder.last.get(&s.series_ref).copied();
            coder.undo.push((s.series_ref, prev));
            let (code, last) = match prev {
                Some(p) => {
                    let dt = s.t.wrapping_sub(p.t);
                    (dt.wrapping_sub(p.dt), Last { t: s.t, dt, v: p.v })
                }
                None => (
                    s.t.wrapping_sub(base),
                    Last {
                        t: s.t,
                        dt: 0,
                        v: 0,
                    },
                ),
            };
            put_varint(&mut self.raw, code);
            coder.last.insert(s.series_ref, last);
            values.push(s.v.to_bits());
        }
        for (s, bits) in samples.iter().zip(values) {
            // The entry exists: the timestamp pass inserted it.
            if let Some(last) = coder.last.get_mut(&s.series_ref) {
                put_xor(&mut self.raw, bits ^ last.v);
                last.v = bits;
            }
        }
        self.finish(out);
    }

    /// Encodes a chunks record into `out`.
    pub fn chunks<'a>(
        &mut self,
        chunks: impl ExactSizeIterator<Item = (u64, &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        self.raw.clear();
        self.raw.push(KIND_CHUNKS);
        put_uvarint(&mut self.raw, chunks.len() as u64);
        for (r, bytes) in chunks {
            put_uvarint(&mut self.raw, r);
            put_uvarint(&mut self.raw, bytes.len() as u64);
            self.raw.extend_from_slice(bytes);
        }
        self.finish(out);
    }
}

/// Why a payload did not decode (with a good checksum: a bug or another version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The kind byte names no record we know.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// The snappy block is corrupt.
    #[error("record is not a valid snappy block")]
    Snappy,
    /// The payload is cut short or inconsistent.
    #[error("malformed {0} record")]
    Malformed(&'static str),
}

/// Decodes one payload, updating `coder` for samples records.
pub fn decode(
    payload: &[u8],
    coder: &mut SampleCoder,
    scratch: &mut Vec<u8>,
) -> Result<Record, RecordError> {
    let (&kind, body) = payload
        .split_first()
        .ok_or(RecordError::Malformed("empty"))?;
    let body = if kind & SNAPPY != 0 {
        let n = snap::raw::decompress_len(body).map_err(|_| RecordError::Snappy)?;
        // A snappy header may announce up to 4 GiB; a real record is never more than ~60x its
        // compressed size, so anything beyond is junk and never allocated.
        if n > body.len().saturating_mul(64).max(1024) {
            return Err(RecordError::Snappy);
        }
        scratch.resize(n, 0);
        snap::raw::Decoder::new()
            .decompress(body, scratch)
            .map_err(|_| RecordError::Snappy)?;
        &scratch[..]
    } else {
        body
    };
    match kind & !SNAPPY {
        KIND_SERIES => decode_series(body).ok_or(RecordError::Malformed("series")),
        KIND_SAMPLES => decode_samples(body, coder).ok_or(RecordError::Malformed("samples")),
        KIND_CHUNKS => decode_chunks(body).ok_or(RecordError::Malformed("chunks")),
        k => Err(RecordError::UnknownKind(k)),
    }
}

fn take<'a>(b: &mut &'a [u8], n: u64) -> Option<&'a [u8]> {
    let n = usize::try_from(n).ok()?;
    if n > b.len() {
        return None;
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Some(head)
}

fn decode_series(mut b: &[u8]) -> Option<Record> {
    let n = get_uvarint(&mut b)?;
    // Each entry takes at least 2 bytes, so a lying count fails before allocating much.
    let mut out = Vec::with_capacity(usize::try_from(n.min(b.len() as u64 / 2)).ok()?);
    for _ in 0..n {
        let series_ref = get_uvarint(&mut b)?;
        let len = get_uvarint(&mut b)?;
        let labels = PackedLabels::from_bytes(take(&mut b, len)?)?;
        out.push(RefSeries { series_ref, labels });
    }
    b.is_empty().then_some(Record::Series(out))
}

fn decode_chunks(mut b: &[u8]) -> Option<Record> {
    let n = get_uvarint(&mut b)?;
    let mut out = Vec::with_capacity(usize::try_from(n.min(b.len() as u64 / 2)).ok()?);
    for _ in 0..n {
        let series_ref = get_uvarint(&mut b)?;
        let len = get_uvarint(&mut b)?;
        out.push(RefChunk {
            series_ref,
            bytes: take(&mut b, len)?.to_vec(),
        });
    }
    b.is_empty().then_some(Record::Chunks(out))
}

fn decode_samples(mut b: &[u8], coder: &mut SampleCoder) -> Option<Record> {
    let n = usize::try_from(get_uvarint(&mut b)?).ok()?;
    // Every sample takes at least 2 bytes (a time code and a value code).
    if n == 0 || n > b.len() / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut r = get_uvarint(&mut b)?;
    out.push(RefSample {
        series_ref: r,
        t: 0,
        v: 0.0,
    });
    for _ in 1..n {
        r = (r as i64).wrapping_add(get_varint(&mut b)?) as u64;
        out.push(RefSample {
            series_ref: r,
            t: 0,
            v: 0.0,
        });
    }
    let base = get_varint(&mut b)?;
    for s in out.iter_mut() {
        let code = get_varint(&mut b)?;
        s.t = match coder.last.entry(s.series_ref) {
            Entry::Occupied(mut e) => {
                let p = e.get_mut();
                p.dt = p.dt.wrapping_add(code);
                p.t = p.t.wrapping_add(p.dt);
                p.t
            }
            Entry::Vacant(e) => {
                let t = base.wrapping_add(code);
                e.insert(Last { t, dt: 0, v: 0 });
                t
            }
        };
    }
    for s in out.iter_mut() {
        let x = get_xor(&mut b)?;
        let last = coder.last.get_mut(&s.series_ref)?;
        last.v ^= x;
        s.v = f64::from_bits(last.v);
    }
    b.is_empty().then_some(Record::Samples(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::Label;
    use proptest::prelude::*;

    fn round_trip(records: &[Vec<RefSample>]) -> Vec<Vec<RefSample>> {
        let mut enc = Encoder::default();
        let mut wcoder = SampleCoder::default();
        let mut payloads = Vec::new();
        for r in records {
            let mut out = Vec::new();
            enc.samples(r, &mut wcoder, &mut out);
            wcoder.commit();
            payloads.push(out);
        }
        let mut rcoder = SampleCoder::default();
        let mut scratch = Vec::new();
        payloads
            .iter()
            .map(|p| match decode(p, &mut rcoder, &mut scratch).unwrap() {
                Record::Samples(s) => s,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn bits(records: &[Vec<RefSample>]) -> Vec<Vec<(u64, i64, u64)>> {
        records
            .iter()
            .map(|r| {
                r.iter()
                    .map(|s| (s.series_ref, s.t, s.v.to_bits()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn series_and_chunk_records_round_trip() {
        let a = PackedLabels::new(&[Label::new("__name__", "up"), Label::new("job", "x")]);
        let b = PackedLabels::new(&[Label::new("__name__", "down")]);
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        enc.series([(7u64, &a), (9, &b)].into_iter(), &mut out);
        let mut c = SampleCoder::default();
        let got = decode(&out, &mut c, &mut Vec::new()).unwrap();
        assert_eq!(
            got,
            Record::Series(vec![
                RefSeries {
                    series_ref: 7,
                    labels: a
                },
                RefSeries {
                    series_ref: 9,
                    labels: b
                }
            ])
        );
        out.clear();
        let chunk = vec![0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        enc.chunks([(3u64, &chunk[..])].into_iter(), &mut out);
        assert_eq!(
            decode(&out, &mut c, &mut Vec::new()).unwrap(),
            Record::Chunks(vec![RefChunk {
                series_ref: 3,
                bytes: chunk
            }])
        );
    }

    #[test]
    fn a_scrape_every_15s_costs_a_few_bytes_per_sample() {
        // 1000 series, 40 scrapes: counters that grow by small steps, gauges that mostly stay.
        let mut enc = Encoder::default();
        let mut coder = SampleCoder::default();
        let mut total = 0usize;
        let n_series = 1000u64;
        let scrapes = 40;
        for k in 0..scrapes {
            let samples: Vec<RefSample> = (0..n_series)
                .map(|r| RefSample {
                    series_ref: r + 1,
                    t: 1_700_000_000_000 + k * 15_000,
                    v: if r % 2 == 0 {
                        (r * 1000 + (k as u64) * (r % 7)) as f64
                    } else {
                        (r % 13) as f64 * 0.5
                    },
                })
                .collect();
            let mut out = Vec::new();
            enc.samples(&samples, &mut coder, &mut out);
            coder.commit();
            total += out.len();
        }
        let per_sample = total as f64 / (n_series as f64 * scrapes as f64);
        assert!(per_sample < 2.0, "{per_sample} bytes per sample");
    }

    #[test]
    fn a_rolled_back_record_leaves_the_state_as_before() {
        let mut enc = Encoder::default();
        let mut coder = SampleCoder::default();
        let s = |t, v| RefSample {
            series_ref: 1,
            t,
            v,
        };
        let mut first = Vec::new();
        enc.samples(&[s(1000, 1.0)], &mut coder, &mut first);
        coder.commit();
        let mut lost = Vec::new();
        enc.samples(&[s(2000, 2.0), s(3000, 5.0)], &mut coder, &mut lost);
        coder.rollback();
        let mut second = Vec::new();
        enc.samples(&[s(2500, 3.0)], &mut coder, &mut second);
        coder.commit();
        let mut r = SampleCoder::default();
        let mut scratch = Vec::new();
        decode(&first, &mut r, &mut scratch).unwrap();
        assert_eq!(
            decode(&second, &mut r, &mut scratch).unwrap(),
            Record::Samples(vec![s(2500, 3.0)])
        );
    }

    #[test]
    fn unknown_kinds_and_bad_snappy_are_errors() {
        let mut c = SampleCoder::default();
        let mut s = Vec::new();
        assert_eq!(
            decode(&[9, 0], &mut c, &mut s),
            Err(RecordError::UnknownKind(9))
        );
        assert_eq!(
            decode(
                &[KIND_SAMPLES | SNAPPY, 0xff, 0xff, 0xff, 0xff, 0x0f],
                &mut c,
                &mut s
            ),
            Err(RecordError::Snappy)
        );
        assert!(decode(&[], &mut c, &mut s).is_err());
    }

    proptest! {
        #[test]
        fn sample_records_round_trip_with_every_bit_pattern(
            records in proptest::collection::vec(
                proptest::collection::vec((0u64..20, any::<i64>(), any::<u64>()), 1..30),
                1..10,
            )
        ) {
            let records: Vec<Vec<RefSample>> = records
                .into_iter()
                .map(|r| r.into_iter().map(|(series_ref, t, v)| RefSample { series_ref, t, v: f64::from_bits(v) }).collect())
                .collect();
            prop_assert_eq!(bits(&round_trip(&records)), bits(&records));
        }

        #[test]
        fn random_payloads_never_panic_the_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let mut c = SampleCoder::default();
            let _ = decode(&bytes, &mut c, &mut Vec::new());
        }
    }
}
