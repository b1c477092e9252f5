//! A set-like test value, its codec and its [`Mergeable`] impl: a value where a lost update
//! shows (an item is missing), whatever the store.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::SystemTime;

use crate::codec::Codec;
use crate::error::CodecError;
use crate::mergeable::{Mergeable, TombstoneCount};

/// A grow-only set of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestSet(pub BTreeSet<String>);

impl TestSet {
    /// A set of the given items.
    pub fn of<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        TestSet(items.into_iter().map(Into::into).collect())
    }

    /// Copy of `self` with `item` added.
    pub fn with(&self, item: &str) -> Self {
        let mut s = self.clone();
        s.0.insert(item.to_owned());
        s
    }
}

/// Codec of [`TestSet`], id `testSet`: a `set1` header line, then one item per line.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestSetCodec;

/// The codec id of [`TestSetCodec`].
pub const TEST_SET_CODEC_ID: &str = "testSet";
const HEADER: &str = "set1\n";

impl Codec<TestSet> for TestSetCodec {
    fn id(&self) -> &str {
        TEST_SET_CODEC_ID
    }
    fn encode(&self, value: &TestSet) -> Vec<u8> {
        let mut out = String::from(HEADER);
        for item in &value.0 {
            out.push_str(item);
            out.push('\n');
        }
        out.into_bytes()
    }
    fn decode(&self, bytes: &[u8]) -> Result<TestSet, CodecError> {
        let text =
            std::str::from_utf8(bytes).map_err(|e| CodecError::invalid(TEST_SET_CODEC_ID, e))?;
        let body = text
            .strip_prefix(HEADER)
            .ok_or_else(|| CodecError::invalid(TEST_SET_CODEC_ID, "missing set1 header"))?;
        Ok(TestSet(
            body.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

impl Mergeable for TestSet {
    fn merge(&mut self, other: Self, _local_cas: Option<SystemTime>) -> Option<Self> {
        // Grow-only: nothing is ever deleted, so a local CAS has no tombstones to make.
        let added: BTreeSet<String> = other.0.difference(&self.0).cloned().collect();
        if added.is_empty() {
            return None;
        }
        self.0.extend(added.iter().cloned());
        Some(TestSet(added))
    }
    fn merge_content(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
    fn remove_tombstones(&mut self, _limit: Option<SystemTime>) -> TombstoneCount {
        TombstoneCount::default()
    }
}

/// Checks the remote-merge laws of [`Mergeable`] on three values; panics with the law that
/// failed. For property tests of any `Mergeable` (the ring adapter reuses it).
pub fn check_merge_laws<M: Mergeable + PartialEq + Debug>(a: &M, b: &M, c: &M) {
    let merged = |x: &M, y: &M| {
        let mut x = x.clone();
        x.merge(y.clone(), None);
        x
    };
    // Idempotent.
    assert_eq!(merged(a, a), *a, "merge is not idempotent");
    let ab = merged(a, b);
    let mut again = ab.clone();
    assert!(
        again.merge(b.clone(), None).is_none(),
        "merging the same update twice reported a change"
    );
    // Commutative.
    assert_eq!(ab, merged(b, a), "merge is not commutative");
    // Associative.
    assert_eq!(
        merged(&ab, c),
        merged(a, &merged(b, c)),
        "merge is not associative"
    );
    // Honest change: applying the change to the old value gives the new one.
    let mut x = a.clone();
    match x.merge(b.clone(), None) {
        None => assert_eq!(x, *a, "merge changed the value but reported no change"),
        Some(change) => {
            assert_ne!(x, *a, "merge reported a change but the value is the same");
            assert_eq!(
                merged(a, &change),
                x,
                "the change does not explain the merge"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_set_round_trips_and_rejects_garbage() {
        let s = TestSet::of(["a", "b"]);
        assert_eq!(TestSetCodec.decode(&TestSetCodec.encode(&s)).unwrap(), s);
        assert!(TestSetCodec.decode(b"\xff\xfe").is_err());
        assert!(TestSetCodec.decode(b"not a set").is_err());
    }

    #[test]
    fn test_set_obeys_the_merge_laws() {
        let sets = [
            TestSet::default(),
            TestSet::of(["a"]),
            TestSet::of(["a", "b"]),
            TestSet::of(["c"]),
            TestSet::of(["b", "c", "d"]),
        ];
        for a in &sets {
            for b in &sets {
                for c in &sets {
                    check_merge_laws(a, b, c);
                }
            }
        }
    }
}
