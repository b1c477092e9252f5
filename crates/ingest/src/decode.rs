//! Turning a remote-write HTTP body into a [`WriteRequest`].
//!
//! Remote write 1.0 bodies are one snappy *block* (not the framed stream format) holding one
//! protobuf `WriteRequest`. Two limits protect the node before any large allocation:
//! the compressed body size, and the decompressed size, which the snappy block announces in its
//! header varint and which we check before allocating the output buffer.
//!
//! Every error here is the sender's fault and maps to HTTP 400 (413 would also fit the size
//! limits; Mimir answers 400 for those too). The messages start like the Go receivers' so that
//! logs read the same: `snappy: corrupt input`, `received message larger than max`.

use prost::Message;

use crate::prompb::{ReadRequest, WriteRequest};
use crate::view::WriteRequestView;

/// Size limits for a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted body as received (compressed). Mimir: `-distributor.max-recv-msg-size`,
    /// default 100 MiB; it bounds what we buffer from the network.
    pub max_compressed_size: usize,
    /// Largest accepted decompressed protobuf, checked against the snappy header before the
    /// output buffer is allocated. Mimir applies the same 100 MiB to the decompressed size.
    pub max_decompressed_size: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // Mimir's -distributor.max-recv-msg-size default (100 << 20) for both.
        DecodeLimits {
            max_compressed_size: 100 << 20,
            max_decompressed_size: 100 << 20,
        }
    }
}

/// Why a body could not be decoded. Nothing was stored when this is returned; every variant is
/// bad input (HTTP 400), none is a server fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is larger than [`DecodeLimits::max_compressed_size`].
    #[error("received message larger than max ({size} vs {limit})")]
    BodyTooLarge {
        /// Body size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The snappy header announces more than [`DecodeLimits::max_decompressed_size`].
    #[error("decompressed message larger than max ({size} vs {limit})")]
    DecompressedTooLarge {
        /// Size announced by the snappy header.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is not a valid snappy block (this includes a raw protobuf sent uncompressed).
    #[error("snappy: corrupt input ({detail})")]
    Snappy {
        /// What the snappy decoder objected to.
        detail: String,
    },
    /// The decompressed bytes are not a valid protobuf message of the expected type. prost's
    /// "buffer underflow" is what Go's decoder calls "unexpected EOF": a truncated message.
    #[error("protobuf: cannot decode {message}: {source}")]
    Protobuf {
        /// Which message was expected.
        message: &'static str,
        /// prost's description (truncated input, bad wire type, invalid UTF-8...).
        #[source]
        source: prost::DecodeError,
    },
    /// [`WriteRequestView`] refused bytes that prost accepts: a disagreement the property
    /// tests and the fuzz body look for, answered as bad input rather than guessed at.
    #[error("protobuf: cannot decode {message}: {detail}")]
    Malformed {
        /// Which message was expected.
        message: &'static str,
        /// Where and why the in-place reader stopped.
        detail: String,
    },
}

impl DecodeError {
    /// The HTTP status this error should be answered with: always a 4xx.
    pub fn http_status(&self) -> u16 {
        400
    }
}

fn snappy_error(text: &str) -> DecodeError {
    // snap's own text already starts with "snappy: corrupt input (...)"; keep only the detail.
    let detail = text
        .strip_prefix("snappy: corrupt input (")
        .and_then(|rest| rest.strip_suffix(')'))
        .map_or_else(|| text.to_owned(), str::to_owned);
    DecodeError::Snappy { detail }
}

/// Decompresses a snappy block within `limits`: the body size first, then the header's
/// declared size against `max_decompressed_size` and against what a block of this size can
/// hold (ringkit-decompress's shared policy), all before the output buffer is allocated.
pub fn decompress(body: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    if body.len() > limits.max_compressed_size {
        return Err(DecodeError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_compressed_size,
        });
    }
    let policy = ringkit_decompress::Limits::snappy(limits.max_decompressed_size);
    ringkit_decompress::snappy(body, &policy).map_err(|e| match e {
        ringkit_decompress::Error::TooLarge { size, limit } => {
            DecodeError::DecompressedTooLarge { size, limit }
        }
        // A header announcing more than any block of this size can hold is corrupt,
        // whatever the limit: answer like Go's decoder.
        ringkit_decompress::Error::Implausible { size, input } => DecodeError::Snappy {
            detail: format!("header announces {size} bytes, impossible for a {input} byte block"),
        },
        ringkit_decompress::Error::Snappy(text) => snappy_error(&text),
        other => DecodeError::Snappy {
            detail: other.to_string(),
        },
    })
}

/// Decodes a remote-write body (snappy block + protobuf `WriteRequest`).
pub fn decode_write_request(
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<WriteRequest, DecodeError> {
    let raw = decompress(body, limits)?;
    decode_write_request_raw(&raw)
}

/// Decodes a decompressed `WriteRequest` with prost (owned strings); the reference the
/// in-place reader is checked against.
pub fn decode_write_request_raw(raw: &[u8]) -> Result<WriteRequest, DecodeError> {
    WriteRequest::decode(raw).map_err(|source| DecodeError::Protobuf {
        message: "prometheus.WriteRequest",
        source,
    })
}

/// Reads a decompressed `WriteRequest` in place (see [`crate::view`]): no allocation per
/// label. A refused body is decoded again by prost, so the error says what prost says.
pub fn decode_write_request_view(raw: &[u8]) -> Result<WriteRequestView<'_>, DecodeError> {
    WriteRequestView::decode(raw).map_err(|e| view_error(raw, e))
}

/// The error of a body [`WriteRequestView`] refused, worded by prost (cold path).
#[cold]
pub fn view_error(raw: &[u8], e: crate::view::ViewError) -> DecodeError {
    match WriteRequest::decode(raw) {
        Err(source) => DecodeError::Protobuf {
            message: "prometheus.WriteRequest",
            source,
        },
        Ok(_) => DecodeError::Malformed {
            message: "prometheus.WriteRequest",
            detail: e.to_string(),
        },
    }
}

/// Decodes a remote-read body (snappy block + protobuf `ReadRequest`).
pub fn decode_read_request(body: &[u8], limits: &DecodeLimits) -> Result<ReadRequest, DecodeError> {
    let raw = decompress(body, limits)?;
    ReadRequest::decode(raw.as_slice()).map_err(|source| DecodeError::Protobuf {
        message: "prometheus.ReadRequest",
        source,
    })
}

/// Encodes a message the way remote write/read expects it on the wire: protobuf, then one
/// snappy block. Used for read responses and by tests and tools that build bodies.
pub fn encode_snappy<M: Message>(message: &M) -> Vec<u8> {
    let raw = message.encode_to_vec();
    // Compressing an in-memory buffer only fails for inputs above ~4 GiB, which a protobuf
    // message built by this process never reaches; fall back to an empty body rather than panic.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, Sample, TimeSeries};

    fn one_series() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        }
    }

    #[test]
    fn a_snappy_protobuf_body_round_trips() {
        let req = one_series();
        let body = encode_snappy(&req);
        assert_eq!(
            decode_write_request(&body, &DecodeLimits::default()).unwrap(),
            req
        );
    }

    #[test]
    fn an_oversized_body_is_refused_before_decompression() {
        let body = encode_snappy(&one_series());
        let limits = DecodeLimits {
            max_compressed_size: 4,
            ..Default::default()
        };
        let err = decode_write_request(&body, &limits).unwrap_err();
        assert!(matches!(err, DecodeError::BodyTooLarge { limit: 4, .. }));
        assert!(
            err.to_string()
                .starts_with("received message larger than max")
        );
    }

    #[test]
    fn a_header_announcing_more_than_the_limit_is_refused_without_allocating_it() {
        // 1 MiB of zeros compresses to a few KiB; a 64 KiB limit refuses it from the header.
        let body = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 1 << 20])
            .unwrap();
        let limits = DecodeLimits {
            max_decompressed_size: 64 << 10,
            ..Default::default()
        };
        let err = decode_write_request(&body, &limits).unwrap_err();
        assert!(
            matches!(err, DecodeError::DecompressedTooLarge { size: 1048576, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_header_announcing_an_impossible_expansion_is_corrupt_input() {
        // Header varint 0xFFFFFFFF0F = 4 GiB - 1, followed by 10 bytes.
        let body = b"\xff\xff\xff\xff\x0fnot-snappy";
        let err = decode_write_request(body, &DecodeLimits::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("snappy: corrupt input"),
            "{err}"
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let _ = decode_write_request(&bytes, &DecodeLimits::default());
            let _ = decode_read_request(&bytes, &DecodeLimits::default());
        }

        #[test]
        fn random_bytes_in_a_valid_snappy_block_never_panic_the_decoder(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let body = snap::raw::Encoder::new().compress_vec(&bytes).unwrap();
            if let Err(e) = decode_write_request(&body, &DecodeLimits::default()) {
                proptest::prop_assert!(matches!(e, DecodeError::Protobuf { .. }), "{}", e);
            }
        }
    }

    #[test]
    fn an_empty_body_is_an_empty_write_request() {
        let body = encode_snappy(&WriteRequest::default());
        let req = decode_write_request(&body, &DecodeLimits::default()).unwrap();
        assert!(req.timeseries.is_empty() && req.metadata.is_empty());
    }
}
