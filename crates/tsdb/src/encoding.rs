//! Byte-level helpers shared by the index, chunk-segment and tombstone formats: big-endian
//! integers, Go-style varints, CRC32 Castagnoli, and a bounds-checked reader that turns every
//! overrun into an error instead of a panic.

/// CRC32 with the Castagnoli polynomial, the checksum Prometheus puts on every TSDB section.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// A growable output buffer with the encoders the formats need.
#[derive(Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
}

impl Enc {
    pub(crate) fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn put_be32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn put_be64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn put_uvarint(&mut self, v: u64) {
        crate::chunk::put_uvarint(&mut self.buf, v);
    }
    pub(crate) fn put_varint(&mut self, v: i64) {
        crate::chunk::put_varint(&mut self.buf, v);
    }
    /// A string prefixed by its uvarint length.
    pub(crate) fn put_uvarint_str(&mut self, s: &str) {
        self.put_uvarint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Why a read ran off its data; the callers wrap it with which file and section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Fewer bytes left than the field needs.
    Short,
    /// A varint longer than 10 bytes or wider than 64 bits.
    BadVarint,
    /// A string that is not UTF-8.
    BadUtf8,
}

/// A cursor over a byte slice whose reads fail instead of panicking at the end.
#[derive(Clone)]
pub(crate) struct Dec<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Short);
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn be32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn be64(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut x = 0u64;
        let mut shift = 0u32;
        for i in 0..10 {
            let b = self.u8()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(DecodeError::BadVarint);
                }
                return Ok(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        Err(DecodeError::BadVarint)
    }
    pub(crate) fn varint(&mut self) -> Result<i64, DecodeError> {
        let ux = self.uvarint()?;
        Ok(((ux >> 1) as i64) ^ -((ux & 1) as i64))
    }
    pub(crate) fn uvarint_str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Short)?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| DecodeError::BadUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn castagnoli_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn varints_round_trip_and_reads_stop_at_the_end() {
        let mut e = Enc::default();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            e.put_uvarint(v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            e.put_varint(v);
        }
        let mut d = Dec::new(&e.buf);
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(d.uvarint(), Ok(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(d.varint(), Ok(v));
        }
        assert_eq!(d.u8(), Err(DecodeError::Short));
        assert_eq!(Dec::new(&[0xff; 11]).uvarint(), Err(DecodeError::BadVarint));
    }
}
