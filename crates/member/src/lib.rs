#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod error;
pub mod hash;
pub mod member;
pub mod reader;
pub mod store;

pub use error::Error;
pub use hash::hash_key;
pub use member::{HeartbeatStatus, Member, MemberBuilder};
pub use reader::{ReaderBuilder, RingChanges, RingReader, RingView};
pub use store::Store;

/// The crates underneath, for what this one does not wrap.
pub use ringkit_kv as kv;
pub use ringkit_lifecycle as lifecycle;
pub use ringkit_memberlist as memberlist;
pub use ringkit_ring as ring;
pub use ringkit_ring::{
    GetBuffer, InstanceDesc, InstanceState, Operation, RingConfig, RingSnapshot,
};

/// The key of the ingester ring as dskit-based services store it: the default KV prefix
/// `collectors/` plus the ring key `ring`. Mimir's and Loki's ingester rings live here,
/// and `ringkit ring show` reads it by default.
pub const DEFAULT_RING_KEY: &str = "collectors/ring";

/// Every instance of `ring` with its share of the key space (0.0 to 1.0), in id order: the
/// ownership table of dskit's ring page, without index types to convert.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ringkit_member::Error> {
/// use ringkit_member::{Member, Store, ownership};
///
/// let member = Member::builder(Store::memory(), "a", "10.0.0.1:80").join().await?;
/// let ring = member.snapshot();
/// for (instance, share) in ownership(&ring) {
///     assert_eq!((instance.id.as_str(), share), ("a", 1.0));
/// }
/// # member.leave().await }
/// ```
pub fn ownership(ring: &RingSnapshot) -> impl Iterator<Item = (&InstanceDesc, f64)> + '_ {
    ring.instances()
        .iter()
        .enumerate()
        .map(|(idx, instance)| (instance, ring.ownership(idx as ringkit_ring::InstanceIdx)))
}
