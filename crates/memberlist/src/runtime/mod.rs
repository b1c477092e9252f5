//! The tokio driver: sockets, the task owning the SWIM core, and the glue to the
//! gossip KV.
//!
//! - [`config`]: [`MemberlistConfig`], dskit's `-memberlist.*` settings.
//! - [`transport`]: dskit's TCP transport and the plain UDP+TCP one.
//! - [`resolve`]: join addresses.
//! - [`node`]: [`Memberlist`], a running node.
//! - [`join`]: fast join, full join with retries, periodic rejoin (dskit's).

pub mod config;
pub mod join;
pub mod node;
pub mod resolve;
pub mod transport;

pub use config::{MemberlistConfig, TransportKind};
pub use join::JoinStatus;
pub use node::{JoinError, Memberlist, StartError};
pub use transport::{StreamError, TransportMetrics};
