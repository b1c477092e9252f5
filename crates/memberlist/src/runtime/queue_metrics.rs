//! dskit's broadcast queue metrics of a running node, read at scrape time from
//! [`Memberlist::broadcast_queue_stats`] (no second copy of the numbers to keep in
//! step with the node's task).
//!
//! | metric | meaning |
//! |---|---|
//! | `memberlist_client_messages_in_broadcast_queue{queue="local"\|"gossip"}` | queued own / relayed changes |
//! | `memberlist_client_messages_in_broadcast_queue_bytes` | bytes in both queues |
//! | `memberlist_client_messages_to_broadcast_dropped_total` | changes dropped before their last transmit (queue bound, full channel) |
//! | `memberlist_client_received_broadcasts_dropped_total` | received messages dropped (handoff queue full) |

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Memberlist;

/// Registers the broadcast queue metrics of `node` under `memberlist_client_`.
pub fn register_broadcast_queue_metrics(registry: &mut Registry, node: &Memberlist) {
    registry
        .sub_registry_with_prefix("memberlist_client")
        .register_collector(Box::new(QueueMetrics { node: node.clone() }));
}

#[derive(Debug)]
struct QueueMetrics {
    node: Memberlist,
}

impl Collector for QueueMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.node.broadcast_queue_stats();
        let mut m = encoder.encode_descriptor(
            "messages_in_broadcast_queue",
            "Number of user messages in the broadcast queue",
            None,
            MetricType::Gauge,
        )?;
        for (queue, n) in [("local", s.local.messages), ("gossip", s.gossip.messages)] {
            ConstGauge::new(n as i64).encode(m.encode_family(&[("queue", queue)])?)?;
        }
        let m = encoder.encode_descriptor(
            "messages_in_broadcast_queue_bytes",
            "Total size of messages waiting in the broadcast queue",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.bytes() as i64).encode(m)?;
        let m = encoder.encode_descriptor(
            "messages_to_broadcast_dropped",
            "Number of broadcast messages intended to be sent but were dropped",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.dropped()).encode(m)?;
        let m = encoder.encode_descriptor(
            "received_broadcasts_dropped",
            "Number of received broadcast user messages that were dropped",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.received_dropped).encode(m)?;
        Ok(())
    }
}
