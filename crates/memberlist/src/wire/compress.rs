//! Payload compression used by the `compress` (type 9) message (`spec/memberlist.md` §1.8).
//!
//! Algorithm 0 is Go's `compress/lzw` with LSB bit order and 8-bit literals (GIF
//! style). `weezl` decodes Go's output, but its *encoder* is not byte-identical to
//! Go's: on some inputs it emits two literals where an existing two-byte code
//! matches (seen in eight push/pull exchanges of the dskit crash capture). Both
//! forms decode fine, but byte-exact re-encoding of captures needs Go's plain greedy
//! algorithm, so the encoder here is our own ([`lzw_compress`]). It reproduces every
//! captured LZW payload; captures never fill the 4096-code table, so the reset path
//! is checked only by round trips through weezl's decoder. Algorithm 1 is the snappy *block*
//! format, known only to the 2026 grafana fork: we decode it, and encode it only when
//! asked, because older Go nodes drop such packets.
//!
//! Decompression goes through `ringkit-decompress`, the one bounded decoder every ringkit
//! path uses: a caller-supplied absolute limit plus a limit relative to the payload size,
//! because a few bytes of LZW or snappy can expand into megabytes.

use ringkit_decompress as bounded;
use thiserror::Error;

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
    pub(crate) fn to_wire(self) -> u8 {
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
    /// The payload would expand more than its size allows (a lying snappy header or an
    /// LZW bomb), see `ringkit_decompress::Limits`.
    #[error("{size} decompressed bytes from a {input} byte payload exceeds the allowed ratio")]
    Implausible {
        /// Bytes declared or produced when decoding stopped.
        size: usize,
        /// Compressed payload size.
        input: usize,
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
        CompressionAlgo::Lzw => lzw_compress(data),
        CompressionAlgo::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            // Only fails for inputs above ~4 GiB, which no message reaches.
            .unwrap_or_default(),
    }
}

/// Decompresses a compress `Buf`, refusing to produce more than `limit` bytes or more
/// than the input may plausibly expand to (ringkit-decompress's shared policy, with
/// its default ratios).
pub fn decompress(
    algo: CompressionAlgo,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CompressError> {
    let limits = match algo {
        CompressionAlgo::Lzw => bounded::Limits::lzw(limit),
        CompressionAlgo::Snappy => bounded::Limits::snappy(limit),
    };
    decompress_within(algo, data, &limits)
}

/// [`decompress`] with explicit limits (absolute and relative to the input).
pub(crate) fn decompress_within(
    algo: CompressionAlgo,
    data: &[u8],
    limits: &bounded::Limits,
) -> Result<Vec<u8>, CompressError> {
    let out = match algo {
        CompressionAlgo::Lzw => bounded::lzw(data, limits),
        CompressionAlgo::Snappy => bounded::snappy(data, limits),
    };
    out.map_err(CompressError::from)
}

impl From<bounded::Error> for CompressError {
    fn from(e: bounded::Error) -> Self {
        match e {
            bounded::Error::TooLarge { limit, .. } => CompressError::TooLarge { limit },
            bounded::Error::Implausible { size, input } => {
                CompressError::Implausible { size, input }
            }
            bounded::Error::Snappy(s) => CompressError::Snappy(s),
            bounded::Error::LzwTruncated => CompressError::LzwTruncated,
            // Lzw and any variant added later.
            other => CompressError::Lzw(other.to_string()),
        }
    }
}

/// Code meaning "reset the table" (first code after the literals).
const LZW_CLEAR: u16 = 256;
/// Code meaning "end of data".
const LZW_END: u16 = 257;
/// Codes are at most 12 bits; the encoder resets before handing out the last one.
const LZW_MAX_CODE: u16 = 4095;

/// LSB-first variable-width code writer.
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    bits: u32,
    width: u32,
}

impl BitWriter {
    fn put(&mut self, code: u16) {
        self.acc |= u32::from(code) << self.bits;
        self.bits += self.width;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Greedy LZW exactly as Go's `compress/lzw` writer (LSB, 8-bit literals) emits it:
/// a clear code first; on each miss, the current code is written and the next free
/// code is taken for the new string; the code width grows when the next free code
/// needs another bit; when the next free code would be 4095 a clear code is written
/// and the table starts over (that string is then not added); at the end, the last
/// code, one more step of the free-code counter (so the width matches the reader's),
/// then the end code.
pub fn lzw_compress(data: &[u8]) -> Vec<u8> {
    use std::collections::HashMap;

    let mut w = BitWriter {
        out: Vec::with_capacity(data.len() / 2 + 8),
        acc: 0,
        bits: 0,
        width: 9,
    };
    let mut table: HashMap<u32, u16> = HashMap::new();
    let mut next: u16 = LZW_END; // last code handed out
    // Advances the free-code counter; true when the table was reset instead.
    let bump = |w: &mut BitWriter, next: &mut u16, table: &mut HashMap<u32, u16>| {
        *next += 1;
        if u32::from(*next) == 1 << w.width {
            w.width += 1;
        }
        if *next == LZW_MAX_CODE {
            w.put(LZW_CLEAR);
            w.width = 9;
            *next = LZW_END;
            table.clear();
            return true;
        }
        false
    };

    w.put(LZW_CLEAR);
    let Some((&first, rest)) = data.split_first() else {
        w.put(LZW_END);
        return w.finish();
    };
    let mut code = u16::from(first);
    for &b in rest {
        let key = (u32::from(code) << 8) | u32::from(b);
        if let Some(&c) = table.get(&key) {
            code = c;
            continue;
        }
        w.put(code);
        code = u16::from(b);
        if !bump(&mut w, &mut next, &mut table) {
            table.insert(key, next);
        }
    }
    w.put(code);
    bump(&mut w, &mut next, &mut table);
    w.put(LZW_END);
    w.finish()
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
    fn lzw_of_empty_input_is_clear_then_end() {
        // 9-bit 256 then 9-bit 257, LSB first.
        assert_eq!(compress(CompressionAlgo::Lzw, b""), [0x00, 0x03, 0x02]);
        assert_eq!(
            decompress(CompressionAlgo::Lzw, &[0x00, 0x03, 0x02], 10).unwrap(),
            b""
        );
    }

    #[test]
    fn lzw_uses_existing_two_byte_codes_greedily() {
        // A string whose second occurrence must be coded as one code, as Go does.
        let c = compress(CompressionAlgo::Lzw, b"abab");
        // clear, 'a', 'b', 258("ab"), end (+1 bump): 5 codes of 9 bits -> 6 bytes.
        assert_eq!(c.len(), 6);
        assert_eq!(decompress(CompressionAlgo::Lzw, &c, 10).unwrap(), b"abab");
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
            // Zeros expand far beyond the default LZW ratio: refused as a bomb unless
            // the caller allows that ratio.
            let generous = ringkit_decompress::Limits {
                max_len: zeros.len(),
                max_ratio: 100_000,
            };
            assert_eq!(decompress_within(algo, &c, &generous).unwrap(), zeros);
            if algo == CompressionAlgo::Lzw {
                assert!(matches!(
                    decompress(algo, &c, zeros.len()).unwrap_err(),
                    CompressError::Implausible { .. }
                ));
            }
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
