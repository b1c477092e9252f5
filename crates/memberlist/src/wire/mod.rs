//! The memberlist wire format, sans I/O: bytes in, typed messages out, and back.
//!
//! Layout, one concept per file:
//!
//! - [`msgpack`]: go-msgpack's dialect (encoder with [`Dialect`], lenient reader).
//! - [`message`]: message bodies and the [`Message`] tree.
//! - [`frame`]: label header, CRC header, compound splitting.
//! - [`compress`]: LZW (Go-identical) and snappy for the compress message.
//! - [`packet`]: [`decode_packet`] / [`encode_packet`], peeling every packet layer.
//! - [`stream`]: [`decode_stream`] / [`encode_stream`], incremental over a buffer.
//! - [`dskit_tcp`]: dskit's TCP transport framing (`0x01` packets with MD5, `0x02` streams).
//! - [`kv`]: dskit's `KeyValuePair` and push/pull user state.
//! - [`node_meta`]: dskit's node metadata (role and zone for zone-aware routing).
//! - [`error`]: [`DecodeError`] and [`EncodeError`].

pub mod compress;
pub mod dskit_tcp;
pub mod error;
pub mod frame;
pub mod kv;
pub mod message;
pub mod msgpack;
pub mod node_meta;
pub mod packet;
pub mod stream;

pub use error::{DecodeError, EncodeError};
pub use message::Message;
pub use msgpack::Dialect;
pub use packet::{Limits, Packet, decode_packet, encode_packet};
pub use stream::{StreamMessage, decode_stream, encode_stream};
