//! A `WriteRequest` whose series are already encoded, for the distributor's fan-out.
//!
//! At RF 3 every series goes to three ingesters, each in a different request. Building those
//! requests from [`TimeSeries`] values would clone every label string three times and encode
//! every series three times; [`EncodedWriteRequest`] instead holds each series' protobuf bytes
//! (encoded once, shared by reference count) and writes them as field 1 entries. The bytes on
//! the wire are exactly those of the equivalent `prometheus.WriteRequest`, so the ingester
//! decodes it with the ordinary message.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint};
use prost::{DecodeError, Message};
use ringkit_ingest::prompb::TimeSeries;

/// Field number of `WriteRequest.timeseries`.
const TIMESERIES_FIELD: u32 = 1;
/// Length of the key of field 1 with wire type "length-delimited" (one byte).
const KEY_LEN: usize = 1;

/// Encodes one series for [`EncodedWriteRequest`].
pub fn encode_series(series: &TimeSeries) -> Bytes {
    Bytes::from(series.encode_to_vec())
}

/// `prometheus.WriteRequest` with pre-encoded series and no metadata (encode side only:
/// decoding keeps each series' bytes, which only tests need).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedWriteRequest {
    /// Each entry is one encoded `TimeSeries` message.
    pub series: Vec<Bytes>,
}

impl Message for EncodedWriteRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for s in &self.series {
            encode_key(TIMESERIES_FIELD, WireType::LengthDelimited, buf);
            encode_varint(s.len() as u64, buf);
            buf.put_slice(s);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == TIMESERIES_FIELD {
            let mut bytes = Bytes::new();
            prost::encoding::bytes::merge(wire_type, &mut bytes, buf, ctx)?;
            self.series.push(bytes);
            Ok(())
        } else {
            prost::encoding::skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        self.series
            .iter()
            .map(|s| KEY_LEN + encoded_len_varint(s.len() as u64) + s.len())
            .sum()
    }

    fn clear(&mut self) {
        self.series.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkit_ingest::prompb::{Label, Sample, WriteRequest};

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
    fn encodes_byte_for_byte_like_the_write_request_it_stands_for() {
        // 200 bytes of padding makes a two-byte length prefix.
        let all = vec![series("a", 0), series("b", 200), series("c", 3)];
        let plain = WriteRequest {
            timeseries: all.clone(),
            metadata: Vec::new(),
        }
        .encode_to_vec();
        let encoded = EncodedWriteRequest {
            series: all.iter().map(encode_series).collect(),
        };
        assert_eq!(encoded.encoded_len(), plain.len());
        assert_eq!(encoded.encode_to_vec(), plain);
        assert_eq!(WriteRequest::decode(&plain[..]).unwrap().timeseries, all);
        assert_eq!(EncodedWriteRequest::decode(&plain[..]).unwrap(), encoded);
    }
}
