#![doc = include_str!("../README.md")]
//! Every byte sequence ringkit decompresses comes from someone else: a gossip peer, a
//! remote-write client, a KV store another process wrote. A few bytes of snappy can
//! *declare* any output length up to 4 GiB, and a few kilobytes of LZW can expand a
//! thousandfold, so each caller used to pick its own limit and check (or forget to check)
//! it in its own way. This crate is the single policy every snappy and LZW path uses:
//!
//! - an **absolute** limit ([`Limits::max_len`]) chosen by the caller (the ring codec's
//!   64 MiB, memberlist's 40 MiB, Mimir's 100 MiB remote-write limit), and
//! - a limit **relative to the input** ([`Limits::max_ratio`]): output may be at most
//!   `input.len() * max_ratio + SLACK` bytes. For snappy the ratio is above what the format
//!   can reach (a 3-byte copy yields at most 64 bytes, so valid data never exceeds ~21.3x),
//!   so it refuses only lying headers; for LZW it caps the amplification a small packet buys.
//!
//! Snappy lengths are checked from the header *before* the output buffer is allocated;
//! LZW output is produced in chunks and abandoned as soon as it passes the bound. So a
//! 100-byte packet declaring 60 MiB costs at most a few KiB, whichever path it reaches.
//!
//! Every refusal for size bumps a process-wide counter ([`refused_total`]) that the binary
//! exports as `ringkit_decompression_refused_total{algorithm}`, so an operator sees such
//! input without reading logs. The crate is sans-IO (no clock, no threads, no sockets).
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

use weezl::{BitOrder, LzwStatus};

/// Output every input may always expand to, whatever its size (so tiny but valid
/// values, e.g. an empty ring or a one-byte message, are never refused).
pub const SLACK: usize = 4096;

/// Default ratio for snappy: above the format's own maximum (~21.3x), so only headers
/// that no valid block could honour are refused by it.
pub const SNAPPY_MAX_RATIO: usize = 32;

/// Default ratio for LZW (Go's `compress/lzw`, as memberlist uses). LZW's worst case is
/// over 1000x (a run of one byte); real gossip (msgpack members, snappy-compressed KV
/// values) compresses a few times at most, so 128x refuses only bombs.
pub const LZW_MAX_RATIO: usize = 128;

/// How much output one input may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest output accepted, whatever the input (bytes).
    pub max_len: usize,
    /// Largest output per input byte (the bound is `input * max_ratio + SLACK`).
    pub max_ratio: usize,
}

impl Limits {
    /// Snappy limits with the caller's absolute cap and [`SNAPPY_MAX_RATIO`].
    pub const fn snappy(max_len: usize) -> Self {
        Limits {
            max_len,
            max_ratio: SNAPPY_MAX_RATIO,
        }
    }

    /// LZW limits with the caller's absolute cap and [`LZW_MAX_RATIO`].
    pub const fn lzw(max_len: usize) -> Self {
        Limits {
            max_len,
            max_ratio: LZW_MAX_RATIO,
        }
    }

    /// The same limits with a smaller absolute cap (e.g. what is left of a budget).
    pub const fn with_max_len(self, max_len: usize) -> Self {
        Limits { max_len, ..self }
    }

    /// Largest output accepted for an input of `input_len` bytes.
    pub fn bound(&self, input_len: usize) -> usize {
        let relative = input_len
            .saturating_mul(self.max_ratio)
            .saturating_add(SLACK);
        relative.min(self.max_len)
    }
}

/// Which decompressor refused an input (the label of the refusal counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Snappy block format.
    Snappy,
    /// Go `compress/lzw`, LSB first, 8-bit literals.
    Lzw,
}

impl Algorithm {
    /// Both algorithms, for exporting the counters.
    pub const ALL: [Algorithm; 2] = [Algorithm::Snappy, Algorithm::Lzw];

    /// Lower-case name (metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Snappy => "snappy",
            Algorithm::Lzw => "lzw",
        }
    }
}

static REFUSED_SNAPPY: AtomicU64 = AtomicU64::new(0);
static REFUSED_LZW: AtomicU64 = AtomicU64::new(0);

fn counter(algo: Algorithm) -> &'static AtomicU64 {
    match algo {
        Algorithm::Snappy => &REFUSED_SNAPPY,
        Algorithm::Lzw => &REFUSED_LZW,
    }
}

/// Inputs refused for size since the process started (either limit), per algorithm.
pub fn refused_total(algo: Algorithm) -> u64 {
    counter(algo).load(Ordering::Relaxed)
}

fn refuse(algo: Algorithm, err: Error) -> Error {
    counter(algo).fetch_add(1, Ordering::Relaxed);
    err
}

/// Why an input was not decompressed. Nothing was allocated beyond the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The output would exceed the absolute limit.
    #[error("decompressed size {size} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size the header declared (snappy) or the output reached when stopped (LZW).
        size: usize,
        /// The absolute limit.
        limit: usize,
    },
    /// The output would exceed what an input of this size may expand to: a lying header
    /// (snappy) or a decompression bomb (LZW).
    #[error("{size} decompressed bytes from a {input} byte input exceeds the allowed ratio")]
    Implausible {
        /// Size declared or reached.
        size: usize,
        /// Input size.
        input: usize,
    },
    /// Not valid snappy block data.
    #[error("invalid snappy block: {0}")]
    Snappy(String),
    /// Not valid LZW data (a bad code, per Go's decoder rules).
    #[error("invalid LZW data: {0}")]
    Lzw(String),
    /// The LZW stream ended before its end code (Go: unexpected EOF).
    #[error("LZW data ended before the end code")]
    LzwTruncated,
}

impl Error {
    /// True when the input was refused for its size rather than for being malformed.
    pub fn is_size(&self) -> bool {
        matches!(self, Error::TooLarge { .. } | Error::Implausible { .. })
    }
}

/// Names the bound `size` broke: more than the input can plausibly hold is reported as
/// such even when the absolute limit is broken too (the input lies, whatever the limit).
fn size_error(size: usize, input: usize, limits: &Limits) -> Error {
    let relative = input.saturating_mul(limits.max_ratio).saturating_add(SLACK);
    if size > relative {
        Error::Implausible { size, input }
    } else {
        Error::TooLarge {
            size,
            limit: limits.max_len,
        }
    }
}

/// The decompressed length a snappy block declares, once it is known to be within
/// `limits`. Callers that decompress into their own buffer use this first.
pub fn snappy_len(input: &[u8], limits: &Limits) -> Result<usize, Error> {
    let size = snap::raw::decompress_len(input).map_err(|e| Error::Snappy(e.to_string()))?;
    if size > limits.bound(input.len()) {
        return Err(refuse(
            Algorithm::Snappy,
            size_error(size, input.len(), limits),
        ));
    }
    Ok(size)
}

/// Decompresses a snappy block within `limits`.
pub fn snappy(input: &[u8], limits: &Limits) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let n = snappy_into(input, limits, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Decompresses a snappy block into `buf` (grown as needed and reused), returning the
/// decompressed length; `buf[..len]` holds the output.
pub fn snappy_into(input: &[u8], limits: &Limits, buf: &mut Vec<u8>) -> Result<usize, Error> {
    let len = snappy_len(input, limits)?;
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let n = snap::raw::Decoder::new()
        .decompress(input, &mut buf[..len])
        .map_err(|e| Error::Snappy(e.to_string()))?;
    Ok(n)
}

/// Decompresses Go-style LZW (LSB first, 8-bit literals) within `limits`. The output
/// grows in 16 KiB steps and decoding stops as soon as it passes the bound.
pub fn lzw(input: &[u8], limits: &Limits) -> Result<Vec<u8>, Error> {
    let bound = limits.bound(input.len());
    let mut dec = weezl::decode::Decoder::new(BitOrder::Lsb, 8);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut rest = input;
    loop {
        let res = dec.decode_bytes(rest, &mut chunk);
        rest = &rest[res.consumed_in..];
        let size = out.len().saturating_add(res.consumed_out);
        if size > bound {
            return Err(refuse(
                Algorithm::Lzw,
                size_error(size, input.len(), limits),
            ));
        }
        out.extend_from_slice(&chunk[..res.consumed_out]);
        match res.status {
            Ok(LzwStatus::Done) => return Ok(out),
            Ok(LzwStatus::Ok) => {}
            Ok(LzwStatus::NoProgress) => {
                if rest.is_empty() {
                    return Err(Error::LzwTruncated);
                }
                if res.consumed_out == 0 && res.consumed_in == 0 {
                    return Err(Error::Lzw("decoder made no progress".into()));
                }
            }
            Err(e) => return Err(Error::Lzw(e.to_string())),
        }
        if rest.is_empty() && res.consumed_out == 0 && res.consumed_in == 0 {
            return Err(Error::LzwTruncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snappy header declaring `len` bytes followed by `body`.
    fn declaring(len: usize, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut v = len;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn a_small_input_declaring_megabytes_is_implausible() {
        let before = refused_total(Algorithm::Snappy);
        let packet = declaring(60 << 20, &[0u8; 96]);
        let err = snappy(&packet, &Limits::snappy(64 << 20)).unwrap_err();
        assert_eq!(
            err,
            Error::Implausible {
                size: 60 << 20,
                input: packet.len()
            }
        );
        assert!(err.is_size());
        assert!(refused_total(Algorithm::Snappy) > before);
    }

    #[test]
    fn the_absolute_limit_wins_over_the_ratio() {
        let data = vec![7u8; 100_000];
        let c = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            snappy(&c, &Limits::snappy(50_000)).unwrap_err(),
            Error::TooLarge {
                size: 100_000,
                limit: 50_000
            }
        );
        assert_eq!(snappy(&c, &Limits::snappy(100_000)).unwrap(), data);
    }

    #[test]
    fn the_most_compressible_snappy_is_within_the_ratio() {
        // Zeros are snappy's best case: long copies, ~21x.
        let data = vec![0u8; 4 << 20];
        let c = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert!(data.len() > c.len() * 20, "{} from {}", data.len(), c.len());
        assert_eq!(snappy(&c, &Limits::snappy(64 << 20)).unwrap(), data);
    }

    #[test]
    fn snappy_into_reuses_and_reports_the_length() {
        let mut buf = vec![1u8; 10];
        let c = snap::raw::Encoder::new().compress_vec(b"abc").unwrap();
        let n = snappy_into(&c, &Limits::snappy(100), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc");
        assert!(snappy_into(b"\xff\xff\xff\xff\xff", &Limits::snappy(100), &mut buf).is_err());
    }

    #[test]
    fn an_lzw_bomb_stops_at_the_ratio() {
        // Go-style LZW of a long run is tiny; the bound relative to it is far below the
        // absolute limit, so decoding stops early.
        let mut enc = weezl::encode::Encoder::new(BitOrder::Lsb, 8);
        let run = vec![b'a'; 8 << 20];
        let c = enc.encode(&run).unwrap();
        assert!(c.len() * LZW_MAX_RATIO + SLACK < run.len());
        let before = refused_total(Algorithm::Lzw);
        let err = lzw(&c, &Limits::lzw(40 << 20)).unwrap_err();
        assert!(
            matches!(err, Error::Implausible { input, .. } if input == c.len()),
            "{err}"
        );
        assert!(refused_total(Algorithm::Lzw) > before);
        // Allowed when the caller opts into a larger ratio.
        let generous = Limits {
            max_len: 40 << 20,
            max_ratio: 100_000,
        };
        assert_eq!(lzw(&c, &generous).unwrap(), run);
    }

    #[test]
    fn bounds_saturate() {
        let l = Limits {
            max_len: usize::MAX,
            max_ratio: usize::MAX,
        };
        assert_eq!(l.bound(usize::MAX), usize::MAX);
        assert_eq!(Limits::snappy(10).bound(0), 10);
        assert_eq!(Limits::snappy(1 << 30).bound(0), SLACK);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_exceed_the_bound(data: Vec<u8>, max in 0usize..100_000) {
            for l in [Limits::snappy(max), Limits::lzw(max)] {
                if let Ok(out) = snappy(&data, &l) {
                    proptest::prop_assert!(out.len() <= l.bound(data.len()));
                }
                if let Ok(out) = lzw(&data, &l) {
                    proptest::prop_assert!(out.len() <= l.bound(data.len()));
                }
            }
        }
    }
}
