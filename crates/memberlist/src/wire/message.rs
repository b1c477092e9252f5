//! memberlist message bodies (`spec/memberlist.md` §1.2, §1.4, §1.6).
//!
//! Each struct mirrors one Go message struct. Field names on the wire are the Go field
//! names, and the encoder writes them in sorted order, as go-msgpack does, so that our
//! output is byte-identical to a Go node's.
//!
//! Names and other Go `string` fields are kept as bytes: Go strings are arbitrary
//! bytes, and refusing a peer because its name is not UTF-8 would be our bug, not
//! theirs. Go `[]byte` fields whose nil-ness differs between real peers (`Meta`, ack
//! `Payload`: dskit sends nil, Alertmanager empty) are `Option<Vec<u8>>` so both
//! re-encode exactly; the others are plain `Vec<u8>`.

use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::compress::CompressionAlgo;
use super::error::{DecodeError, EncodeError};
use super::msgpack::{
    self, Dialect, MsgpackError, Reader, write_bool, write_int, write_map_len, write_opt_raw,
    write_raw, write_uint,
};

/// Message type bytes (`spec/memberlist.md` §1.2).
pub mod ty {
    /// ping
    pub(crate) const PING: u8 = 0;
    /// indirectPing
    pub(crate) const INDIRECT_PING: u8 = 1;
    /// ackResp
    pub const ACK: u8 = 2;
    /// suspect
    pub(crate) const SUSPECT: u8 = 3;
    /// alive
    pub(crate) const ALIVE: u8 = 4;
    /// dead
    pub(crate) const DEAD: u8 = 5;
    /// pushPull
    pub(crate) const PUSH_PULL: u8 = 6;
    /// compound
    pub(crate) const COMPOUND: u8 = 7;
    /// user
    pub(crate) const USER: u8 = 8;
    /// compress
    pub(crate) const COMPRESS: u8 = 9;
    /// encrypt
    pub(crate) const ENCRYPT: u8 = 10;
    /// nackResp
    pub(crate) const NACK: u8 = 11;
    /// hasCrc
    pub(crate) const HAS_CRC: u8 = 12;
    /// errResp
    pub(crate) const ERR: u8 = 13;
    /// hasLabel
    pub(crate) const HAS_LABEL: u8 = 244;
}

/// Largest node count a push/pull header may announce (upstream's limit).
pub(crate) const MAX_PUSH_PULL_NODES: i64 = 1 << 20;
/// Largest `Meta` memberlist allows.
pub(crate) const MAX_META_LEN: usize = 512;

/// The `Vsn` a dskit node sends: protocol min 1, max 5, current 2, delegate 0/0/0.
pub const DSKIT_VSN: [u8; 6] = [1, 5, 2, 0, 0, 0];

/// A direct probe (type 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    /// Sequence number the ack must echo.
    pub seq_no: u32,
    /// Name of the intended target; a receiver ignores a ping for another name.
    pub node: Vec<u8>,
    /// Prober's advertised IP bytes (4 or 16), for the reply; omitted when empty.
    pub source_addr: Vec<u8>,
    /// Prober's port; omitted when 0.
    pub source_port: u16,
    /// Prober's name; omitted when empty.
    pub source_node: Vec<u8>,
}

/// A request to probe `node` on the sender's behalf (type 1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPing {
    /// Requester's sequence number, echoed in the forwarded ack or nack.
    pub seq_no: u32,
    /// Target IP bytes.
    pub target: Vec<u8>,
    /// Target port (0: the relay substitutes its own bind port).
    pub port: u16,
    /// Target name.
    pub node: Vec<u8>,
    /// Whether the requester wants a nack on timeout (peer protocol >= 4).
    pub nack: bool,
    /// Requester's IP bytes; omitted when empty.
    pub source_addr: Vec<u8>,
    /// Requester's port; omitted when 0.
    pub source_port: u16,
    /// Requester's name; omitted when empty.
    pub source_node: Vec<u8>,
}

/// Reply to a ping (type 2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    /// The ping's sequence number.
    pub seq_no: u32,
    /// Ping-delegate payload; dskit sends nil (`None`), Alertmanager empty.
    pub payload: Option<Vec<u8>>,
}

/// Negative reply of an indirect prober (type 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nack {
    /// The requester's sequence number.
    pub seq_no: u32,
}

/// Stream error reply (type 13).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrResp {
    /// Error text.
    pub error: Vec<u8>,
}

/// Accusation that `node` failed a probe (type 3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    /// Incarnation of `node` the accusation refers to.
    pub incarnation: u32,
    /// Suspected node.
    pub node: Vec<u8>,
    /// Accuser.
    pub from: Vec<u8>,
}

/// Announcement that a node is alive (type 4): join, refutation, metadata update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    /// Incarnation; must be >= 1 for a node the receiver does not know.
    pub incarnation: u32,
    /// Node name.
    pub node: Vec<u8>,
    /// IP bytes (4, or 16 for IPv6 and IPv4-mapped); relay them unchanged.
    pub addr: Vec<u8>,
    /// Gossip port.
    pub port: u16,
    /// Node metadata, at most 512 bytes; `None` is Go's nil.
    pub meta: Option<Vec<u8>>,
    /// Version sextet, see [`DSKIT_VSN`].
    pub vsn: Vec<u8>,
}

/// Declaration that a node is dead (type 5); `from == node` is a graceful leave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    /// Incarnation of `node` the declaration refers to.
    pub incarnation: u32,
    /// Dead node.
    pub node: Vec<u8>,
    /// Declaring node.
    pub from: Vec<u8>,
}

/// A node's state in a push/pull exchange (`NodeStateType`, a Go `int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NodeState {
    /// 0
    #[default]
    Alive,
    /// 1
    Suspect,
    /// 2
    Dead,
    /// 3: left gracefully.
    Left,
    /// Any other value; kept so it re-encodes unchanged.
    Other(i64),
}

impl NodeState {
    /// Wire value.
    pub(crate) fn to_wire(self) -> i64 {
        match self {
            NodeState::Alive => 0,
            NodeState::Suspect => 1,
            NodeState::Dead => 2,
            NodeState::Left => 3,
            NodeState::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_wire(v: i64) -> Self {
        match v {
            0 => NodeState::Alive,
            1 => NodeState::Suspect,
            2 => NodeState::Dead,
            3 => NodeState::Left,
            v => NodeState::Other(v),
        }
    }
}

/// One node in a push/pull exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushNodeState {
    /// Node name.
    pub name: Vec<u8>,
    /// IP bytes.
    pub addr: Vec<u8>,
    /// Port (0: the receiver substitutes its own bind port).
    pub port: u16,
    /// Metadata; `None` is Go's nil.
    pub meta: Option<Vec<u8>>,
    /// Incarnation.
    pub incarnation: u32,
    /// State.
    pub state: NodeState,
    /// Version sextet.
    pub vsn: Vec<u8>,
}

/// A full state exchange (type 6, streams only): header, node states, user state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    /// True during a join (the responder echoes it).
    pub join: bool,
    /// Every node the sender knows.
    pub nodes: Vec<PushNodeState>,
    /// Delegate state (for dskit: [`super::kv::decode_user_state`]).
    pub user_state: Vec<u8>,
}

/// A compound message (type 7, packets only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compound {
    /// The complete parts, each a full message.
    pub parts: Vec<Message>,
    /// Parts announced but cut off by the end of the packet (Go ignores them);
    /// always 0 on encode.
    pub truncated: usize,
}

/// A compressed message (type 9): `inner` is compressed with `algo` on encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// Compression algorithm.
    pub algo: CompressionAlgo,
    /// The wrapped message (usually a compound on packets, a push/pull on streams).
    pub inner: Box<Message>,
}

/// Any memberlist message, wrappers included.
///
/// Which variants are legal depends on the context: [`super::packet`] accepts
/// everything but [`Message::PushPull`] and [`Message::Error`]; [`super::stream`]
/// accepts ping, ack, push/pull, user, compress and error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    Ping(Ping),
    /// Type 1.
    IndirectPing(IndirectPing),
    /// Type 2.
    Ack(Ack),
    /// Type 3.
    Suspect(Suspect),
    /// Type 4.
    Alive(Alive),
    /// Type 5.
    Dead(Dead),
    /// Type 6.
    PushPull(PushPull),
    /// Type 7.
    Compound(Compound),
    /// Type 8: delegate bytes (in packets up to the end; on streams length-prefixed).
    /// Shared, not copied: a queued broadcast goes into many packets.
    User(Bytes),
    /// Type 9.
    Compressed(Compressed),
    /// Type 11.
    Nack(Nack),
    /// Type 13.
    Error(ErrResp),
}

impl Message {
    /// The type byte this message is sent with.
    pub(crate) fn type_byte(&self) -> u8 {
        match self {
            Message::Ping(_) => ty::PING,
            Message::IndirectPing(_) => ty::INDIRECT_PING,
            Message::Ack(_) => ty::ACK,
            Message::Suspect(_) => ty::SUSPECT,
            Message::Alive(_) => ty::ALIVE,
            Message::Dead(_) => ty::DEAD,
            Message::PushPull(_) => ty::PUSH_PULL,
            Message::Compound(_) => ty::COMPOUND,
            Message::User(_) => ty::USER,
            Message::Compressed(_) => ty::COMPRESS,
            Message::Nack(_) => ty::NACK,
            Message::Error(_) => ty::ERR,
        }
    }

    /// A short name, as in the capture READMEs (`ping`, `indirectPing`, `ack`, ...).
    pub fn name(&self) -> &'static str {
        type_name(self.type_byte())
    }

    /// Calls `f` on this message and, depth first, on every message wrapped inside it.
    pub fn walk<'m>(&'m self, f: &mut impl FnMut(&'m Message)) {
        f(self);
        match self {
            Message::Compound(c) => c.parts.iter().for_each(|p| p.walk(f)),
            Message::Compressed(c) => c.inner.walk(f),
            _ => {}
        }
    }
}

/// The README name of a type byte.
pub(crate) fn type_name(t: u8) -> &'static str {
    match t {
        ty::PING => "ping",
        ty::INDIRECT_PING => "indirectPing",
        ty::ACK => "ack",
        ty::SUSPECT => "suspect",
        ty::ALIVE => "alive",
        ty::DEAD => "dead",
        ty::PUSH_PULL => "pushPull",
        ty::COMPOUND => "compound",
        ty::USER => "user",
        ty::COMPRESS => "compress",
        ty::ENCRYPT => "encrypt",
        ty::NACK => "nack",
        ty::HAS_CRC => "hasCrc",
        ty::ERR => "errResp",
        ty::HAS_LABEL => "hasLabel",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------
// IP address helpers
// ---------------------------------------------------------------------------

/// Which byte form an IPv4 address takes in `Addr`-like fields (`spec/memberlist.md` §5).
///
/// Go compares these bytes raw, so a node must announce itself in one fixed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpForm {
    /// 4 bytes, as upstream's NetTransport and peers without an advertise address send.
    V4,
    /// 16-byte IPv4-mapped IPv6, as dskit sends with an advertise address.
    Mapped,
}

/// The wire bytes of `ip`; IPv6 addresses are always 16 bytes.
pub(crate) fn ip_to_wire(ip: IpAddr, form: IpForm) -> Vec<u8> {
    match (ip, form) {
        (IpAddr::V4(v4), IpForm::V4) => v4.octets().to_vec(),
        (IpAddr::V4(v4), IpForm::Mapped) => v4.to_ipv6_mapped().octets().to_vec(),
        (IpAddr::V6(v6), _) => v6.octets().to_vec(),
    }
}

/// Reads wire IP bytes (4 or 16); IPv4-mapped addresses come back as IPv4 so they can
/// be dialled. `None` for any other length.
pub(crate) fn ip_from_wire(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(bytes);
            let v6 = Ipv6Addr::from(o);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Body encoding (msgpack map after the type byte), keys in sorted Go order
// ---------------------------------------------------------------------------

/// Counts the fields present, so the map header can be written first.
fn present(flags: &[bool]) -> u32 {
    flags.iter().filter(|b| **b).count() as u32
}

impl Ping {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        let (a, n, p) = (
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        );
        write_map_len(out, 2 + present(&[a, n, p]));
        write_raw(out, b"Node");
        write_raw(out, &self.node);
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
        if a {
            write_raw(out, b"SourceAddr");
            write_raw(out, &self.source_addr);
        }
        if n {
            write_raw(out, b"SourceNode");
            write_raw(out, &self.source_node);
        }
        if p {
            write_raw(out, b"SourcePort");
            write_uint(out, self.source_port.into());
        }
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = Ping::default();
        r.read_struct(|k, r| {
            match k {
                b"Node" => m.node = r.read_bytes()?,
                b"SeqNo" => m.seq_no = r.read_u32()?,
                b"SourceAddr" => m.source_addr = r.read_bytes()?,
                b"SourceNode" => m.source_node = r.read_bytes()?,
                b"SourcePort" => m.source_port = r.read_u16()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl IndirectPing {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        let (a, n, p) = (
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        );
        write_map_len(out, 5 + present(&[a, n, p]));
        write_raw(out, b"Nack");
        write_bool(out, self.nack);
        write_raw(out, b"Node");
        write_raw(out, &self.node);
        write_raw(out, b"Port");
        write_uint(out, self.port.into());
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
        if a {
            write_raw(out, b"SourceAddr");
            write_raw(out, &self.source_addr);
        }
        if n {
            write_raw(out, b"SourceNode");
            write_raw(out, &self.source_node);
        }
        if p {
            write_raw(out, b"SourcePort");
            write_uint(out, self.source_port.into());
        }
        write_raw(out, b"Target");
        write_raw(out, &self.target);
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = IndirectPing::default();
        r.read_struct(|k, r| {
            match k {
                b"Nack" => m.nack = r.read_bool()?,
                b"Node" => m.node = r.read_bytes()?,
                b"Port" => m.port = r.read_u16()?,
                b"SeqNo" => m.seq_no = r.read_u32()?,
                b"SourceAddr" => m.source_addr = r.read_bytes()?,
                b"SourceNode" => m.source_node = r.read_bytes()?,
                b"SourcePort" => m.source_port = r.read_u16()?,
                b"Target" => m.target = r.read_bytes()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Ack {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 2);
        write_raw(out, b"Payload");
        write_opt_raw(out, self.payload.as_deref());
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = Ack::default();
        r.read_struct(|k, r| {
            match k {
                b"Payload" => m.payload = r.read_opt_bytes()?,
                b"SeqNo" => m.seq_no = r.read_u32()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl Nack {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = Nack::default();
        r.read_struct(|k, r| {
            if k == b"SeqNo" {
                m.seq_no = r.read_u32()?;
                Ok(true)
            } else {
                Ok(false)
            }
        })?;
        Ok(m)
    }
}

impl ErrResp {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_raw(out, b"Error");
        write_raw(out, &self.error);
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = ErrResp::default();
        r.read_struct(|k, r| {
            if k == b"Error" {
                m.error = r.read_bytes()?;
                Ok(true)
            } else {
                Ok(false)
            }
        })?;
        Ok(m)
    }
}

/// suspect and dead share their layout: `From`, `Incarnation`, `Node`.
fn encode_accusation(out: &mut Vec<u8>, from: &[u8], incarnation: u32, node: &[u8]) {
    write_map_len(out, 3);
    write_raw(out, b"From");
    write_raw(out, from);
    write_raw(out, b"Incarnation");
    write_uint(out, incarnation.into());
    write_raw(out, b"Node");
    write_raw(out, node);
}

fn decode_accusation(r: &mut Reader<'_>) -> msgpack::Result<(Vec<u8>, u32, Vec<u8>)> {
    let (mut from, mut inc, mut node) = (Vec::new(), 0, Vec::new());
    r.read_struct(|k, r| {
        match k {
            b"From" => from = r.read_bytes()?,
            b"Incarnation" => inc = r.read_u32()?,
            b"Node" => node = r.read_bytes()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((from, inc, node))
}

impl Suspect {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        encode_accusation(out, &self.from, self.incarnation, &self.node);
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let (from, incarnation, node) = decode_accusation(r)?;
        Ok(Suspect {
            incarnation,
            node,
            from,
        })
    }
}

impl Dead {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        encode_accusation(out, &self.from, self.incarnation, &self.node);
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let (from, incarnation, node) = decode_accusation(r)?;
        Ok(Dead {
            incarnation,
            node,
            from,
        })
    }

    /// True for a graceful leave (the node declared itself dead).
    pub fn is_leave(&self) -> bool {
        self.from == self.node
    }
}

impl Alive {
    /// Appends the msgpack body (no type byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_meta(self.meta.as_deref())?;
        write_map_len(out, 6);
        write_raw(out, b"Addr");
        write_raw(out, &self.addr);
        write_raw(out, b"Incarnation");
        write_uint(out, self.incarnation.into());
        write_raw(out, b"Meta");
        write_opt_raw(out, self.meta.as_deref());
        write_raw(out, b"Node");
        write_raw(out, &self.node);
        write_raw(out, b"Port");
        write_uint(out, self.port.into());
        write_raw(out, b"Vsn");
        write_raw(out, &self.vsn);
        Ok(())
    }

    /// Decodes the msgpack body.
    pub(crate) fn decode_body(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = Alive::default();
        r.read_struct(|k, r| {
            match k {
                b"Addr" => m.addr = r.read_bytes()?,
                b"Incarnation" => m.incarnation = r.read_u32()?,
                b"Meta" => m.meta = r.read_opt_bytes()?,
                b"Node" => m.node = r.read_bytes()?,
                b"Port" => m.port = r.read_u16()?,
                b"Vsn" => m.vsn = r.read_bytes()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

fn check_meta(meta: Option<&[u8]>) -> Result<(), EncodeError> {
    match meta {
        Some(m) if m.len() > MAX_META_LEN => Err(EncodeError::MetaTooLong(m.len())),
        _ => Ok(()),
    }
}

impl PushNodeState {
    /// Appends the msgpack map of one node state.
    pub fn encode(&self, out: &mut Vec<u8>, dialect: Dialect) -> Result<(), EncodeError> {
        check_meta(self.meta.as_deref())?;
        write_map_len(out, 7);
        write_raw(out, b"Addr");
        write_raw(out, &self.addr);
        write_raw(out, b"Incarnation");
        write_uint(out, self.incarnation.into());
        write_raw(out, b"Meta");
        write_opt_raw(out, self.meta.as_deref());
        write_raw(out, b"Name");
        write_raw(out, &self.name);
        write_raw(out, b"Port");
        write_uint(out, self.port.into());
        write_raw(out, b"State");
        write_int(out, self.state.to_wire(), dialect);
        write_raw(out, b"Vsn");
        write_raw(out, &self.vsn);
        Ok(())
    }

    /// Decodes one node state map.
    pub fn decode(r: &mut Reader<'_>) -> msgpack::Result<Self> {
        let mut m = PushNodeState::default();
        r.read_struct(|k, r| {
            match k {
                b"Addr" => m.addr = r.read_bytes()?,
                b"Incarnation" => m.incarnation = r.read_u32()?,
                b"Meta" => m.meta = r.read_opt_bytes()?,
                b"Name" => m.name = r.read_bytes()?,
                b"Port" => m.port = r.read_u16()?,
                b"State" => m.state = NodeState::from_wire(r.read_i64()?),
                b"Vsn" => m.vsn = r.read_bytes()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl PushPull {
    /// Appends header, node states and user state (no type byte).
    pub(crate) fn encode_body(
        &self,
        out: &mut Vec<u8>,
        dialect: Dialect,
    ) -> Result<(), EncodeError> {
        write_map_len(out, 3);
        write_raw(out, b"Join");
        write_bool(out, self.join);
        write_raw(out, b"Nodes");
        write_int(out, self.nodes.len() as i64, dialect);
        write_raw(out, b"UserStateLen");
        write_int(out, self.user_state.len() as i64, dialect);
        for n in &self.nodes {
            n.encode(out, dialect)?;
        }
        out.extend_from_slice(&self.user_state);
        Ok(())
    }

    /// Decodes header, node states and user state. Counts come from the header, never
    /// from the end of input; a missing tail is reported as end of input so a stream
    /// reader can wait for more bytes. A `UserStateLen` above `max_user_state` is
    /// refused up front, so a reader never waits for (or buffers) such a payload.
    pub(crate) fn decode_body(
        r: &mut Reader<'_>,
        max_user_state: usize,
    ) -> Result<Self, DecodeError> {
        let body = |source: MsgpackError| DecodeError::Body {
            message: "pushPull",
            source,
        };
        let (mut join, mut nodes, mut user_len) = (false, 0i64, 0i64);
        r.read_struct(|k, r| {
            match k {
                b"Join" => join = r.read_bool()?,
                b"Nodes" => nodes = r.read_i64()?,
                b"UserStateLen" => user_len = r.read_i64()?,
                _ => return Ok(false),
            }
            Ok(true)
        })
        .map_err(body)?;
        if !(0..=MAX_PUSH_PULL_NODES).contains(&nodes) {
            return Err(DecodeError::BadNodeCount(nodes));
        }
        if user_len < 0 {
            return Err(DecodeError::NegativeLength(user_len, "pushPull"));
        }
        check_payload_len(user_len, max_user_state, "pushPull")?;
        // Never size an allocation from the peer's count alone: each state takes at
        // least one input byte, and beyond a small head start the vector grows only
        // as states actually decode.
        let mut states = Vec::with_capacity((nodes as usize).min(r.remaining().len()).min(64));
        for _ in 0..nodes {
            states.push(PushNodeState::decode(r).map_err(body)?);
        }
        let user_len = usize::try_from(user_len).unwrap_or(usize::MAX);
        let user_state = r.take(user_len).map_err(body)?.to_vec();
        Ok(PushPull {
            join,
            nodes: states,
            user_state,
        })
    }
}

/// Appends a stream user message body: msgpack `{UserMsgLen}` then the bytes.
pub(crate) fn encode_stream_user_body(out: &mut Vec<u8>, data: &[u8], dialect: Dialect) {
    write_map_len(out, 1);
    write_raw(out, b"UserMsgLen");
    write_int(out, data.len() as i64, dialect);
    out.extend_from_slice(data);
}

fn check_payload_len(len: i64, limit: usize, message: &'static str) -> Result<(), DecodeError> {
    if u64::try_from(len).unwrap_or(u64::MAX) > limit as u64 {
        return Err(DecodeError::PayloadTooLarge {
            len,
            limit,
            message,
        });
    }
    Ok(())
}

/// Decodes a stream user message body (header and exactly that many bytes, at most
/// `max_len`).
pub(crate) fn decode_stream_user_body(
    r: &mut Reader<'_>,
    max_len: usize,
) -> Result<Vec<u8>, DecodeError> {
    let body = |source: MsgpackError| DecodeError::Body {
        message: "user",
        source,
    };
    let mut len = 0i64;
    r.read_struct(|k, r| {
        if k == b"UserMsgLen" {
            len = r.read_i64()?;
            Ok(true)
        } else {
            Ok(false)
        }
    })
    .map_err(body)?;
    if len < 0 {
        return Err(DecodeError::NegativeLength(len, "user"));
    }
    check_payload_len(len, max_len, "user")?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    Ok(r.take(len).map_err(body)?.to_vec())
}

/// Appends a compress body `{Algo, Buf}` holding already compressed bytes.
pub fn encode_compress_body(out: &mut Vec<u8>, algo: CompressionAlgo, buf: &[u8]) {
    write_map_len(out, 2);
    write_raw(out, b"Algo");
    write_uint(out, algo.to_wire().into());
    write_raw(out, b"Buf");
    write_raw(out, buf);
}

/// Decodes a compress body into the algorithm id and the (still compressed) bytes.
pub fn decode_compress_body<'a>(r: &mut Reader<'a>) -> msgpack::Result<(u8, &'a [u8])> {
    let (mut algo, mut buf): (u8, &'a [u8]) = (0, &[]);
    r.read_struct(|k, r| {
        match k {
            b"Algo" => algo = r.read_u8()?,
            b"Buf" => buf = r.read_str_like()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((algo, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_helpers_map_between_forms() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(ip_to_wire(ip, IpForm::V4), [10, 0, 0, 1]);
        let mapped = ip_to_wire(ip, IpForm::Mapped);
        assert_eq!(mapped.len(), 16);
        assert_eq!(&mapped[10..], &[0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!(ip_from_wire(&mapped), Some(ip));
        assert_eq!(ip_from_wire(&[10, 0, 0, 1]), Some(ip));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_from_wire(&ip_to_wire(v6, IpForm::V4)), Some(v6));
        assert_eq!(ip_from_wire(&[1, 2, 3]), None);
    }

    #[test]
    fn ping_omits_empty_source_fields() {
        let mut out = Vec::new();
        Ping {
            seq_no: 300,
            node: b"b".to_vec(),
            ..Default::default()
        }
        .encode_body(&mut out);
        assert_eq!(out[0], 0x82);
    }

    #[test]
    fn meta_over_512_bytes_is_refused() {
        let a = Alive {
            meta: Some(vec![0; 513]),
            ..Default::default()
        };
        assert_eq!(
            a.encode_body(&mut Vec::new()),
            Err(EncodeError::MetaTooLong(513))
        );
    }

    #[test]
    fn push_pull_rejects_absurd_counts_without_allocating() {
        // {Join: true, Nodes: 2^40, UserStateLen: 0}
        let mut out = Vec::new();
        write_map_len(&mut out, 2);
        write_raw(&mut out, b"Nodes");
        write_uint(&mut out, 1 << 40);
        write_raw(&mut out, b"UserStateLen");
        write_uint(&mut out, 0);
        let err = PushPull::decode_body(&mut Reader::new(&out), usize::MAX).unwrap_err();
        assert_eq!(err, DecodeError::BadNodeCount(1 << 40));
    }

    #[test]
    fn push_pull_with_missing_user_state_is_eof() {
        let mut out = Vec::new();
        write_map_len(&mut out, 1);
        write_raw(&mut out, b"UserStateLen");
        write_uint(&mut out, 1_000_000);
        let err = PushPull::decode_body(&mut Reader::new(&out), usize::MAX).unwrap_err();
        assert!(err.is_eof(), "{err:?}");
    }

    #[test]
    fn unknown_node_state_survives_a_round_trip() {
        assert_eq!(NodeState::from_wire(9).to_wire(), 9);
        assert_eq!(NodeState::from_wire(3), NodeState::Left);
    }
}
