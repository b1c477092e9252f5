//! dskit's memberlist-KV payloads (`spec/memberlist.md` §2.4, §2.5).
//!
//! Every dskit gossip broadcast is one protobuf [`KeyValuePair`] placed raw after the
//! user message type byte; push/pull user state is a sequence of
//! `[u32 BE length][KeyValuePair]`. The value itself is codec-encoded (for rings:
//! snappy block of protobuf `ring.Desc`) and is left opaque here.

use prost::Message as _;
use thiserror::Error;

/// One key of dskit's KV store as it travels on the wire (`memberlist.KeyValuePair`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyValuePair {
    /// Store key, e.g. `collectors/ring`; dskit rejects an empty key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Codec-encoded value (for gossip: only the change).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// Codec id, e.g. `ringDesc`.
    #[prost(string, tag = "3")]
    pub codec: String,
    /// Whether the key is marked for deletion.
    #[prost(bool, tag = "4")]
    pub deleted: bool,
    /// Unix milliseconds of the last update; 0 = unknown.
    #[prost(int64, tag = "5")]
    pub update_time_millis: i64,
}

/// What was wrong with KV payload bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KvError {
    /// Not a valid protobuf `KeyValuePair` (includes non-UTF-8 key or codec).
    #[error("invalid KeyValuePair: {0}")]
    Protobuf(String),
    /// A length prefix points past the end of the user state.
    #[error("user state entry at offset {offset} announces {len} bytes, {left} left")]
    Truncated {
        /// Offset of the length prefix.
        offset: usize,
        /// Announced length.
        len: usize,
        /// Bytes actually left.
        left: usize,
    },
}

impl KeyValuePair {
    /// Decodes a broadcast payload (the bytes after the user type byte).
    pub fn decode_bytes(buf: &[u8]) -> Result<Self, KvError> {
        KeyValuePair::decode(buf).map_err(|e| KvError::Protobuf(e.to_string()))
    }

    /// Encodes for a broadcast (zero fields omitted, as gogo/protobuf does).
    pub fn encode_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

/// A [`KeyValuePair`] read in place, for the broadcast receive path: no allocation,
/// no copy of the (often multi-KiB) value.
///
/// [`KeyValuePairRef::parse`] reads only plainly well-formed pairs; anything unusual
/// (groups, out-of-range varints, malformed lengths, a codec id that is not UTF-8, field
/// number 0) answers `None` and the caller decodes with [`KeyValuePair::decode_bytes`],
/// which then accepts or rejects it with prost's exact rules. The key stays bytes: it is
/// checked for UTF-8 only when copied ([`KeyValuePairRef::to_owned_pair`]), since a key
/// that is not UTF-8 matches no stored key anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValuePairRef<'a> {
    /// Store key, as received (see the type's docs on UTF-8).
    pub key: &'a [u8],
    /// Codec-encoded value.
    pub value: &'a [u8],
    /// Codec id.
    pub codec: &'a str,
    /// Deletion mark.
    pub deleted: bool,
    /// Unix milliseconds of the last update.
    pub update_time_millis: i64,
}

impl<'a> KeyValuePairRef<'a> {
    /// Reads `buf` in place (see the type's docs for when it declines).
    pub fn parse(buf: &'a [u8]) -> Option<Self> {
        Self::parse_checked(buf).map(|(p, _)| p)
    }

    /// [`KeyValuePairRef::parse`], also telling whether `buf` is exactly
    /// [`KeyValuePairRef::encode`]'s output, so it can be forwarded as it is.
    ///
    /// Fields in strictly increasing tag order leave one encoding per length (bools
    /// aside, checked for being 1): a repeated, unknown or zero-valued field or a padded
    /// varint would make the bytes longer than the canonical encoding.
    pub fn parse_checked(buf: &'a [u8]) -> Option<(Self, bool)> {
        let mut p = KeyValuePairRef {
            key: &[],
            value: &[],
            codec: "",
            deleted: false,
            update_time_millis: 0,
        };
        let mut r = buf;
        let (mut last, mut in_order, mut key_seen) = (0, true, false);
        while !r.is_empty() {
            let key = read_varint(&mut r)?;
            // A field key is a uint32 (prost rejects wider ones).
            if key > u64::from(u32::MAX) {
                return None;
            }
            let (field, wire) = (key >> 3, key & 7);
            in_order &= field > last;
            last = field;
            match (field, wire) {
                (0, _) => return None,
                // A repeated key: prost checks every occurrence for UTF-8, not only the
                // last one kept; leave such a pair to prost.
                (1, 2) if key_seen => return None,
                (1, 2) => {
                    p.key = read_len(&mut r)?;
                    key_seen = true;
                }
                (2, 2) => p.value = read_len(&mut r)?,
                (3, 2) => p.codec = codec_id(read_len(&mut r)?)?,
                (4, 0) => {
                    let v = read_varint(&mut r)?;
                    in_order &= v == 1;
                    p.deleted = v != 0;
                }
                (5, 0) => p.update_time_millis = read_varint(&mut r)? as i64,
                // A known field with another wire type: prost's error.
                (1..=5, _) => return None,
                // Unknown fields: skipped, and never canonical.
                (_, 0) => {
                    read_varint(&mut r)?;
                    in_order = false;
                }
                (_, 1) => {
                    r = r.get(8..)?;
                    in_order = false;
                }
                (_, 2) => {
                    read_len(&mut r)?;
                    in_order = false;
                }
                (_, 5) => {
                    r = r.get(4..)?;
                    in_order = false;
                }
                _ => return None,
            }
        }
        let canonical = in_order && buf.len() == p.encoded_len();
        Some((p, canonical))
    }

    /// An owned copy; `None` when the key is not UTF-8 (prost rejects such a pair).
    pub fn to_owned_pair(&self) -> Option<KeyValuePair> {
        Some(KeyValuePair {
            key: std::str::from_utf8(self.key).ok()?.to_owned(),
            value: self.value.to_vec(),
            codec: self.codec.to_owned(),
            deleted: self.deleted,
            update_time_millis: self.update_time_millis,
        })
    }

    /// The length of [`KeyValuePairRef::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let len_field = |n: usize| 1 + prost::encoding::encoded_len_varint(n as u64) + n;
        let nonempty = |n: usize| if n == 0 { 0 } else { len_field(n) };
        nonempty(self.key.len())
            + nonempty(self.value.len())
            + nonempty(self.codec.len())
            + if self.deleted { 2 } else { 0 }
            + if self.update_time_millis != 0 {
                1 + prost::encoding::encoded_len_varint(self.update_time_millis as u64)
            } else {
                0
            }
    }

    /// Encodes as [`KeyValuePair::encode_bytes`] would, in one allocation.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        for (tag, bytes) in [
            (0x0a, self.key),
            (0x12, self.value),
            (0x1a, self.codec.as_bytes()),
        ] {
            if !bytes.is_empty() {
                out.push(tag);
                prost::encoding::encode_varint(bytes.len() as u64, &mut out);
                out.extend_from_slice(bytes);
            }
        }
        if self.deleted {
            out.extend_from_slice(&[0x20, 1]);
        }
        if self.update_time_millis != 0 {
            out.push(0x28);
            prost::encoding::encode_varint(self.update_time_millis as u64, &mut out);
        }
        out
    }
}

/// The codec id as text; the ring's id, on nearly every message, without a UTF-8 scan.
fn codec_id(b: &[u8]) -> Option<&str> {
    const RING: &str = "ringDesc";
    if b == RING.as_bytes() {
        Some(RING)
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// A varint with prost's rules (at most 10 bytes, the tenth holding only the top bit).
fn read_varint(r: &mut &[u8]) -> Option<u64> {
    prost::encoding::decode_varint(r).ok()
}

fn read_len<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(read_varint(r)?).ok()?;
    let (head, tail) = (r.get(..n)?, r.get(n..)?);
    *r = tail;
    Some(head)
}

/// Iterates over the pairs of a push/pull user state.
///
/// dskit stops at the first short or unparsable entry but keeps what it already
/// merged; this iterator yields that error once and then ends, so callers can do
/// the same.
pub fn decode_user_state(buf: &[u8]) -> UserStateIter<'_> {
    UserStateIter { buf, pos: 0 }
}

/// Iterator returned by [`decode_user_state`].
#[derive(Debug, Clone)]
pub struct UserStateIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iterator for UserStateIter<'_> {
    type Item = Result<KeyValuePair, KvError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let offset = self.pos;
        // Any error ends the iteration.
        self.pos = self.buf.len();
        if rest.len() < 4 {
            return Some(Err(KvError::Truncated {
                offset,
                len: 4,
                left: rest.len(),
            }));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(entry) = rest.get(4..4 + len) else {
            return Some(Err(KvError::Truncated {
                offset,
                len,
                left: rest.len() - 4,
            }));
        };
        let item = KeyValuePair::decode_bytes(entry);
        if item.is_ok() {
            self.pos = offset + 4 + len;
        }
        Some(item)
    }
}

/// Encodes pairs as push/pull user state.
pub fn encode_user_state<'a>(pairs: impl IntoIterator<Item = &'a KeyValuePair>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pairs {
        let bytes = p.encode_bytes();
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The in-place reader agrees with prost whenever it answers, answers for every
        /// pair we encode, and its encoder gives prost's bytes.
        #[test]
        fn in_place_reader_agrees_with_prost(
            key in ".{0,20}",
            value in prop::collection::vec(any::<u8>(), 0..300),
            codec in "[a-zA-Z]{0,10}",
            deleted in any::<bool>(),
            update_time_millis in any::<i64>(),
            junk in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let pair = KeyValuePair { key, value, codec, deleted, update_time_millis };
            let bytes = pair.encode_bytes();
            let (r, canonical) = KeyValuePairRef::parse_checked(&bytes).expect("our own encoding");
            prop_assert_eq!(r.to_owned_pair(), Some(pair.clone()));
            prop_assert_eq!(&r.encode(), &bytes);
            prop_assert!(canonical);
            // Arbitrary bytes: never a different answer than prost's.
            if let Some(r) = KeyValuePairRef::parse(&junk) {
                prop_assert_eq!(r.to_owned_pair().ok_or(()), KeyValuePair::decode_bytes(&junk).map_err(drop));
            }
            // Unknown fields are skipped as prost skips them.
            let mut extended = bytes.clone();
            extended.extend_from_slice(&[0x30, 0x96, 0x01, 0x3a, 0x01, 0x00, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x4d, 1, 2, 3, 4]);
            let (r, canonical) = KeyValuePairRef::parse_checked(&extended).expect("unknown fields");
            prop_assert_eq!(r.to_owned_pair().ok_or(()), KeyValuePair::decode_bytes(&extended).map_err(drop));
            prop_assert!(!canonical);
            // Whatever parses: canonical exactly when the bytes are the encoding.
            if let Some((r, canonical)) = KeyValuePairRef::parse_checked(&junk) {
                prop_assert_eq!(canonical, r.encode() == junk);
            }
        }
    }

    /// One protobuf field of a hand-assembled message, possibly non-canonical.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        let varint = |v: u64, pad: bool| {
            let mut out = Vec::new();
            prost::encoding::encode_varint(v, &mut out);
            if pad {
                // The same value, one byte longer.
                if let Some(last) = out.last_mut() {
                    *last |= 0x80;
                }
                out.push(0);
            }
            out
        };
        (1u64..8, 0u64..3, any::<bool>(), "[a-c]{0,3}").prop_map(move |(field, v, pad, text)| {
            let mut out = Vec::new();
            if field <= 3 || field == 6 {
                out.extend(varint(field << 3 | 2, pad));
                out.extend(varint(text.len() as u64, false));
                out.extend(text.as_bytes());
            } else {
                out.extend(varint(field << 3, false));
                out.extend(varint(v, pad));
            }
            out
        })
    }

    proptest! {
        /// Reordered, repeated, unknown, zero-valued and padded fields: the reader agrees
        /// with prost, and `parse_checked` calls exactly our own encoding canonical.
        #[test]
        fn canonical_only_for_canonical_bytes(pieces in prop::collection::vec(piece(), 0..7)) {
            let bytes: Vec<u8> = pieces.concat();
            let prost = KeyValuePair::decode_bytes(&bytes);
            if let Some((r, canonical)) = KeyValuePairRef::parse_checked(&bytes) {
                prop_assert_eq!(r.to_owned_pair().ok_or(()), prost.map_err(drop));
                prop_assert_eq!(canonical, r.encode() == bytes);
            }
        }
    }

    #[test]
    fn user_state_round_trips() {
        let a = KeyValuePair {
            key: "collectors/ring".into(),
            value: vec![0],
            codec: "ringDesc".into(),
            deleted: false,
            update_time_millis: 1_700_000_000_000,
        };
        let b = KeyValuePair {
            key: "x".into(),
            deleted: true,
            ..Default::default()
        };
        let state = encode_user_state([&a, &b]);
        let got: Vec<_> = decode_user_state(&state).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![a, b]);
    }

    #[test]
    fn short_entry_ends_iteration_with_one_error() {
        let a = KeyValuePair {
            key: "k".into(),
            ..Default::default()
        };
        let mut state = encode_user_state([&a]);
        state.extend_from_slice(&[0, 0, 0, 9, 1]);
        let items: Vec<_> = decode_user_state(&state).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], Ok(a));
        assert!(matches!(
            items[1],
            Err(KvError::Truncated {
                len: 9,
                left: 1,
                ..
            })
        ));
        assert!(matches!(
            decode_user_state(&[0, 0]).collect::<Vec<_>>()[..],
            [Err(KvError::Truncated { .. })]
        ));
    }

    #[test]
    fn invalid_protobuf_is_an_error() {
        assert!(KeyValuePair::decode_bytes(&[0x0a, 0x05, b'a']).is_err());
        assert!(KeyValuePair::decode_bytes(&[0x0a, 0x01, 0xff]).is_err());
    }
}
