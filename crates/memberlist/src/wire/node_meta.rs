//! dskit's node metadata: the bytes a node puts in the `Meta` field of its `alive`
//! message and push/pull node state when zone-aware routing is on (dskit
//! `kv/memberlist/node_meta.go`, added with dskit #762, 2025-10-24).
//!
//! Layout, version 1 (3 to 19 bytes):
//!
//! | Byte | Meaning |
//! | --- | --- |
//! | 0 | version, always 1 |
//! | 1 | role: 1 = member, 2 = bridge |
//! | 2 | zone length `n`, 0..=16 |
//! | 3.. | `n` zone bytes |
//!
//! Reading is lenient, as dskit's accessors are, because the field also carries
//! whatever older or foreign nodes put there (dskit without routing and ringkit send
//! nil): anything shorter than 3 bytes or of another version reads as role member
//! with no zone; a zone length past the end reads as no zone but keeps the role; a
//! role byte other than 1 or 2 is kept as it is ([`NodeRole::Other`]) and treated
//! like a member by the routing rules. A node with no zone is never filtered out.

use std::fmt;

use thiserror::Error;

/// The only metadata version dskit writes.
pub(crate) const NODE_META_VERSION: u8 = 1;
/// Longest zone name dskit accepts (keeps the metadata small: it rides on every
/// `alive`).
pub const MAX_ZONE_LEN: usize = 16;
/// Bytes before the zone name.
const HEADER_LEN: usize = 3;

/// A node's part in zone-aware routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// An ordinary node: gossips and push/pulls only within its zone.
    Member,
    /// A node that also talks to the bridges of other zones, so changes cross zones.
    Bridge,
    /// A role byte dskit does not define (read from a peer, never written by us).
    Other(u8),
}

impl NodeRole {
    /// The role byte on the wire.
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            NodeRole::Member => 1,
            NodeRole::Bridge => 2,
            NodeRole::Other(b) => b,
        }
    }

    /// The role a byte stands for.
    pub(crate) fn from_byte(b: u8) -> Self {
        match b {
            1 => NodeRole::Member,
            2 => NodeRole::Bridge,
            other => NodeRole::Other(other),
        }
    }

    /// Parses dskit's `-memberlist.zone-aware-routing.role` values (`member`,
    /// `bridge`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(NodeRole::Member),
            "bridge" => Some(NodeRole::Bridge),
            _ => None,
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeRole::Member => f.write_str("member"),
            NodeRole::Bridge => f.write_str("bridge"),
            NodeRole::Other(b) => write!(f, "unknown({b})"),
        }
    }
}

/// Metadata that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NodeMetaError {
    /// The zone name is longer than dskit allows.
    #[error("zone name too long: {0} bytes (max 16)")]
    ZoneTooLong(usize),
}

/// Encodes a node's role and zone (version 1), as a dskit node announces them.
pub fn encode_node_meta(role: NodeRole, zone: &[u8]) -> Result<Vec<u8>, NodeMetaError> {
    if zone.len() > MAX_ZONE_LEN {
        return Err(NodeMetaError::ZoneTooLong(zone.len()));
    }
    let mut b = Vec::with_capacity(HEADER_LEN + zone.len());
    b.push(NODE_META_VERSION);
    b.push(role.to_byte());
    // Fits: checked against MAX_ZONE_LEN above.
    b.push(zone.len() as u8);
    b.extend_from_slice(zone);
    Ok(b)
}

/// A view of a peer's `Meta` field with dskit's lenient reading (see the module
/// docs). `None` (Go nil) and any other bytes are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeMeta<'a>(pub Option<&'a [u8]>);

impl<'a> NodeMeta<'a> {
    /// The version-1 header, if the metadata has one.
    fn v1(&self) -> Option<&'a [u8]> {
        self.0
            .filter(|m| m.len() >= HEADER_LEN && m[0] == NODE_META_VERSION)
    }

    /// The announced role; [`NodeRole::Member`] when the metadata is absent or not
    /// version 1.
    pub fn role(&self) -> NodeRole {
        self.v1()
            .map_or(NodeRole::Member, |m| NodeRole::from_byte(m[1]))
    }

    /// The announced zone; empty ("unknown zone") when absent, not version 1 or
    /// truncated.
    pub fn zone(&self) -> &'a [u8] {
        let Some(m) = self.v1() else {
            return &[];
        };
        let n = usize::from(m[2]);
        m.get(HEADER_LEN..HEADER_LEN + n).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes_match_dskit_and_the_msgpack_vector_of_the_spec() {
        // spec/memberlist.md §1.14: an alive with role bridge and zone "a" carries
        // `a4 01020161` under `Meta` (a 4-byte raw string).
        assert_eq!(
            encode_node_meta(NodeRole::Bridge, b"a").unwrap(),
            [0x01, 0x02, 0x01, b'a']
        );
        assert_eq!(
            encode_node_meta(NodeRole::Member, b"zone-a").unwrap(),
            b"\x01\x01\x06zone-a"
        );
        assert_eq!(encode_node_meta(NodeRole::Member, b"").unwrap(), [1, 1, 0]);
        let max = encode_node_meta(NodeRole::Member, b"0123456789abcdef").unwrap();
        assert_eq!(max.len(), 19, "the largest metadata dskit writes");
    }

    #[test]
    fn zones_longer_than_sixteen_bytes_are_refused() {
        assert_eq!(
            encode_node_meta(NodeRole::Member, b"0123456789abcdef0"),
            Err(NodeMetaError::ZoneTooLong(17))
        );
    }

    #[test]
    fn malformed_metadata_reads_as_dskit_reads_it() {
        // (bytes, role, zone): dskit's TestEncodedNodeMetadata_InvalidData cases and
        // the nil metadata of nodes without routing.
        type Case = (Option<&'static [u8]>, NodeRole, &'static [u8]);
        let cases: &[Case] = &[
            (None, NodeRole::Member, b""),
            (Some(b""), NodeRole::Member, b""),
            (Some(&[1, 2]), NodeRole::Member, b""),
            (Some(&[99, 2, 0]), NodeRole::Member, b""),
            (Some(&[1, 2, 5, b'a', b'b']), NodeRole::Bridge, b""),
            (Some(&[1, 7, 1, b'z']), NodeRole::Other(7), b"z"),
            (Some(&[1, 2, 1, b'a', b'x']), NodeRole::Bridge, b"a"),
        ];
        for &(bytes, role, zone) in cases {
            let m = NodeMeta(bytes);
            assert_eq!((m.role(), m.zone()), (role, zone), "{bytes:?}");
        }
    }

    #[test]
    fn role_names_are_dskits_flag_values() {
        assert_eq!(NodeRole::parse("member"), Some(NodeRole::Member));
        assert_eq!(NodeRole::parse("bridge"), Some(NodeRole::Bridge));
        assert_eq!(NodeRole::parse("Bridge"), None);
        assert_eq!(NodeRole::Bridge.to_string(), "bridge");
        assert_eq!(NodeRole::Other(9).to_string(), "unknown(9)");
    }

    proptest! {
        #[test]
        fn encoding_round_trips(role in 0u8..=255, zone in proptest::collection::vec(any::<u8>(), 0..=16)) {
            let role = NodeRole::from_byte(role);
            prop_assert_eq!(role, NodeRole::from_byte(role.to_byte()));
            let b = encode_node_meta(role, &zone).unwrap();
            prop_assert_eq!(b.len(), 3 + zone.len());
            let m = NodeMeta(Some(&b));
            prop_assert_eq!(m.role(), role);
            prop_assert_eq!(m.zone(), &zone[..]);
        }

        #[test]
        fn any_bytes_read_without_panic_and_the_zone_is_within_them(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let m = NodeMeta(Some(&b));
            let zone = m.zone();
            prop_assert!(zone.len() <= 255);
            if !zone.is_empty() {
                prop_assert_eq!(zone, &b[3..3 + zone.len()]);
                prop_assert_eq!(b[0], 1);
            }
            if b.len() < 3 || b[0] != 1 {
                prop_assert_eq!(m.role(), NodeRole::Member);
            }
        }
    }
}
