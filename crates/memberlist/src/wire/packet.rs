//! Packets: the unit of memberlist's unreliable path (a UDP datagram upstream, one
//! dskit TCP "packet" connection with dskit's transport).
//!
//! Layers, outermost first (`spec/memberlist.md` §1.1): optional label header,
//! optional CRC header, then one message, which may itself be a compound of messages
//! or a compressed message, recursively. [`decode_packet`] peels all of them and
//! returns the tree, so a caller can both act on the leaf messages
//! ([`Packet::messages`]) and re-encode the packet byte for byte ([`encode_packet`]).
//!
//! Encrypted packets carry no type byte (only a version byte 0 or 1) and cannot be
//! recognised without a keyring; they fail as a malformed ping/indirect ping. dskit
//! never enables encryption.

use bytes::Bytes;

use super::compress::{self, CompressionAlgo, MAX_DECOMPRESSED};
use super::error::{DecodeError, EncodeError};
use super::frame;
use super::message::{
    Ack, Alive, Compound, Compressed, Dead, IndirectPing, Message, Nack, Ping, Suspect,
    decode_compress_body, encode_compress_body, ty,
};
use super::msgpack::{MsgpackError, Reader};

/// Bounds applied while decoding, so hostile input cannot make us do unbounded work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes all compressed layers of one packet or stream message may expand
    /// to. Default: memberlist's 40 MiB.
    pub max_decompressed: usize,
    /// How many compound/compress wrappers may nest. Go senders nest at most two
    /// (compress > compound); default 8.
    pub max_depth: usize,
    /// Largest push/pull user state or stream user message accepted (streams only).
    /// Upstream memberlist allows 20 MiB; the 2026 grafana fork allows more, so the
    /// default is the 40 MiB decompression limit.
    pub max_stream_payload: usize,
    /// Largest LZW output per compressed byte (`ringkit_decompress::LZW_MAX_RATIO`, 128):
    /// real gossip compresses a few times, a bomb a thousandfold.
    pub max_lzw_ratio: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed: MAX_DECOMPRESSED,
            max_depth: 8,
            max_stream_payload: MAX_DECOMPRESSED,
            max_lzw_ratio: ringkit_decompress::LZW_MAX_RATIO,
        }
    }
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The cluster label, if the packet had a label header.
    pub label: Option<Vec<u8>>,
    /// Whether the packet had a (verified) CRC header.
    pub crc: bool,
    /// The message, possibly a compound or compressed wrapper.
    pub message: Message,
}

impl Packet {
    /// A packet with no label and no CRC.
    pub fn plain(message: Message) -> Self {
        Packet {
            label: None,
            crc: false,
            message,
        }
    }

    /// Every leaf message (not compound, not compressed), depth first in wire order.
    pub fn messages(&self) -> Vec<&Message> {
        let mut out = Vec::new();
        self.message.walk(&mut |m| {
            if !matches!(m, Message::Compound(_) | Message::Compressed(_)) {
                out.push(m);
            }
        });
        out
    }
}

/// Remaining work allowance while decoding one packet or stream message.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) decompressed_left: usize,
    pub(crate) depth_left: usize,
    pub(crate) lzw_ratio: usize,
}

impl Budget {
    pub(crate) fn new(l: &Limits) -> Self {
        Budget {
            decompressed_left: l.max_decompressed,
            depth_left: l.max_depth,
            lzw_ratio: l.max_lzw_ratio,
        }
    }

    pub(crate) fn enter(&mut self, limits: &Limits) -> Result<(), DecodeError> {
        if self.depth_left == 0 {
            return Err(DecodeError::TooDeep(limits.max_depth));
        }
        self.depth_left -= 1;
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth_left += 1;
    }

    /// Decompresses a `compress` body's buffer, charging the budget.
    pub(crate) fn decompress(
        &mut self,
        algo: u8,
        buf: &[u8],
    ) -> Result<(CompressionAlgo, Vec<u8>), DecodeError> {
        let algo = CompressionAlgo::from_wire(algo)?;
        let limits = match algo {
            CompressionAlgo::Lzw => ringkit_decompress::Limits {
                max_len: self.decompressed_left,
                max_ratio: self.lzw_ratio,
            },
            CompressionAlgo::Snappy => ringkit_decompress::Limits::snappy(self.decompressed_left),
        };
        let out = compress::decompress_within(algo, buf, &limits)?;
        self.decompressed_left -= out.len();
        Ok((algo, out))
    }
}

pub(crate) fn body<T>(message: &'static str, r: Result<T, MsgpackError>) -> Result<T, DecodeError> {
    r.map_err(|source| DecodeError::Body { message, source })
}

/// Decodes a packet with the default [`Limits`].
pub fn decode_packet(buf: &[u8]) -> Result<Packet, DecodeError> {
    decode_packet_with(buf, &Limits::default())
}

/// Decodes a packet: label, CRC (verified), then the message tree.
pub fn decode_packet_with(buf: &[u8], limits: &Limits) -> Result<Packet, DecodeError> {
    let (label, rest) = frame::split_label(buf)?;
    let (crc, rest) = if rest.first() == Some(&ty::HAS_CRC) {
        (true, frame::split_crc(rest)?)
    } else {
        (false, rest)
    };
    let mut budget = Budget::new(limits);
    let message = decode_message(rest, limits, &mut budget)?;
    Ok(Packet {
        label: label.map(<[u8]>::to_vec),
        crc,
        message,
    })
}

/// Decodes one packet-context message (type byte first) with everything it wraps.
/// Trailing bytes after a msgpack body are ignored, as Go's decoder does.
fn decode_message(
    buf: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Message, DecodeError> {
    let (&t, rest) = buf.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(rest);
    Ok(match t {
        ty::PING => Message::Ping(body("ping", Ping::decode_body(&mut r))?),
        ty::INDIRECT_PING => {
            Message::IndirectPing(body("indirectPing", IndirectPing::decode_body(&mut r))?)
        }
        ty::ACK => Message::Ack(body("ack", Ack::decode_body(&mut r))?),
        ty::SUSPECT => Message::Suspect(body("suspect", Suspect::decode_body(&mut r))?),
        ty::ALIVE => Message::Alive(body("alive", Alive::decode_body(&mut r))?),
        ty::DEAD => Message::Dead(body("dead", Dead::decode_body(&mut r))?),
        ty::NACK => Message::Nack(body("nack", Nack::decode_body(&mut r))?),
        ty::USER => Message::User(Bytes::copy_from_slice(rest)),
        ty::COMPOUND => {
            budget.enter(limits)?;
            let split = frame::split_compound(rest)?;
            let mut parts = Vec::with_capacity(split.parts.len());
            for p in split.parts {
                parts.push(decode_message(p, limits, budget)?);
            }
            budget.leave();
            Message::Compound(Compound {
                parts,
                truncated: split.truncated,
            })
        }
        ty::COMPRESS => {
            budget.enter(limits)?;
            let (algo, buf) = body("compress", decode_compress_body(&mut r))?;
            let (algo, plain) = budget.decompress(algo, buf)?;
            let inner = decode_message(&plain, limits, budget)?;
            budget.leave();
            Message::Compressed(Compressed {
                algo,
                inner: Box::new(inner),
            })
        }
        ty::ENCRYPT => return Err(DecodeError::Encrypted),
        ty::HAS_CRC => return Err(DecodeError::MisplacedCrc),
        other => {
            return Err(DecodeError::UnknownType {
                ty: other,
                context: "packet",
            });
        }
    })
}

/// Encodes a packet: label header, CRC header if `crc`, then the message.
///
/// Packets need no [`super::Dialect`]: no packet message has a Go `int` field, so
/// both go-msgpack generations write identical packets.
pub fn encode_packet(p: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    if let Some(l) = &p.label {
        if l.is_empty() {
            return Err(frame::FrameError::EmptyLabel.into());
        }
        frame::write_label(&mut out, l)?;
    }
    if p.crc {
        let mut inner = Vec::new();
        encode_packet_message(&mut inner, &p.message)?;
        frame::write_crc(&mut out, &inner);
    } else {
        encode_packet_message(&mut out, &p.message)?;
    }
    Ok(out)
}

/// Appends one packet-context message (type byte first), wrappers included.
pub(crate) fn encode_packet_message(out: &mut Vec<u8>, m: &Message) -> Result<(), EncodeError> {
    out.push(m.type_byte());
    match m {
        Message::Ping(b) => b.encode_body(out),
        Message::IndirectPing(b) => b.encode_body(out),
        Message::Ack(b) => b.encode_body(out),
        Message::Suspect(b) => b.encode_body(out),
        Message::Alive(b) => b.encode_body(out)?,
        Message::Dead(b) => b.encode_body(out),
        Message::Nack(b) => b.encode_body(out),
        Message::User(b) => out.extend_from_slice(b),
        Message::Compound(c) => {
            out.pop();
            // All parts go into one buffer (one allocation, not a growing one
            // per part), then are framed by their end offsets.
            let mut body = Vec::with_capacity(c.parts.len() * 64);
            let mut ends = Vec::with_capacity(c.parts.len());
            for p in &c.parts {
                encode_packet_message(&mut body, p)?;
                ends.push(body.len());
            }
            let mut start = 0;
            let parts: Vec<&[u8]> = ends
                .iter()
                .map(|&end| {
                    let part = &body[start..end];
                    start = end;
                    part
                })
                .collect();
            frame::write_compound(out, &parts)?;
        }
        Message::Compressed(c) => {
            let mut plain = Vec::new();
            encode_packet_message(&mut plain, &c.inner)?;
            encode_compress_body(out, c.algo, &compress::compress(c.algo, &plain));
        }
        Message::PushPull(_) | Message::Error(_) => {
            return Err(EncodeError::Misplaced {
                message: m.name(),
                context: "packet",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::PushPull;

    #[test]
    fn messages_flattens_wrappers_in_wire_order() {
        let p = Packet::plain(Message::Compressed(Compressed {
            algo: CompressionAlgo::Lzw,
            inner: Box::new(Message::Compound(Compound {
                parts: vec![
                    Message::Nack(Nack { seq_no: 1 }),
                    Message::Compound(Compound {
                        parts: vec![Message::User(Bytes::from_static(b"a"))],
                        truncated: 0,
                    }),
                    Message::User(Bytes::from_static(b"b")),
                ],
                truncated: 0,
            })),
        }));
        let bytes = encode_packet(&p).unwrap();
        let back = decode_packet(&bytes).unwrap();
        let names: Vec<_> = back.messages().iter().map(|m| m.name()).collect();
        assert_eq!(names, ["nack", "user", "user"]);
    }

    #[test]
    fn stream_only_messages_are_refused_in_packets() {
        let pp = Packet::plain(Message::PushPull(PushPull::default()));
        assert!(matches!(
            encode_packet(&pp),
            Err(EncodeError::Misplaced {
                context: "packet",
                ..
            })
        ));
        let labelled = Packet {
            label: Some(Vec::new()),
            crc: false,
            message: Message::User(Bytes::new()),
        };
        assert!(encode_packet(&labelled).is_err());
    }

    #[test]
    fn truncated_compound_parts_are_counted_not_fatal() {
        // Two parts announced, the second cut short.
        let bytes = [0x07, 0x02, 0x00, 0x01, 0x00, 0x05, 0x08, 0x08, 0x01];
        let p = decode_packet(&bytes).unwrap();
        let Message::Compound(c) = p.message else {
            panic!("not a compound")
        };
        assert_eq!(c.parts, vec![Message::User(Bytes::new())]);
        assert_eq!(c.truncated, 1);
    }
}
