//! [`Error`]: why joining, reading or leaving the ring failed.

use ringkit_lifecycle::LifecyclerError;
use ringkit_memberlist::runtime::StartError;
use ringkit_ring::ConfigError;

/// Why a ring operation of this crate failed. Nothing is left registered after a failed
/// join: the entry is removed and the gossip node stopped before the error is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened or read (bad etcd config, store down, value that
    /// does not decode as a ring).
    #[error("ring store: {0}")]
    Kv(#[from] ringkit_kv::Error),
    /// The gossip node could not start (port in use, invalid settings, or a failed fast
    /// join with `abort_if_fast_join_fails`).
    #[error("gossip: {0}")]
    Gossip(#[from] StartError),
    /// Registering, the load step, claiming tokens or leaving failed, or the member
    /// settings are invalid.
    #[error(transparent)]
    Lifecycle(#[from] LifecyclerError),
    /// The lookup settings are invalid (e.g. replication factor 0).
    #[error("ring config: {0}")]
    RingConfig(ConfigError),
    /// A background task panicked or was aborted (a bug; the message says which).
    #[error("background task failed: {0}")]
    Task(String),
}
