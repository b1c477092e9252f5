//! Label sets packed into one allocation: how the head keeps a series' labels.
//!
//! A `Vec<Label>` costs 24 bytes plus, per label, 48 bytes of two `String` headers and two heap
//! allocations; with ~8 labels that alone is ~0.6 KB per series, more than the memory goal for a
//! whole series (≤ 1 KB with 2 h of samples). A packed set is one boxed byte string:
//!
//! ```text
//! packed = (name_len:uvarint name value_len:uvarint value)*   in (name, value) order
//! ```
//!
//! The same bytes are the label part of a WAL series record, so logging a series copies them
//! as they are. Packing only ever starts from `&str`, so the bytes are valid UTF-8 pieces.

use std::fmt;

use crate::prompb::Label;

/// A sorted label set in one allocation (see the module doc).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackedLabels(Box<[u8]>);

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads an unsigned varint from the front of `b`; `None` when cut short or longer than 10
/// bytes.
pub(crate) fn get_uvarint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A label as a name and a value, owned ([`Label`]) or borrowed from a request body
/// ([`crate::view::LabelRef`]), so validation, hashing and the store take either.
pub trait LabelPair {
    /// The label name.
    fn name(&self) -> &str;
    /// The label value.
    fn value(&self) -> &str;
}

impl LabelPair for Label {
    fn name(&self) -> &str {
        &self.name
    }
    fn value(&self) -> &str {
        &self.value
    }
}

impl LabelPair for crate::view::LabelRef<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn value(&self) -> &str {
        self.value
    }
}

/// Packs `labels` (already sorted) into `buf`, which is cleared first.
pub fn pack_into<L: LabelPair>(labels: &[L], buf: &mut Vec<u8>) {
    buf.clear();
    for l in labels {
        let (name, value) = (l.name(), l.value());
        put_uvarint(buf, name.len() as u64);
        buf.extend_from_slice(name.as_bytes());
        put_uvarint(buf, value.len() as u64);
        buf.extend_from_slice(value.as_bytes());
    }
}

/// Iterates the `(name, value)` pairs of packed bytes; stops at the first malformed pair.
#[derive(Clone)]
pub struct PackedIter<'a>(&'a [u8]);

impl<'a> PackedIter<'a> {
    fn string(&mut self) -> Option<&'a str> {
        let n = usize::try_from(get_uvarint(&mut self.0)?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(s).ok()
    }
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        match (self.string(), self.string()) {
            (Some(n), Some(v)) => Some((n, v)),
            _ => {
                self.0 = &[];
                None
            }
        }
    }
}

/// Checks that `bytes` is a well-formed packed label set: complete pairs of UTF-8 strings.
/// Used on bytes read from disk before they become a [`PackedLabels`].
pub fn check_packed(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut it = PackedIter(rest);
        if it.string().is_none() || it.string().is_none() {
            return false;
        }
        rest = it.0;
    }
    true
}

impl PackedLabels {
    /// Packs sorted `labels`.
    pub fn new<L: LabelPair>(labels: &[L]) -> Self {
        let mut buf = Vec::new();
        pack_into(labels, &mut buf);
        PackedLabels(buf.into_boxed_slice())
    }

    /// Wraps bytes that [`check_packed`] accepted (or that [`pack_into`] wrote); `None` if
    /// malformed.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        check_packed(bytes).then(|| PackedLabels(bytes.into()))
    }

    /// The packed bytes (the WAL's series-record label encoding).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `(name, value)` pairs, in order.
    pub fn iter(&self) -> PackedIter<'_> {
        PackedIter(&self.0)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The labels as owned [`Label`]s (for query answers).
    pub fn to_labels(&self) -> Vec<Label> {
        self.iter().map(|(n, v)| Label::new(n, v)).collect()
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_size(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for PackedLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Compares label sets as Prometheus orders series: label by label, name then value.
pub fn cmp_label_sets(a: &PackedLabels, b: &PackedLabels) -> std::cmp::Ordering {
    a.iter().cmp(b.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_looks_labels_up_by_name() {
        let labels = vec![
            Label::new("__name__", "up"),
            Label::new("instance", "ünï:9090"),
            Label::new("job", ""),
        ];
        let p = PackedLabels::new(&labels);
        assert_eq!(p.to_labels(), labels);
        assert_eq!(p.get("instance"), Some("ünï:9090"));
        assert_eq!(p.get("job"), Some(""));
        assert_eq!(p.get("nope"), None);
        assert_eq!(PackedLabels::from_bytes(p.as_bytes()), Some(p));
    }

    #[test]
    fn malformed_bytes_are_refused() {
        assert!(PackedLabels::from_bytes(&[3, b'a']).is_none());
        assert!(
            PackedLabels::from_bytes(&[1, b'a']).is_none(),
            "a name without value"
        );
        assert!(
            PackedLabels::from_bytes(&[1, 0xff, 0]).is_none(),
            "not UTF-8"
        );
        assert!(PackedLabels::from_bytes(&[]).is_some(), "the empty set");
    }

    #[test]
    fn label_sets_order_like_prometheus() {
        let a = PackedLabels::new(&[Label::new("a", "1"), Label::new("b", "2")]);
        let b = PackedLabels::new(&[Label::new("a", "1"), Label::new("c", "0")]);
        let c = PackedLabels::new(&[Label::new("a", "1")]);
        assert!(cmp_label_sets(&a, &b).is_lt());
        assert!(cmp_label_sets(&c, &a).is_lt());
    }
}
