//! What a lookup can fail with: [`RingError`] and its messages (dskit wording).

/// Why a lookup could not produce a replication set (configuration problems are
/// [`ConfigError`](super::ConfigError)s, found when the snapshot is built). Lookups never
/// change the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// No instance owns a token (or no instance at all for whole-ring calls).
    #[error("empty ring")]
    EmptyRing,
    /// The instance is not in the ring.
    #[error("instance not found in the ring")]
    InstanceNotFound,
    /// Too many instances (or zones) are unhealthy for a whole-ring operation.
    #[error("too many unhealthy instances in the ring")]
    TooManyUnhealthyInstances,
    /// The replica set for a key has fewer healthy members than the quorum needs.
    #[error("{}", not_enough_replicas_message(*.min_success, *.found, .unhealthy, *.zone_aware))]
    NotEnoughLiveReplicas {
        /// Healthy replicas the quorum needs.
        min_success: usize,
        /// Healthy replicas found.
        found: usize,
        /// Addresses of the unhealthy replicas that were met.
        unhealthy: Vec<String>,
        /// Whether zone awareness was on (changes the message, as in dskit).
        zone_aware: bool,
    },
    /// The ignore-unhealthy strategy found no healthy replica at all.
    #[error("at least 1 healthy replica required, could only find 0{}", unhealthy_suffix(.unhealthy))]
    NoHealthyReplica {
        /// Addresses of the unhealthy replicas that were met.
        unhealthy: Vec<String>,
    },
    /// A per-call replication factor above the configured one with a strategy that
    /// cannot honour it.
    #[error(
        "per-call replication factor {requested} cannot exceed the configured replication factor {configured} with this replication strategy"
    )]
    ReplicationFactorTooLarge {
        /// Requested per-call factor.
        requested: usize,
        /// Configured factor.
        configured: usize,
    },
    /// The instance's state is a wire value this crate does not know (for example
    /// Cortex's `READONLY = 5`); [`RingSnapshot::instance_at`](super::RingSnapshot::instance_at) still shows the raw value.
    #[error("instance has an unknown state value {0}")]
    UnknownState(i32),
}

fn unhealthy_suffix(unhealthy: &[String]) -> String {
    if unhealthy.is_empty() {
        String::new()
    } else {
        format!(" - unhealthy instances: {}", unhealthy.join(","))
    }
}

fn not_enough_replicas_message(
    min_success: usize,
    found: usize,
    unhealthy: &[String],
    zone_aware: bool,
) -> String {
    let zones = if zone_aware {
        " across different availability zones"
    } else {
        ""
    };
    format!(
        "at least {min_success} live replicas required{zones}, could only find {found}{}",
        unhealthy_suffix(unhealthy)
    )
}
