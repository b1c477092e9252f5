//! The gossip hot path: a received `ringDesc` value that is one instance's heartbeat
//! (newer timestamp, same tokens) merged straight from its bytes.
//!
//! Most gossip a ring member receives is exactly that: every instance re-announces itself
//! every heartbeat period, and each announcement reaches every member several times. The
//! general path decodes the whole value (a `Desc` with one `InstanceDesc` and its
//! hundreds of tokens) and merges it. Here the protobuf is read in place: the packed
//! tokens are compared varint by varint with the stored instance's tokens, never decoded
//! into a vector, and when they match only the scalar fields are copied.
//!
//! Anything else (several instances, an unknown instance, different tokens, a LEFT state,
//! an equal timestamp, versions, unknown or unpacked fields, malformed bytes) answers
//! `None`, and the caller takes the general path, whose result is the reference: the
//! property test in this module checks that both agree.
//!
//! Comparing a few hundred varints costs more than everything else on this path, and an
//! instance announces the same tokens thousands of times, so a [`HeartbeatCache`]
//! remembers, per instance, the packed bytes its tokens last arrived in (with the tokens
//! they decoded to): a repeat is two `memcmp`s.

use std::collections::HashMap;

use crate::model::{Desc, InstanceDesc, InstanceState, Tokens};

/// Reusable state of [`merge_heartbeat_cached`]: the decompression buffer and, per
/// instance id, the packed token bytes last seen with the tokens they stand for.
///
/// It is only ever a hint: an entry counts when both its bytes equal the incoming ones
/// and its tokens equal the stored instance's, so a stale or foreign cache can cost a
/// varint comparison but never change a result. Keep one per stored value.
#[derive(Debug, Default, Clone)]
pub struct HeartbeatCache {
    buf: Vec<u8>,
    // Keyed by the id's bytes as they arrive, so a known id needs no UTF-8 check.
    // Instance ids come from peers: a seeded hash, but a fast one.
    known: HashMap<Box<[u8]>, KnownTokens, foldhash::fast::RandomState>,
    /// The id of the instance the last applied heartbeat was about (reused buffer).
    applied: String,
}

impl HeartbeatCache {
    /// The instance id of the heartbeat the last [`merge_heartbeat_cached`] applied
    /// (empty before any): the change's only item, which a gossip store needs to let
    /// it replace older queued news about the same instance.
    pub fn last_applied_id(&self) -> &str {
        &self.applied
    }
}

/// Records `id` as the last applied heartbeat's instance.
fn note_applied(applied: &mut String, id: &str) {
    applied.clear();
    applied.push_str(id);
}

#[derive(Debug, Clone)]
struct KnownTokens {
    /// The id as text (equal to the map key's bytes).
    id: String,
    packed: Vec<u8>,
    /// Shares the stored instance's token list, so the comparison with it is a pointer
    /// comparison while nothing replaced them.
    tokens: Tokens,
    /// The last message applied for this instance, split around its timestamp field
    /// (the bytes before its key, the bytes after its value), with the instance's
    /// stored fields right after it was applied (tokens left out: they are `tokens`).
    /// A message equal to it but for the timestamp changes only the timestamp.
    last: Option<LastApplied>,
}

#[derive(Debug, Clone)]
struct LastApplied {
    head: Vec<u8>,
    tail: Vec<u8>,
    fields: InstanceDesc,
}

impl KnownTokens {
    /// The timestamp of `msg` if it is the last applied message with another timestamp.
    fn same_but_timestamp(&self, msg: &[u8]) -> Option<i64> {
        let last = self.last.as_ref()?;
        let mut r = Reader(msg.strip_prefix(last.head.as_slice())?);
        if r.key()? != (2, 0) {
            return None;
        }
        let ts = r.varint()? as i64;
        (r.0 == last.tail.as_slice()).then_some(ts)
    }

    /// Whether `ours` still holds what the last applied message left there.
    fn still_applied(&self, ours: &InstanceDesc) -> bool {
        let Some(last) = &self.last else {
            return false;
        };
        let f = &last.fields;
        ours.state == f.state
            && ours.registered_timestamp == f.registered_timestamp
            && ours.read_only_updated_timestamp == f.read_only_updated_timestamp
            && ours.read_only == f.read_only
            && ours.versions.is_empty()
            && ours.addr == f.addr
            && ours.zone == f.zone
            && ours.id == f.id
            && ours.tokens == self.tokens
    }

    /// Records `msg`, just applied, and the fields it left in `ours`.
    fn record(&mut self, msg: &[u8], ours: &InstanceDesc) {
        self.last = split_at_timestamp(msg).map(|(head, tail)| LastApplied {
            head: head.to_vec(),
            tail: tail.to_vec(),
            fields: InstanceDesc {
                addr: ours.addr.clone(),
                state: ours.state,
                zone: ours.zone.clone(),
                registered_timestamp: ours.registered_timestamp,
                id: ours.id.clone(),
                read_only_updated_timestamp: ours.read_only_updated_timestamp,
                read_only: ours.read_only,
                ..InstanceDesc::default()
            },
        });
    }
}

/// `msg` around its timestamp field, when that field follows at most the address field
/// (the order protobuf encoders write them in) and is the only timestamp field (a later
/// one would be the one that counts).
fn split_at_timestamp(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = Reader(msg);
    if let Some(&0x0a) = msg.first() {
        r.key()?;
        r.bytes()?;
    }
    let at = msg.len() - r.0.len();
    if r.key()? != (2, 0) {
        return None;
    }
    r.varint()?;
    let tail = r.0;
    while !r.0.is_empty() {
        match r.key()? {
            (2, _) => return None,
            (_, 0) => {
                r.varint()?;
            }
            (_, 2) => {
                r.bytes()?;
            }
            _ => return None,
        }
    }
    Some((&msg[..at], tail))
}

impl HeartbeatCache {
    /// Remembers that `packed` decodes to `tokens` for instance `id`; the entry, for
    /// recording the message just applied.
    fn remember(
        &mut self,
        id: &str,
        packed: &[u8],
        tokens: &Tokens,
        instances: usize,
    ) -> &mut KnownTokens {
        // Instances come and go; forget them all rather than grow without bound.
        if self.known.len() > 2 * instances + 16 {
            self.known.clear();
        }
        let k = self
            .known
            .entry(id.as_bytes().into())
            .or_insert_with(|| KnownTokens {
                id: id.to_owned(),
                packed: Vec::new(),
                tokens: Tokens::new(),
                last: None,
            });
        k.packed.clear();
        k.packed.extend_from_slice(packed);
        k.tokens = tokens.clone();
        k
    }
}

/// What [`merge_heartbeat`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatMerge {
    /// The value was old news: nothing changed.
    Unchanged,
    /// The heartbeat was applied and the change is exactly the received value, so it can
    /// be gossiped on with the bytes it arrived in.
    AppliedVerbatim,
}

/// Largest decompressed value the heartbeat shortcut looks at.
const HEARTBEAT_MAX_LEN: usize = 64 * 1024;
const HEARTBEAT_LIMITS: ringkit_decompress::Limits =
    ringkit_decompress::Limits::snappy(HEARTBEAT_MAX_LEN);

/// Merges a snappy-compressed `ringDesc` value into `local` if it is a one-instance
/// heartbeat the fast path handles; `None` (and `local` untouched) otherwise.
///
/// `local` must be normalised, as [`crate::merge::merge`] requires.
pub fn merge_heartbeat(local: &mut Desc, snappy: &[u8]) -> Option<HeartbeatMerge> {
    merge_heartbeat_cached(local, snappy, &mut HeartbeatCache::default())
}

/// [`merge_heartbeat`] with a cache kept between calls (the gossip store keeps one per
/// ring): repeated heartbeats skip the token comparison and the buffer allocation.
pub fn merge_heartbeat_cached(
    local: &mut Desc,
    snappy: &[u8],
    cache: &mut HeartbeatCache,
) -> Option<HeartbeatMerge> {
    // A heartbeat of a few hundred tokens is a few KiB; larger values are full states
    // (the slow path decodes those, under the codec's own limits).
    let len = snap::raw::decompress_len(snappy).ok()?;
    if len > HEARTBEAT_MAX_LEN {
        return None;
    }
    let mut buf = std::mem::take(&mut cache.buf);
    let merged = ringkit_decompress::snappy_into(snappy, &HEARTBEAT_LIMITS, &mut buf)
        .ok()
        .and_then(|n| merge_proto(local, &buf[..n], cache));
    cache.buf = buf;
    merged
}

/// [`merge_heartbeat`] on the uncompressed protobuf.
pub fn merge_heartbeat_proto(local: &mut Desc, proto: &[u8]) -> Option<HeartbeatMerge> {
    merge_proto(local, proto, &mut HeartbeatCache::default())
}

#[cfg(test)]
fn merge_heartbeat_proto_cached(
    local: &mut Desc,
    proto: &[u8],
    cache: &mut HeartbeatCache,
) -> Option<HeartbeatMerge> {
    merge_proto(local, proto, cache)
}

fn merge_proto(
    local: &mut Desc,
    proto: &[u8],
    cache: &mut HeartbeatCache,
) -> Option<HeartbeatMerge> {
    // Desc: exactly one field 1 (map entry), length-delimited.
    let mut r = Reader(proto);
    let (field, wire) = r.key()?;
    if field != 1 || wire != 2 {
        return None;
    }
    let entry = r.bytes()?;
    if !r.0.is_empty() {
        return None; // more instances, or other fields
    }
    // Map entry: key = 1 (string), value = 2 (InstanceDesc).
    let mut e = Reader(entry);
    let mut key: &[u8] = &[];
    let mut value: Option<&[u8]> = None;
    while !e.0.is_empty() {
        match e.key()? {
            (1, 2) => key = e.bytes()?,
            (2, 2) => value = Some(e.bytes()?),
            _ => return None,
        }
    }
    let value = value.unwrap_or_default();
    // The usual heartbeat: the instance's last message again with a newer timestamp,
    // while the stored instance still holds what that message left.
    if let Some(k) = cache.known.get(key)
        && let Some(ts) = k.same_but_timestamp(value)
    {
        let ours = local.ingesters.get_mut(k.id.as_str())?;
        if ts < ours.timestamp {
            return Some(HeartbeatMerge::Unchanged);
        }
        if ts > ours.timestamp && k.still_applied(ours) {
            ours.timestamp = ts;
            note_applied(&mut cache.applied, &k.id);
            return Some(HeartbeatMerge::AppliedVerbatim);
        }
    }
    let fields = Fields::parse(value)?;
    let instances = local.ingesters.len();
    // A known instance: its id is text already, and equal bytes mean equal tokens.
    if let Some(k) = cache.known.get_mut(key) {
        let ours = local.ingesters.get_mut(k.id.as_str())?;
        if let Some(early) = fields.verdict(ours) {
            return early;
        }
        if k.packed == fields.tokens && k.tokens == ours.tokens {
            let texts = fields.texts(&k.id, ours)?;
            fields.apply(texts, ours);
            k.record(value, ours);
            note_applied(&mut cache.applied, &k.id);
            return Some(HeartbeatMerge::AppliedVerbatim);
        }
    }
    let id = std::str::from_utf8(key).ok()?;
    let ours = local.ingesters.get_mut(id)?;
    if let Some(early) = fields.verdict(ours) {
        return early;
    }
    if !same_tokens(fields.tokens, &ours.tokens) {
        return None;
    }
    let texts = fields.texts(id, ours)?;
    fields.apply(texts, ours);
    cache
        .remember(id, fields.tokens, &ours.tokens, instances)
        .record(value, ours);
    note_applied(&mut cache.applied, id);
    Some(HeartbeatMerge::AppliedVerbatim)
}

/// The scalar fields of an `InstanceDesc`, borrowed from the message. Text fields stay
/// bytes until they differ from what is stored: equal to a stored `String` they are
/// valid UTF-8 already, and checking costs more than the rest of the parse.
struct Fields<'a> {
    addr: &'a [u8],
    timestamp: i64,
    state: i32,
    tokens: &'a [u8],
    zone: &'a [u8],
    registered_timestamp: i64,
    id: &'a [u8],
    read_only_updated_timestamp: i64,
    read_only: bool,
}

impl<'a> Fields<'a> {
    fn parse(msg: &'a [u8]) -> Option<Self> {
        let mut f = Fields {
            addr: &[],
            timestamp: 0,
            state: 0,
            tokens: &[],
            zone: &[],
            registered_timestamp: 0,
            id: &[],
            read_only_updated_timestamp: 0,
            read_only: false,
        };
        let mut r = Reader(msg);
        while !r.0.is_empty() {
            match r.key()? {
                (1, 2) => f.addr = r.bytes()?,
                (2, 0) => f.timestamp = r.varint()? as i64,
                (3, 0) => f.state = i32::try_from(r.varint()? as i64).ok()?,
                (6, 2) => f.tokens = r.bytes()?,
                (7, 2) => f.zone = r.bytes()?,
                (8, 0) => f.registered_timestamp = r.varint()? as i64,
                (9, 2) => f.id = r.bytes()?,
                (10, 0) => f.read_only_updated_timestamp = r.varint()? as i64,
                (11, 0) => f.read_only = r.varint()? != 0,
                // versions (12), unpacked tokens, unknown fields: the general path.
                _ => return None,
            }
        }
        Some(f)
    }

    /// The answer before tokens are compared, if there is one: old news is
    /// `Unchanged`; an equal timestamp (a conflict) or a LEFT state is for the general
    /// merge (`Some(None)`); a newer heartbeat goes on (`None`).
    fn verdict(&self, ours: &InstanceDesc) -> Option<Option<HeartbeatMerge>> {
        if self.timestamp < ours.timestamp {
            Some(Some(HeartbeatMerge::Unchanged))
        } else if self.timestamp == ours.timestamp || self.state == InstanceState::Left as i32 {
            Some(None)
        } else {
            None
        }
    }

    /// The text fields as `ours` would store them, or `None` if one is not UTF-8.
    fn texts<'b>(&self, map_key: &'b str, ours: &InstanceDesc) -> Option<[Option<&'b str>; 3]>
    where
        'a: 'b,
    {
        // `None`: equal to what is stored, nothing to copy.
        let text = |b: &'b [u8], stored: &str| -> Option<Option<&'b str>> {
            if b == stored.as_bytes() {
                Some(None)
            } else {
                std::str::from_utf8(b).ok().map(Some)
            }
        };
        // Decoding back-fills an empty id from the map key.
        let id = if self.id.is_empty() {
            map_key.as_bytes()
        } else {
            self.id
        };
        Some([
            text(self.addr, &ours.addr)?,
            text(self.zone, &ours.zone)?,
            text(id, &ours.id)?,
        ])
    }

    /// What [`crate::merge`] stores for an accepted entry with unchanged tokens, given
    /// the text fields from [`Fields::texts`].
    fn apply(&self, texts: [Option<&str>; 3], ours: &mut InstanceDesc) {
        let [addr, zone, id] = texts;
        if let Some(addr) = addr {
            addr.clone_into(&mut ours.addr);
        }
        ours.timestamp = self.timestamp;
        ours.state = self.state;
        if let Some(zone) = zone {
            zone.clone_into(&mut ours.zone);
        }
        ours.registered_timestamp = self.registered_timestamp;
        if let Some(id) = id {
            id.clone_into(&mut ours.id);
        }
        ours.read_only_updated_timestamp = self.read_only_updated_timestamp;
        ours.read_only = self.read_only;
        ours.versions.clear();
    }
}

/// Whether packed varint `bytes` decode to exactly `tokens`. Tokens are `uint32`, so a
/// varint has at most 5 bytes with at most 4 bits in the last; anything longer answers
/// `false` and leaves the value to the general decoder.
fn same_tokens(bytes: &[u8], tokens: &[u32]) -> bool {
    let mut p = bytes;
    for &t in tokens {
        let (v, n) = match *p {
            [a, ..] if a < 0x80 => (u32::from(a), 1),
            [a, b, ..] if b < 0x80 => (u32::from(a & 0x7f) | u32::from(b) << 7, 2),
            [a, b, c, ..] if c < 0x80 => (
                u32::from(a & 0x7f) | u32::from(b & 0x7f) << 7 | u32::from(c) << 14,
                3,
            ),
            [a, b, c, d, ..] if d < 0x80 => (
                u32::from(a & 0x7f)
                    | u32::from(b & 0x7f) << 7
                    | u32::from(c & 0x7f) << 14
                    | u32::from(d) << 21,
                4,
            ),
            [a, b, c, d, e, ..] if e < 0x10 => (
                u32::from(a & 0x7f)
                    | u32::from(b & 0x7f) << 7
                    | u32::from(c & 0x7f) << 14
                    | u32::from(d & 0x7f) << 21
                    | u32::from(e) << 28,
                5,
            ),
            _ => return false,
        };
        if v != t {
            return false;
        }
        p = &p[n..];
    }
    p.is_empty()
}

/// A cursor over protobuf bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A varint with protobuf's rules (prost's decoder: at most 10 bytes, the tenth
    /// holding only the top bit).
    fn varint(&mut self) -> Option<u64> {
        prost::encoding::decode_varint(&mut self.0).ok()
    }

    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let b = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::merge::{MergeOptions, merge_with_options, normalize};
    use proptest::prelude::*;

    fn ring(n: usize) -> Desc {
        let mut d = Desc::new();
        for i in 0..n {
            let tokens = (0..16u32).map(|t| t * 1000 + i as u32).collect();
            d.add_instance(
                &format!("ing-{i}"),
                "10.0.0.1:9095",
                "z",
                tokens,
                InstanceState::Active,
                100,
                1000,
            );
        }
        d
    }

    fn one(d: &Desc, id: &str, f: impl FnOnce(&mut InstanceDesc)) -> Desc {
        let mut inst = d.ingesters[id].clone();
        f(&mut inst);
        let mut out = Desc::new();
        out.ingesters.insert(id.to_owned(), inst);
        out
    }

    /// The general path's answer: (changed, change equals the incoming value).
    fn reference(local: &mut Desc, incoming: &Desc) -> (bool, bool) {
        let bytes = codec::encode(incoming);
        let decoded = codec::decode(&bytes).unwrap();
        let out = merge_with_options(local, decoded.clone(), false, 0, &MergeOptions::default());
        (
            out.change.is_some(),
            out.change.is_some() && out.change_is_incoming && out.change == Some(decoded),
        )
    }

    #[test]
    fn a_newer_heartbeat_with_the_same_tokens_takes_the_fast_path() {
        let mut local = ring(5);
        let hb = one(&local, "ing-2", |i| {
            i.timestamp = 2000;
            i.addr = "10.0.0.9:9095".into();
        });
        let mut expected = local.clone();
        assert_eq!(reference(&mut expected, &hb), (true, true));
        assert_eq!(
            merge_heartbeat(&mut local, &codec::encode(&hb)),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert_eq!(local, expected);
        // The same message again is old news.
        assert_eq!(
            merge_heartbeat(&mut local, &codec::encode(&hb)),
            None,
            "equal timestamp: general path"
        );
        let older = one(&local, "ing-2", |i| i.timestamp = 1500);
        assert_eq!(
            merge_heartbeat(&mut local, &codec::encode(&older)),
            Some(HeartbeatMerge::Unchanged)
        );
        assert_eq!(local, expected);
    }

    #[test]
    fn the_cache_names_the_instance_of_the_last_applied_heartbeat() {
        let mut local = ring(4);
        let mut cache = HeartbeatCache::default();
        assert_eq!(cache.last_applied_id(), "");
        fn apply(
            local: &mut Desc,
            cache: &mut HeartbeatCache,
            (id, ts, addr): (&str, i64, &str),
        ) -> Option<HeartbeatMerge> {
            let hb = one(local, id, |i| {
                i.timestamp = ts;
                i.addr = addr.into();
            });
            merge_heartbeat_cached(local, &codec::encode(&hb), cache)
        }
        // First sight of ing-1 (tokens compared), then a repeat (cached tokens, other
        // address), then the same message but the timestamp (the shortest path).
        for (id, ts, addr) in [
            ("ing-1", 2000, "a:1"),
            ("ing-1", 2001, "b:1"),
            ("ing-1", 2002, "b:1"),
            ("ing-3", 2000, "a:1"),
        ] {
            assert_eq!(
                apply(&mut local, &mut cache, (id, ts, addr)),
                Some(HeartbeatMerge::AppliedVerbatim)
            );
            assert_eq!(cache.last_applied_id(), id);
        }
        // Old news leaves the name of the last applied one.
        assert_eq!(
            apply(&mut local, &mut cache, ("ing-1", 1000, "b:1")),
            Some(HeartbeatMerge::Unchanged)
        );
        assert_eq!(cache.last_applied_id(), "ing-3");
    }

    #[test]
    fn everything_else_goes_the_general_way_untouched() {
        let local = ring(3);
        let cases = [
            one(&local, "ing-1", |i| {
                i.timestamp = 2000;
                i.tokens.make_mut().push(99_999);
            }),
            one(&local, "ing-1", |i| {
                i.timestamp = 2000;
                i.set_state(InstanceState::Left);
                i.tokens.clear();
            }),
            one(&local, "ing-1", |i| {
                i.timestamp = 2000;
                i.versions.insert(1, 2);
            }),
            one(&local, "ing-1", |i| {
                i.timestamp = 2000;
                i.tokens.clear();
            }),
            {
                let mut d = one(&local, "ing-1", |i| i.timestamp = 2000);
                d.ingesters
                    .insert("new".into(), local.ingesters["ing-0"].clone());
                d
            },
            {
                let mut d = Desc::new();
                let mut i = local.ingesters["ing-0"].clone();
                i.timestamp = 3000;
                d.ingesters.insert("unknown".into(), i);
                d
            },
        ];
        for c in cases {
            let mut l = local.clone();
            assert_eq!(merge_heartbeat(&mut l, &codec::encode(&c)), None, "{c:?}");
            assert_eq!(l, local);
        }
        let mut l = local.clone();
        assert_eq!(merge_heartbeat(&mut l, b"\x00garbage"), None);
        assert_eq!(merge_heartbeat_proto(&mut l, &[0x0a, 0xff]), None);
        assert_eq!(l, local);
    }

    /// `ing-1`'s heartbeat at `ts`, encoded.
    fn hb(d: &Desc, ts: i64) -> Vec<u8> {
        codec::encode(&one(d, "ing-1", |i| i.timestamp = ts))
    }

    /// Three instances and a cache that has seen one heartbeat of `ing-1` (at 2000),
    /// compared varint by varint on first sight and remembered.
    fn warmed() -> (Desc, HeartbeatCache) {
        let mut local = ring(3);
        normalize(&mut local);
        let mut cache = HeartbeatCache::default();
        let first = hb(&local, 2000);
        assert_eq!(
            merge_heartbeat_cached(&mut local, &first, &mut cache),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert_eq!(cache.known.len(), 1);
        assert!(cache.known[b"ing-1".as_slice()].last.is_some());
        (local, cache)
    }

    #[test]
    fn a_cache_only_ever_saves_work() {
        let (mut local, mut cache) = warmed();
        let announced = local.ingesters["ing-1"].tokens.clone();
        // The stored instance's tokens change (e.g. through the general merge); a
        // heartbeat still carrying the old tokens matches the cached bytes but not the
        // stored tokens, so it must go the general way.
        local.ingesters.get_mut("ing-1").unwrap().tokens.make_mut()[0] += 1;
        let mut old_tokens = local.clone();
        old_tokens.ingesters.get_mut("ing-1").unwrap().tokens = announced;
        let stale = hb(&old_tokens, 3000);
        let before = local.clone();
        assert_eq!(merge_heartbeat_cached(&mut local, &stale, &mut cache), None);
        assert_eq!(local, before);
        // With the new tokens it applies and the cache follows.
        let fresh = hb(&local, 3000);
        assert_eq!(
            merge_heartbeat_cached(&mut local, &fresh, &mut cache),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert_eq!(local.ingesters["ing-1"].timestamp, 3000);
        assert_eq!(
            cache.known[b"ing-1".as_slice()].tokens,
            local.ingesters["ing-1"].tokens
        );
        // A cache never grows past about twice the instances.
        for i in 0..100 {
            cache.known.insert(
                format!("gone-{i}").into_bytes().into(),
                KnownTokens {
                    id: format!("gone-{i}"),
                    packed: vec![],
                    tokens: Tokens::new(),
                    last: None,
                },
            );
        }
        let next = codec::encode(&one(&local, "ing-2", |i| i.timestamp = 4000));
        let mut other = local.clone();
        other.ingesters.get_mut("ing-1").unwrap().tokens.make_mut()[1] += 1;
        let relearn = codec::encode(&one(&other, "ing-1", |i| i.timestamp = 4000));
        assert_eq!(
            merge_heartbeat_cached(&mut local, &relearn, &mut cache),
            None
        );
        assert_eq!(
            merge_heartbeat_cached(&mut local, &next, &mut cache),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert!(cache.known.len() <= 2 * 3 + 16, "{}", cache.known.len());
    }

    #[test]
    fn a_repeated_message_changes_only_the_timestamp_while_nothing_else_moved() {
        let (mut local, mut cache) = warmed();
        // The same message with a newer timestamp: the shortest path, same result.
        let template = local.clone();
        let mut expected = local.clone();
        let second = hb(&template, 2500);
        assert_eq!(
            reference(&mut expected, &codec::decode(&second).unwrap()),
            (true, true)
        );
        assert_eq!(
            merge_heartbeat_cached(&mut local, &second, &mut cache),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert_eq!(local, expected);
        // Older: old news.
        assert_eq!(
            merge_heartbeat_cached(&mut local, &hb(&template, 2400), &mut cache),
            Some(HeartbeatMerge::Unchanged)
        );
        // Something else moved the stored instance (a state change merged the general
        // way): the repeat must not keep that state; it goes the full way and agrees with
        // the general merge.
        local.ingesters.get_mut("ing-1").unwrap().state = InstanceState::Leaving as i32;
        let third = hb(&template, 3000);
        let mut expected = local.clone();
        assert_eq!(
            reference(&mut expected, &codec::decode(&third).unwrap()),
            (true, true)
        );
        assert_eq!(
            merge_heartbeat_cached(&mut local, &third, &mut cache),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert_eq!(local, expected);
        assert_eq!(local.ingesters["ing-1"].state, InstanceState::Active as i32);
    }

    #[test]
    fn a_message_with_two_timestamps_is_never_taken_for_a_repeat() {
        let mut local = ring(2);
        normalize(&mut local);
        // ing-0 as protobuf with a second timestamp field at the end: the last one counts.
        let template = local.clone();
        let inst = |ts: i64, last_ts: i64| {
            let mut value = Vec::new();
            let i = one(&template, "ing-0", |i| i.timestamp = ts).ingesters["ing-0"].clone();
            prost::Message::encode(&i, &mut value).unwrap();
            value.push(0x10);
            prost::encoding::encode_varint(last_ts as u64, &mut value);
            let mut entry = vec![0x0a, 5];
            entry.extend_from_slice(b"ing-0");
            entry.push(0x12);
            prost::encoding::encode_varint(value.len() as u64, &mut entry);
            entry.extend_from_slice(&value);
            let mut desc = vec![0x0a];
            prost::encoding::encode_varint(entry.len() as u64, &mut desc);
            desc.extend_from_slice(&entry);
            desc
        };
        let mut cache = HeartbeatCache::default();
        let first = inst(2000, 2100);
        assert_eq!(
            merge_heartbeat_proto_cached(&mut local, &first, &mut cache),
            Some(HeartbeatMerge::AppliedVerbatim)
        );
        assert_eq!(local.ingesters["ing-0"].timestamp, 2100);
        assert!(cache.known[b"ing-0".as_slice()].last.is_none());
        // The first timestamp moves but the last one (which counts) does not.
        assert_eq!(
            merge_heartbeat_proto_cached(&mut local, &inst(5000, 2100), &mut cache),
            None,
            "equal effective timestamp: the general path"
        );
        assert_eq!(local.ingesters["ing-0"].timestamp, 2100);
    }

    #[test]
    fn packed_token_comparison_handles_every_varint_length() {
        let tokens = [
            0u32,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX,
        ];
        let mut bytes = Vec::new();
        for &t in &tokens {
            prost::encoding::encode_varint(u64::from(t), &mut bytes);
        }
        assert!(same_tokens(&bytes, &tokens));
        assert!(!same_tokens(&bytes[..bytes.len() - 1], &tokens));
        assert!(!same_tokens(&bytes, &tokens[..7]));
        let mut other = tokens;
        other[3] += 1;
        assert!(!same_tokens(&bytes, &other));
        // A padded varint decodes to the same value, as protobuf decoders read it.
        assert!(same_tokens(&[0x81, 0x00], &[1]));
        // Longer than a uint32 allows: the general decoder decides.
        assert!(!same_tokens(&[0xff, 0xff, 0xff, 0xff, 0x1f], &[u32::MAX]));
    }

    proptest! {
        /// Whenever the fast path answers, the general path agrees on the result.
        #[test]
        fn fast_path_agrees_with_the_general_merge(
            which in 0usize..4,
            dt in -3i64..4,
            addr in prop::sample::select(vec!["10.0.0.1:9095", "10.0.0.2:9095"]),
            zone in prop::sample::select(vec!["z", "y", ""]),
            state in 0i32..5,
            change_tokens in any::<bool>(),
            read_only in any::<bool>(),
            empty_id in any::<bool>(),
        ) {
            let mut local = ring(4);
            normalize(&mut local);
            let id = format!("ing-{which}");
            let hb = one(&local, &id, |i| {
                i.timestamp += dt;
                i.addr = addr.into();
                i.zone = zone.into();
                i.state = state;
                i.read_only = read_only;
                i.read_only_updated_timestamp = if read_only { 7 } else { 0 };
                if empty_id { i.id.clear(); }
                if change_tokens { i.tokens.make_mut()[0] += 1; }
            });
            let mut slow = local.clone();
            let (changed, verbatim) = reference(&mut slow, &hb);
            // A cache that has seen this instance's current tokens must not change the
            // answer either.
            let mut cache = HeartbeatCache::default();
            let mut warm = local.clone();
            let seen = one(&local, &id, |i| i.timestamp += 1);
            merge_heartbeat_cached(&mut warm, &codec::encode(&seen), &mut cache);
            let mut cached = local.clone();
            let with_cache = merge_heartbeat_cached(&mut cached, &codec::encode(&hb), &mut cache);
            let mut fast = local.clone();
            let without = merge_heartbeat(&mut fast, &codec::encode(&hb));
            prop_assert_eq!(with_cache, without);
            prop_assert_eq!(&cached, &fast);
            match without {
                None => prop_assert_eq!(fast, local),
                Some(HeartbeatMerge::Unchanged) => {
                    prop_assert!(!changed);
                    prop_assert_eq!(fast, local);
                }
                Some(HeartbeatMerge::AppliedVerbatim) => {
                    prop_assert!(changed && verbatim);
                    prop_assert_eq!(fast, slow);
                }
            }
        }
    }
}
