//! Stream messages: memberlist's reliable path (a TCP connection; with dskit's
//! transport, one that started with the `0x02` marker).
//!
//! A stream carries no outer length: each message is self-delimiting through its
//! msgpack header and the counts in it (`spec/memberlist.md` §1.6). [`decode_stream`]
//! therefore works on a growing buffer and answers `Ok(None)` while the message is
//! still incomplete, so a driver can read more and retry.
//!
//! Each message may start with a label header (both directions write it). Allowed
//! types: ping and ack (TCP fallback probe), push/pull, user (length-prefixed here,
//! unlike in packets), compress (wrapping one of those) and errResp. Encrypted
//! streams (type 10) are recognised and refused, as dskit never enables encryption.

use super::compress;
use super::error::{DecodeError, EncodeError};
use super::frame::{self, FrameError};
use super::message::{
    Ack, Compressed, ErrResp, Message, Ping, PushPull, decode_compress_body,
    decode_stream_user_body, encode_compress_body, encode_stream_user_body, ty,
};
use super::msgpack::{Dialect, Reader};
use super::packet::{Budget, Limits, body};

/// A decoded stream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// The cluster label, if the message had a label header.
    pub label: Option<Vec<u8>>,
    /// The message (possibly a compressed wrapper).
    pub message: Message,
}

impl StreamMessage {
    /// The message inside any compression wrapper.
    pub fn unwrapped(&self) -> &Message {
        let mut m = &self.message;
        while let Message::Compressed(c) = m {
            m = &c.inner;
        }
        m
    }
}

/// Decodes one stream message from the front of `buf` with default [`Limits`].
///
/// Returns `Ok(None)` when `buf` holds only part of a message, otherwise the message
/// and the number of bytes it used.
pub fn decode_stream(buf: &[u8]) -> Result<Option<(StreamMessage, usize)>, DecodeError> {
    decode_stream_with(buf, &Limits::default())
}

/// [`decode_stream`] with explicit limits.
pub fn decode_stream_with(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(StreamMessage, usize)>, DecodeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let (label, rest) = match frame::split_label(buf) {
        Ok(v) => v,
        Err(FrameError::Truncated { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let header = buf.len() - rest.len();
    let mut budget = Budget::new(limits);
    match decode_message(rest, limits, &mut budget) {
        Ok((message, used)) => Ok(Some((
            StreamMessage {
                label: label.map(<[u8]>::to_vec),
                message,
            },
            header + used,
        ))),
        Err(e) if e.is_eof() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Decodes one stream-context message at the start of `buf`, returning the bytes used.
fn decode_message(
    buf: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(Message, usize), DecodeError> {
    let (&t, rest) = buf.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(rest);
    let m = match t {
        ty::PING => Message::Ping(body("ping", Ping::decode_body(&mut r))?),
        ty::ACK => Message::Ack(body("ack", Ack::decode_body(&mut r))?),
        ty::ERR => Message::Error(body("errResp", ErrResp::decode_body(&mut r))?),
        ty::PUSH_PULL => {
            Message::PushPull(PushPull::decode_body(&mut r, limits.max_stream_payload)?)
        }
        ty::USER => {
            Message::User(decode_stream_user_body(&mut r, limits.max_stream_payload)?.into())
        }
        ty::COMPRESS => {
            budget.enter(limits)?;
            let (algo, buf) = body("compress", decode_compress_body(&mut r))?;
            let (algo, plain) = budget.decompress(algo, buf)?;
            // The whole inner message must be inside the decompressed buffer: running
            // out there is corruption, not "read more".
            let (inner, _) = decode_message(&plain, limits, budget).map_err(|e| {
                if e.is_eof() {
                    DecodeError::TruncatedInner("compressed stream message")
                } else {
                    e
                }
            })?;
            budget.leave();
            Message::Compressed(Compressed {
                algo,
                inner: Box::new(inner),
            })
        }
        ty::ENCRYPT => return Err(DecodeError::Encrypted),
        other => {
            return Err(DecodeError::UnknownType {
                ty: other,
                context: "stream",
            });
        }
    };
    Ok((m, 1 + r.position()))
}

/// Encodes a stream message: label header (if any), then the message.
pub fn encode_stream(m: &StreamMessage, dialect: Dialect) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    if let Some(l) = &m.label {
        if l.is_empty() {
            return Err(FrameError::EmptyLabel.into());
        }
        frame::write_label(&mut out, l)?;
    }
    encode_stream_message(&mut out, &m.message, dialect)?;
    Ok(out)
}

/// Appends one stream-context message (type byte first).
pub fn encode_stream_message(
    out: &mut Vec<u8>,
    m: &Message,
    dialect: Dialect,
) -> Result<(), EncodeError> {
    out.push(m.type_byte());
    match m {
        Message::Ping(b) => b.encode_body(out),
        Message::Ack(b) => b.encode_body(out),
        Message::Error(b) => b.encode_body(out),
        Message::PushPull(b) => b.encode_body(out, dialect)?,
        Message::User(b) => encode_stream_user_body(out, b, dialect),
        Message::Compressed(c) => {
            let mut plain = Vec::new();
            encode_stream_message(&mut plain, &c.inner, dialect)?;
            encode_compress_body(out, c.algo, &compress::compress(c.algo, &plain));
        }
        _ => {
            return Err(EncodeError::Misplaced {
                message: m.name(),
                context: "stream",
            });
        }
    }
    Ok(())
}
