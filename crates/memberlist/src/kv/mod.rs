//! dskit's memberlist KV (`spec/memberlist.md` §2.4–2.10): a key-value store whose
//! values are CRDTs merged from gossip, implementing [`ringkit_kv::Client`].
//!
//! - `ops`: type-erased decode/merge/encode per codec id.
//! - `state`: [`KvState`], the store and its merge rules, sans I/O.
//! - `client`: [`GossipKv`] (the shared store, the memberlist delegate) and
//!   `GossipClient`, the typed client.

pub(crate) mod client;
pub(crate) mod ops;
pub(crate) mod state;

pub use client::{
    Clock, DEFAULT_BROADCAST_CHANNEL_CAPACITY, GossipClient, GossipKv, KvStoreMetrics,
};
pub use ops::{AnyValue, MergeOps, ValueOps};
pub use state::{Applied, Broadcast, KeyInfo, KvConfig, KvState, Rejected, TombstoneStats};

impl GossipKv {
    /// The store's settings.
    pub fn config(&self) -> KvConfig {
        self.with_state(|s| s.config().clone())
    }
}
