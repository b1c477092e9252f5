//! The byte-level wrappers around memberlist messages: label header, CRC header and
//! compound message (`spec/memberlist.md` §1.5).
//!
//! These are plain splitting and joining functions; the recursive packet dispatcher in
//! [`super::packet`] decides where each one may appear.

use thiserror::Error;

/// Type byte of the label header (`hasLabel`). 244 was chosen so it cannot be mistaken
/// for an encryption version byte or a message type.
pub(crate) const LABEL_TYPE: u8 = 244;
/// Type byte of the CRC header (`hasCrc`).
pub(crate) const CRC_TYPE: u8 = 12;
/// Type byte of a compound message.
pub(crate) const COMPOUND_TYPE: u8 = 7;
/// Most parts one compound message may hold (the count is one byte).
pub(crate) const MAX_COMPOUND_PARTS: usize = 255;
/// Largest part a compound message may hold (lengths are u16).
pub(crate) const MAX_COMPOUND_PART_LEN: usize = u16::MAX as usize;
/// Longest label memberlist accepts.
pub(crate) const MAX_LABEL_LEN: usize = 255;

/// What was wrong with a wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A label header with length 0, which Go rejects (no label means no header).
    #[error("label header with zero length")]
    EmptyLabel,
    /// A label longer than 255 bytes was asked for on encode.
    #[error("label of {0} bytes is longer than 255")]
    LabelTooLong(usize),
    /// The input ended inside a header.
    #[error("{what} truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Which header.
        what: &'static str,
        /// Bytes the header needs.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The CRC-32 in a `hasCrc` header does not match the bytes after it; Go drops
    /// such packets.
    #[error("CRC mismatch: header says {expected:08x}, payload has {actual:08x}")]
    CrcMismatch {
        /// The value in the header.
        expected: u32,
        /// The value computed over the rest of the packet.
        actual: u32,
    },
    /// A compound with more parts than one count byte can say (encode side).
    #[error("compound with {0} parts; at most 255 per compound")]
    TooManyParts(usize),
    /// A compound part longer than a u16 length can say (encode side).
    #[error("compound part of {0} bytes; at most 65535")]
    PartTooLong(usize),
}

/// Splits a label header off the front of `buf`, if one is there.
///
/// Returns the label (`None` without header) and the rest.
pub(crate) fn split_label(buf: &[u8]) -> Result<(Option<&[u8]>, &[u8]), FrameError> {
    if buf.first() != Some(&LABEL_TYPE) {
        return Ok((None, buf));
    }
    let len = *buf.get(1).ok_or(FrameError::Truncated {
        what: "label header",
        needed: 2,
        have: buf.len(),
    })? as usize;
    if len == 0 {
        return Err(FrameError::EmptyLabel);
    }
    if buf.len() < 2 + len {
        return Err(FrameError::Truncated {
            what: "label",
            needed: 2 + len,
            have: buf.len(),
        });
    }
    Ok((Some(&buf[2..2 + len]), &buf[2 + len..]))
}

/// Appends a label header; an empty label writes nothing, as in Go.
pub(crate) fn write_label(out: &mut Vec<u8>, label: &[u8]) -> Result<(), FrameError> {
    if label.is_empty() {
        return Ok(());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(FrameError::LabelTooLong(label.len()));
    }
    out.push(LABEL_TYPE);
    out.push(label.len() as u8);
    out.extend_from_slice(label);
    Ok(())
}

/// Checks and strips a CRC header (`0x0c` + CRC-32 IEEE, big-endian, of the rest).
/// `buf` must start with the type byte.
pub(crate) fn split_crc(buf: &[u8]) -> Result<&[u8], FrameError> {
    if buf.len() < 5 {
        return Err(FrameError::Truncated {
            what: "CRC header",
            needed: 5,
            have: buf.len(),
        });
    }
    let expected = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let rest = &buf[5..];
    let actual = crc32fast::hash(rest);
    if expected != actual {
        return Err(FrameError::CrcMismatch { expected, actual });
    }
    Ok(rest)
}

/// Wraps `payload` in a CRC header.
pub(crate) fn write_crc(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(CRC_TYPE);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The parts of a compound message, split but not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundParts<'a> {
    /// Parts that were fully present.
    pub parts: Vec<&'a [u8]>,
    /// Parts announced but cut off by the end of the buffer. Go keeps the complete
    /// parts and only logs this count, so we report it instead of failing.
    pub truncated: usize,
}

/// Splits a compound body (after the `0x07` type byte): count, u16 BE lengths, parts.
pub(crate) fn split_compound(body: &[u8]) -> Result<CompoundParts<'_>, FrameError> {
    let Some((&count, rest)) = body.split_first() else {
        return Err(FrameError::Truncated {
            what: "compound count",
            needed: 1,
            have: 0,
        });
    };
    let count = count as usize;
    if rest.len() < 2 * count {
        return Err(FrameError::Truncated {
            what: "compound lengths",
            needed: 2 * count,
            have: rest.len(),
        });
    }
    let (lens, mut data) = rest.split_at(2 * count);
    let mut parts = Vec::with_capacity(count);
    for (i, l) in lens.chunks_exact(2).enumerate() {
        let len = u16::from_be_bytes([l[0], l[1]]) as usize;
        if data.len() < len {
            return Ok(CompoundParts {
                parts,
                truncated: count - i,
            });
        }
        let (part, tail) = data.split_at(len);
        parts.push(part);
        data = tail;
    }
    Ok(CompoundParts {
        parts,
        truncated: 0,
    })
}

/// Appends a compound message (type byte included) holding `parts`.
pub(crate) fn write_compound<P: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    parts: &[P],
) -> Result<(), FrameError> {
    if parts.len() > MAX_COMPOUND_PARTS {
        return Err(FrameError::TooManyParts(parts.len()));
    }
    if let Some(p) = parts
        .iter()
        .find(|p| p.as_ref().len() > MAX_COMPOUND_PART_LEN)
    {
        return Err(FrameError::PartTooLong(p.as_ref().len()));
    }
    let body: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    out.reserve(2 + 2 * parts.len() + body);
    out.push(COMPOUND_TYPE);
    out.push(parts.len() as u8);
    for p in parts {
        out.extend_from_slice(&(p.as_ref().len() as u16).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p.as_ref());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trips_and_empty_means_no_header() {
        let mut out = Vec::new();
        write_label(&mut out, b"prod").unwrap();
        out.push(0x02);
        assert_eq!(out, [0xf4, 4, b'p', b'r', b'o', b'd', 0x02]);
        assert_eq!(
            split_label(&out).unwrap(),
            (Some(&b"prod"[..]), &[0x02][..])
        );
        let mut none = Vec::new();
        write_label(&mut none, b"").unwrap();
        assert!(none.is_empty());
        assert_eq!(split_label(&[0x02]).unwrap(), (None, &[0x02][..]));
    }

    #[test]
    fn zero_length_or_cut_label_is_rejected() {
        assert_eq!(split_label(&[0xf4, 0, 0x02]), Err(FrameError::EmptyLabel));
        assert!(matches!(
            split_label(&[0xf4]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            split_label(&[0xf4, 3, b'a']),
            Err(FrameError::Truncated { .. })
        ));
        assert_eq!(
            write_label(&mut Vec::new(), &[b'a'; 256]),
            Err(FrameError::LabelTooLong(256))
        );
    }

    #[test]
    fn crc_is_ieee_big_endian_over_the_rest() {
        let mut out = Vec::new();
        write_crc(&mut out, b"123456789");
        // CRC-32/IEEE check value of "123456789".
        assert_eq!(&out[..5], &[0x0c, 0xcb, 0xf4, 0x39, 0x26]);
        assert_eq!(split_crc(&out).unwrap(), b"123456789");
        out[6] ^= 1;
        assert!(matches!(
            split_crc(&out),
            Err(FrameError::CrcMismatch { .. })
        ));
        assert!(matches!(
            split_crc(&[0x0c, 1]),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn compound_keeps_complete_parts_and_counts_truncated_ones() {
        let mut out = Vec::new();
        write_compound(&mut out, &[&b"abc"[..], b"de"]).unwrap();
        assert_eq!(out, [7, 2, 0, 3, 0, 2, b'a', b'b', b'c', b'd', b'e']);
        let split = split_compound(&out[1..]).unwrap();
        assert_eq!(split.parts, vec![&b"abc"[..], b"de"]);
        assert_eq!(split.truncated, 0);
        let cut = split_compound(&out[1..out.len() - 1]).unwrap();
        assert_eq!(cut.parts, vec![&b"abc"[..]]);
        assert_eq!(cut.truncated, 1);
        assert!(matches!(
            split_compound(&[3, 0]),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn compound_limits_are_enforced_on_encode() {
        let many = vec![&b"x"[..]; 256];
        assert_eq!(
            write_compound(&mut Vec::new(), &many),
            Err(FrameError::TooManyParts(256))
        );
        let big = vec![0u8; 65_536];
        assert_eq!(
            write_compound(&mut Vec::new(), &[&big[..]]),
            Err(FrameError::PartTooLong(65_536))
        );
    }
}
