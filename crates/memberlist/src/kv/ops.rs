//! Type-erased value operations: how the gossip store decodes, merges and encodes the
//! values of one codec id without knowing their Rust type.
//!
//! A gossip store holds values of several types at once (every ring of a cluster shares
//! one memberlist), and values arrive from peers tagged only with a codec id. Each typed
//! client registers a [`ValueOps`] for its codec; the store keeps decoded values as
//! [`AnyValue`] and goes through the ops of the entry's codec id for every operation.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use ringkit_kv::{Codec, CodecError, EncodedMerge, MergeScratch, Mergeable, TombstoneCount};

/// A decoded value of some registered type.
pub type AnyValue = Box<dyn Any + Send + Sync>;

/// What the gossip store can do with the values of one codec id.
///
/// Every method receives values produced by this same object's [`ValueOps::decode`]
/// (or by a typed client of the same [`ValueOps::type_id`]); a value of another type is
/// a bug in the store and is treated as "no change" rather than a panic.
pub trait ValueOps: Send + Sync + 'static {
    /// The codec id (`ringDesc` for rings).
    fn id(&self) -> &str;
    /// The Rust type of the values, so two clients cannot register different types
    /// under one id.
    fn type_id(&self) -> TypeId;
    /// Bytes from a peer (or from the store) to a value.
    fn decode(&self, bytes: &[u8]) -> Result<AnyValue, CodecError>;
    /// A value to bytes; empty for a value of the wrong type.
    fn encode(&self, value: &AnyValue) -> Vec<u8>;
    /// A copy of a value.
    fn clone_value(&self, value: &AnyValue) -> Option<AnyValue>;
    /// Merges `incoming` into `current` ([`Mergeable::merge_verbatim`]); returns the
    /// change and whether it is exactly `incoming` as given.
    fn merge(
        &self,
        current: &mut AnyValue,
        incoming: AnyValue,
        local_cas: Option<SystemTime>,
    ) -> (Option<AnyValue>, bool);
    /// [`Codec::merge_encoded`]: merge `bytes` into `current` without a full decode,
    /// when the codec knows how; `None` leaves `current` untouched.
    fn merge_encoded(
        &self,
        current: &mut AnyValue,
        bytes: &[u8],
        scratch: &mut MergeScratch,
    ) -> Option<EncodedMerge>;
    /// Names of the items of a value ([`Mergeable::merge_content`]).
    fn merge_content(&self, value: &AnyValue) -> Vec<String>;
    /// Drops tombstones older than `limit` (all with `None`).
    fn remove_tombstones(&self, value: &mut AnyValue, limit: Option<SystemTime>) -> TombstoneCount;
}

/// [`ValueOps`] of a [`Mergeable`] type through its [`Codec`].
pub struct MergeOps<V> {
    codec: Arc<dyn Codec<V>>,
    _v: PhantomData<fn() -> V>,
}

impl<V> MergeOps<V> {
    /// Ops for values of `codec`.
    pub fn new(codec: Arc<dyn Codec<V>>) -> Self {
        MergeOps {
            codec,
            _v: PhantomData,
        }
    }
}

impl<V: Mergeable> ValueOps for MergeOps<V> {
    fn id(&self) -> &str {
        self.codec.id()
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<V>()
    }
    fn decode(&self, bytes: &[u8]) -> Result<AnyValue, CodecError> {
        self.codec.decode(bytes).map(|v| Box::new(v) as AnyValue)
    }
    fn encode(&self, value: &AnyValue) -> Vec<u8> {
        value
            .downcast_ref::<V>()
            .map(|v| self.codec.encode(v))
            .unwrap_or_default()
    }
    fn clone_value(&self, value: &AnyValue) -> Option<AnyValue> {
        value
            .downcast_ref::<V>()
            .map(|v| Box::new(v.clone()) as AnyValue)
    }
    fn merge(
        &self,
        current: &mut AnyValue,
        incoming: AnyValue,
        local_cas: Option<SystemTime>,
    ) -> (Option<AnyValue>, bool) {
        let (Some(cur), Ok(inc)) = (current.downcast_mut::<V>(), incoming.downcast::<V>()) else {
            return (None, false);
        };
        let (change, verbatim) = cur.merge_verbatim(*inc, local_cas);
        (change.map(|c| Box::new(c) as AnyValue), verbatim)
    }
    fn merge_encoded(
        &self,
        current: &mut AnyValue,
        bytes: &[u8],
        scratch: &mut MergeScratch,
    ) -> Option<EncodedMerge> {
        self.codec
            .merge_encoded(current.downcast_mut::<V>()?, bytes, scratch)
    }
    fn merge_content(&self, value: &AnyValue) -> Vec<String> {
        value
            .downcast_ref::<V>()
            .map(Mergeable::merge_content)
            .unwrap_or_default()
    }
    fn remove_tombstones(&self, value: &mut AnyValue, limit: Option<SystemTime>) -> TombstoneCount {
        value
            .downcast_mut::<V>()
            .map(|v| v.remove_tombstones(limit))
            .unwrap_or_default()
    }
}
