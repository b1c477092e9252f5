//! The retransmit-limited broadcast queue (memberlist's `TransmitLimitedQueue`,
//! `spec/memberlist.md` §1.10).
//!
//! Each queued message is piggybacked on outgoing packets until it has been sent
//! `retransmit_limit(mult, n)` times. Selection prefers the least transmitted, then
//! the largest, then the newest message that still fits the remaining budget, so
//! fresh news spreads first and small messages fill the gaps. A message may carry a
//! name; queueing a message with the same name drops the older one (memberlist
//! names its own alive/suspect/dead messages by the node they are about).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use crate::wire::Message;

/// `mult × ceil(log10(n + 1))`: how often one broadcast is sent in a cluster of `n`.
pub fn retransmit_limit(mult: usize, n: usize) -> usize {
    let scale = ((n as f64) + 1.0).log10().ceil();
    mult * scale as usize
}

/// Identifies a queued broadcast, so the owner can learn when it is finished.
pub type Tag = u64;

/// Ordering key: fewest transmits, then largest, then newest.
type Key = (usize, Reverse<usize>, Reverse<u64>);

#[derive(Debug, Clone)]
struct Item {
    message: Message,
    name: Option<Vec<u8>>,
    tag: Option<Tag>,
}

/// A queue of messages to piggyback, each with its encoded length.
#[derive(Debug, Clone, Default)]
pub struct BroadcastQueue {
    /// Boxed, so the tree's node shifts on every take and reinsert move a
    /// pointer rather than a whole message.
    items: BTreeMap<Key, Box<Item>>,
    /// Where each named item sits in `items` (hashed: names are looked up on
    /// every push and retransmit, and node names share long prefixes).
    by_name: HashMap<Vec<u8>, Key>,
    /// How many queued items have each encoded length: once the packet's free
    /// space is below the shortest, `take_sized` stops instead of probing every
    /// transmit-count level in vain (changes only on push and removal, not on
    /// each retransmit).
    lens: BTreeMap<usize, usize>,
    next_id: u64,
    finished: Vec<Tag>,
}

impl BroadcastQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `message` of `encoded_len` bytes (type byte included). A `name`
    /// replaces any queued message with the same name; `tag` is reported by
    /// [`BroadcastQueue::drain_finished`] once the message is done (sent to its
    /// limit or replaced).
    pub fn push(
        &mut self,
        message: Message,
        encoded_len: usize,
        name: Option<Vec<u8>>,
        tag: Option<Tag>,
    ) {
        if let Some(n) = &name
            && let Some(old) = self.by_name.remove(n)
            && let Some(item) = self.items.remove(&old)
        {
            self.forget_len(old.1.0);
            self.finish(item.tag);
        }
        *self.lens.entry(encoded_len).or_default() += 1;
        self.next_id += 1;
        let key = (0, Reverse(encoded_len), Reverse(self.next_id));
        if let Some(n) = &name {
            self.by_name.insert(n.clone(), key);
        }
        self.items
            .insert(key, Box::new(Item { message, name, tag }));
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
    pub fn take(&mut self, overhead: usize, limit: usize, transmit_limit: usize) -> Vec<Message> {
        self.take_sized(overhead, limit, transmit_limit)
            .into_iter()
            .map(|(m, _)| m)
            .collect()
    }

    /// [`BroadcastQueue::take`], returning each message with its encoded length.
    pub fn take_sized(
        &mut self,
        overhead: usize,
        limit: usize,
        transmit_limit: usize,
    ) -> Vec<(Message, usize)> {
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
            let Some(item) = self.items.remove(&key) else {
                break;
            };
            used += overhead + key.1.0;
            if key.0 + 1 >= transmit_limit {
                if let Some(n) = &item.name {
                    self.by_name.remove(n);
                }
                // The last transmit hands the message over instead of a copy.
                self.forget_len(key.1.0);
                self.finish(item.tag);
                out.push((item.message, key.1.0));
            } else {
                out.push((item.message.clone(), key.1.0));
                reinsert.push(((key.0 + 1, key.1, key.2), item));
            }
        }
        for (k, item) in reinsert {
            if let Some(n) = &item.name
                && let Some(slot) = self.by_name.get_mut(n)
            {
                *slot = k;
            }
            self.items.insert(k, item);
        }
        out
    }

    /// Tags of messages finished since the last call.
    pub fn drain_finished(&mut self) -> Vec<Tag> {
        std::mem::take(&mut self.finished)
    }

    /// Drops everything (memberlist `Reset`), reporting tags as finished.
    pub fn clear(&mut self) {
        let items = std::mem::take(&mut self.items);
        self.by_name.clear();
        self.lens.clear();
        for (_, item) in items {
            self.finish(item.tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: usize) -> Message {
        Message::User(vec![b'x'; n])
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
}
