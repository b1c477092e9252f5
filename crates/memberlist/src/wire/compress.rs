//! Payload compression used by the `compress` (type 9) message (`spec/memberlist.md` §1.8).
//!
//! Algorithm 0 is Go's `compress/lzw` with LSB bit order and 8-bit literals (GIF
//! style). `weezl` with the same parameters produces byte-identical output, which is
//! what lets us re-encode captured streams exactly. Algorithm 1 is the snappy *block*
//! format, known only to the 2026 grafana fork: we decode it, and encode it only when
//! asked, because older Go nodes drop such packets.
//!
//! Decompression is always bounded by a caller-supplied limit, because a few bytes of
//! LZW or snappy can expand into megabytes.

use thiserror::Error;
use weezl::{BitOrder, LzwStatus};

/// The decompressed-size limit memberlist applies (40 MiB, `spec/memberlist.md` §1.12).
pub const MAX_DECOMPRESSED: usize = 40 * 1024 * 1024;

/// The `Algo` field of a compress message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionAlgo {
    /// Go `compress/lzw`, LSB first, literal width 8. Understood by every memberlist.
    Lzw,
    /// Snappy block format (grafana fork since 2026 only).
    Snappy,
}

impl CompressionAlgo {
    /// The wire value of the `Algo` field.
    pub fn to_wire(self) -> u8 {
        match self {
            CompressionAlgo::Lzw => 0,
            CompressionAlgo::Snappy => 1,
        }
    }

    /// Maps the wire value back; unknown ids are an error, as in Go.
    pub fn from_wire(algo: u8) -> Result<Self, CompressError> {
        match algo {
            0 => Ok(CompressionAlgo::Lzw),
            1 => Ok(CompressionAlgo::Snappy),
            other => Err(CompressError::UnknownAlgorithm(other)),
        }
    }
}

/// What was wrong with a compressed payload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CompressError {
    /// `Algo` is neither 0 (LZW) nor 1 (snappy); Go drops such messages.
    #[error("unknown compression algorithm {0}")]
    UnknownAlgorithm(u8),
    /// The payload would decompress to more than the allowed size.
    #[error("decompressed payload exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The LZW stream is invalid (bad code) per Go's decoder rules.
    #[error("invalid LZW data: {0}")]
    Lzw(String),
    /// The LZW stream ended without its end code, which Go reports as unexpected EOF.
    #[error("LZW data ended before the end code")]
    LzwTruncated,
    /// The snappy block is invalid.
    #[error("invalid snappy block: {0}")]
    Snappy(String),
}

/// Compresses `data` as a memberlist compress `Buf`.
pub fn compress(algo: CompressionAlgo, data: &[u8]) -> Vec<u8> {
    match algo {
        CompressionAlgo::Lzw => weezl::encode::Encoder::new(BitOrder::Lsb, 8)
            .encode(data)
            // Only fails for literal widths above 8 bits, never for bytes.
            .unwrap_or_default(),
        CompressionAlgo::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            // Only fails for inputs above ~4 GiB, which no message reaches.
            .unwrap_or_default(),
    }
}

/// Decompresses a compress `Buf`, refusing to produce more than `limit` bytes.
pub fn decompress(
    algo: CompressionAlgo,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CompressError> {
    match algo {
        CompressionAlgo::Lzw => lzw_decompress(data, limit),
        CompressionAlgo::Snappy => {
            let len = snap::raw::decompress_len(data)
                .map_err(|e| CompressError::Snappy(e.to_string()))?;
            if len > limit {
                return Err(CompressError::TooLarge { limit });
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| CompressError::Snappy(e.to_string()))
        }
    }
}

fn lzw_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressError> {
    let mut dec = weezl::decode::Decoder::new(BitOrder::Lsb, 8);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut input = data;
    loop {
        let res = dec.decode_bytes(input, &mut chunk);
        input = &input[res.consumed_in..];
        if out.len() + res.consumed_out > limit {
            return Err(CompressError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk[..res.consumed_out]);
        match res.status {
            Ok(LzwStatus::Done) => return Ok(out),
            Ok(LzwStatus::Ok) => {}
            Ok(LzwStatus::NoProgress) => {
                if input.is_empty() {
                    return Err(CompressError::LzwTruncated);
                }
                // Output space was exhausted with input left: loop again.
                if res.consumed_out == 0 && res.consumed_in == 0 {
                    return Err(CompressError::Lzw("decoder made no progress".into()));
                }
            }
            Err(e) => return Err(CompressError::Lzw(e.to_string())),
        }
        if input.is_empty() && res.consumed_out == 0 && res.consumed_in == 0 {
            return Err(CompressError::LzwTruncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn lzw_matches_go_golden_vector() {
        let plain = b"\x08hellohello";
        let golden = unhex("0011a029c386cd9b8105df0404");
        assert_eq!(compress(CompressionAlgo::Lzw, plain), golden);
        assert_eq!(
            decompress(CompressionAlgo::Lzw, &golden, MAX_DECOMPRESSED).unwrap(),
            plain
        );
    }

    #[test]
    fn lzw_round_trips_through_table_resets() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let c = compress(CompressionAlgo::Lzw, &data);
        assert_eq!(
            decompress(CompressionAlgo::Lzw, &c, MAX_DECOMPRESSED).unwrap(),
            data
        );
    }

    #[test]
    fn lzw_without_end_code_is_truncated() {
        let golden = unhex("0011a029c386cd9b8105df0404");
        let err = decompress(CompressionAlgo::Lzw, &golden[..6], MAX_DECOMPRESSED).unwrap_err();
        assert_eq!(err, CompressError::LzwTruncated);
        assert_eq!(
            decompress(CompressionAlgo::Lzw, &[], MAX_DECOMPRESSED).unwrap_err(),
            CompressError::LzwTruncated
        );
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let zeros = vec![0u8; 1_000_000];
        for algo in [CompressionAlgo::Lzw, CompressionAlgo::Snappy] {
            let c = compress(algo, &zeros);
            assert_eq!(
                decompress(algo, &c, 1000).unwrap_err(),
                CompressError::TooLarge { limit: 1000 }
            );
            assert_eq!(decompress(algo, &c, zeros.len()).unwrap(), zeros);
        }
    }

    #[test]
    fn unknown_algorithm_is_rejected() {
        assert_eq!(
            CompressionAlgo::from_wire(7).unwrap_err(),
            CompressError::UnknownAlgorithm(7)
        );
    }
}
