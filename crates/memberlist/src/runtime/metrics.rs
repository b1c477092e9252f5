//! Node-level `memberlist_client_*` gauges that dskit exports from its memberlist
//! instance (members, health score), read at scrape time so they are never stale and
//! cost nothing between scrapes. The broadcast queue's gauges and drop counters are
//! registered with them, from `queue_metrics`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::node::Memberlist;

/// Scrape-time collector of a node's `memberlist_client_*` gauges.
#[derive(Debug)]
pub(crate) struct NodeCollector {
    pub(crate) node: Memberlist,
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let n = &self.node;
        let m = encoder.encode_descriptor(
            "memberlist_client_cluster_members_count",
            "Number of members in memberlist cluster (alive or suspect, this node included)",
            None,
            MetricType::Gauge,
        )?;
        gauge(n.num_members() as u64).encode(m)?;

        let m = encoder.encode_descriptor(
            "memberlist_client_cluster_node_health_score",
            "Health score of this cluster. Lower value is better. 0 = healthy",
            None,
            MetricType::Gauge,
        )?;
        gauge(u64::from(n.health_score())).encode(m)?;

        // dskit's zone-aware routing counters. dskit registers them only with routing
        // on; ringkit always does (zero without routing), so the mixin's
        // MimirMemberlistZoneAwareRoutingAutoFailover alert always finds its series.
        let r = n.routing_stats();
        let m = encoder.encode_descriptor(
            "memberlist_client_zone_aware_routing_select_nodes",
            "Times memberlist selected gossip or push/pull candidates (zone-aware routing only)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(r.select_calls).encode(m)?;
        let m = encoder.encode_descriptor(
            "memberlist_client_zone_aware_routing_select_nodes_skipped",
            "Times zone-aware routing was skipped, after joining, because the local zone is \
             unknown or a zone has no alive bridge",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(r.skipped).encode(m)?;

        let m = encoder.encode_descriptor(
            "memberlist_peer_warnings_tracked_peers",
            "Peers (by IP and kind of warning) whose warnings are being rate-limited",
            None,
            MetricType::Gauge,
        )?;
        gauge(n.peer_warnings().tracked() as u64).encode(m)?;
        Ok(())
    }
}

impl Memberlist {
    /// Registers the node's `memberlist_client_*` gauges, its zone traffic counters and
    /// its `memberlist_tcp_transport_*` counters (the store registers its own with
    /// [`crate::kv::GossipKv::register_metrics`]).
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.transport_metrics().register(registry);
        registry.register(
            "memberlist_peer_warnings_suppressed",
            "Warnings about peers not logged (at most one per peer and kind per minute is)",
            self.peer_warnings().suppressed.clone(),
        );
        registry.register_collector(Box::new(NodeCollector { node: self.clone() }));
        self.zone_traffic().register(registry);
        super::queue_metrics::register_broadcast_queue_metrics(registry, self);
    }
}
