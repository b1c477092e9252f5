//! The tokio driver: sockets, the task owning the SWIM core, and the glue to the
//! gossip KV.
//!
//! - `config`: [`MemberlistConfig`], dskit's `-memberlist.*` settings.
//! - `transport`: dskit's TCP transport and the plain UDP+TCP one.
//! - `resolve`: join addresses.
//! - `node`: [`Memberlist`], a running node.
//! - `metrics`: the node's `memberlist_client_*` gauges ([`Memberlist::register_metrics`]).
//! - `join`: fast join, full join with retries, periodic rejoin (dskit's).
//! - `queue_metrics`: dskit's broadcast queue metrics of a node.
//! - `zone_traffic`: ringkit's counters of packets and push/pulls by the peer's zone
//!   and role.

pub(crate) mod config;
pub(crate) mod join;
mod log_limit;
mod metrics;
pub(crate) mod node;
pub(crate) mod queue_metrics;
pub(crate) mod resolve;
pub(crate) mod transport;
mod zone_traffic;

pub use config::{MemberlistConfig, TransportKind};
pub use join::JoinStatus;
pub use node::{JoinError, Memberlist, StartError};
pub use queue_metrics::register_broadcast_queue_metrics;
pub use transport::{StreamError, TransportMetrics};
