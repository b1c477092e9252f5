//! Prometheus' XOR chunk (the "Gorilla" encoding of Facebook's paper as Prometheus' `chunkenc`
//! package stores it), byte for byte.
//!
//! # Layout
//! ```text
//! ┌──────────────────────┬───────────────────────────── bit stream ─────────────────────────────┐
//! │ #samples u16 (BE)    │ t0 varint │ v0 64 bits │ Δt1 uvarint │ v1 xor │ dod2 │ v2 xor │ ...  │
//! └──────────────────────┴───────────────────────────────────────────────────────────────────────┘
//! ```
//! - The first timestamp is a zig-zag varint, the first value its raw 64 IEEE bits.
//! - The second timestamp is an unsigned varint of the delta to the first.
//! - Every later timestamp is the delta of deltas (`dod`), in one of five buckets:
//!   `0` (dod 0), `10` + 14 bits, `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits. A bucket
//!   of n bits holds `-(2^(n-1)-1) ..= 2^(n-1)` (two's complement, asymmetric as Prometheus').
//! - Every value after the first is XORed with the previous one: `0` if equal, else `1` then
//!   either `0` + the meaningful bits inside the previous leading/trailing-zero window, or `1` +
//!   5 bits of leading zeros (at most 31) + 6 bits of meaningful-bit count (64 written as 0) + the
//!   meaningful bits.
//! - The stream ends on a byte boundary padded with zero bits.
//!
//! Values are stored bit for bit, so NaN payloads (Prometheus' stale marker
//! `0x7ff0000000000002`) survive a round trip.

use std::fmt;

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Fewer than the two header bytes that hold the sample count.
    #[error("chunk of {0} bytes is shorter than its 2-byte header")]
    TooShort(usize),
    /// The bit stream ended before the header's sample count was read.
    #[error("chunk data ends after {read} of {total} samples")]
    Truncated {
        /// Samples decoded before the data ran out.
        read: u16,
        /// Samples the header announced.
        total: u16,
    },
    /// A varint in the stream is longer than 10 bytes or overflows 64 bits.
    #[error("bad varint in chunk after {read} samples")]
    BadVarint {
        /// Samples decoded before the bad varint.
        read: u16,
    },
    /// A value field has an impossible leading/trailing-zero layout.
    #[error("bad value bit layout in chunk after {read} samples")]
    BadValueLayout {
        /// Samples decoded before the bad field.
        read: u16,
    },
}

/// Appends bits to a byte vector, most significant bit first (Prometheus' `bstream`).
#[derive(Clone, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 when the last byte is full or there is none).
    free: u8,
}

impl BitWriter {
    /// Appends a byte, growing the buffer by a quarter rather than doubling it: a head keeps
    /// one open chunk per series, and doubling would leave up to half of each unused.
    fn push_byte(&mut self, b: u8) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact(self.bytes.capacity() / 4 + 16);
        }
        self.bytes.push(b);
    }

    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            // `free` was just decremented, so a byte exists.
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << self.free;
            }
        }
    }

    /// Writes the low `n` bits of `value` (n ≤ 64), high bit first: first into the free
    /// bits of the last byte, then whole bytes, then the start of a new byte.
    fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        let mut n = n.min(64);
        if n == 0 {
            return;
        }
        if self.free > 0 {
            let take = n.min(u32::from(self.free));
            let bits = (value >> (n - take)) & ((1u64 << take) - 1);
            self.free -= take as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= (bits as u8) << self.free;
            }
            n -= take;
        }
        while n >= 8 {
            n -= 8;
            self.push_byte((value >> n) as u8);
        }
        if n > 0 {
            let bits = (value & ((1u64 << n) - 1)) as u8;
            self.push_byte(bits << (8 - n));
            self.free = (8 - n) as u8;
        }
    }

    fn write_byte_aligned(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_bits(u64::from(b), 8);
        }
    }
}

/// Reads bits from a byte slice, most significant bit first.
#[derive(Clone)]
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Some(bit)
    }

    /// Reads `n` bits (n ≤ 64) as the low bits of a u64, from a 16-byte big-endian window
    /// (the at most 9 bytes the bits span, zero-padded past the end of the data).
    fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n > 64 || self.pos + n as usize > self.bytes.len() * 8 {
            return None;
        }
        let start = self.pos / 8;
        let mut window = [0u8; 16];
        let avail = (self.bytes.len() - start).min(16);
        window[..avail].copy_from_slice(&self.bytes[start..start + avail]);
        let w = u128::from_be_bytes(window) << (self.pos % 8);
        self.pos += n as usize;
        Some((w >> (128 - n)) as u64)
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.read_bits(8).map(|b| b as u8)
    }

    /// An unsigned LEB128 varint read byte by byte from the bit stream (Go's `ReadUvarint`).
    fn read_uvarint(&mut self) -> Result<u64, VarintError> {
        let mut x: u64 = 0;
        let mut shift = 0u32;
        for i in 0..10 {
            let b = self.read_byte().ok_or(VarintError::Eof)?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(VarintError::Overflow);
                }
                return Ok(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        Err(VarintError::Overflow)
    }

    fn read_varint(&mut self) -> Result<i64, VarintError> {
        let ux = self.read_uvarint()?;
        Ok(zigzag_decode(ux))
    }
}

enum VarintError {
    Eof,
    Overflow,
}

fn zigzag_decode(ux: u64) -> i64 {
    ((ux >> 1) as i64) ^ -((ux & 1) as i64)
}

fn zigzag_encode(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// Appends an unsigned LEB128 varint to `out` (Go's `binary.PutUvarint`).
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends a zig-zag signed varint to `out` (Go's `binary.PutVarint`).
pub(crate) fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, zigzag_encode(x));
}

/// Whether `x` fits a dod bucket of `nbits` bits: `-(2^(n-1)-1) ..= 2^(n-1)`.
fn fits(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// The "no window yet" marker for the leading-zero count, as Prometheus uses it.
const NO_WINDOW: u8 = 0xff;

/// An appendable XOR chunk: the unit Prometheus' head and blocks store samples in.
///
/// Samples must be appended in strictly increasing time order (the caller checks this, as
/// Prometheus' head does before appending). A chunk holds at most `u16::MAX` samples; Prometheus
/// cuts a new chunk every ~120 samples, so callers never get near that.
#[derive(Clone)]
pub struct XorChunk {
    stream: BitWriter,
    num: u16,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    min_time: i64,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for XorChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XorChunk")
            .field("num_samples", &self.num)
            .field("bytes", &self.stream.bytes.len())
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .finish()
    }
}

impl XorChunk {
    /// An empty chunk (just the 2-byte zero sample count), with room for the ~120 samples of
    /// a typical chunk, as Prometheus allocates it (`shrink_to_fit` once it is complete).
    pub fn new() -> Self {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&[0, 0]);
        Self {
            stream: BitWriter { bytes, free: 0 },
            num: 0,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: NO_WINDOW,
            trailing: 0,
            min_time: 0,
        }
    }

    /// Reopens encoded chunk bytes for appending (for example a chunk read back after a
    /// restart), checking every sample on the way.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChunkError> {
        let mut it = decode_xor(bytes)?;
        let mut last = None;
        let mut first = None;
        for (t, v) in it.by_ref() {
            first.get_or_insert(t);
            last = Some((t, v));
        }
        if let Some(err) = it.err() {
            return Err(err.clone());
        }
        let end_bits = it.reader.pos;
        let used = end_bits.div_ceil(8);
        let free = (used * 8 - end_bits) as u8;
        let mut chunk = Self {
            stream: BitWriter {
                bytes: bytes[..used.max(2)].to_vec(),
                free,
            },
            num: it.total,
            t: 0,
            v: 0.0,
            t_delta: it.t_delta,
            leading: it.leading,
            trailing: it.trailing,
            min_time: first.unwrap_or(0),
        };
        if let Some((t, v)) = last {
            chunk.t = t;
            chunk.v = v;
        }
        // Bits past the last sample must be zero for appends to OR into them.
        if let Some(last_byte) = chunk.stream.bytes.last_mut()
            && free > 0
            && used > 2
        {
            *last_byte &= !((1u8 << free) - 1);
        }
        Ok(chunk)
    }

    /// Appends one sample. `t` must be greater than the last appended timestamp; the encoding
    /// stays decodable otherwise, but Prometheus readers expect increasing times.
    ///
    /// A full chunk ([`XorChunk::is_full`], `u16::MAX` samples: the header cannot count more)
    /// ignores the sample; callers cut a new chunk long before (Prometheus cuts at ~120).
    pub fn append(&mut self, t: i64, v: f64) {
        if self.is_full() {
            return;
        }
        let t_delta;
        match self.num {
            0 => {
                let mut buf = Vec::with_capacity(10);
                put_varint(&mut buf, t);
                self.stream.write_byte_aligned(&buf);
                self.stream.write_bits(v.to_bits(), 64);
                self.min_time = t;
                t_delta = 0;
            }
            1 => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let mut buf = Vec::with_capacity(10);
                put_uvarint(&mut buf, t_delta);
                self.stream.write_byte_aligned(&buf);
                self.write_value(v);
            }
            _ => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.stream.write_bit(false);
                } else if fits(dod, 14) {
                    self.stream.write_bits(0b10, 2);
                    self.stream.write_bits(dod as u64, 14);
                } else if fits(dod, 17) {
                    self.stream.write_bits(0b110, 3);
                    self.stream.write_bits(dod as u64, 17);
                } else if fits(dod, 20) {
                    self.stream.write_bits(0b1110, 4);
                    self.stream.write_bits(dod as u64, 20);
                } else {
                    self.stream.write_bits(0b1111, 4);
                    self.stream.write_bits(dod as u64, 64);
                }
                self.write_value(v);
            }
        }
        self.t = t;
        self.v = v;
        self.t_delta = t_delta;
        self.num += 1;
        let [hi, lo] = self.num.to_be_bytes();
        self.stream.bytes[0] = hi;
        self.stream.bytes[1] = lo;
    }

    fn write_value(&mut self, v: f64) {
        let delta = v.to_bits() ^ self.v.to_bits();
        if delta == 0 {
            self.stream.write_bit(false);
            return;
        }
        self.stream.write_bit(true);
        // Five bits hold the leading-zero count, so it is capped at 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            self.stream.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.stream.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.stream.write_bit(true);
        self.stream.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 meaningful bits do not fit in 6 bits; they are written as 0 and read back as 64.
        self.stream.write_bits(u64::from(sig), 6);
        self.stream.write_bits(delta >> trailing, sig);
    }

    /// The newest sample, if any (kept by the appender, so no decoding).
    pub fn last(&self) -> Option<(i64, f64)> {
        (self.num > 0).then_some((self.t, self.v))
    }

    /// How many samples the chunk holds.
    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// Whether the chunk holds as many samples as its 16-bit header can count.
    pub fn is_full(&self) -> bool {
        self.num == u16::MAX
    }

    /// Gives back spare capacity of the byte buffer (for chunks that are done growing and
    /// stay in memory).
    pub fn shrink_to_fit(&mut self) {
        self.stream.bytes.shrink_to_fit();
    }

    /// Bytes the chunk's buffer holds on the heap (its capacity), for memory accounting.
    pub fn capacity(&self) -> usize {
        self.stream.bytes.capacity()
    }

    /// The encoded chunk exactly as Prometheus stores it (header included).
    pub fn bytes(&self) -> &[u8] {
        &self.stream.bytes
    }

    /// The encoded bytes, giving up the appender state (for chunks that are complete: keep
    /// the bytes, and [`XorChunk::from_bytes`] reopens them when needed).
    pub fn into_bytes(self) -> Vec<u8> {
        self.stream.bytes
    }

    /// The samples in time order.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(&self.stream.bytes, self.num)
    }

    /// The first sample's timestamp, if any.
    pub fn min_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.min_time)
    }

    /// The last sample's timestamp, if any.
    pub fn max_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.t)
    }
}

/// Decodes the samples of an encoded XOR chunk. Only a chunk shorter than its header is an
/// error here; a chunk whose data ends early stops iterating, and [`XorIter::err`] says why.
pub fn decode_xor(bytes: &[u8]) -> Result<XorIter<'_>, ChunkError> {
    if bytes.len() < 2 {
        return Err(ChunkError::TooShort(bytes.len()));
    }
    let total = u16::from_be_bytes([bytes[0], bytes[1]]);
    Ok(XorIter::new(bytes, total))
}

/// Iterator over the `(timestamp, value)` samples of an XOR chunk.
#[derive(Clone)]
pub struct XorIter<'a> {
    reader: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    err: Option<ChunkError>,
}

impl fmt::Debug for XorIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XorIter")
            .field("total", &self.total)
            .field("read", &self.read)
            .field("err", &self.err)
            .finish()
    }
}

impl<'a> XorIter<'a> {
    fn new(bytes: &'a [u8], total: u16) -> Self {
        Self {
            reader: BitReader { bytes, pos: 16 },
            total,
            read: 0,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: NO_WINDOW,
            trailing: 0,
            err: None,
        }
    }

    /// Why iteration stopped before the header's sample count, if it did.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    /// The sample count the chunk header announces.
    pub fn num_samples(&self) -> u16 {
        self.total
    }

    fn fail(&mut self, err: ChunkError) -> Option<(i64, f64)> {
        self.err = Some(err);
        // Nothing more comes out after an error.
        self.read = self.total;
        None
    }

    fn truncated(&mut self) -> Option<(i64, f64)> {
        let (read, total) = (self.read, self.total);
        self.fail(ChunkError::Truncated { read, total })
    }

    fn varint_error(&mut self, e: VarintError) -> Option<(i64, f64)> {
        match e {
            VarintError::Eof => self.truncated(),
            VarintError::Overflow => {
                let read = self.read;
                self.fail(ChunkError::BadVarint { read })
            }
        }
    }

    /// Reads one XORed value; `Err(None)` means the data ran out.
    fn read_value(&mut self) -> Result<(), Option<ChunkError>> {
        if !self.reader.read_bit().ok_or(None)? {
            return Ok(());
        }
        if self.reader.read_bit().ok_or(None)? {
            let leading = self.reader.read_bits(5).ok_or(None)? as u8;
            let mut sig = self.reader.read_bits(6).ok_or(None)? as u8;
            if sig == 0 {
                sig = 64;
            }
            if u32::from(leading) + u32::from(sig) > 64 {
                return Err(Some(ChunkError::BadValueLayout { read: self.read }));
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
        } else if self.leading == NO_WINDOW {
            // A window reuse before any window was set: Prometheus' reader would read it as
            // an empty window; no Prometheus writer produces it.
            return Err(Some(ChunkError::BadValueLayout { read: self.read }));
        }
        let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let bits = self.reader.read_bits(sig).ok_or(None)?;
        let shifted = if self.trailing >= 64 {
            0
        } else {
            bits << self.trailing
        };
        self.v = f64::from_bits(self.v.to_bits() ^ shifted);
        Ok(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        match self.read {
            0 => {
                match self.reader.read_varint() {
                    Ok(t) => self.t = t,
                    Err(e) => return self.varint_error(e),
                }
                match self.reader.read_bits(64) {
                    Some(bits) => self.v = f64::from_bits(bits),
                    None => return self.truncated(),
                }
            }
            1 => {
                match self.reader.read_uvarint() {
                    Ok(d) => self.t_delta = d,
                    Err(e) => return self.varint_error(e),
                }
                self.t = self.t.wrapping_add(self.t_delta as i64);
                if let Err(e) = self.read_value() {
                    return match e {
                        None => self.truncated(),
                        Some(e) => self.fail(e),
                    };
                }
            }
            _ => {
                // Up to four prefix bits pick the dod bucket.
                let mut prefix = 0u8;
                for _ in 0..4 {
                    let Some(bit) = self.reader.read_bit() else {
                        return self.truncated();
                    };
                    prefix <<= 1;
                    if !bit {
                        break;
                    }
                    prefix |= 1;
                }
                let width = match prefix {
                    0b0 => 0,
                    0b10 => 14,
                    0b110 => 17,
                    0b1110 => 20,
                    _ => 64,
                };
                let dod = if width == 0 {
                    0
                } else {
                    let Some(bits) = self.reader.read_bits(width) else {
                        return self.truncated();
                    };
                    if width == 64 {
                        bits as i64
                    } else if bits > 1 << (width - 1) {
                        (bits as i64) - (1i64 << width)
                    } else {
                        bits as i64
                    }
                };
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                if let Err(e) = self.read_value() {
                    return match e {
                        None => self.truncated(),
                        Some(e) => self.fail(e),
                    };
                }
            }
        }
        self.read += 1;
        Some((self.t, self.v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.total - self.read);
        (0, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(c: &XorChunk) -> Vec<(i64, u64)> {
        c.iter().map(|(t, v)| (t, v.to_bits())).collect()
    }

    #[test]
    fn empty_chunk_is_two_zero_bytes() {
        let c = XorChunk::new();
        assert_eq!(c.bytes(), &[0, 0]);
        assert_eq!(c.iter().count(), 0);
        assert_eq!(c.min_time(), None);
    }

    #[test]
    fn first_sample_is_varint_time_and_raw_value() {
        let mut c = XorChunk::new();
        c.append(1, 1.0);
        // count 1, zig-zag varint 1 -> 0x02, then 1.0's bits 0x3ff0000000000000.
        assert_eq!(c.bytes(), &[0, 1, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn second_sample_is_uvarint_delta_and_xor() {
        let mut c = XorChunk::new();
        c.append(1000, 1.0);
        c.append(1015, 1.0);
        // 1000 zig-zag = 2000 = 0xd0 0x0f; delta 15 = 0x0f; equal value = one 0 bit.
        assert_eq!(
            c.bytes(),
            &[0, 2, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x0f, 0x00]
        );
        assert_eq!(
            samples(&c),
            vec![(1000, 1f64.to_bits()), (1015, 1f64.to_bits())]
        );
    }

    #[test]
    fn every_dod_bucket_round_trips() {
        let mut c = XorChunk::new();
        let mut t = -5_000_000i64;
        let mut delta = 10i64;
        let mut want = Vec::new();
        for dod in [
            0i64,
            1,
            -1,
            8192,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            524288,
            -524287,
            524289,
            -524288,
            1 << 40,
            -(1 << 40),
        ] {
            delta += dod;
            t += delta;
            want.push((t, t as f64));
        }
        for &(t, v) in &want {
            c.append(t, v);
        }
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_full_chunk_ignores_further_samples() {
        let mut c = XorChunk::new();
        for i in 0..i64::from(u16::MAX) {
            c.append(i, 1.0);
        }
        assert!(c.is_full());
        let before = c.bytes().to_vec();
        c.append(1 << 40, 2.0);
        assert_eq!(c.bytes(), &before[..]);
        assert_eq!(c.iter().count(), usize::from(u16::MAX));
        assert_eq!(c.max_time(), Some(i64::from(u16::MAX) - 1));
    }

    #[test]
    fn from_bytes_continues_appending() {
        let mut a = XorChunk::new();
        for i in 0..50 {
            a.append(i * 15_000 + (i % 3), (i as f64) * 1.5);
        }
        let mut b = XorChunk::from_bytes(&a.clone().into_bytes()).unwrap();
        assert_eq!(b.bytes(), a.bytes());
        for i in 50..120 {
            a.append(i * 15_000, (i as f64).sqrt());
            b.append(i * 15_000, (i as f64).sqrt());
        }
        assert_eq!(b.bytes(), a.bytes());
        assert_eq!(b.min_time(), Some(0));
        assert_eq!(b.max_time(), Some(119 * 15_000));
    }

    #[test]
    fn short_input_is_an_error_and_truncation_is_reported() {
        assert_eq!(decode_xor(&[1]).unwrap_err(), ChunkError::TooShort(1));
        let mut c = XorChunk::new();
        for i in 0..10 {
            c.append(i * 1000, i as f64 * 0.1);
        }
        let cut = &c.bytes()[..c.bytes().len() - 3];
        let mut it = decode_xor(cut).unwrap();
        let n = it.by_ref().count();
        assert!(n < 10);
        assert!(matches!(
            it.err(),
            Some(ChunkError::Truncated { total: 10, .. })
        ));
    }
}
