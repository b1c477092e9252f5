//! [`Mergeable`]: the CRDT contract a value must meet to live in the gossip store.
//!
//! Only the gossip (memberlist) store needs it; the other stores order writes themselves.
//! The ring's descriptor implements it through an adapter one layer up (the ring crate
//! knows nothing of this trait). The contract is `spec/memberlist.md` §2.7, in our words.

use std::time::SystemTime;

/// A value that can absorb another copy of itself, so replicas that receive the same
/// updates in any order, any number of times, end up equal.
///
/// # Laws
///
/// For a remote merge (`local_cas == None`), writing `a ⊔ b` for "`a` after
/// `a.merge(b, None)`":
///
/// 1. **Idempotent**: `a ⊔ a == a`, and merging an update twice changes nothing the second
///    time (the second call returns `None`).
/// 2. **Commutative**: `a ⊔ b == b ⊔ a`.
/// 3. **Associative**: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`.
/// 4. **Honest change**: the returned change is `None` exactly when `self` did not change,
///    and otherwise holds at least the entries of `self` that changed; merging that change
///    into the old `self` gives the new `self`.
///
/// During a local CAS (`local_cas == Some(now)`) the incoming value is the full new state
/// this node wants, so entries of `self` missing from it are deletions: the implementation
/// turns them into tombstones stamped `now` instead of keeping them. That breaks
/// commutativity, which is why it happens only for local writes, never for gossip.
///
/// Tombstones must win over the entries they delete (so deletions spread) and must be
/// removable once every replica has surely seen them: [`Mergeable::remove_tombstones`].
/// Stores call `remove_tombstones(None)` on every value they hand to readers, so readers
/// never see tombstones.
///
/// Time is an argument, never read from a clock, so merges are reproducible in tests.
pub trait Mergeable: Clone + Send + Sync + 'static {
    /// Merges `other` into `self`; returns what changed in `self` (`None`: nothing).
    /// `local_cas` is `Some(now)` during a local CAS (see the trait doc).
    fn merge(&mut self, other: Self, local_cas: Option<SystemTime>) -> Option<Self>;

    /// [`Mergeable::merge`], also saying whether the change is exactly `other` as it was
    /// given. A gossip store holding `other`'s encoded bytes may then forward those bytes
    /// instead of encoding the change again (the receive hot path). The default never
    /// claims so.
    fn merge_verbatim(
        &mut self,
        other: Self,
        local_cas: Option<SystemTime>,
    ) -> (Option<Self>, bool) {
        (self.merge(other, local_cas), false)
    }

    /// Names of the entries this value holds (for the ring: instance ids). Used to tell an
    /// empty change and to let a newer broadcast replace an older one it covers.
    fn merge_content(&self) -> Vec<String>;

    /// Drops tombstones older than `limit` (`None`: all of them).
    fn remove_tombstones(&mut self, limit: Option<SystemTime>) -> TombstoneCount;
}

/// What [`Mergeable::remove_tombstones`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TombstoneCount {
    /// Tombstones present before the call.
    pub total: usize,
    /// Tombstones removed by the call.
    pub removed: usize,
}
