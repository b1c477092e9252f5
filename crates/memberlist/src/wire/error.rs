//! Errors of packet and stream decoding/encoding, with nested detail per layer.
//!
//! Decoding never changes any state (the codec has none); every [`DecodeError`] means
//! the peer's bytes were malformed or use a feature we do not speak, never a bug here.

use thiserror::Error;

use super::compress::CompressError;
use super::frame::FrameError;
use super::msgpack::MsgpackError;

/// Why bytes from a peer could not be decoded as memberlist messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// There was no byte where a message type was expected.
    #[error("empty message")]
    Empty,
    /// The type byte names no memberlist message (or one not allowed here, e.g. a
    /// push/pull inside a packet).
    #[error("unknown or misplaced message type {ty} in a {context}")]
    UnknownType {
        /// The type byte.
        ty: u8,
        /// `"packet"` or `"stream"`.
        context: &'static str,
    },
    /// The msgpack body of a message is malformed.
    #[error("malformed {message} body: {source}")]
    Body {
        /// Which message was being decoded.
        message: &'static str,
        /// What was wrong.
        source: MsgpackError,
    },
    /// A label, CRC or compound wrapper is malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A compressed payload could not be decompressed.
    #[error(transparent)]
    Compress(#[from] CompressError),
    /// A message that memberlist only sends when a keyring is configured. dskit never
    /// configures one, so we do not implement decryption.
    #[error("encrypted message (type 10): memberlist encryption is not supported")]
    Encrypted,
    /// A push/pull header announced more node states than memberlist allows
    /// (1,048,576) or a negative count.
    #[error("push/pull header announces {0} nodes")]
    BadNodeCount(i64),
    /// A negative length in a push/pull or user message header.
    #[error("negative length {0} in a {1} header")]
    NegativeLength(i64, &'static str),
    /// A push/pull user state or stream user message longer than
    /// [`super::Limits::max_stream_payload`].
    #[error("{message} payload of {len} bytes exceeds the limit of {limit}")]
    PayloadTooLarge {
        /// Announced length.
        len: i64,
        /// The limit.
        limit: usize,
        /// `"pushPull"` or `"user"`.
        message: &'static str,
    },
    /// Wrappers (compress, compound) nested deeper than we follow.
    #[error("wrappers nested deeper than {0} levels")]
    TooDeep(usize),
    /// A `hasCrc` header inside a compound or compressed payload; Go only honours it
    /// as the outermost layer.
    #[error("CRC header is only valid as the outermost layer")]
    MisplacedCrc,
    /// A compressed or nested payload ended in the middle of a message.
    #[error("truncated {0} inside a wrapper")]
    TruncatedInner(&'static str),
}

impl DecodeError {
    /// True when the error only means "the input ended early", which on a stream
    /// means more bytes must be read.
    pub(crate) fn is_eof(&self) -> bool {
        matches!(self, DecodeError::Body { source, .. } if source.is_eof())
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A compound or label limit was exceeded.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The message is not valid in this context (e.g. a compound on a stream, a
    /// push/pull in a packet).
    #[error("{message} cannot be sent in a {context}")]
    Misplaced {
        /// The message kind.
        message: &'static str,
        /// `"packet"` or `"stream"`.
        context: &'static str,
    },
    /// `Meta` longer than memberlist's 512-byte limit (Go panics on this).
    #[error("node metadata of {0} bytes exceeds 512")]
    MetaTooLong(usize),
}
