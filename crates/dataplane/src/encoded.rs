//! `prometheus.WriteRequest` as the bytes of its encoding: the message of `Ingester.Push` on
//! both sides of the call.
//!
//! A distributor builds each ingester's request by copying the encoded series it routes
//! there (as the sender encoded them, or encoded once when validation changed them) one
//! after the other, instead of cloning label strings and encoding each series again for
//! each of its replicas. An ingester keeps the request as the bytes tonic received (no
//! copy) and reads them in place with [`ringkit_ingest::view::WriteRequestView`], so no
//! label of a push is ever copied into a `String` on either side. The bytes on the wire are
//! exactly those of the equivalent `prometheus.WriteRequest`.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, encode_varint, encoded_len_varint};
use prost::{DecodeError, Message};
use ringkit_ingest::prompb::WriteRequest;

/// Field number of `WriteRequest.timeseries`.
const TIMESERIES_FIELD: u32 = 1;
/// The key of field 1 with wire type "length-delimited" (one byte).
const TIMESERIES_KEY: u8 = (TIMESERIES_FIELD as u8) << 3 | WireType::LengthDelimited as u8;

/// An encoded `prometheus.WriteRequest` (see the module doc).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawWriteRequest(pub Bytes);

impl RawWriteRequest {
    /// Bytes needed to add a series of `len` encoded bytes with [`RawWriteRequest::put_series`].
    pub fn series_len(len: usize) -> usize {
        1 + encoded_len_varint(len as u64) + len
    }

    /// Appends one encoded `TimeSeries` (its fields) to a request being built in `buf`.
    pub fn put_series(buf: &mut Vec<u8>, series: &[u8]) {
        buf.push(TIMESERIES_KEY);
        encode_varint(series.len() as u64, buf);
        buf.extend_from_slice(series);
    }
}

impl From<&WriteRequest> for RawWriteRequest {
    fn from(req: &WriteRequest) -> Self {
        RawWriteRequest(Bytes::from(req.encode_to_vec()))
    }
}

impl Message for RawWriteRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    /// Whole-message decoding ([`Message::decode`], what tonic calls) takes the bytes as
    /// they are, in [`RawWriteRequest::merge`]; this per-field path (a length-delimited
    /// embedding, which nothing sends) keeps the series and drops the metadata.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == TIMESERIES_FIELD {
            let mut series = Bytes::new();
            prost::encoding::bytes::merge(wire_type, &mut series, buf, ctx)?;
            let mut all = Vec::with_capacity(self.0.len() + Self::series_len(series.len()));
            all.extend_from_slice(&self.0);
            Self::put_series(&mut all, &series);
            self.0 = Bytes::from(all);
            Ok(())
        } else {
            prost::encoding::skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    /// Takes the rest of `buf` as it is: with tonic's buffer, without copying. Checking it
    /// is the reader's job ([`ringkit_ingest::decode::decode_write_request_view`]).
    fn merge(&mut self, mut buf: impl Buf) -> Result<(), DecodeError> {
        let more = buf.copy_to_bytes(buf.remaining());
        if self.0.is_empty() {
            self.0 = more;
        } else {
            let mut all = Vec::with_capacity(self.0.len() + more.len());
            all.extend_from_slice(&self.0);
            all.extend_from_slice(&more);
            self.0 = Bytes::from(all);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkit_ingest::prompb::{Label, Sample, TimeSeries};

    fn series(name: &str, n: usize) -> TimeSeries {
        TimeSeries {
            labels: vec![
                Label::new("__name__", name),
                Label::new("pad", "x".repeat(n)),
            ],
            samples: vec![Sample {
                value: 1.5,
                timestamp: 7,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn series_copied_one_after_the_other_are_the_write_request_they_stand_for() {
        // 200 bytes of padding makes a two-byte length prefix.
        let all = vec![series("a", 0), series("b", 200), series("c", 3)];
        let plain = WriteRequest {
            timeseries: all.clone(),
            metadata: Vec::new(),
        };
        let mut buf = Vec::new();
        for s in &all {
            let e = s.encode_to_vec();
            let before = buf.len();
            RawWriteRequest::put_series(&mut buf, &e);
            assert_eq!(buf.len() - before, RawWriteRequest::series_len(e.len()));
        }
        let raw = RawWriteRequest(Bytes::from(buf));
        assert_eq!(raw.encoded_len(), plain.encoded_len());
        assert_eq!(raw.encode_to_vec(), plain.encode_to_vec());
        assert_eq!(RawWriteRequest::from(&plain), raw);
        assert_eq!(RawWriteRequest::decode(&raw.0[..]).unwrap(), raw);
        assert_eq!(WriteRequest::decode(&raw.0[..]).unwrap().timeseries, all);
    }
}
