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
