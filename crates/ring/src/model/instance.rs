//! `InstanceDesc` written by hand instead of generated, so that its token list can be shared.
//!
//! A ring of 500 instances × 512 tokens holds 1 MB of tokens, and almost every update of it
//! changes only a heartbeat. With shared token storage a copy of the descriptor (the KV
//! store's value handed to a watcher, a snapshot's instances, a status page) copies no
//! token, and a reader that compares an instance with its previous version sees at once
//! that the tokens are the very same list: dskit does the same with Go slices (its
//! `Desc.Clone` shares them and `RingCompare` skips slices that share storage).
//!
//! The wire form is exactly what `protoc`/prost produce for `ring.proto`'s `InstanceDesc`
//! (fields in tag order, proto3 defaults left out, tokens packed); the golden vectors and
//! the prost-generated `Desc` around it check that.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

/// The tokens of one instance: a sorted, unique list (as writers store it) whose storage
/// copies of the descriptor share. Reads go through `Deref<Target = [u32]>`; writes through
/// [`Tokens::make_mut`], which copies the list first if another descriptor shares it.
#[derive(Clone, Default)]
pub struct Tokens(Option<Arc<Vec<u32>>>);

impl Tokens {
    /// No tokens (allocates nothing).
    pub const fn new() -> Tokens {
        Tokens(None)
    }

    /// The list for editing: shared storage is copied first, so other descriptors keep
    /// their tokens.
    pub fn make_mut(&mut self) -> &mut Vec<u32> {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }

    /// Whether both lists are the same storage (so certainly equal). Two empty lists
    /// count as shared.
    pub fn shares_storage(&self, other: &Tokens) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => {
                a.as_ref().is_none_or(|v| v.is_empty()) && b.as_ref().is_none_or(|v| v.is_empty())
            }
        }
    }

    /// Drops every token.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Sorts the tokens and drops repeats; a list that already is sorted and unique (the
    /// normal case) is left alone, so its storage stays shared. Returns whether it changed.
    pub fn normalize(&mut self) -> bool {
        if strictly_increasing(self) {
            return false;
        }
        let v = self.make_mut();
        v.sort_unstable();
        v.dedup();
        true
    }

    /// The tokens as an owned vector (no copy when nothing else shares them).
    pub fn into_vec(self) -> Vec<u32> {
        match self.0 {
            None => Vec::new(),
            Some(a) => Arc::unwrap_or_clone(a),
        }
    }

    /// The tokens as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[u32] {
        match &self.0 {
            None => &[],
            Some(v) => v.as_slice(),
        }
    }
}

/// Sorted without duplicates. Written without an early exit so that it vectorises: it runs
/// on every incoming instance, including the 128-token heartbeats of the hot path.
fn strictly_increasing(tokens: &[u32]) -> bool {
    let Some(rest) = tokens.get(1..) else {
        return true;
    };
    let mut out_of_order = false;
    for (a, b) in tokens.iter().zip(rest) {
        out_of_order |= a >= b;
    }
    !out_of_order
}

impl Deref for Tokens {
    type Target = [u32];

    #[inline]
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

impl AsRef<[u32]> for Tokens {
    fn as_ref(&self) -> &[u32] {
        self.as_slice()
    }
}

impl From<Vec<u32>> for Tokens {
    fn from(v: Vec<u32>) -> Tokens {
        if v.is_empty() {
            Tokens(None)
        } else {
            Tokens(Some(Arc::new(v)))
        }
    }
}

impl From<&[u32]> for Tokens {
    fn from(v: &[u32]) -> Tokens {
        Tokens::from(v.to_vec())
    }
}

impl<const N: usize> From<[u32; N]> for Tokens {
    fn from(v: [u32; N]) -> Tokens {
        Tokens::from(v.to_vec())
    }
}

impl FromIterator<u32> for Tokens {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Tokens {
        Tokens::from(iter.into_iter().collect::<Vec<u32>>())
    }
}

impl<'a> IntoIterator for &'a Tokens {
    type Item = &'a u32;
    type IntoIter = std::slice::Iter<'a, u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Tokens {
    fn eq(&self, other: &Tokens) -> bool {
        self.shares_storage(other) || self.as_slice() == other.as_slice()
    }
}

impl Eq for Tokens {}

impl PartialEq<[u32]> for Tokens {
    fn eq(&self, other: &[u32]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<u32>> for Tokens {
    fn eq(&self, other: &Vec<u32>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[u32; N]> for Tokens {
    fn eq(&self, other: &[u32; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Tokens> for Vec<u32> {
    fn eq(&self, other: &Tokens) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Tokens> for [u32] {
    fn eq(&self, other: &Tokens) -> bool {
        self == other.as_slice()
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl serde::Serialize for Tokens {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Tokens {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tokens, D::Error> {
        Vec::<u32>::deserialize(d).map(Tokens::from)
    }
}

fn tokens_empty(t: &Tokens) -> bool {
    t.is_empty()
}

/// What one instance publishes about itself (dskit's `InstanceDesc`, `ring.proto`).
/// Copies share the token list (see [`Tokens`]).
#[derive(Clone, PartialEq, Default, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct InstanceDesc {
    /// host:port clients dial.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Last heartbeat, Unix seconds. Also the CRDT version used by merge.
    #[serde(skip_serializing_if = "crate::codec::json::is_zero_i64")]
    pub timestamp: i64,
    /// An [`super::InstanceState`] as its wire number (unknown numbers are kept).
    #[serde(skip_serializing_if = "crate::codec::json::is_zero_i32")]
    pub state: i32,
    /// Sorted, unique within one instance.
    #[serde(skip_serializing_if = "tokens_empty")]
    pub tokens: Tokens,
    /// The availability zone; empty when there is none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// When the instance first registered, Unix seconds; 0 = unknown.
    #[serde(skip_serializing_if = "crate::codec::json::is_zero_i64")]
    pub registered_timestamp: i64,
    /// Same as the map key; readers back-fill it when a writer left it out.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Last change of read_only, Unix seconds.
    #[serde(skip_serializing_if = "crate::codec::json::is_zero_i64")]
    pub read_only_updated_timestamp: i64,
    /// Read-only instances take no new series and leave shuffle shards.
    #[serde(skip_serializing_if = "crate::codec::json::is_false")]
    pub read_only: bool,
    /// Application-defined component id -> version; shown on status pages only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<u64, u64>,
}

impl InstanceDesc {
    /// The state as its enum; an unknown wire value reads as the default (ACTIVE), as
    /// prost's generated getters do ([`InstanceDesc::known_state`] tells them apart).
    pub fn state(&self) -> super::InstanceState {
        super::InstanceState::try_from(self.state).unwrap_or_default()
    }

    /// Sets the state.
    pub fn set_state(&mut self, state: super::InstanceState) {
        self.state = state as i32;
    }
}

// Field numbers of `ring.proto`'s InstanceDesc (4 and 5 are reserved).
const ADDR: u32 = 1;
const TIMESTAMP: u32 = 2;
const STATE: u32 = 3;
const TOKENS: u32 = 6;
const ZONE: u32 = 7;
const REGISTERED_TIMESTAMP: u32 = 8;
const ID: u32 = 9;
const READ_ONLY_UPDATED_TIMESTAMP: u32 = 10;
const READ_ONLY: u32 = 11;
const VERSIONS: u32 = 12;

impl Message for InstanceDesc {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.addr.is_empty() {
            encoding::string::encode(ADDR, &self.addr, buf);
        }
        if self.timestamp != 0 {
            encoding::int64::encode(TIMESTAMP, &self.timestamp, buf);
        }
        if self.state != 0 {
            encoding::int32::encode(STATE, &self.state, buf);
        }
        encoding::uint32::encode_packed(TOKENS, &self.tokens, buf);
        if !self.zone.is_empty() {
            encoding::string::encode(ZONE, &self.zone, buf);
        }
        if self.registered_timestamp != 0 {
            encoding::int64::encode(REGISTERED_TIMESTAMP, &self.registered_timestamp, buf);
        }
        if !self.id.is_empty() {
            encoding::string::encode(ID, &self.id, buf);
        }
        if self.read_only_updated_timestamp != 0 {
            encoding::int64::encode(
                READ_ONLY_UPDATED_TIMESTAMP,
                &self.read_only_updated_timestamp,
                buf,
            );
        }
        if self.read_only {
            encoding::bool::encode(READ_ONLY, &self.read_only, buf);
        }
        encoding::btree_map::encode(
            encoding::uint64::encode,
            encoding::uint64::encoded_len,
            encoding::uint64::encode,
            encoding::uint64::encoded_len,
            VERSIONS,
            &self.versions,
            buf,
        );
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let field = |name: &'static str| {
            move |mut e: DecodeError| {
                e.push("InstanceDesc", name);
                e
            }
        };
        match tag {
            ADDR => {
                encoding::string::merge(wire_type, &mut self.addr, buf, ctx).map_err(field("addr"))
            }
            TIMESTAMP => encoding::int64::merge(wire_type, &mut self.timestamp, buf, ctx)
                .map_err(field("timestamp")),
            STATE => {
                encoding::int32::merge(wire_type, &mut self.state, buf, ctx).map_err(field("state"))
            }
            TOKENS => encoding::uint32::merge_repeated(wire_type, self.tokens.make_mut(), buf, ctx)
                .map_err(field("tokens")),
            ZONE => {
                encoding::string::merge(wire_type, &mut self.zone, buf, ctx).map_err(field("zone"))
            }
            REGISTERED_TIMESTAMP => {
                encoding::int64::merge(wire_type, &mut self.registered_timestamp, buf, ctx)
                    .map_err(field("registered_timestamp"))
            }
            ID => encoding::string::merge(wire_type, &mut self.id, buf, ctx).map_err(field("id")),
            READ_ONLY_UPDATED_TIMESTAMP => {
                encoding::int64::merge(wire_type, &mut self.read_only_updated_timestamp, buf, ctx)
                    .map_err(field("read_only_updated_timestamp"))
            }
            READ_ONLY => encoding::bool::merge(wire_type, &mut self.read_only, buf, ctx)
                .map_err(field("read_only")),
            VERSIONS => encoding::btree_map::merge(
                encoding::uint64::merge,
                encoding::uint64::merge,
                &mut self.versions,
                buf,
                ctx,
            )
            .map_err(field("versions")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut n = 0;
        if !self.addr.is_empty() {
            n += encoding::string::encoded_len(ADDR, &self.addr);
        }
        if self.timestamp != 0 {
            n += encoding::int64::encoded_len(TIMESTAMP, &self.timestamp);
        }
        if self.state != 0 {
            n += encoding::int32::encoded_len(STATE, &self.state);
        }
        n += encoding::uint32::encoded_len_packed(TOKENS, &self.tokens);
        if !self.zone.is_empty() {
            n += encoding::string::encoded_len(ZONE, &self.zone);
        }
        if self.registered_timestamp != 0 {
            n += encoding::int64::encoded_len(REGISTERED_TIMESTAMP, &self.registered_timestamp);
        }
        if !self.id.is_empty() {
            n += encoding::string::encoded_len(ID, &self.id);
        }
        if self.read_only_updated_timestamp != 0 {
            n += encoding::int64::encoded_len(
                READ_ONLY_UPDATED_TIMESTAMP,
                &self.read_only_updated_timestamp,
            );
        }
        if self.read_only {
            n += encoding::bool::encoded_len(READ_ONLY, &self.read_only);
        }
        n + encoding::btree_map::encoded_len(
            encoding::uint64::encoded_len,
            encoding::uint64::encoded_len,
            VERSIONS,
            &self.versions,
        )
    }

    fn clear(&mut self) {
        *self = InstanceDesc::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What prost generates for `ring.proto`'s InstanceDesc: the reference the hand-written
    /// codec must match byte for byte.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Generated {
        #[prost(string, tag = "1")]
        addr: String,
        #[prost(int64, tag = "2")]
        timestamp: i64,
        #[prost(int32, tag = "3")]
        state: i32,
        #[prost(uint32, repeated, tag = "6")]
        tokens: Vec<u32>,
        #[prost(string, tag = "7")]
        zone: String,
        #[prost(int64, tag = "8")]
        registered_timestamp: i64,
        #[prost(string, tag = "9")]
        id: String,
        #[prost(int64, tag = "10")]
        read_only_updated_timestamp: i64,
        #[prost(bool, tag = "11")]
        read_only: bool,
        #[prost(btree_map = "uint64, uint64", tag = "12")]
        versions: BTreeMap<u64, u64>,
    }

    fn ours(g: &Generated) -> InstanceDesc {
        InstanceDesc {
            addr: g.addr.clone(),
            timestamp: g.timestamp,
            state: g.state,
            tokens: g.tokens.clone().into(),
            zone: g.zone.clone(),
            registered_timestamp: g.registered_timestamp,
            id: g.id.clone(),
            read_only_updated_timestamp: g.read_only_updated_timestamp,
            read_only: g.read_only,
            versions: g.versions.clone(),
        }
    }

    fn generated() -> impl Strategy<Value = Generated> {
        (
            (
                ".{0,12}",
                any::<i64>(),
                -2..7i32,
                prop::collection::vec(any::<u32>(), 0..40),
            ),
            (
                ".{0,6}",
                any::<i64>(),
                ".{0,8}",
                any::<i64>(),
                any::<bool>(),
            ),
            prop::collection::btree_map(any::<u64>(), any::<u64>(), 0..4),
        )
            .prop_map(
                |((addr, timestamp, state, tokens), (zone, reg, id, ro_ts, ro), versions)| {
                    Generated {
                        addr,
                        timestamp,
                        state,
                        tokens,
                        zone,
                        registered_timestamp: reg,
                        id,
                        read_only_updated_timestamp: ro_ts,
                        read_only: ro,
                        versions,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn encodes_and_decodes_exactly_as_prost_generated_code(g in generated()) {
            let mine = ours(&g);
            let bytes = g.encode_to_vec();
            prop_assert_eq!(mine.encode_to_vec(), bytes.clone());
            prop_assert_eq!(mine.encoded_len(), g.encoded_len());
            prop_assert_eq!(InstanceDesc::decode(bytes.as_slice()).unwrap(), mine);
            let back = Generated::decode(ours(&g).encode_to_vec().as_slice()).unwrap();
            prop_assert_eq!(back, g);
        }

        #[test]
        fn decoding_garbage_fails_or_agrees_with_prost(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            match (Generated::decode(bytes.as_slice()), InstanceDesc::decode(bytes.as_slice())) {
                (Ok(g), Ok(mine)) => prop_assert_eq!(ours(&g), mine),
                (Err(_), Err(_)) => {}
                (g, mine) => prop_assert!(false, "prost {g:?}, ours {mine:?}"),
            }
        }
    }

    #[test]
    fn unpacked_tokens_and_repeated_fields_merge_as_prost_does() {
        // Tokens sent unpacked (one varint field each) and sent twice append; a repeated
        // scalar field keeps the last value.
        let mut bytes = Vec::new();
        for t in [5u32, 7] {
            encoding::uint32::encode(TOKENS, &t, &mut bytes);
        }
        encoding::uint32::encode_packed(TOKENS, &[9, 11], &mut bytes);
        encoding::int64::encode(TIMESTAMP, &3, &mut bytes);
        encoding::int64::encode(TIMESTAMP, &4, &mut bytes);
        let mine = InstanceDesc::decode(bytes.as_slice()).unwrap();
        let g = Generated::decode(bytes.as_slice()).unwrap();
        assert_eq!(mine.tokens, [5, 7, 9, 11]);
        assert_eq!(mine.timestamp, 4);
        assert_eq!(mine, ours(&g));
    }

    #[test]
    fn copies_share_tokens_until_one_is_edited() {
        let a = InstanceDesc {
            tokens: vec![1, 2, 3].into(),
            ..Default::default()
        };
        let mut b = a.clone();
        assert!(a.tokens.shares_storage(&b.tokens));
        b.tokens.make_mut().push(4);
        assert!(!a.tokens.shares_storage(&b.tokens));
        assert_eq!(a.tokens, [1, 2, 3]);
        assert_eq!(b.tokens, [1, 2, 3, 4]);
        // Equal content in separate storage is still equal.
        assert_eq!(Tokens::from(vec![1, 2, 3]), a.tokens);
        assert_ne!(Tokens::from(vec![1, 2]), a.tokens);
    }

    #[test]
    fn normalize_leaves_a_sorted_list_shared_and_sorts_others() {
        let sorted = Tokens::from(vec![1, 5, 9]);
        let mut copy = sorted.clone();
        assert!(!copy.normalize());
        assert!(copy.shares_storage(&sorted));
        let mut messy = Tokens::from(vec![9, 1, 5, 1]);
        assert!(messy.normalize());
        assert_eq!(messy, [1, 5, 9]);
        let mut empty = Tokens::new();
        assert!(!empty.normalize());
        assert!(empty.shares_storage(&Tokens::from(Vec::new())));
        empty.make_mut().push(3);
        assert_eq!(empty.into_vec(), vec![3]);
    }

    #[test]
    fn json_form_is_a_plain_list_and_left_out_when_empty() {
        let d = InstanceDesc {
            addr: "h:1".into(),
            tokens: vec![2, 1].into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, r#"{"addr":"h:1","tokens":[2,1]}"#);
        let back: InstanceDesc = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let none = serde_json::to_string(&InstanceDesc::default()).unwrap();
        assert_eq!(none, "{}");
    }
}
