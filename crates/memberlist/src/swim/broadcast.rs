//! The retransmit-limited broadcast queue (memberlist's `TransmitLimitedQueue`,
//! `spec/memberlist.md` §1.10, §2.8).
//!
//! Each queued message is piggybacked on outgoing packets until it has been sent
//! `retransmit_limit(mult, n)` times. Selection prefers the least transmitted, then
//! the largest, then the newest message that still fits the remaining budget, so
//! fresh news spreads first and small messages fill the gaps (memberlist's order).
//!
//! Newer news replaces older news in two ways, as in memberlist and dskit:
//!
//! - a message may carry a **name**; queueing a message with the same name drops the
//!   older one (memberlist names its own alive/suspect/dead messages by the node they
//!   are about: its `NamedBroadcast`);
//! - a message may carry a [`Cover`]: which key it changes, which items of the value
//!   it carries and the key's local version after the change. A new message drops a
//!   queued one of the same key whose items it all carries, when its version is not
//!   older (dskit's `ringBroadcast.Invalidates`; the items come from the value's
//!   `Mergeable::merge_content`, so the queue knows nothing of rings).
//!
//! The queue is bounded by [`QueueLimits`]: past either bound the message memberlist's
//! `Prune` would drop first (most transmitted, then smallest, then oldest) is dropped
//! and counted. dskit itself does not prune its KV queues; invalidation and the
//! retransmit limit keep them small, and the bound only guards against a burst.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use bytes::Bytes;
use foldhash::fast::FixedState;

use crate::wire::Message;

/// `mult × ceil(log10(n + 1))`: how often one broadcast is sent in a cluster of `n`.
pub(crate) fn retransmit_limit(mult: usize, n: usize) -> usize {
    let scale = ((n as f64) + 1.0).log10().ceil();
    mult * scale as usize
}

/// Identifies a queued broadcast, so the owner can learn when it is finished.
pub(crate) type Tag = u64;

/// Ordering key: fewest transmits, then largest, then newest. The first field is
/// the transmit count as a rank, `RANK_BASE + transmits - shift` (see
/// [`BroadcastQueue::take_sized`]): ranks order like transmit counts, and a take
/// that sends every queued message adds one transmit to each by moving `shift`
/// instead of every key.
type Key = (u64, Reverse<usize>, Reverse<u64>);

/// Rank of a message with no transmits before any whole-queue take. Far from both
/// ends of `u64`: `shift` grows by one per take and transmits stay small.
const RANK_BASE: u64 = 1 << 62;

/// Hashing for the queue's lookup tables: fixed (no per-process seed) and fast; the
/// tables are never iterated, so the order they would give does not matter.
type Hasher = FixedState;

/// What a user broadcast carries, so a newer one can replace it (dskit
/// `ringBroadcast`: key, `MergeContent` of the change, local version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cover {
    /// The store key the message changes.
    pub key: String,
    /// Names of the items the message carries (for a ring: instance ids), sorted and
    /// without duplicates ([`Cover::new`] sorts).
    pub content: Vec<String>,
    /// The key's local version once this change was applied.
    pub version: u64,
}

impl Cover {
    /// A cover of `key` carrying `content` (any order, duplicates allowed).
    pub fn new(key: impl Into<String>, mut content: Vec<String>, version: u64) -> Self {
        content.sort_unstable();
        content.dedup();
        Cover {
            key: key.into(),
            content,
            version,
        }
    }

    /// Whether a message with this cover makes `older` useless: same key, every item
    /// of `older` carried here too, and a version at least as new.
    pub fn covers(&self, older: &Cover) -> bool {
        self.key == older.key
            && self.version >= older.version
            && older
                .content
                .iter()
                .all(|c| self.content.binary_search(c).is_ok())
    }
}

/// Bounds of one queue. Past either, the least useful messages are dropped (counted
/// in [`QueueStats::dropped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages queued at once.
    pub max_messages: usize,
    /// Most encoded bytes queued at once.
    pub max_bytes: usize,
}

impl QueueLimits {
    /// No bound (tests and the membership queue, whose names bound it by the member
    /// count).
    pub(crate) const UNBOUNDED: QueueLimits = QueueLimits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    };
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits::UNBOUNDED
    }
}

/// A queue's size and what it dropped, as plain numbers for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages queued now.
    pub messages: usize,
    /// Encoded bytes queued now (type byte included).
    pub bytes: usize,
    /// Messages dropped at the queue's bound before reaching their retransmit limit.
    pub dropped: u64,
    /// Messages replaced by newer news (same name, or covered) before their limit.
    pub invalidated: u64,
}

/// Where a user broadcast comes from. dskit keeps two queues and serves its own
/// changes first, so a node's heartbeat is never stuck behind relayed news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A change this node made (a local CAS): the local queue.
    Local,
    /// A change learnt from a peer and gossiped on: the gossip queue.
    Relayed,
}

/// A user broadcast (for dskit one `KeyValuePair`) with what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBroadcast {
    /// The message body (sent as a `user` message).
    pub bytes: Vec<u8>,
    /// Which queue it joins.
    pub origin: Origin,
    /// What it covers; `None` replaces nothing and is replaced by nothing.
    pub cover: Option<Cover>,
}

/// Both user queues and the receive side, as plain numbers for dskit's
/// `memberlist_client_*` broadcast metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastQueueStats {
    /// Our own changes (`messages_in_broadcast_queue{queue="local"}`).
    pub local: QueueStats,
    /// Relayed changes (`messages_in_broadcast_queue{queue="gossip"}`).
    pub gossip: QueueStats,
    /// Received user messages dropped because the handoff queue was full
    /// (`received_broadcasts_dropped_total`).
    pub received_dropped: u64,
    /// Changes the KV store could not hand to the node because the channel between
    /// them was full (filled in by the driver; the core leaves it 0).
    pub channel_dropped: u64,
}

impl BroadcastQueueStats {
    /// Messages in both queues.
    pub fn messages(&self) -> usize {
        self.local.messages + self.gossip.messages
    }

    /// Bytes in both queues (`messages_in_broadcast_queue_bytes`).
    pub fn bytes(&self) -> usize {
        self.local.bytes + self.gossip.bytes
    }

    /// Messages meant for gossip and dropped: at the bounds of both queues and on the
    /// way from the store (`messages_to_broadcast_dropped_total`).
    pub fn dropped(&self) -> u64 {
        self.local.dropped + self.gossip.dropped + self.channel_dropped
    }
}

#[derive(Debug, Clone)]
struct Item {
    message: Body,
    name: Option<Vec<u8>>,
    cover: Option<Cover>,
    tag: Option<Tag>,
}

/// A queued message: a user message's shared bytes as they are (the common case,
/// kept small), anything else boxed.
#[derive(Debug, Clone)]
enum Body {
    User(Bytes),
    Other(Box<Message>),
}

impl Body {
    fn new(m: Message) -> Self {
        match m {
            Message::User(b) => Body::User(b),
            other => Body::Other(Box::new(other)),
        }
    }

    fn to_message(&self) -> Message {
        match self {
            Body::User(b) => Message::User(b.clone()),
            Body::Other(m) => (**m).clone(),
        }
    }

    fn into_message(self) -> Message {
        match self {
            Body::User(b) => Message::User(b),
            Body::Other(m) => *m,
        }
    }
}

/// Where the covered messages of one key are: (hash of an item name, id) pairs, so
/// the names are not copied (a hash only finds candidates; [`Cover::covers`]
/// decides), and those with no item, which every newer message of the key covers.
#[derive(Debug, Clone, Default)]
struct CoverIndex {
    by_item: BTreeSet<(u64, u64)>,
    empty: Vec<u64>,
}

fn item_hash(name: &str) -> u64 {
    Hasher::default().hash_one(name)
}

fn remove_id(ids: &mut Vec<u64>, id: u64) {
    if let Some(p) = ids.iter().position(|&x| x == id) {
        ids.swap_remove(p);
    }
}

/// A queue of messages to piggyback, each with its encoded length.
#[derive(Debug, Clone, Default)]
pub(crate) struct BroadcastQueue {
    /// Boxed, so the tree's node shifts on every take and reinsert move a
    /// pointer rather than a whole message.
    items: BTreeMap<Key, Box<Item>>,
    /// Where each item sits in `items`, by id (its key changes on every transmit
    /// that does not take the whole queue).
    pos: HashMap<u64, Key, Hasher>,
    /// The id of each named item (hashed: names are looked up on every push, and
    /// node names share long prefixes).
    by_name: HashMap<Vec<u8>, u64, Hasher>,
    /// Covered items by store key.
    covers: HashMap<String, CoverIndex, Hasher>,
    /// Whole-queue takes so far: every queued message's transmit count is its
    /// key's rank plus `shift` (less `RANK_BASE`).
    shift: u64,
    /// How many queued items have each encoded length: once the packet's free
    /// space is below the shortest, `take_sized` stops instead of probing every
    /// transmit-count level in vain (changes only on push and removal, not on
    /// each retransmit).
    lens: BTreeMap<usize, usize>,
    bytes: usize,
    limits: QueueLimits,
    dropped: u64,
    invalidated: u64,
    next_id: u64,
    finished: Vec<Tag>,
}

impl BroadcastQueue {
    /// An empty, unbounded queue.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An empty queue with bounds.
    pub(crate) fn with_limits(limits: QueueLimits) -> Self {
        BroadcastQueue {
            limits,
            ..Self::default()
        }
    }

    /// Number of queued messages.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Encoded bytes queued.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Size now and drops so far.
    pub(crate) fn stats(&self) -> QueueStats {
        QueueStats {
            messages: self.items.len(),
            bytes: self.bytes,
            dropped: self.dropped,
            invalidated: self.invalidated,
        }
    }

    /// Queues `message` of `encoded_len` bytes (type byte included). A `name`
    /// replaces any queued message with the same name; `tag` is reported by
    /// [`BroadcastQueue::drain_finished`] once the message is done (sent to its
    /// limit, replaced or dropped).
    pub(crate) fn push(
        &mut self,
        message: Message,
        encoded_len: usize,
        name: Option<Vec<u8>>,
        tag: Option<Tag>,
    ) {
        self.push_item(
            Item {
                message: Body::new(message),
                name,
                cover: None,
                tag,
            },
            encoded_len,
        );
    }

    /// Queues a message with a [`Cover`]: queued messages it covers are dropped
    /// (counted as invalidated), then the message joins with zero transmits.
    pub(crate) fn push_covered(&mut self, message: Message, encoded_len: usize, cover: Cover) {
        self.push_item(
            Item {
                message: Body::new(message),
                name: None,
                cover: Some(cover),
                tag: None,
            },
            encoded_len,
        );
    }

    fn push_item(&mut self, item: Item, encoded_len: usize) {
        if let Some(n) = &item.name
            && let Some(&old) = self.by_name.get(n)
        {
            self.invalidate(old);
        }
        if let Some(c) = &item.cover {
            for old in self.covered_by(c) {
                self.invalidate(old);
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        let key = (RANK_BASE - self.shift, Reverse(encoded_len), Reverse(id));
        *self.lens.entry(encoded_len).or_default() += 1;
        self.bytes += encoded_len;
        if let Some(n) = &item.name {
            self.by_name.insert(n.clone(), id);
        }
        if let Some(c) = &item.cover {
            let idx = self.covers.entry(c.key.clone()).or_default();
            if c.content.is_empty() {
                idx.empty.push(id);
            }
            for name in &c.content {
                idx.by_item.insert((item_hash(name), id));
            }
        }
        self.pos.insert(id, key);
        self.items.insert(key, Box::new(item));
        self.prune();
    }

    /// Ids of queued messages that `c` covers.
    fn covered_by(&self, c: &Cover) -> Vec<u64> {
        let Some(idx) = self.covers.get(&c.key) else {
            return Vec::new();
        };
        let mut candidates: Vec<u64> = idx.empty.clone();
        for name in &c.content {
            let h = item_hash(name);
            candidates.extend(idx.by_item.range((h, 0)..=(h, u64::MAX)).map(|&(_, id)| id));
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates.retain(|id| {
            self.pos
                .get(id)
                .and_then(|k| self.items.get(k))
                .and_then(|item| item.cover.as_ref())
                .is_some_and(|old| c.covers(old))
        });
        candidates
    }

    fn invalidate(&mut self, id: u64) {
        if let Some(item) = self.remove(id) {
            self.invalidated += 1;
            self.finish(item.tag);
        }
    }

    /// Drops the least useful messages (memberlist `Prune`: the last in send order)
    /// while a bound is exceeded.
    fn prune(&mut self) {
        while self.items.len() > self.limits.max_messages || self.bytes > self.limits.max_bytes {
            let Some((&key, _)) = self.items.last_key_value() else {
                break;
            };
            if let Some(item) = self.remove(key.2.0) {
                self.dropped += 1;
                self.finish(item.tag);
            }
        }
    }

    /// Takes item `id` out of every index.
    fn remove(&mut self, id: u64) -> Option<Box<Item>> {
        let key = self.pos.remove(&id)?;
        let item = self.items.remove(&key)?;
        let len = key.1.0;
        self.forget_len(len);
        self.bytes -= len;
        if let Some(n) = &item.name
            && self.by_name.get(n) == Some(&id)
        {
            self.by_name.remove(n);
        }
        if let Some(c) = &item.cover
            && let Some(idx) = self.covers.get_mut(&c.key)
        {
            if c.content.is_empty() {
                remove_id(&mut idx.empty, id);
            }
            for name in &c.content {
                idx.by_item.remove(&(item_hash(name), id));
            }
            if idx.empty.is_empty() && idx.by_item.is_empty() {
                self.covers.remove(&c.key);
            }
        }
        Some(item)
    }

    fn forget_len(&mut self, len: usize) {
        if let Some(c) = self.lens.get_mut(&len) {
            *c -= 1;
            if *c == 0 {
                self.lens.remove(&len);
            }
        }
    }

    fn finish(&mut self, tag: Option<Tag>) {
        if let Some(t) = tag {
            self.finished.push(t);
        }
    }

    /// Takes messages for one packet: each costs `overhead` plus its length, the
    /// total stays within `limit`. Every message taken counts one transmit; those
    /// reaching `transmit_limit` leave the queue.
    #[cfg(test)]
    pub(crate) fn take(
        &mut self,
        overhead: usize,
        limit: usize,
        transmit_limit: usize,
    ) -> Vec<Message> {
        self.take_sized(overhead, limit, transmit_limit)
            .into_iter()
            .map(|(m, _)| m)
            .collect()
    }

    /// How often the message with `key` has been sent.
    fn transmits(&self, key: &Key) -> u64 {
        (key.0 + self.shift).saturating_sub(RANK_BASE)
    }

    /// [`BroadcastQueue::take`], returning each message with its encoded length.
    ///
    /// When the whole queue fits the budget (the usual case with dskit's 10 MB
    /// packets), every message is taken in key order, which is the order the
    /// tier-by-tier search below would pick them in; one more transmit for all of
    /// them keeps their relative order, so it is counted by moving `shift` rather
    /// than by re-keying every message.
    pub(crate) fn take_sized(
        &mut self,
        overhead: usize,
        limit: usize,
        transmit_limit: usize,
    ) -> Vec<(Message, usize)> {
        let fits_whole = self
            .items
            .len()
            .checked_mul(overhead)
            .and_then(|o| o.checked_add(self.bytes))
            .is_some_and(|total| total <= limit);
        if fits_whole && !self.items.is_empty() {
            return self.take_all(transmit_limit as u64);
        }
        let mut out = Vec::new();
        let Some((&(min_t, ..), _)) = self.items.first_key_value() else {
            return out;
        };
        let max_t = self.items.last_key_value().map_or(min_t, |(k, _)| k.0);
        let mut used = 0usize;
        let mut reinsert = Vec::new();
        let mut t = min_t;
        while t <= max_t {
            let Some(free) = limit.checked_sub(used + overhead).filter(|f| *f > 0) else {
                break;
            };
            if self
                .lens
                .first_key_value()
                .is_none_or(|(&min, _)| min > free)
            {
                break;
            }
            let lo = (t, Reverse(free), Reverse(u64::MAX));
            let hi = (t + 1, Reverse(usize::MAX), Reverse(u64::MAX));
            let Some(key) = self.items.range(lo..hi).next().map(|(k, _)| *k) else {
                t += 1;
                continue;
            };
            let len = key.1.0;
            used += overhead + len;
            if self.transmits(&key) + 1 >= transmit_limit as u64 {
                // The last transmit hands the message over instead of a copy.
                let Some(item) = self.remove(key.2.0) else {
                    break;
                };
                self.finish(item.tag);
                out.push((item.message.into_message(), len));
            } else {
                let Some(item) = self.items.remove(&key) else {
                    break;
                };
                out.push((item.message.to_message(), len));
                reinsert.push(((key.0 + 1, key.1, key.2), item));
            }
        }
        for (k, item) in reinsert {
            self.pos.insert(k.2.0, k);
            self.items.insert(k, item);
        }
        out
    }

    /// Every queued message, in key order, with one more transmit each; those
    /// reaching `transmit_limit` leave the queue (the most sent, at the end).
    fn take_all(&mut self, transmit_limit: u64) -> Vec<(Message, usize)> {
        let mut out = Vec::with_capacity(self.items.len());
        for (key, item) in &self.items {
            out.push((item.message.to_message(), key.1.0));
        }
        self.shift += 1;
        // Finished in key order, as a take one by one would report them.
        let done: Vec<u64> = self
            .items
            .keys()
            .rev()
            .take_while(|k| self.transmits(k) >= transmit_limit)
            .map(|k| k.2.0)
            .collect();
        for id in done.into_iter().rev() {
            if let Some(item) = self.remove(id) {
                self.finish(item.tag);
            }
        }
        out
    }

    /// Tags of messages finished since the last call.
    pub(crate) fn drain_finished(&mut self) -> Vec<Tag> {
        std::mem::take(&mut self.finished)
    }

    /// Drops everything (memberlist `Reset`), reporting tags as finished.
    pub(crate) fn clear(&mut self) {
        let items = std::mem::take(&mut self.items);
        self.pos.clear();
        self.by_name.clear();
        self.covers.clear();
        self.lens.clear();
        self.bytes = 0;
        for (_, item) in items {
            self.finish(item.tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: usize) -> Message {
        Message::User(vec![b'x'; n].into())
    }

    #[test]
    fn retransmit_limit_grows_with_log10_of_cluster_size() {
        assert_eq!(retransmit_limit(4, 0), 0);
        assert_eq!(retransmit_limit(4, 3), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 1000), 16);
    }

    #[test]
    fn a_message_is_sent_exactly_limit_times_then_finished() {
        let mut q = BroadcastQueue::new();
        q.push(user(10), 11, None, Some(7));
        for i in 0..4 {
            assert_eq!(q.take(2, 1000, 4).len(), 1, "round {i}");
        }
        assert!(q.is_empty());
        assert_eq!(q.take(2, 1000, 4).len(), 0);
        assert_eq!(q.drain_finished(), vec![7]);
    }

    #[test]
    fn least_transmitted_then_largest_then_newest_goes_first() {
        let mut q = BroadcastQueue::new();
        q.push(user(5), 6, None, None);
        q.take(2, 1000, 10); // user(5) now has 1 transmit
        q.push(user(1), 2, None, None);
        q.push(user(3), 4, None, None);
        q.push(user(3), 4, None, Some(1));
        // Budget for exactly one message of 4 bytes (+2 overhead).
        let got = q.take(2, 6, 10);
        assert_eq!(got, vec![user(3)]);
        // The newest of the two equal-size ones went first; the older remains.
        let got = q.take(2, 1000, 10);
        assert_eq!(got, vec![user(3), user(1), user(5), user(3)]);
    }

    #[test]
    fn a_take_of_the_whole_queue_counts_one_transmit_each_and_finishes_in_send_order() {
        let mut q = BroadcastQueue::new();
        q.push(user(5), 6, None, Some(1));
        q.push(user(7), 8, None, Some(2));
        q.push(user(6), 7, None, Some(3));
        assert_eq!(q.take(2, 1000, 3), vec![user(7), user(6), user(5)]);
        // A partial take after whole ones still sees the counts: one more for the
        // largest only.
        assert_eq!(q.take(2, 10, 3), vec![user(7)]);
        q.push(user(1), 2, None, Some(4));
        // The new message (no transmits) goes first; the two sent once follow.
        assert_eq!(q.take(2, 1000, 3), vec![user(1), user(6), user(5), user(7)]);
        assert_eq!(q.drain_finished(), vec![2]);
        // Two reach the limit together and finish in the order they were sent.
        assert_eq!(q.take(2, 1000, 3), vec![user(1), user(6), user(5)]);
        assert_eq!(q.drain_finished(), vec![3, 1]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn messages_too_big_for_the_budget_are_skipped_not_blocking() {
        let mut q = BroadcastQueue::new();
        q.push(user(100), 101, None, None);
        q.push(user(10), 11, None, None);
        assert_eq!(q.take(2, 20, 10), vec![user(10)]);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_small_message_behind_many_full_levels_is_still_found() {
        // Items spread over several transmit counts; only the smallest fits the
        // last gap, and it sits at the highest count.
        let mut q = BroadcastQueue::new();
        q.push(user(3), 4, None, None);
        for _ in 0..3 {
            q.take(2, 1000, 10);
        }
        q.push(user(50), 51, None, None);
        q.push(user(40), 41, None, None);
        let got = q.take(2, 2 + 51 + 2 + 4, 10);
        assert_eq!(got, vec![user(50), user(3)]);
        // Nothing fits a budget below the shortest message.
        assert!(q.take(2, 2 + 3, 10).is_empty());
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn a_named_message_invalidates_the_older_one_with_the_same_name() {
        let mut q = BroadcastQueue::new();
        q.push(user(1), 2, Some(b"node-a".to_vec()), Some(1));
        q.push(user(2), 3, Some(b"node-b".to_vec()), Some(2));
        q.take(2, 1000, 10);
        q.push(user(3), 4, Some(b"node-a".to_vec()), Some(3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.drain_finished(), vec![1]);
        // The replacement starts with zero transmits, so it goes first.
        assert_eq!(q.take(2, 6, 10), vec![user(3)]);
    }

    fn cover(key: &str, items: &[&str], version: u64) -> Cover {
        Cover::new(key, items.iter().map(|s| s.to_string()).collect(), version)
    }

    #[test]
    fn cover_rule_is_same_key_superset_and_not_older() {
        let old = cover("ring", &["a", "b"], 5);
        assert!(cover("ring", &["b", "a"], 5).covers(&old));
        assert!(cover("ring", &["a", "b", "c"], 6).covers(&old));
        assert!(!cover("ring", &["a"], 6).covers(&old), "not a superset");
        assert!(!cover("ring", &["a", "b"], 4).covers(&old), "older version");
        assert!(!cover("other", &["a", "b"], 6).covers(&old), "other key");
        // An empty change is covered by any newer change of its key.
        assert!(cover("ring", &["x"], 6).covers(&cover("ring", &[], 1)));
        // Sorting and duplicates do not matter.
        assert_eq!(cover("k", &["b", "a", "b"], 1).content, vec!["a", "b"]);
    }

    #[test]
    fn a_covering_message_replaces_what_it_covers_and_nothing_else() {
        let mut q = BroadcastQueue::new();
        q.push_covered(user(1), 2, cover("ring", &["a"], 1));
        q.push_covered(user(2), 3, cover("ring", &["b"], 2));
        q.push_covered(user(3), 4, cover("ring", &["a", "c"], 3));
        q.push_covered(user(4), 5, cover("other", &["a"], 9));
        q.push(user(5), 6, None, None);
        // {a} is covered by {a, c}; nothing else.
        assert_eq!(q.len(), 4);
        assert_eq!(q.stats().invalidated, 1);
        // A heartbeat of a alone does not cover {a, c}.
        q.push_covered(user(6), 7, cover("ring", &["a"], 4));
        assert_eq!(q.len(), 5);
        // {a, b, c} at a newer version covers {b}, {a, c} and {a}.
        q.push_covered(user(7), 8, cover("ring", &["a", "b", "c"], 5));
        let mut left = q.take(2, 1000, 10);
        left.sort_by_key(|m| match m {
            Message::User(b) => b.len(),
            _ => 0,
        });
        assert_eq!(left, vec![user(4), user(5), user(7)]);
        assert_eq!(q.stats().invalidated, 4);
        assert_eq!(q.bytes(), 5 + 6 + 8);
    }

    #[test]
    fn an_older_version_does_not_replace_a_newer_message() {
        let mut q = BroadcastQueue::new();
        q.push_covered(user(1), 2, cover("ring", &["a"], 7));
        q.push_covered(user(2), 3, cover("ring", &["a"], 3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.stats().invalidated, 0);
    }

    #[test]
    fn a_replaced_message_that_was_already_sent_is_found_at_its_new_place() {
        let mut q = BroadcastQueue::new();
        q.push_covered(user(1), 2, cover("ring", &["a"], 1));
        q.take(2, 1000, 10);
        q.take(2, 1000, 10);
        q.push_covered(user(2), 3, cover("ring", &["a"], 2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(2, 1000, 10), vec![user(2)]);
    }

    #[test]
    fn over_the_message_bound_the_most_sent_then_smallest_then_oldest_go() {
        let mut q = BroadcastQueue::with_limits(QueueLimits {
            max_messages: 3,
            max_bytes: usize::MAX,
        });
        q.push(user(9), 10, None, Some(1));
        q.take(2, 1000, 10); // user(9) sent once
        q.push(user(1), 2, None, Some(2));
        q.push(user(1), 2, None, Some(3));
        assert_eq!(q.stats().dropped, 0);
        q.push(user(5), 6, None, Some(4));
        // The once-sent message goes first, though it is the largest.
        assert_eq!(q.drain_finished(), vec![1]);
        q.push(user(6), 7, None, Some(5));
        // Then, all unsent: the smallest, and of equal ones the oldest.
        assert_eq!(q.drain_finished(), vec![2]);
        let s = q.stats();
        assert_eq!((s.messages, s.bytes, s.dropped), (3, 2 + 6 + 7, 2));
    }

    #[test]
    fn over_the_byte_bound_messages_are_dropped_until_it_fits() {
        let mut q = BroadcastQueue::with_limits(QueueLimits {
            max_messages: usize::MAX,
            max_bytes: 100,
        });
        for _ in 0..5 {
            q.push(user(29), 30, None, None);
        }
        let s = q.stats();
        assert_eq!((s.messages, s.bytes, s.dropped), (3, 90, 2));
        // One message larger than the whole bound cannot stay.
        q.push(user(200), 201, None, None);
        assert!(q.bytes() <= 100);
        assert_eq!(q.stats().dropped, 6);
    }

    #[test]
    fn clear_empties_every_index() {
        let mut q = BroadcastQueue::new();
        q.push_covered(user(1), 2, cover("ring", &["a"], 1));
        q.push(user(2), 3, Some(b"n".to_vec()), Some(4));
        q.clear();
        assert_eq!((q.len(), q.bytes()), (0, 0));
        assert_eq!(q.drain_finished(), vec![4]);
        q.push_covered(user(3), 4, cover("ring", &["a"], 2));
        q.push(user(4), 5, Some(b"n".to_vec()), None);
        assert_eq!(q.len(), 2);
    }

    mod model {
        //! The queue against a plain list with the same rules, written the slow way.
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        struct M {
            id: u64,
            transmits: usize,
            len: usize,
            cover: Option<Cover>,
            name: Option<u8>,
        }

        #[derive(Debug, Clone)]
        enum Op {
            Push { len: usize, name: Option<u8> },
            Cover { len: usize, items: Vec<u8>, key: u8 },
            Take { limit: usize },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (1usize..40, proptest::option::of(0u8..4))
                    .prop_map(|(len, name)| Op::Push { len, name }),
                (1usize..40, proptest::collection::vec(0u8..5, 0..4), 0u8..2)
                    .prop_map(|(len, items, key)| Op::Cover { len, items, key }),
                (0usize..150).prop_map(|limit| Op::Take { limit }),
            ]
        }

        /// The message body names the id, so outputs can be compared.
        fn body(id: u64, len: usize) -> Message {
            let mut b = id.to_be_bytes().to_vec();
            b.resize(len.max(8), 0);
            Message::User(b.into())
        }

        /// Drops the last in send order while over the bound.
        fn prune(m: &mut Vec<M>, limits: QueueLimits, dropped: &mut u64) {
            loop {
                let bytes: usize = m.iter().map(|x| x.len).sum();
                if m.len() <= limits.max_messages && bytes <= limits.max_bytes {
                    return;
                }
                let worst = (0..m.len())
                    .max_by_key(|&i| (m[i].transmits, Reverse(m[i].len), Reverse(m[i].id)));
                let Some(w) = worst else { return };
                m.remove(w);
                *dropped += 1;
            }
        }

        proptest! {
            #[test]
            fn queue_matches_the_model(
                ops in proptest::collection::vec(op(), 1..120),
                max_messages in 1usize..12,
                max_bytes in 40usize..400,
            ) {
                let limits = QueueLimits { max_messages, max_bytes };
                let mut q = BroadcastQueue::with_limits(limits);
                let mut m: Vec<M> = Vec::new();
                let (mut next, mut dropped, mut invalidated) = (0u64, 0u64, 0u64);
                let (overhead, tlimit) = (2usize, 3usize);
                let mut version = 0u64;
                for op in ops {
                    match op {
                        Op::Push { len, name } => {
                            next += 1;
                            let before = m.len();
                            if let Some(n) = name {
                                m.retain(|x| x.name != Some(n));
                            }
                            invalidated += (before - m.len()) as u64;
                            m.push(M { id: next, transmits: 0, len, cover: None, name });
                            prune(&mut m, limits, &mut dropped);
                            q.push(body(next, len), len, name.map(|n| vec![n]), None);
                        }
                        Op::Cover { len, items, key } => {
                            next += 1;
                            version += 1;
                            let c = Cover::new(
                                format!("k{key}"),
                                items.iter().map(|i| format!("i{i}")).collect(),
                                version,
                            );
                            let before = m.len();
                            m.retain(|x| !x.cover.as_ref().is_some_and(|o| c.covers(o)));
                            invalidated += (before - m.len()) as u64;
                            m.push(M { id: next, transmits: 0, len, cover: Some(c.clone()), name: None });
                            prune(&mut m, limits, &mut dropped);
                            q.push_covered(body(next, len), len, c);
                        }
                        Op::Take { limit } => {
                            // Tier by tier, the largest (then newest) message that fits.
                            let mut want = Vec::new();
                            let mut used = 0usize;
                            let mut taken: Vec<u64> = Vec::new();
                            let max_t = m.iter().map(|x| x.transmits).max().unwrap_or(0);
                            let mut t = m.iter().map(|x| x.transmits).min().unwrap_or(0);
                            while t <= max_t {
                                let Some(free) = limit.checked_sub(used + overhead).filter(|f| *f > 0) else { break };
                                let pick = m.iter()
                                    .filter(|x| x.transmits == t && x.len <= free && !taken.contains(&x.id))
                                    .max_by_key(|x| (x.len, x.id))
                                    .map(|x| x.id);
                                match pick {
                                    Some(id) => {
                                        let x = m.iter().find(|x| x.id == id).unwrap();
                                        used += overhead + x.len;
                                        want.push(body(id, x.len));
                                        taken.push(id);
                                    }
                                    None => t += 1,
                                }
                            }
                            for id in &taken {
                                let x = m.iter_mut().find(|x| x.id == *id).unwrap();
                                x.transmits += 1;
                            }
                            m.retain(|x| x.transmits < tlimit);
                            prop_assert_eq!(q.take(overhead, limit, tlimit), want);
                        }
                    }
                    let s = q.stats();
                    prop_assert_eq!(s.messages, m.len());
                    prop_assert_eq!(s.bytes, m.iter().map(|x| x.len).sum::<usize>());
                    prop_assert_eq!(s.dropped, dropped);
                    prop_assert_eq!(s.invalidated, invalidated);
                }
            }
        }
    }
}
