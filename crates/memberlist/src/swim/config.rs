//! Tuning of the SWIM core: memberlist's `Config` fields that shape the protocol.
//!
//! Every field names the memberlist setting it mirrors and, where dskit sets it, the
//! dskit flag and YAML key (`spec/memberlist.md` §1.11, §2.3, §2.14). [`Config::dskit`]
//! (also [`Default`]) is what a Mimir/Loki node runs; [`Config::default_lan`] is
//! memberlist's own `DefaultLANConfig`. Transport-only settings (timeouts of TCP
//! connections, compression, the label header itself) belong to the driver.

use std::time::Duration;

use thiserror::Error;

use super::broadcast::QueueLimits;
use super::routing::ZoneAwareRouting;
use crate::wire::message::DSKIT_VSN;

/// Protocol parameters of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// memberlist `ProbeInterval`: base period of the failure detector (one probed
    /// member per tick). LAN default 1 s; dskit hard-codes 5 s. The awareness score
    /// multiplies the time a failing probe may take, not the tick.
    pub probe_interval: Duration,
    /// memberlist `ProbeTimeout`: how long to wait for a direct ack before asking
    /// `indirect_checks` helpers. LAN 500 ms; dskit 2 s. Must be below `probe_interval`.
    pub probe_timeout: Duration,
    /// memberlist `IndirectChecks`: helpers asked to ping a silent member. Default 3.
    pub indirect_checks: usize,
    /// memberlist `RetransmitMult`, dskit `-memberlist.retransmit-factor`
    /// (`retransmit_factor`), default 4: a broadcast is sent at most
    /// `retransmit_mult × ceil(log10(n + 1))` times.
    pub retransmit_mult: usize,
    /// memberlist `SuspicionMult`, default 4: the minimum suspicion timeout is
    /// `suspicion_mult × max(1, log10(n)) × probe_interval`, and
    /// `suspicion_mult − 2` independent confirmations are expected.
    pub suspicion_mult: u32,
    /// memberlist `SuspicionMaxTimeoutMult`, default 6: an unconfirmed suspicion
    /// lasts this many times the minimum timeout.
    pub suspicion_max_timeout_mult: u32,
    /// memberlist `PushPullInterval`, dskit `-memberlist.pullpush-interval`
    /// (`pull_push_interval`), default 30 s: full state exchange with one random
    /// live member. Scaled up for clusters above 32 nodes. Zero disables it.
    pub push_pull_interval: Duration,
    /// memberlist `GossipInterval`, dskit `-memberlist.gossip-interval`
    /// (`gossip_interval`), default 200 ms. Zero disables gossip.
    pub gossip_interval: Duration,
    /// memberlist `GossipNodes`, dskit `-memberlist.gossip-nodes` (`gossip_nodes`),
    /// default 3: members gossiped to per interval.
    pub gossip_nodes: usize,
    /// ringkit only (memberlist has no such setting): our own changes go out at once,
    /// in a round to as many members as their transmit quota, instead of waiting for
    /// the next tick (a burst of two such rounds, then one per `gossip_interval`).
    /// Saves at least one tick of a join's or state change's spread; bytes stay the
    /// same (each message is still sent its quota of times). Default true; false gives
    /// memberlist's timing.
    pub gossip_local_changes_at_once: bool,
    /// memberlist `GossipToTheDeadTime`, dskit `-memberlist.gossip-to-dead-nodes-time`
    /// (`gossip_to_dead_nodes_time`), default 30 s: dead members keep receiving
    /// gossip (so they can refute) and stay in the table this long.
    pub gossip_to_the_dead_time: Duration,
    /// memberlist `AwarenessMaxMultiplier`, default 8: the health score ranges over
    /// `0..awareness_max_multiplier`.
    pub awareness_max_multiplier: u32,
    /// memberlist `DeadNodeReclaimTime`, dskit `-memberlist.dead-node-reclaim-time`
    /// (`dead_node_reclaim_time`), default 0 (never): after this long a dead
    /// member's name may be taken by an `alive` from another address.
    pub dead_node_reclaim_time: Duration,
    /// memberlist `UDPBufferSize`: byte budget of one outgoing packet, used to pack
    /// piggybacked broadcasts. LAN 1400; dskit 10 MiB (its TCP "packets" have no MTU).
    pub packet_budget: usize,
    /// Length of the cluster label (memberlist `Label`, dskit `cluster_label`),
    /// only to subtract its header from `packet_budget`; the driver writes it.
    pub label_len: usize,
    /// memberlist `DisableTcpPings`; dskit sets `true`. This core never sends
    /// stream pings (it has no stream fallback); the field documents the fact and
    /// must stay `true`. Inbound stream pings are answered by
    /// [`super::Core::handle_stream_ping`] regardless.
    pub disable_tcp_pings: bool,
    /// The `Vsn` sextet announced in `alive` and push/pull: protocol min/max/current,
    /// delegate min/max/current. dskit sends `[1, 5, 2, 0, 0, 0]`
    /// (`spec/memberlist.md` §1.7); any other delegate triple breaks dskit peers.
    pub vsn: [u8; 6],
    /// memberlist `HandoffQueueDepth`, dskit `-memberlist.received-messages-queue-size`
    /// (`received_messages_queue_size`), default 1024: received user messages waiting
    /// for the delegate ([`super::Event::UserMessage`] not yet polled). Past it they
    /// are dropped and counted (`received_broadcasts_dropped_total`).
    pub handoff_queue_depth: usize,
    /// Bound of each user broadcast queue (our own changes, relayed changes).
    /// dskit has no such bound (invalidation and the retransmit limit keep its
    /// queues small); ringkit adds one so a burst cannot grow memory without limit.
    /// Default 8192 messages and 32 MiB per queue.
    pub broadcast_queue_limits: QueueLimits,
    /// memberlist `PushPullNodes` (grafana fork): members contacted per periodic
    /// push/pull, default 1. dskit sets 2 on zone-aware bridges (one other-zone bridge
    /// plus one random candidate) and 1 on members.
    pub push_pull_nodes: usize,
    /// dskit's zone-aware routing (`-memberlist.zone-aware-routing.*`); `None` (the
    /// default) gossips and push/pulls with anyone. When set, the core announces the
    /// routing's metadata (see [`super::ZoneAwareRouting`]).
    pub zone_aware_routing: Option<ZoneAwareRouting>,
}

/// Default of [`Config::broadcast_queue_limits`].
pub(crate) const DEFAULT_BROADCAST_QUEUE_LIMITS: QueueLimits = QueueLimits {
    max_messages: 8192,
    max_bytes: 32 << 20,
};

impl Default for Config {
    /// dskit's settings, see [`Config::dskit`].
    fn default() -> Self {
        Config::dskit()
    }
}

impl Config {
    /// memberlist's `DefaultLANConfig` (`spec/memberlist.md` §1.11).
    pub fn default_lan() -> Self {
        Config {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_local_changes_at_once: true,
            gossip_to_the_dead_time: Duration::from_secs(30),
            awareness_max_multiplier: 8,
            dead_node_reclaim_time: Duration::ZERO,
            packet_budget: 1400,
            label_len: 0,
            disable_tcp_pings: false,
            vsn: DSKIT_VSN,
            handoff_queue_depth: 1024,
            broadcast_queue_limits: DEFAULT_BROADCAST_QUEUE_LIMITS,
            push_pull_nodes: 1,
            zone_aware_routing: None,
        }
    }

    /// What dskit's `buildMemberlistConfig` produces with default flags
    /// (`spec/memberlist.md` §2.3, §2.14): LAN defaults with probe interval 5 s,
    /// probe timeout 2 s, TCP pings disabled and a 10 MiB packet budget.
    pub fn dskit() -> Self {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            packet_budget: 10 * 1024 * 1024,
            disable_tcp_pings: true,
            ..Config::default_lan()
        }
    }

    /// Checks the relations the core relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.probe_interval.is_zero() {
            return Err(ConfigError::ZeroProbeInterval);
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::ProbeTimeoutTooLong);
        }
        if self.awareness_max_multiplier == 0 {
            return Err(ConfigError::ZeroAwareness);
        }
        if self.packet_budget < 64 + self.label_len {
            return Err(ConfigError::PacketBudgetTooSmall(self.packet_budget));
        }
        if self.handoff_queue_depth == 0 {
            return Err(ConfigError::ZeroQueue("handoff_queue_depth"));
        }
        let l = self.broadcast_queue_limits;
        if l.max_messages == 0 || l.max_bytes == 0 {
            return Err(ConfigError::ZeroQueue("broadcast_queue_limits"));
        }
        if self.push_pull_nodes == 0 {
            return Err(ConfigError::ZeroQueue("push_pull_nodes"));
        }
        if let Some(r) = &self.zone_aware_routing
            && !r.zone_fits()
        {
            return Err(ConfigError::ZoneTooLong(r.zone.len()));
        }
        let v = self.vsn;
        if v[0] == 0 || v[1] == 0 || v[0] > v[1] || v[2] < v[0] || v[2] > v[1] {
            return Err(ConfigError::BadVsn(v));
        }
        Ok(())
    }
}

/// A [`Config`] the core cannot run with; nothing was created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The probe loop needs a period.
    #[error("probe_interval must be positive")]
    ZeroProbeInterval,
    /// The indirect phase must fit inside the probe interval.
    #[error("probe_timeout must be shorter than probe_interval")]
    ProbeTimeoutTooLong,
    /// The health score needs at least one level.
    #[error("awareness_max_multiplier must be at least 1")]
    ZeroAwareness,
    /// No room for even one membership message.
    #[error("packet_budget of {0} bytes leaves no room for messages")]
    PacketBudgetTooSmall(usize),
    /// Peers would ignore our `alive` messages.
    #[error("invalid protocol versions {0:?}")]
    BadVsn([u8; 6]),
    /// A queue that can hold nothing would drop everything (also used for
    /// `push_pull_nodes`, which must name at least one partner).
    #[error("{0} must be at least 1")]
    ZeroQueue(&'static str),
    /// The zone-aware routing zone does not fit dskit's metadata.
    #[error("zone name too long: {0} bytes (max 16)")]
    ZoneTooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dskit_preset_differs_from_lan_only_where_dskit_overrides() {
        let lan = Config::default_lan();
        let dskit = Config::dskit();
        assert_eq!(dskit.probe_interval, Duration::from_secs(5));
        assert_eq!(dskit.probe_timeout, Duration::from_secs(2));
        assert_eq!(dskit.packet_budget, 10 << 20);
        assert!(dskit.disable_tcp_pings);
        let back = Config {
            probe_interval: lan.probe_interval,
            probe_timeout: lan.probe_timeout,
            packet_budget: lan.packet_budget,
            disable_tcp_pings: lan.disable_tcp_pings,
            ..dskit.clone()
        };
        assert_eq!(back, lan);
        assert_eq!(Config::default(), dskit);
    }

    #[test]
    fn both_presets_validate_and_a_long_probe_timeout_does_not() {
        Config::default_lan().validate().unwrap();
        Config::dskit().validate().unwrap();
        let bad = Config {
            probe_timeout: Duration::from_secs(5),
            ..Config::dskit()
        };
        assert_eq!(bad.validate(), Err(ConfigError::ProbeTimeoutTooLong));
    }
}
