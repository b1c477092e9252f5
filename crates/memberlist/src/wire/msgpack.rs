//! MessagePack in the dialect of Go's `hashicorp/go-msgpack`, as memberlist uses it.
//!
//! memberlist encodes every message body with a default go-msgpack handle, which
//! differs from "modern" MessagePack in ways that matter for byte-exact interop
//! (`spec/memberlist.md` §1.3, §5 and its reality check):
//!
//! - strings **and** byte slices use the old "raw" family only: fixstr, str16, str32;
//!   never str8 (`0xd9`) and never bin (`0xc4..0xc6`);
//! - a nil byte slice is msgpack nil (`0xc0`), an empty one is `0xa0`;
//! - unsigned Go fields use the smallest unsigned marker; Go `int` fields depend on the
//!   library generation, see [`Dialect`];
//! - struct fields are map keys named after the Go field, emitted in sorted order.
//!
//! The encoder here writes exactly that. The [`Reader`] is lenient like Go's decoder:
//! it accepts str8 and bin, any integer width or sign that fits the field, nil for any
//! field, unknown keys, and keys in any order.
//!
//! Decoding is safe on hostile input: it never panics, a length prefix never causes an
//! allocation larger than the remaining input, and nesting is limited to
//! [`MAX_DEPTH`].

use thiserror::Error;

/// Deepest nesting of arrays and maps the decoder follows before giving up.
///
/// memberlist bodies are flat maps (depth 1); the limit only exists so that a hostile
/// peer cannot make [`Value`] decoding or [`Reader::skip_value`] recurse without bound.
pub const MAX_DEPTH: usize = 32;

/// Most elements reserved up front for a decoded array or map. Counts are already
/// checked against the remaining input, but a `Value` is much larger than the one
/// byte a nil element takes, so larger containers grow as elements really decode.
const PREALLOC_LIMIT: usize = 1024;

/// Which generation of Go's msgpack library the encoder imitates.
///
/// The two generations differ only in how a Go `int` field (`pushPullHeader.Nodes`,
/// `UserStateLen`, `pushNodeState.State`, `userMsgHeader.UserMsgLen`) above 127 is
/// written. Both generations decode either form, so the choice only matters for
/// byte-identical output (golden tests, captures), never for acceptance by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The old `github.com/hashicorp/go-msgpack` codec package (no `/v2`), linked by
    /// the captured peers (dskit of 2023, Alertmanager 0.25): non-negative Go `int`
    /// values use unsigned markers (`cd 02 da` for 730).
    Legacy,
    /// `github.com/hashicorp/go-msgpack/v2` (v2.1.5, pinned by current dskit):
    /// non-negative Go `int` values above 127 use signed markers (`d1 02 da` for 730).
    V2,
}

/// What was wrong with msgpack input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MsgpackError {
    /// The input ended in the middle of a value. On a stream this means "read more";
    /// on a packet it means the packet was truncated.
    #[error("input ended at offset {offset} while {needed} more byte(s) were needed")]
    UnexpectedEof {
        /// Offset where the missing bytes should have started.
        offset: usize,
        /// How many bytes were missing (at least).
        needed: usize,
    },
    /// A marker byte that can never start a value (`0xc1`).
    #[error("invalid msgpack marker 0x{marker:02x} at offset {offset}")]
    InvalidMarker {
        /// The marker byte.
        marker: u8,
        /// Where it was.
        offset: usize,
    },
    /// A valid value of the wrong kind for the field being read.
    #[error("expected {expected} at offset {offset}, found marker 0x{marker:02x}")]
    TypeMismatch {
        /// What the field needed.
        expected: &'static str,
        /// The marker found instead.
        marker: u8,
        /// Where it was.
        offset: usize,
    },
    /// An integer that does not fit the Go field type (negative into unsigned, or too
    /// large), which Go's decoder also rejects.
    #[error("integer {value} at offset {offset} does not fit {target}")]
    IntOutOfRange {
        /// The decoded value.
        value: i128,
        /// The target type, e.g. `uint16`.
        target: &'static str,
        /// Where the integer started.
        offset: usize,
    },
    /// Arrays or maps nested deeper than [`MAX_DEPTH`].
    #[error("msgpack nesting deeper than {MAX_DEPTH} at offset {offset}")]
    TooDeep {
        /// Where the limit was hit.
        offset: usize,
    },
}

impl MsgpackError {
    /// True when more input could complete the value (used to tell a partial stream
    /// read from a malformed one).
    pub(crate) fn is_eof(&self) -> bool {
        matches!(self, MsgpackError::UnexpectedEof { .. })
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, MsgpackError>;

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Appends a map header for `len` entries.
pub(crate) fn write_map_len(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as u32 {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends an array header for `len` elements.
pub(crate) fn write_array_len(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= u16::MAX as u32 {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends bytes in the legacy raw family (fixstr, str16, str32), the form Go uses
/// for both `string` and `[]byte` fields.
///
/// # Panics
///
/// Never for inputs under 4 GiB; longer slices cannot be represented in msgpack and
/// are truncated in the length prefix, so callers must not pass them (no memberlist
/// message comes close).
pub(crate) fn write_raw(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// Appends a Go `[]byte` that may be nil: `None` is msgpack nil, as Go writes a nil
/// slice; `Some(empty)` is `0xa0`.
pub(crate) fn write_opt_raw(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => write_raw(out, b),
        None => write_nil(out),
    }
}

/// Appends msgpack nil.
pub(crate) fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// Appends a bool.
pub(crate) fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

/// Appends an unsigned Go integer (`uint8`..`uint64`) with the smallest unsigned marker,
/// as both library generations do.
pub(crate) fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= u8::MAX as u64 {
        out.push(0xcc);
        out.push(v as u8);
    } else if v <= u16::MAX as u64 {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u32::MAX as u64 {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a signed integer with signed markers only (negative fixint, `d0..d3`),
/// smallest first; non-negative values up to 127 are positive fixint.
fn write_signed(out: &mut Vec<u8>, v: i64) {
    if (0..0x80).contains(&v) || (-32..0).contains(&v) {
        out.push(v as i8 as u8);
    } else if i8::try_from(v).is_ok() {
        out.push(0xd0);
        out.push(v as i8 as u8);
    } else if let Ok(s) = i16::try_from(v) {
        out.push(0xd1);
        out.extend_from_slice(&s.to_be_bytes());
    } else if let Ok(s) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&s.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a Go `int` field the way the chosen library generation does (see
/// [`Dialect`]).
pub(crate) fn write_int(out: &mut Vec<u8>, v: i64, dialect: Dialect) {
    match dialect {
        Dialect::Legacy if v >= 0 => write_uint(out, v as u64),
        _ => write_signed(out, v),
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// An integer as read off the wire, before it is checked against a field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireInt {
    /// The numeric value.
    pub value: i128,
    /// Offset of the marker, for error messages.
    pub offset: usize,
}

impl WireInt {
    fn fit<T: TryFrom<i128>>(self, target: &'static str) -> Result<T> {
        T::try_from(self.value).map_err(|_| MsgpackError::IntOutOfRange {
            value: self.value,
            target,
            offset: self.offset,
        })
    }
}

/// A cursor over msgpack bytes with lenient, Go-compatible typed reads.
///
/// Every read either consumes exactly one value and advances, or returns an error;
/// after an error the position is unspecified.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn eof(&self, needed: usize) -> MsgpackError {
        MsgpackError::UnexpectedEof {
            offset: self.pos,
            needed,
        }
    }

    /// Takes `n` bytes, failing (without allocating) when fewer remain.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.eof(n - left));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Looks at the next marker without consuming it.
    pub fn peek(&self) -> Result<u8> {
        self.buf.get(self.pos).copied().ok_or_else(|| self.eof(1))
    }

    fn mismatch(&self, expected: &'static str, marker: u8, offset: usize) -> MsgpackError {
        MsgpackError::TypeMismatch {
            expected,
            marker,
            offset,
        }
    }

    /// Consumes a nil if one is next and reports whether it did.
    pub(crate) fn read_nil(&mut self) -> Result<bool> {
        if self.peek()? == 0xc0 {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads a map header. The count is checked against the remaining input (each
    /// entry takes at least two bytes), so callers may size buffers from it.
    pub(crate) fn read_map_len(&mut self) -> Result<usize> {
        let at = self.pos;
        let m = self.byte()?;
        let n = match m {
            0x80..=0x8f => (m & 0x0f) as usize,
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            _ => return Err(self.mismatch("map", m, at)),
        };
        self.check_count(n, 2)?;
        Ok(n)
    }

    /// Reads an array header, checked like [`Reader::read_map_len`] (one byte per element).
    pub(crate) fn read_array_len(&mut self) -> Result<usize> {
        let at = self.pos;
        let m = self.byte()?;
        let n = match m {
            0x90..=0x9f => (m & 0x0f) as usize,
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err(self.mismatch("array", m, at)),
        };
        self.check_count(n, 1)?;
        Ok(n)
    }

    fn check_count(&self, n: usize, min_each: usize) -> Result<()> {
        let left = self.buf.len() - self.pos;
        match n.checked_mul(min_each) {
            Some(need) if need <= left => Ok(()),
            _ => Err(self.eof(n.saturating_mul(min_each).saturating_sub(left))),
        }
    }

    /// Reads a string or binary value (fixstr, str8/16/32, bin8/16/32) and borrows its
    /// bytes. Nil reads as empty, like Go.
    pub(crate) fn read_str_like(&mut self) -> Result<&'a [u8]> {
        let at = self.pos;
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            0xc0 => return Ok(&[]),
            _ => return Err(self.mismatch("string or bytes", m, at)),
        };
        self.take(n)
    }

    /// Reads a Go `[]byte` field: any string/binary form, or an array of small
    /// integers (which Go also accepts). Nil becomes `None`.
    pub(crate) fn read_opt_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        if self.read_nil()? {
            return Ok(None);
        }
        if matches!(self.peek()?, 0x90..=0x9f | 0xdc | 0xdd) {
            let n = self.read_array_len()?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(self.read_int()?.fit::<u8>("uint8")?);
            }
            return Ok(Some(v));
        }
        Ok(Some(self.read_str_like()?.to_vec()))
    }

    /// Reads a Go `[]byte` or `string` field where nil and empty are not told apart.
    pub(crate) fn read_bytes(&mut self) -> Result<Vec<u8>> {
        Ok(self.read_opt_bytes()?.unwrap_or_default())
    }

    /// Reads any integer marker (or nil, as zero).
    pub(crate) fn read_int(&mut self) -> Result<WireInt> {
        let offset = self.pos;
        let m = self.byte()?;
        let value: i128 = match m {
            0x00..=0x7f => m as i128,
            0xe0..=0xff => (m as i8) as i128,
            0xc0 => 0,
            0xcc => self.be(1)? as i128,
            0xcd => self.be(2)? as i128,
            0xce => self.be(4)? as i128,
            0xcf => self.be(8)? as i128,
            0xd0 => (self.be(1)? as u8 as i8) as i128,
            0xd1 => (self.be(2)? as u16 as i16) as i128,
            0xd2 => (self.be(4)? as u32 as i32) as i128,
            0xd3 => (self.be(8)? as i64) as i128,
            _ => return Err(self.mismatch("integer", m, offset)),
        };
        Ok(WireInt { value, offset })
    }

    /// Reads a `uint8` field.
    pub(crate) fn read_u8(&mut self) -> Result<u8> {
        self.read_int()?.fit("uint8")
    }

    /// Reads a `uint16` field.
    pub(crate) fn read_u16(&mut self) -> Result<u16> {
        self.read_int()?.fit("uint16")
    }

    /// Reads a `uint32` field.
    pub(crate) fn read_u32(&mut self) -> Result<u32> {
        self.read_int()?.fit("uint32")
    }

    /// Reads a Go `int` field (64-bit on every platform memberlist runs on).
    pub(crate) fn read_i64(&mut self) -> Result<i64> {
        self.read_int()?.fit("int")
    }

    /// Reads a bool; Go also accepts the integers 0 and 1, and nil as false.
    pub(crate) fn read_bool(&mut self) -> Result<bool> {
        let at = self.pos;
        match self.byte()? {
            0xc2 | 0xc0 | 0x00 => Ok(false),
            0xc3 | 0x01 => Ok(true),
            m => Err(self.mismatch("bool", m, at)),
        }
    }

    /// Skips one complete value of any type.
    pub fn skip_value(&mut self) -> Result<()> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Result<()> {
        let at = self.pos;
        let m = self.peek()?;
        match m {
            0x80..=0x8f | 0xde | 0xdf | 0x90..=0x9f | 0xdc | 0xdd => {
                if depth >= MAX_DEPTH {
                    return Err(MsgpackError::TooDeep { offset: at });
                }
                let items = if matches!(m, 0x80..=0x8f | 0xde | 0xdf) {
                    self.read_map_len()? * 2
                } else {
                    self.read_array_len()?
                };
                for _ in 0..items {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            _ => {
                self.pos += 1;
                let n = match m {
                    0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                    0xa0..=0xbf => (m & 0x1f) as usize,
                    0xcc | 0xd0 => 1,
                    0xcd | 0xd1 => 2,
                    0xce | 0xd2 | 0xca => 4,
                    0xcf | 0xd3 | 0xcb => 8,
                    0xd9 | 0xc4 => self.be(1)? as usize,
                    0xda | 0xc5 => self.be(2)? as usize,
                    0xdb | 0xc6 => self.be(4)? as usize,
                    0xd4 => 2,
                    0xd5 => 3,
                    0xd6 => 5,
                    0xd7 => 9,
                    0xd8 => 17,
                    0xc7 => self.be(1)? as usize + 1,
                    0xc8 => self.be(2)? as usize + 1,
                    0xc9 => self.be(4)? as usize + 1,
                    _ => {
                        return Err(MsgpackError::InvalidMarker {
                            marker: m,
                            offset: at,
                        });
                    }
                };
                self.take(n).map(|_| ())
            }
        }
    }

    /// Reads a Go struct encoded as a map: for each entry calls `field(key, reader)`,
    /// which must consume the value and return `true`, or return `false` to have it
    /// skipped (unknown key). Keys that are not strings are skipped with their value.
    ///
    /// Keys are compared exactly, as Go does; missing keys simply never reach `field`.
    pub(crate) fn read_struct<F>(&mut self, mut field: F) -> Result<()>
    where
        F: FnMut(&[u8], &mut Reader<'a>) -> Result<bool>,
    {
        let n = self.read_map_len()?;
        for _ in 0..n {
            let key_is_str = matches!(self.peek()?, 0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6);
            if !key_is_str {
                self.skip_value()?;
                self.skip_value()?;
                continue;
            }
            let key = self.read_str_like()?;
            if !field(key, self)? {
                self.skip_value()?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Dynamic values
// ---------------------------------------------------------------------------

/// Any msgpack value, for tools, tests and fuzzing (message bodies are decoded
/// straight into their structs instead).
///
/// Integers are normalised on decode: non-negative values become [`Value::Uint`],
/// negative ones [`Value::Int`], whatever marker carried them, because go-msgpack
/// itself does not preserve the marker width either.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// A str-family value (Go raw string); bytes, not necessarily UTF-8.
    Raw(Vec<u8>),
    /// A bin-family value.
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, entries in wire order.
    Map(Vec<(Value, Value)>),
    /// An extension value: type tag and data.
    Ext(i8, Vec<u8>),
}

impl Value {
    /// Decodes one value from the start of `buf`, returning it and the bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<(Value, usize)> {
        let mut r = Reader::new(buf);
        let v = r.read_value(0)?;
        Ok((v, r.position()))
    }

    /// Encodes the value; str-family values use the legacy raw markers like Go, bin
    /// values use bin markers, integers the smallest marker of their sign.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Nil => write_nil(out),
            Value::Bool(b) => write_bool(out, *b),
            Value::Uint(u) => write_uint(out, *u),
            Value::Int(i) => write_signed(out, *i),
            Value::F32(f) => {
                out.push(0xca);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::F64(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Raw(b) => write_raw(out, b),
            Value::Bin(b) => {
                let len = b.len();
                if len <= u8::MAX as usize {
                    out.push(0xc4);
                    out.push(len as u8);
                } else if len <= u16::MAX as usize {
                    out.push(0xc5);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    out.push(0xc6);
                    out.extend_from_slice(&(len as u32).to_be_bytes());
                }
                out.extend_from_slice(b);
            }
            Value::Array(items) => {
                write_array_len(out, items.len() as u32);
                for v in items {
                    v.encode(out);
                }
            }
            Value::Map(entries) => {
                write_map_len(out, entries.len() as u32);
                for (k, v) in entries {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Value::Ext(tag, data) => {
                let fixed = match data.len() {
                    1 => Some(0xd4),
                    2 => Some(0xd5),
                    4 => Some(0xd6),
                    8 => Some(0xd7),
                    16 => Some(0xd8),
                    _ => None,
                };
                if let Some(m) = fixed {
                    out.push(m);
                } else if data.len() <= u8::MAX as usize {
                    out.push(0xc7);
                    out.push(data.len() as u8);
                } else if data.len() <= u16::MAX as usize {
                    out.push(0xc8);
                    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                } else {
                    out.push(0xc9);
                    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
                }
                out.push(*tag as u8);
                out.extend_from_slice(data);
            }
        }
    }
}

impl Reader<'_> {
    fn read_value(&mut self, depth: usize) -> Result<Value> {
        let at = self.pos;
        let m = self.peek()?;
        let deeper = |r: &Self| {
            if depth >= MAX_DEPTH {
                Err(MsgpackError::TooDeep { offset: r.pos })
            } else {
                Ok(())
            }
        };
        Ok(match m {
            0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => {
                let i = self.read_int()?;
                if i.value >= 0 {
                    Value::Uint(i.value as u64)
                } else {
                    Value::Int(i.value as i64)
                }
            }
            0xc0 => {
                self.pos += 1;
                Value::Nil
            }
            0xc2 | 0xc3 => Value::Bool(self.read_bool()?),
            0xca => {
                self.pos += 1;
                Value::F32(f32::from_bits(self.be(4)? as u32))
            }
            0xcb => {
                self.pos += 1;
                Value::F64(f64::from_bits(self.be(8)?))
            }
            0xa0..=0xbf | 0xd9..=0xdb => Value::Raw(self.read_str_like()?.to_vec()),
            0xc4..=0xc6 => Value::Bin(self.read_str_like()?.to_vec()),
            0x90..=0x9f | 0xdc | 0xdd => {
                deeper(self)?;
                let n = self.read_array_len()?;
                let mut items = Vec::with_capacity(n.min(PREALLOC_LIMIT));
                for _ in 0..n {
                    items.push(self.read_value(depth + 1)?);
                }
                Value::Array(items)
            }
            0x80..=0x8f | 0xde | 0xdf => {
                deeper(self)?;
                let n = self.read_map_len()?;
                let mut entries = Vec::with_capacity(n.min(PREALLOC_LIMIT));
                for _ in 0..n {
                    let k = self.read_value(depth + 1)?;
                    let v = self.read_value(depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            0xd4..=0xd8 | 0xc7..=0xc9 => {
                self.pos += 1;
                let len = match m {
                    0xd4 => 1,
                    0xd5 => 2,
                    0xd6 => 4,
                    0xd7 => 8,
                    0xd8 => 16,
                    0xc7 => self.be(1)? as usize,
                    0xc8 => self.be(2)? as usize,
                    _ => self.be(4)? as usize,
                };
                let tag = self.byte()? as i8;
                Value::Ext(tag, self.take(len)?.to_vec())
            }
            _ => {
                return Err(MsgpackError::InvalidMarker {
                    marker: m,
                    offset: at,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn raw_strings_use_fixstr_then_str16_never_str8() {
        assert_eq!(enc(|o| write_raw(o, b"")), [0xa0]);
        assert_eq!(enc(|o| write_raw(o, &[b'x'; 31]))[0], 0xbf);
        let forty = enc(|o| write_raw(o, &[b'x'; 40]));
        assert_eq!(&forty[..3], &[0xda, 0x00, 0x28]);
        let big = enc(|o| write_raw(o, &vec![0u8; 70_000]));
        assert_eq!(&big[..5], &[0xdb, 0x00, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn go_int_markers_differ_by_dialect_only_above_127() {
        assert_eq!(enc(|o| write_int(o, 5, Dialect::V2)), [0x05]);
        assert_eq!(enc(|o| write_int(o, 5, Dialect::Legacy)), [0x05]);
        assert_eq!(enc(|o| write_int(o, 200, Dialect::V2)), [0xd1, 0x00, 0xc8]);
        assert_eq!(enc(|o| write_int(o, 200, Dialect::Legacy)), [0xcc, 0xc8]);
        assert_eq!(
            enc(|o| write_int(o, 730, Dialect::Legacy)),
            [0xcd, 0x02, 0xda]
        );
        assert_eq!(
            enc(|o| write_int(o, 40_000, Dialect::V2)),
            [0xd2, 0x00, 0x00, 0x9c, 0x40]
        );
        assert_eq!(enc(|o| write_int(o, -1, Dialect::Legacy)), [0xff]);
        assert_eq!(enc(|o| write_int(o, -100, Dialect::V2)), [0xd0, 0x9c]);
    }

    #[test]
    fn uint_port_7946_is_cd_1f0a() {
        assert_eq!(enc(|o| write_uint(o, 7946)), [0xcd, 0x1f, 0x0a]);
        assert_eq!(enc(|o| write_uint(o, 1 << 40))[0], 0xcf);
    }

    #[test]
    fn reader_accepts_any_int_marker_that_fits() {
        for bytes in [
            &[0xd1, 0x02, 0xda][..],
            &[0xcd, 0x02, 0xda],
            &[0xd3, 0, 0, 0, 0, 0, 0, 2, 0xda],
        ] {
            assert_eq!(Reader::new(bytes).read_i64().unwrap(), 730);
            assert_eq!(Reader::new(bytes).read_u16().unwrap(), 730);
        }
    }

    #[test]
    fn reader_rejects_negative_into_unsigned_and_overflow() {
        assert!(matches!(
            Reader::new(&[0xff]).read_u32(),
            Err(MsgpackError::IntOutOfRange { value: -1, .. })
        ));
        assert!(matches!(
            Reader::new(&[0xce, 0x00, 0x01, 0x11, 0x70]).read_u16(),
            Err(MsgpackError::IntOutOfRange {
                target: "uint16",
                ..
            })
        ));
    }

    #[test]
    fn reader_accepts_str8_bin_nil_and_int_arrays_for_bytes() {
        assert_eq!(Reader::new(&[0xd9, 1, b'a']).read_bytes().unwrap(), b"a");
        assert_eq!(Reader::new(&[0xc4, 1, b'a']).read_bytes().unwrap(), b"a");
        assert_eq!(Reader::new(&[0xc0]).read_opt_bytes().unwrap(), None);
        assert_eq!(Reader::new(&[0xa0]).read_opt_bytes().unwrap(), Some(vec![]));
        assert_eq!(
            Reader::new(&[0x92, 0x01, 0xcc, 0xff]).read_bytes().unwrap(),
            vec![1, 255]
        );
    }

    #[test]
    fn huge_length_prefix_is_eof_not_allocation() {
        let err = Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff])
            .read_bytes()
            .unwrap_err();
        assert!(err.is_eof());
        let err = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff])
            .read_array_len()
            .unwrap_err();
        assert!(err.is_eof());
        assert!(
            Value::decode(&[0xdf, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .is_eof()
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = vec![0x91; 10_000];
        assert!(matches!(
            Value::decode(&deep),
            Err(MsgpackError::TooDeep { .. })
        ));
        assert!(matches!(
            Reader::new(&deep).skip_value(),
            Err(MsgpackError::TooDeep { .. })
        ));
    }

    #[test]
    fn struct_reader_skips_unknown_and_non_string_keys() {
        // {"node": 1, 5: [1,2], "Node": "b"}
        let bytes = [
            0x83, 0xa4, b'n', b'o', b'd', b'e', 0x01, 0x05, 0x92, 0x01, 0x02, 0xa4, b'N', b'o',
            b'd', b'e', 0xa1, b'b',
        ];
        let mut node = Vec::new();
        let mut r = Reader::new(&bytes);
        r.read_struct(|k, r| {
            if k == b"Node" {
                node = r.read_bytes()?;
                Ok(true)
            } else {
                Ok(false)
            }
        })
        .unwrap();
        assert_eq!(node, b"b");
        assert_eq!(r.position(), bytes.len());
    }

    #[test]
    fn value_round_trips_and_normalises_ints() {
        let (v, n) = Value::decode(&[0xd1, 0x00, 0xc8]).unwrap();
        assert_eq!((v, n), (Value::Uint(200), 3));
        let v = Value::Map(vec![
            (Value::Raw(b"a".to_vec()), Value::Int(-5)),
            (Value::Bin(vec![1, 2]), Value::Ext(3, vec![9; 3])),
            (
                Value::F64(1.5),
                Value::Array(vec![Value::Nil, Value::Bool(true)]),
            ),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(Value::decode(&out).unwrap(), (v, out.len()));
    }

    #[test]
    fn invalid_marker_c1_is_an_error() {
        assert!(matches!(
            Value::decode(&[0xc1]),
            Err(MsgpackError::InvalidMarker { marker: 0xc1, .. })
        ));
    }
}
