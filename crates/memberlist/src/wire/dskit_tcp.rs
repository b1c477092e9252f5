//! dskit's TCP-only transport framing (`spec/memberlist.md` §2.2).
//!
//! dskit replaces memberlist's UDP with one TCP connection per packet. The first byte
//! of every connection says what follows:
//!
//! - `0x01` packet: `u8 L`, `L` bytes of the sender's advertised `ip:port` as text,
//!   the memberlist packet (label header included), then the 16-byte MD5 of that
//!   packet; the sender closes the connection to mark the end.
//! - `0x02` stream: memberlist stream messages follow unchanged (see
//!   [`super::stream`]).
//!
//! Everything here works on complete byte slices; reading to EOF is the driver's job.

use std::net::{IpAddr, SocketAddr};

use md5::{Digest, Md5};
use thiserror::Error;

/// First byte of a packet connection.
pub(crate) const PACKET_MARKER: u8 = 0x01;
/// First byte of a stream connection.
pub const STREAM_MARKER: u8 = 0x02;
/// Length of the MD5 trailer.
pub(crate) const DIGEST_LEN: usize = 16;

/// What was wrong with a dskit TCP connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TcpFrameError {
    /// The connection closed without sending a byte (health checks do this).
    #[error("connection carried no bytes")]
    Empty,
    /// The first byte is neither 1 nor 2, e.g. `G` from an HTTP probe.
    #[error("unknown connection type byte 0x{0:02x}")]
    UnknownType(u8),
    /// The packet connection ended before its address, or has fewer than 16 bytes
    /// after it (Go drops those too).
    #[error("packet connection too short: {0} bytes")]
    TooShort(usize),
    /// The MD5 trailer does not match the packet. Go only logs this and still
    /// delivers the packet; [`decode_packet_frame_unchecked`] allows the same.
    #[error("packet digest mismatch")]
    DigestMismatch,
    /// The sender address is longer than one length byte allows (encode side).
    #[error("address of {0} bytes is longer than 255")]
    AddrTooLong(usize),
}

/// A packet connection split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketFrame<'a> {
    /// The sender's advertised address as text (`ip:port`, IPv6 as `[v6]:port`).
    pub from: &'a [u8],
    /// The memberlist packet, ready for [`super::packet::decode_packet`].
    pub packet: &'a [u8],
    /// Whether the MD5 trailer matched.
    pub digest_ok: bool,
}

/// What a connection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection<'a> {
    /// A packet connection (MD5 verified).
    Packet(PacketFrame<'a>),
    /// A stream connection: the memberlist stream bytes after the marker.
    Stream(&'a [u8]),
}

/// Classifies a whole connection's client bytes; packets must carry a valid MD5.
pub fn decode_connection(bytes: &[u8]) -> Result<Connection<'_>, TcpFrameError> {
    match bytes.first() {
        None => Err(TcpFrameError::Empty),
        Some(&PACKET_MARKER) => decode_packet_frame(bytes).map(Connection::Packet),
        Some(&STREAM_MARKER) => Ok(Connection::Stream(&bytes[1..])),
        Some(&b) => Err(TcpFrameError::UnknownType(b)),
    }
}

/// Splits a packet connection (starting with `0x01`) and requires a matching MD5.
pub(crate) fn decode_packet_frame(bytes: &[u8]) -> Result<PacketFrame<'_>, TcpFrameError> {
    let f = decode_packet_frame_unchecked(bytes)?;
    if f.digest_ok {
        Ok(f)
    } else {
        Err(TcpFrameError::DigestMismatch)
    }
}

/// Splits a packet connection but only reports a digest mismatch in
/// [`PacketFrame::digest_ok`], as Go's receiver does (it logs and delivers anyway).
pub fn decode_packet_frame_unchecked(bytes: &[u8]) -> Result<PacketFrame<'_>, TcpFrameError> {
    match bytes.first() {
        None => return Err(TcpFrameError::Empty),
        Some(&PACKET_MARKER) => {}
        Some(&b) => return Err(TcpFrameError::UnknownType(b)),
    }
    let len = *bytes.get(1).ok_or(TcpFrameError::TooShort(bytes.len()))? as usize;
    let rest = bytes
        .get(2 + len..)
        .ok_or(TcpFrameError::TooShort(bytes.len()))?;
    if rest.len() < DIGEST_LEN {
        return Err(TcpFrameError::TooShort(bytes.len()));
    }
    let (packet, digest) = rest.split_at(rest.len() - DIGEST_LEN);
    let digest_ok = Md5::digest(packet).as_slice() == digest;
    Ok(PacketFrame {
        from: &bytes[2..2 + len],
        packet,
        digest_ok,
    })
}

/// Builds a packet connection's bytes: marker, address, packet, MD5.
pub fn encode_packet_frame(from: &str, packet: &[u8]) -> Result<Vec<u8>, TcpFrameError> {
    if from.len() > u8::MAX as usize {
        return Err(TcpFrameError::AddrTooLong(from.len()));
    }
    let mut out = Vec::with_capacity(2 + from.len() + packet.len() + DIGEST_LEN);
    out.push(PACKET_MARKER);
    out.push(from.len() as u8);
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(packet);
    out.extend_from_slice(Md5::digest(packet).as_slice());
    Ok(out)
}

/// Formats an address the way Go's `TCPAddr.String()` does, which is what dskit
/// expects in the packet header: IPv4-mapped IPv6 addresses print as plain IPv4
/// (Rust would print `::ffff:a.b.c.d`), IPv6 in brackets.
pub(crate) fn go_addr_string(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_frame_round_trips_and_checks_md5() {
        let bytes = encode_packet_frame("10.0.0.2:7946", b"\x02hello").unwrap();
        let Connection::Packet(f) = decode_connection(&bytes).unwrap() else {
            panic!("not a packet")
        };
        assert_eq!(f.from, b"10.0.0.2:7946");
        assert_eq!(f.packet, b"\x02hello");
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode_connection(&bad), Err(TcpFrameError::DigestMismatch));
        let lenient = decode_packet_frame_unchecked(&bad).unwrap();
        assert!(!lenient.digest_ok);
        assert_eq!(lenient.packet, b"\x02hello");
    }

    #[test]
    fn other_first_bytes_are_classified() {
        assert_eq!(decode_connection(&[]), Err(TcpFrameError::Empty));
        assert_eq!(
            decode_connection(b"GET /"),
            Err(TcpFrameError::UnknownType(b'G'))
        );
        assert_eq!(decode_connection(&[2, 6]), Ok(Connection::Stream(&[6][..])));
        assert!(matches!(
            decode_connection(&[1, 200, 1]),
            Err(TcpFrameError::TooShort(3))
        ));
        assert!(matches!(
            decode_connection(&[1, 0, 1, 2]),
            Err(TcpFrameError::TooShort(4))
        ));
    }

    #[test]
    fn go_addr_string_unmaps_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:7946".parse().unwrap();
        assert_eq!(go_addr_string(mapped), "10.0.0.1:7946");
        let v6: SocketAddr = "[2001:db8::1]:7946".parse().unwrap();
        assert_eq!(go_addr_string(v6), "[2001:db8::1]:7946");
        assert_eq!(
            encode_packet_frame(&"x".repeat(256), b""),
            Err(TcpFrameError::AddrTooLong(256))
        );
    }
}
