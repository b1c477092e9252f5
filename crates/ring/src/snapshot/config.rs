//! Ring configuration: [`RingConfig`], its validation and [`ConfigError`], and the
//! [`ReplicationStrategy`] lookups follow.

use super::*;

/// How lookups behave: replication factor, zone awareness, health timeout.
///
/// `Default` gives dskit's defaults (spec/ring.md §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// `-distributor.replication-factor` / `replication_factor`, default 3. With zone
    /// awareness it is also the expected number of zones.
    pub replication_factor: usize,
    /// `-distributor.zone-awareness-enabled` / `zone_awareness_enabled`, default false:
    /// place each replica in a different zone.
    pub zone_awareness_enabled: bool,
    /// `-ring.heartbeat-timeout` / `heartbeat_timeout`, default 1m: an instance whose last
    /// heartbeat is older than this is unhealthy. Must be > 0.
    pub heartbeat_timeout: Duration,
    /// `-distributor.excluded-zones` / `excluded_zones`: instances in these zones are
    /// dropped from every descriptor the snapshot is built from.
    pub excluded_zones: Vec<String>,
    /// How unhealthy replicas are treated (dskit's `ReplicationStrategy`).
    pub strategy: ReplicationStrategy,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            replication_factor: 3,
            zone_awareness_enabled: false,
            heartbeat_timeout: Duration::from_secs(60),
            excluded_zones: Vec::new(),
            strategy: ReplicationStrategy::Default,
        }
    }
}

impl RingConfig {
    /// Checks the constraints dskit enforces at start-up: a replication factor and a
    /// heartbeat timeout above zero. dskit accepts fewer zones than the replication
    /// factor (and zones are only known at run time), so zone awareness adds no rule.
    /// [`RingSnapshot::new`] calls this, so a bad configuration fails when the first
    /// snapshot is built instead of dividing by zero on a lookup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replication_factor == 0 {
            return Err(ConfigError::ZeroReplicationFactor);
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::ZeroHeartbeatTimeout);
        }
        Ok(())
    }
}

/// Why a [`RingConfig`] cannot be used. Kept apart from [`RingError`] (what a lookup
/// can meet) because it is found once, at start-up, and means the operator must change a
/// setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `replication_factor` is 0 (dskit: "ReplicationFactor must be greater than zero").
    #[error("invalid ring config: replication factor must be greater than 0")]
    ZeroReplicationFactor,
    /// `heartbeat_timeout` is 0 (dskit: "heartbeat timeout must be greater than 0").
    #[error("invalid ring config: heartbeat timeout must be greater than 0")]
    ZeroHeartbeatTimeout,
}

/// What a lookup does with unhealthy replicas (spec/ring.md §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicationStrategy {
    /// Quorum of `max(RF, set size) / 2 + 1` healthy replicas is required; unhealthy ones
    /// still count toward the set size.
    #[default]
    Default,
    /// Any healthy replica will do: at least one is required.
    IgnoreUnhealthy,
}

impl ReplicationStrategy {
    /// Whether a per-call replication factor above the configured one is allowed.
    pub fn supports_expanded_replication(self) -> bool {
        matches!(self, ReplicationStrategy::IgnoreUnhealthy)
    }
}
