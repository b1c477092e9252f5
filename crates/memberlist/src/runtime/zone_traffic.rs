//! ringkit's own counters of what a zone-aware node sends to and receives from each
//! kind of peer, so an operator (or a test) can see without a packet capture that
//! gossip and push/pulls stay in the zone except bridge to bridge. dskit only counts
//! routing decisions (`..._select_nodes_total`), not where packets went.
//!
//! - `memberlist_client_zone_aware_routing_sent_total{kind, destination}`: packets and
//!   periodic push/pulls this node started;
//! - `memberlist_client_zone_aware_routing_received_packets_total{kind, source}`:
//!   packets received, attributed to their sender by the address dskit's TCP transport
//!   writes in front of each packet (with the plain UDP transport, the datagram's
//!   source). Streams (push/pulls) come from an ephemeral port and cannot be attributed.
//!
//! `kind` is `probe` (a packet holding a ping, indirect ping, ack or nack: probes are not
//! routed, and the broadcasts piggybacked on them cross zones with them), `gossip` (any
//! other packet) or `push_pull`. The peer is `same_zone`, `other_zone_bridge`,
//! `other_zone_member` or `unknown_zone` (no zone in its metadata, or not in our member
//! table). Joins are not routed and not counted. Counted only with routing on and a
//! zone set; the series are registered (at 0) in any case. At most 3 × 4 + 2 × 4 series.

use std::net::SocketAddr;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::swim::{Member, ZoneAwareRouting};
use crate::wire::Message;
use crate::wire::node_meta::{NodeMeta, NodeRole};

/// What was sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A packet holding a probe message (ping, indirect ping, ack, nack).
    Probe,
    /// Any other packet (broadcasts: alive, suspect, dead, user).
    Gossip,
    /// A periodic push/pull this node started.
    PushPull,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Probe => "probe",
            Kind::Gossip => "gossip",
            Kind::PushPull => "push_pull",
        }
    }

    /// `probe` when `m` (or any part of a compound) is a probe message, else `gossip`.
    pub(crate) fn of_packet(m: &Message) -> Kind {
        if is_probe(m) {
            Kind::Probe
        } else {
            Kind::Gossip
        }
    }
}

fn is_probe(m: &Message) -> bool {
    match m {
        Message::Ping(_) | Message::IndirectPing(_) | Message::Ack(_) | Message::Nack(_) => true,
        Message::Compound(c) => c.parts.iter().any(is_probe),
        Message::Compressed(c) => is_probe(&c.inner),
        _ => false,
    }
}

/// The peer, as seen from this node's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    SameZone,
    OtherZoneBridge,
    OtherZoneMember,
    UnknownZone,
}

impl Peer {
    fn as_str(self) -> &'static str {
        match self {
            Peer::SameZone => "same_zone",
            Peer::OtherZoneBridge => "other_zone_bridge",
            Peer::OtherZoneMember => "other_zone_member",
            Peer::UnknownZone => "unknown_zone",
        }
    }

    /// Classifies the member at `addr` (a linear look-up: called only with routing on,
    /// once per packet, over a table of at most a few thousand members).
    pub(crate) fn of<'a>(
        ours: &ZoneAwareRouting,
        mut members: impl Iterator<Item = &'a Member>,
        addr: SocketAddr,
    ) -> Peer {
        let Some(m) = members.find(|m| m.port == addr.port() && m.socket_addr() == Some(addr))
        else {
            return Peer::UnknownZone;
        };
        let meta = NodeMeta(m.meta.as_deref());
        let zone = meta.zone();
        if zone.is_empty() {
            Peer::UnknownZone
        } else if zone == ours.zone.as_slice() {
            Peer::SameZone
        } else if meta.role() == NodeRole::Bridge {
            Peer::OtherZoneBridge
        } else {
            Peer::OtherZoneMember
        }
    }
}

type Labels = [(&'static str, &'static str); 2];

/// The two counter families (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ZoneTraffic {
    sent: Family<Labels, Counter>,
    received: Family<Labels, Counter>,
}

impl ZoneTraffic {
    pub(crate) fn sent(&self, kind: Kind, to: Peer) {
        self.sent
            .get_or_create(&[("kind", kind.as_str()), ("destination", to.as_str())])
            .inc();
    }

    pub(crate) fn received(&self, kind: Kind, from: Peer) {
        self.received
            .get_or_create(&[("kind", kind.as_str()), ("source", from.as_str())])
            .inc();
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        // Every series exists from the start, so a query for 0 finds it.
        let peers = [
            Peer::SameZone,
            Peer::OtherZoneBridge,
            Peer::OtherZoneMember,
            Peer::UnknownZone,
        ];
        for p in peers {
            for k in [Kind::Probe, Kind::Gossip, Kind::PushPull] {
                let _ = self
                    .sent
                    .get_or_create(&[("kind", k.as_str()), ("destination", p.as_str())]);
            }
            for k in [Kind::Probe, Kind::Gossip] {
                let _ = self
                    .received
                    .get_or_create(&[("kind", k.as_str()), ("source", p.as_str())]);
            }
        }
        registry.register(
            "memberlist_client_zone_aware_routing_sent",
            "Packets and periodic push/pulls this node started, by kind and by the \
             destination's zone and role (ringkit only; counted with zone-aware routing on)",
            self.sent.clone(),
        );
        registry.register(
            "memberlist_client_zone_aware_routing_received_packets",
            "Packets received, by kind and by the sender's zone and role (ringkit only; \
             counted with zone-aware routing on)",
            self.received.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swim::State;
    use crate::wire::message::{Ack, Compound};
    use crate::wire::node_meta::encode_node_meta;
    use std::time::Instant;

    fn member(port: u16, meta: Option<Vec<u8>>) -> Member {
        Member {
            name: format!("n{port}").into_bytes().into(),
            addr: vec![127, 0, 0, 1].into(),
            port,
            meta,
            vsn: [1, 5, 2, 0, 0, 0],
            incarnation: 1,
            state: State::Alive,
            state_change: Instant::now(),
        }
    }

    #[test]
    fn peers_are_classified_by_the_zone_and_role_in_their_metadata() {
        let ours = ZoneAwareRouting {
            role: NodeRole::Member,
            zone: b"zone-a".to_vec(),
        };
        let table = [
            member(1, encode_node_meta(NodeRole::Bridge, b"zone-a").ok()),
            member(2, encode_node_meta(NodeRole::Bridge, b"zone-b").ok()),
            member(3, encode_node_meta(NodeRole::Member, b"zone-b").ok()),
            member(4, None),
        ];
        let at = |p: u16| Peer::of(&ours, table.iter(), SocketAddr::from(([127, 0, 0, 1], p)));
        assert_eq!(at(1), Peer::SameZone);
        assert_eq!(at(2), Peer::OtherZoneBridge);
        assert_eq!(at(3), Peer::OtherZoneMember);
        assert_eq!(at(4), Peer::UnknownZone);
        assert_eq!(at(5), Peer::UnknownZone, "not in the table");
    }

    #[test]
    fn a_packet_with_a_probe_anywhere_is_a_probe() {
        let ack = Message::Ack(Ack {
            seq_no: 1,
            payload: None,
        });
        let user = Message::User(vec![1, 2].into());
        assert_eq!(Kind::of_packet(&ack), Kind::Probe);
        assert_eq!(Kind::of_packet(&user), Kind::Gossip);
        let piggybacked = Message::Compound(Compound {
            parts: vec![user.clone(), ack],
            truncated: 0,
        });
        assert_eq!(Kind::of_packet(&piggybacked), Kind::Probe);
        let gossip = Message::Compound(Compound {
            parts: vec![user.clone(), user],
            truncated: 0,
        });
        assert_eq!(Kind::of_packet(&gossip), Kind::Gossip);
    }
}
