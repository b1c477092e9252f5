//! memberlist's SWIM + Lifeguard membership protocol as a sans-IO state machine.
//!
//! Layout, one concept per file:
//!
//! - `core`: [`Core`], the state machine (inputs, commands, outputs).
//! - `config`: [`Config`] with memberlist's and dskit's presets.
//! - `member`: member states and the member table with its probe order.
//! - `probe`: the probe in flight and the indirect probes we relay.
//! - `suspicion`: Lifeguard's suspicion timer and its formulas.
//! - `awareness`: Lifeguard's local health score.
//! - `broadcast`: the retransmit-limited broadcast queue.
//! - `routing`: dskit's zone-aware routing of gossip and push/pull.
//! - `event` / `transmit`: what leaves the core.
//! - `error`: errors ([`Error`]).
//!
//! Behaviour follows `spec/memberlist.md` §1.10 (failure detection and
//! dissemination) and §2.11 (join, leave); the defaults follow §1.11 and §2.3.

pub(crate) mod awareness;
pub(crate) mod broadcast;
pub(crate) mod config;
pub(crate) mod core;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod member;
pub(crate) mod probe;
pub(crate) mod routing;
pub(crate) mod suspicion;
pub(crate) mod transmit;

pub use self::core::{Core, LocalNode};
pub use broadcast::{BroadcastQueueStats, Cover, Origin, QueueLimits, QueueStats, UserBroadcast};
pub use config::{Config, ConfigError};
pub use error::Error;
pub use event::Event;
pub use member::{IpBytes, Member, State};
pub use routing::{RoutingStats, Selection, ZoneAwareRouting};
pub use transmit::Transmit;
