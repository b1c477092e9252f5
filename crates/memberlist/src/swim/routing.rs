//! Zone-aware routing: which members a node gossips to and push/pulls with, by zone and
//! role (dskit `kv/memberlist/node_zone_aware_routing.go`, dskit #762 and follow-ups,
//! on the grafana memberlist fork's node-selection hook).
//!
//! Every gossip round and every periodic push/pull first looks at the whole member
//! table (ourselves and dead members not yet forgotten included) and decides:
//!
//! - a member with no zone in its metadata (nil or malformed: older dskit, ringkit
//!   without routing) is always a candidate, never preferred, so it cannot be cut off;
//! - a **member** node's candidates are the nodes of its own zone;
//! - a **bridge** node's candidates are the nodes of its own zone plus the bridges of
//!   other zones, and one of those other-zone bridges (chosen uniformly at random) is
//!   *preferred*: it is always among the targets when it passes the round's usual
//!   filter (alive for push/pull; not long dead for gossip);
//! - routing is **skipped** (every node is a candidate, nothing preferred) when our own
//!   zone is unknown, or when some zone has a member (any state) but no *alive* bridge,
//!   so a zone that lost its bridges is not cut off. Skips after the node finished
//!   joining are counted (dskit's `..._select_nodes_skipped_total`).
//!
//! Probes (direct and indirect) and joins are not routed: health checks still cross
//! zones, and so do the broadcasts piggybacked on them.

use rand::{Rng, RngExt};

use super::member::{Member, State};
use crate::wire::node_meta::{MAX_ZONE_LEN, NodeMeta, NodeRole, encode_node_meta};

/// This node's zone and role, turning zone-aware routing on (dskit
/// `-memberlist.zone-aware-routing.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneAwareRouting {
    /// `-memberlist.zone-aware-routing.role` (`member` or `bridge`).
    pub role: NodeRole,
    /// `-memberlist.zone-aware-routing.instance-availability-zone` (at most 16 bytes).
    /// Empty means "unknown": the node announces it but routes to everyone.
    pub zone: Vec<u8>,
}

impl ZoneAwareRouting {
    /// The metadata this node announces in its `alive` messages.
    pub fn node_meta(&self) -> Option<Vec<u8>> {
        encode_node_meta(self.role, &self.zone).ok()
    }

    /// True when the zone fits dskit's metadata.
    pub(crate) fn zone_fits(&self) -> bool {
        self.zone.len() <= MAX_ZONE_LEN
    }

    /// Whether a node with this metadata is a candidate, and whether it is a
    /// preferred one (dskit `selectNode`).
    pub fn candidate(&self, remote: NodeMeta<'_>) -> (bool, bool) {
        let zone = remote.zone();
        if zone.is_empty() {
            return (true, false);
        }
        match self.role {
            NodeRole::Member => (zone == self.zone.as_slice(), false),
            NodeRole::Bridge => {
                if zone == self.zone.as_slice() {
                    (true, false)
                } else {
                    let bridge = remote.role() == NodeRole::Bridge;
                    (bridge, bridge)
                }
            }
            // Never configured by us; dskit keeps everyone for an unknown role.
            NodeRole::Other(_) => (true, false),
        }
    }

    /// Decides one round over `members` (the whole table, in probe order). Draws from
    /// `rng` only to pick the preferred node among several candidates.
    pub fn select<'a, R: Rng>(
        &self,
        members: impl Iterator<Item = &'a Member>,
        rng: &mut R,
    ) -> Selection {
        if self.zone.is_empty() {
            return Selection::Skipped;
        }
        let mut with_members: Vec<&'a [u8]> = Vec::new();
        let mut with_bridges: Vec<&'a [u8]> = Vec::new();
        let mut preferred: Option<&'a [u8]> = None;
        let mut seen_preferred = 0u32;
        for m in members {
            let meta = NodeMeta(m.meta.as_deref());
            let zone = meta.zone();
            if !zone.is_empty() {
                if meta.role() == NodeRole::Bridge {
                    if m.state == State::Alive && !with_bridges.contains(&zone) {
                        with_bridges.push(zone);
                    }
                } else if !with_members.contains(&zone) {
                    with_members.push(zone);
                }
            }
            let (_, prefer) = self.candidate(meta);
            if prefer {
                // Reservoir sampling: each preferred candidate equally likely.
                seen_preferred += 1;
                if rng.random_range(0..seen_preferred) == 0 {
                    preferred = Some(&m.name);
                }
            }
        }
        if with_members.iter().any(|z| !with_bridges.contains(z)) {
            return Selection::Skipped;
        }
        Selection::Routed {
            preferred: preferred.map(<[u8]>::to_vec),
        }
    }
}

/// The outcome of [`ZoneAwareRouting::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Route to everyone (our zone is unknown, or a zone has no alive bridge).
    Skipped,
    /// Candidates are those [`ZoneAwareRouting::candidate`] accepts; `preferred` goes
    /// first when the round's filter lets it.
    Routed {
        /// The other-zone bridge to include first (bridges only).
        preferred: Option<Vec<u8>>,
    },
}

/// Counters of routing decisions (dskit's
/// `memberlist_client_zone_aware_routing_select_nodes_total` and
/// `..._select_nodes_skipped_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoutingStats {
    /// Rounds (gossip and push/pull) that asked for a selection.
    pub select_calls: u64,
    /// Of those, rounds that routed to everyone after the node had joined.
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::time::Instant;

    fn node(name: &str, role: NodeRole, zone: &str, state: State) -> Member {
        Member {
            name: name.as_bytes().into(),
            addr: vec![10, 0, 0, 1].into(),
            port: 7946,
            meta: Some(encode_node_meta(role, zone.as_bytes()).unwrap()),
            vsn: [1, 5, 2, 0, 0, 0],
            incarnation: 1,
            state,
            state_change: Instant::now(),
        }
    }

    fn routing(role: NodeRole, zone: &str) -> ZoneAwareRouting {
        ZoneAwareRouting {
            role,
            zone: zone.as_bytes().to_vec(),
        }
    }

    fn candidates(r: &ZoneAwareRouting, ms: &[Member]) -> Vec<String> {
        ms.iter()
            .filter(|m| r.candidate(NodeMeta(m.meta.as_deref())).0)
            .map(|m| String::from_utf8_lossy(&m.name).into_owned())
            .collect()
    }

    fn table() -> Vec<Member> {
        use NodeRole::*;
        vec![
            node("member-a", Member, "zone-a", State::Alive),
            node("bridge-a", Bridge, "zone-a", State::Alive),
            node("member-b", Member, "zone-b", State::Alive),
            node("bridge-b", Bridge, "zone-b", State::Alive),
            node("bridge-c", Bridge, "zone-c", State::Alive),
            node("member-nozone", Member, "", State::Alive),
        ]
    }

    #[test]
    fn a_member_keeps_its_zone_and_nodes_without_a_zone() {
        let r = routing(NodeRole::Member, "zone-a");
        let ms = table();
        assert_eq!(
            candidates(&r, &ms),
            ["member-a", "bridge-a", "member-nozone"]
        );
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            r.select(ms.iter(), &mut rng),
            Selection::Routed { preferred: None }
        );
    }

    #[test]
    fn a_bridge_adds_other_zones_bridges_and_prefers_each_of_them_evenly() {
        let r = routing(NodeRole::Bridge, "zone-a");
        let ms = table();
        assert_eq!(
            candidates(&r, &ms),
            [
                "member-a",
                "bridge-a",
                "bridge-b",
                "bridge-c",
                "member-nozone"
            ]
        );
        let mut rng = StdRng::seed_from_u64(2);
        let (mut b, mut c) = (0, 0);
        for _ in 0..1000 {
            match r.select(ms.iter(), &mut rng) {
                Selection::Routed { preferred: Some(p) } if p == b"bridge-b" => b += 1,
                Selection::Routed { preferred: Some(p) } if p == b"bridge-c" => c += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(b + c, 1000);
        assert!((400..=600).contains(&b), "bridge-b preferred {b} of 1000");
    }

    #[test]
    fn nil_short_and_foreign_metadata_is_always_a_candidate_never_preferred() {
        let r = routing(NodeRole::Bridge, "zone-a");
        for meta in [None, Some(vec![1, 2]), Some(vec![2, 2, 1, b'b'])] {
            let m = NodeMeta(meta.as_deref());
            assert_eq!(r.candidate(m), (true, false), "{meta:?}");
        }
        // An unknown role in another zone is treated as a member there.
        let other = encode_node_meta(NodeRole::Other(7), b"zone-b").unwrap();
        assert_eq!(r.candidate(NodeMeta(Some(&other))), (false, false));
    }

    #[test]
    fn routing_is_skipped_without_a_local_zone_or_when_a_zone_has_no_alive_bridge() {
        let mut rng = StdRng::seed_from_u64(3);
        let ms = table();
        assert_eq!(
            routing(NodeRole::Member, "").select(ms.iter(), &mut rng),
            Selection::Skipped
        );
        let r = routing(NodeRole::Member, "zone-a");
        // zone-b's only bridge is suspect: zone-b would be cut off.
        let mut suspect = ms.clone();
        suspect[3].state = State::Suspect;
        assert_eq!(r.select(suspect.iter(), &mut rng), Selection::Skipped);
        // A zone with members and no bridge at all.
        let mut none = ms.clone();
        none.push(node("member-d", NodeRole::Member, "zone-d", State::Alive));
        assert_eq!(r.select(none.iter(), &mut rng), Selection::Skipped);
        // A dead member still counts for its zone (until it is forgotten).
        let mut dead = ms.clone();
        dead.push(node("member-d", NodeRole::Member, "zone-d", State::Dead));
        assert_eq!(r.select(dead.iter(), &mut rng), Selection::Skipped);
        // A zone with only bridges (here zone-c) needs nothing more.
        assert!(matches!(
            r.select(ms.iter(), &mut rng),
            Selection::Routed { .. }
        ));
    }
}
