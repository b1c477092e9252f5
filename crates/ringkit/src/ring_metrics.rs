//! Ring and member metrics with dskit's names and labels, so existing Mimir/Loki/Cortex
//! dashboards and alerts work on a ringkit node unchanged (design.md, "Observability").
//!
//! Everything is computed at scrape time from the newest ring snapshot and the
//! lifecycler's own counters: there is no second copy of the ring state to keep in sync,
//! and a member that left the ring stops being reported at once.
//!
//! | metric | dskit source |
//! |---|---|
//! | `ring_members{name,state}` | ring client (`Ring.updateRingMetrics`) |
//! | `ring_zone_members{name,zone,state}` | ring client, zone-aware rings only |
//! | `ring_tokens_total{name}` | ring client |
//! | `ring_oldest_member_timestamp{name,state}` | ring client |
//! | `ring_member_ownership_percent{name,member}` | older dskit / Cortex (ratio 0-1) |
//! | `ring_tokens_owned{name,member}` | older dskit / Cortex |
//! | `ring_member_heartbeats_total{name}` | basic lifecycler |
//! | `ring_member_tokens_owned{name}` | basic lifecycler |
//! | `ring_member_tokens_to_own{name}` | basic lifecycler |
//! | `lifecycler_read_only{name}` | lifecycler (1 when this node's entry is read-only) |
//!
//! Each family is exposed under dskit's name and, when the node is given a prefix,
//! again under the prefixed name an application exports (Mimir: `cortex_ring_members`,
//! `cortex_lifecycler_read_only`, the names its mixin's alerts and dashboards read).

use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use ringkit_lifecycle::{Lifecycler, RingWatcher};
use ringkit_ring::{InstanceState, Operation, RingSnapshot};

/// The `state` label dskit uses for members whose heartbeat is too old (or whose state is
/// not one a ring user reports).
pub(crate) const UNHEALTHY: &str = "Unhealthy";

/// The state labels dskit always emits (zero when no member is in that state), so a
/// dashboard sees 0 rather than a missing series.
const STATES: [&str; 5] = [UNHEALTHY, "ACTIVE", "LEAVING", "PENDING", "JOINING"];

/// Scrape-time collector of the ring and (when this node is a member) lifecycler metrics.
#[derive(Debug)]
pub(crate) struct RingMetrics {
    /// Value of the `name` label (dskit: the ring's name, e.g. `ingester`).
    name: String,
    watcher: Arc<RingWatcher>,
    lifecycler: Option<Arc<Lifecycler>>,
    /// Name prefixes every family is exposed under (`""`: dskit's own names).
    prefixes: Vec<String>,
}

impl RingMetrics {
    pub(crate) fn new(
        name: impl Into<String>,
        watcher: Arc<RingWatcher>,
        lifecycler: Option<Arc<Lifecycler>>,
    ) -> RingMetrics {
        RingMetrics {
            name: name.into(),
            watcher,
            lifecycler,
            prefixes: vec![String::new()],
        }
    }

    /// Also exposes every family as `{prefix}<name>` (e.g. `cortex_`); an empty
    /// prefix adds nothing.
    pub(crate) fn with_prefix(mut self, prefix: &str) -> RingMetrics {
        if !prefix.is_empty() && !self.prefixes.iter().any(|p| p == prefix) {
            self.prefixes.push(prefix.to_owned());
        }
        self
    }
}

/// Per-state member counts and oldest heartbeats of a ring at `now`, as dskit counts them:
/// an instance that is not healthy for reporting counts as `Unhealthy`, not in its state.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StateSummary {
    /// Members per label in [`STATES`] order.
    pub(crate) members: [u64; 5],
    /// Oldest heartbeat (Unix seconds) per label in [`STATES`] order; 0 when none.
    pub(crate) oldest: [i64; 5],
    /// Per zone (zone name, members per label in [`STATES`] order).
    pub(crate) zones: Vec<(String, [u64; 5])>,
}

fn state_slot(healthy: bool, state: i32) -> usize {
    if !healthy {
        return 0;
    }
    match InstanceState::try_from(state) {
        Ok(InstanceState::Active) => 1,
        Ok(InstanceState::Leaving) => 2,
        Ok(InstanceState::Pending) => 3,
        Ok(InstanceState::Joining) => 4,
        // LEFT never reaches a snapshot; an unknown wire value is not a state a dashboard
        // can show, so it counts as unhealthy.
        _ => 0,
    }
}

/// Counts members per reporting state at `now`.
pub(crate) fn summarize(ring: &RingSnapshot, now: SystemTime) -> StateSummary {
    let mut s = StateSummary {
        zones: ring.zones().iter().map(|z| (z.clone(), [0; 5])).collect(),
        ..StateSummary::default()
    };
    for (i, d) in ring.instances().iter().enumerate() {
        let idx = i as u32;
        let slot = state_slot(ring.is_healthy(idx, Operation::REPORTING, now), d.state);
        s.members[slot] += 1;
        if s.oldest[slot] == 0 || d.timestamp < s.oldest[slot] {
            s.oldest[slot] = d.timestamp;
        }
        if let Some(z) = s.zones.get_mut(ring.zone_of(idx)) {
            z.1[slot] += 1;
        }
    }
    s
}

impl Collector for RingMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ring = self.watcher.snapshot();
        let now = SystemTime::now();
        let summary = summarize(&ring, now);
        for prefix in &self.prefixes {
            self.encode_prefixed(&mut encoder, prefix, &ring, &summary)?;
        }
        Ok(())
    }
}

impl RingMetrics {
    fn encode_prefixed(
        &self,
        encoder: &mut DescriptorEncoder,
        prefix: &str,
        ring: &RingSnapshot,
        summary: &StateSummary,
    ) -> Result<(), std::fmt::Error> {
        let name = self.name.as_str();
        let n = |family: &str| format!("{prefix}{family}");

        let family = n("ring_members");
        let mut m = encoder.encode_descriptor(
            &family,
            "Number of members in the ring",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in STATES.iter().zip(summary.members) {
            let labels = [("name", name), ("state", state)];
            ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
        }

        if ring.config().zone_awareness_enabled {
            let family = n("ring_zone_members");
            let mut m = encoder.encode_descriptor(
                &family,
                "Number of ring members for each zone/state pair",
                None,
                MetricType::Gauge,
            )?;
            for (zone, counts) in &summary.zones {
                for (state, n) in STATES.iter().zip(counts) {
                    let labels = [("name", name), ("zone", zone.as_str()), ("state", state)];
                    ConstGauge::new(*n as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        let family = n("ring_tokens_total");
        let mut m = encoder.encode_descriptor(
            &family,
            "Number of tokens in the ring",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(ring.tokens().len() as i64).encode(m.encode_family(&[("name", name)])?)?;

        let family = n("ring_oldest_member_timestamp");
        let mut m = encoder.encode_descriptor(
            &family,
            "Timestamp of the oldest member in the ring.",
            None,
            MetricType::Gauge,
        )?;
        for (state, ts) in STATES.iter().zip(summary.oldest) {
            let labels = [("name", name), ("state", state)];
            ConstGauge::new(ts).encode(m.encode_family(&labels)?)?;
        }

        let family = n("ring_member_ownership_percent");
        let mut m = encoder.encode_descriptor(
            &family,
            "The percent ownership of the ring by member (a ratio 0-1 of the member's zone ring)",
            None,
            MetricType::Gauge,
        )?;
        for (i, d) in ring.instances().iter().enumerate() {
            let labels = [("name", name), ("member", d.id.as_str())];
            ConstGauge::new(ring.ownership_in_zone(i as u32)).encode(m.encode_family(&labels)?)?;
        }
        let family = n("ring_tokens_owned");
        let mut m = encoder.encode_descriptor(
            &family,
            "The number of tokens in the ring owned by the member",
            None,
            MetricType::Gauge,
        )?;
        for d in ring.instances() {
            let labels = [("name", name), ("member", d.id.as_str())];
            ConstGauge::new(d.tokens.len() as i64).encode(m.encode_family(&labels)?)?;
        }

        if let Some(l) = &self.lifecycler {
            let labels = [("name", name)];
            // prometheus-client appends `_total` to counter names.
            let family = n("ring_member_heartbeats");
            let mut m = encoder.encode_descriptor(
                &family,
                "The total number of heartbeats sent.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(l.heartbeat_count()).encode(m.encode_family(&labels)?)?;
            let family = n("ring_member_tokens_owned");
            let mut m = encoder.encode_descriptor(
                &family,
                "The number of tokens owned in the ring.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(l.tokens().len() as i64).encode(m.encode_family(&labels)?)?;
            let family = n("ring_member_tokens_to_own");
            let mut m = encoder.encode_descriptor(
                &family,
                "The number of tokens to own in the ring.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(l.config().num_tokens as i64).encode(m.encode_family(&labels)?)?;
            // Read from this node's entry as the ring shows it (nothing in ringkit sets
            // read-only yet, but an entry written by a dskit tool may carry it).
            let read_only = ring.instance(&l.config().id).is_ok_and(|d| d.read_only);
            let family = n("lifecycler_read_only");
            let mut m = encoder.encode_descriptor(
                &family,
                "Set to 1 if this lifecycler's instance entry is in read-only state.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(read_only)).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn unix_now(now: SystemTime) -> i64 {
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
    use prometheus_client::registry::Registry;
    use ringkit_ring::snapshot::unix_seconds;
    use ringkit_ring::{Desc, RingConfig};

    fn desc() -> Desc {
        let mut d = Desc::new();
        d.add_instance(
            "a-1",
            "10.0.0.1:1",
            "a",
            vec![10, 2_000_000_000],
            InstanceState::Active,
            1,
            990,
        );
        d.add_instance(
            "b-1",
            "10.0.0.2:1",
            "b",
            vec![3_000_000_000],
            InstanceState::Active,
            1,
            1000,
        );
        d.add_instance(
            "b-2",
            "10.0.0.3:1",
            "b",
            vec![],
            InstanceState::Pending,
            1,
            1000,
        );
        // Stale heartbeat: counted as Unhealthy whatever its state.
        d.add_instance(
            "c-1",
            "10.0.0.4:1",
            "c",
            vec![100],
            InstanceState::Leaving,
            1,
            500,
        );
        d
    }

    #[test]
    fn summary_counts_stale_members_as_unhealthy_and_keeps_the_oldest_heartbeat() {
        let ring = RingSnapshot::new(desc(), RingConfig::default()).expect("valid ring config");
        let s = summarize(&ring, unix_seconds(1005));
        assert_eq!(s.members, [1, 2, 0, 1, 0]);
        assert_eq!(s.oldest, [500, 990, 0, 1000, 0]);
        assert_eq!(
            s.zones,
            vec![
                ("a".to_owned(), [0, 1, 0, 0, 0]),
                ("b".to_owned(), [0, 1, 0, 1, 0]),
                ("c".to_owned(), [1, 0, 0, 0, 0]),
            ]
        );
        assert_eq!(unix_now(unix_seconds(1005)), 1005);
    }

    #[test]
    fn exposition_uses_dskit_names_and_labels() {
        let cfg = RingConfig {
            zone_awareness_enabled: true,
            ..RingConfig::default()
        };
        let watcher = RingWatcher::new(cfg).expect("valid ring config");
        let now = unix_now(SystemTime::now());
        let mut d = desc();
        for inst in d.ingesters.values_mut() {
            if inst.id != "c-1" {
                inst.timestamp = now;
            }
        }
        watcher.publish(d);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(
            RingMetrics::new("ingester", watcher, None).with_prefix("cortex_"),
        ));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "ring_members{name=\"ingester\",state=\"ACTIVE\"} 2",
            "ring_members{name=\"ingester\",state=\"Unhealthy\"} 1",
            "ring_members{name=\"ingester\",state=\"JOINING\"} 0",
            "ring_zone_members{name=\"ingester\",zone=\"b\",state=\"PENDING\"} 1",
            "ring_tokens_total{name=\"ingester\"} 4",
            "ring_oldest_member_timestamp{name=\"ingester\",state=\"Unhealthy\"} 500",
            "ring_tokens_owned{name=\"ingester\",member=\"a-1\"} 2",
            "ring_member_ownership_percent{name=\"ingester\",member=\"b-1\"} 1.0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
            // The same sample under Mimir's prefixed name.
            let prefixed = format!("\ncortex_{line}");
            assert!(text.contains(&prefixed), "missing {prefixed:?} in\n{text}");
        }
        assert!(
            text.contains(&format!(
                "ring_oldest_member_timestamp{{name=\"ingester\",state=\"ACTIVE\"}} {now}"
            )),
            "{text}"
        );
        // No lifecycler: no member metrics.
        assert!(!text.contains("ring_member_heartbeats_total"), "{text}");
    }
}
