//! What the core asks its driver to send.

use std::net::SocketAddr;

use crate::wire::Message;
use crate::wire::message::PushPull;

/// Something to send, taken with [`super::Core::poll_transmit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// One memberlist packet (with dskit's transport: one `0x01` TCP connection).
    Packet {
        /// Destination.
        to: SocketAddr,
        /// A single message or a compound of at most 255 parts, each part at most
        /// 65535 bytes; the driver may compress it and must add the label header.
        message: Message,
        /// Whether memberlist would add the CRC header (gossip and probes of
        /// suspects to a peer speaking protocol 5).
        crc: bool,
    },
    /// Open a stream and run a push/pull exchange: send `request`, read the peer's
    /// push/pull and hand it to [`super::Core::handle_push_pull`].
    ///
    /// `request.user_state` is empty: the driver fills it with the delegate's
    /// local state (dskit `LocalState(join)`) before sending.
    PushPull {
        /// Destination.
        to: SocketAddr,
        /// Our node states; `request.join` marks a join.
        request: PushPull,
    },
}

impl Transmit {
    /// The destination.
    pub fn to(&self) -> SocketAddr {
        match self {
            Transmit::Packet { to, .. } | Transmit::PushPull { to, .. } => *to,
        }
    }
}
