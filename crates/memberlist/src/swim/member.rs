//! The member table: what this node believes about every node, itself included.
//!
//! Members iterate in name order (deterministic) and keep a separate
//! probe order, shuffled on every wrap-around like memberlist's node slice; new
//! members are inserted at a random position of that order so they are probed
//! soon but not predictably (`spec/memberlist.md` §1.10).
//!
//! Every node holds every member, so a cluster of N nodes holds N² entries: the
//! table keeps one copy of each name (shared, also with events and with other
//! tables that got it from the same place), addresses inline, and indexes of
//! 4-byte slot numbers.

use std::fmt;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::wire::message::{NodeState, PushNodeState, ip_from_wire};

/// A member's state, as memberlist's `NodeStateType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Answering probes (or not yet found silent).
    Alive,
    /// Failed a probe; dead unless it refutes before the suspicion timer ends.
    Suspect,
    /// Declared dead by the failure detector.
    Dead,
    /// Left gracefully (a `dead` it sent about itself).
    Left,
}

impl State {
    /// Dead or left: not probed, not a push/pull partner.
    pub fn is_dead_or_left(self) -> bool {
        matches!(self, State::Dead | State::Left)
    }

    /// The push/pull wire value.
    pub(crate) fn to_wire(self) -> NodeState {
        match self {
            State::Alive => NodeState::Alive,
            State::Suspect => NodeState::Suspect,
            State::Dead => NodeState::Dead,
            State::Left => NodeState::Left,
        }
    }
}

/// IP bytes exactly as a node announced them (4, or 16 for IPv6 and IPv4-mapped),
/// kept inline; any other length is kept too (on the heap), since it is relayed
/// unchanged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IpBytes(IpRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum IpRepr {
    /// Up to 16 bytes; the unused tail stays zero, so derived equality holds.
    Inline {
        len: u8,
        bytes: [u8; 16],
    },
    Long(Box<[u8]>),
}

impl IpBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            IpRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IpRepr::Long(b) => b,
        }
    }
}

impl Default for IpBytes {
    fn default() -> Self {
        IpBytes(IpRepr::Inline {
            len: 0,
            bytes: [0; 16],
        })
    }
}

impl From<&[u8]> for IpBytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= 16 {
            let mut bytes = [0; 16];
            bytes[..b.len()].copy_from_slice(b);
            IpBytes(IpRepr::Inline {
                len: b.len() as u8,
                bytes,
            })
        } else {
            IpBytes(IpRepr::Long(b.into()))
        }
    }
}

impl From<Vec<u8>> for IpBytes {
    fn from(b: Vec<u8>) -> Self {
        IpBytes::from(b.as_slice())
    }
}

impl Deref for IpBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for IpBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for IpBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

/// What we know about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node name (Go strings are bytes), shared rather than copied.
    pub name: Arc<[u8]>,
    /// IP bytes exactly as announced (4 or 16); relayed unchanged.
    pub addr: IpBytes,
    /// Gossip port.
    pub port: u16,
    /// Metadata, `None` = Go nil.
    pub meta: Option<Vec<u8>>,
    /// Protocol/delegate versions; zeros when the node sent fewer than 6 bytes.
    pub vsn: [u8; 6],
    /// Last known incarnation.
    pub incarnation: u32,
    /// Current state.
    pub state: State,
    /// When `state` last changed (virtual time of the driver).
    pub state_change: Instant,
}

impl Member {
    /// Where to send packets, if the announced IP bytes are a valid address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        ip_from_wire(&self.addr).map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Highest protocol version the node speaks (`Vsn[1]`).
    pub fn pmax(&self) -> u8 {
        self.vsn[1]
    }

    /// The entry for a push/pull exchange.
    pub(crate) fn to_push_state(&self) -> PushNodeState {
        PushNodeState {
            name: self.name.to_vec(),
            addr: self.addr.to_vec(),
            port: self.port,
            meta: self.meta.clone(),
            incarnation: self.incarnation,
            state: self.state.to_wire(),
            vsn: self.vsn.to_vec(),
        }
    }
}

/// Copies the first six bytes of a wire `Vsn`, or zeros when it is shorter.
pub(crate) fn vsn_array(v: &[u8]) -> Option<[u8; 6]> {
    v.get(..6).and_then(|s| s.try_into().ok())
}

/// All known members with the probe order.
///
/// Members sit in `slots`; a hash index of slot numbers answers lookups by name
/// (the hot path: every gossiped message names a node, and ordered compares of
/// names sharing long prefixes dominated large simulations), a name-ordered list
/// of slot numbers gives the deterministic iteration order, and the probe order
/// holds slot numbers too, so random picks need no lookup at all. Per-state counts
/// make [`Members::count`] O(1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Members {
    slots: Vec<Member>,
    index: HashTable<u32>,
    sorted: Vec<u32>,
    order: Vec<u32>,
    probe_index: usize,
    counts: [usize; 4],
}

fn state_slot(s: State) -> usize {
    match s {
        State::Alive => 0,
        State::Suspect => 1,
        State::Dead => 2,
        State::Left => 3,
    }
}

fn hash_name(name: &[u8]) -> u64 {
    FixedState::default().hash_one(name)
}

/// Slot numbers are `u32` (a table of 4 billion members is not a cluster).
fn slot_id(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Members {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Room for `additional` more members (a join's push/pull or a bootstrap brings
    /// many at once): exactly that when it at least doubles the table, since growing
    /// by doubling would leave up to half of the slots unused; by doubling
    /// otherwise, so a table growing a few members at a time is not copied on
    /// every push/pull.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let len = self.slots.len();
        let want = len + additional;
        if want > self.slots.capacity() {
            let extra = want.max(2 * self.slots.capacity()) - len;
            self.slots.reserve_exact(extra);
            self.sorted.reserve_exact(extra);
            self.order.reserve_exact(extra);
            let slots = &self.slots;
            self.index
                .reserve(additional, |&i| hash_name(&slots[i as usize].name));
        }
    }

    /// Number of entries, dead ones not yet reaped included (memberlist's
    /// `estNumNodes`, which drives every log-scaled limit).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// How many members are in `state`, in O(1) (convergence checks and the
    /// user-broadcast retransmit limit ask this often).
    pub(crate) fn count(&self, state: State) -> usize {
        self.counts[state_slot(state)]
    }

    fn slot_of(&self, name: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash_name(name), |&i| *slots[i as usize].name == *name)
            .map(|&i| i as usize)
    }

    /// Looks a member up by name.
    pub(crate) fn get(&self, name: &[u8]) -> Option<&Member> {
        self.slot_of(name).map(|i| &self.slots[i])
    }

    /// Changes a member in place; the state counts follow whatever `f` does.
    /// (No `&mut Member` is handed out, so the counts cannot go stale.)
    pub(crate) fn update<T>(&mut self, name: &[u8], f: impl FnOnce(&mut Member) -> T) -> Option<T> {
        let i = self.slot_of(name)?;
        let m = &mut self.slots[i];
        let before = m.state;
        let out = f(m);
        debug_assert_eq!(&*m.name, name, "a member's name is its key");
        let after = m.state;
        self.counts[state_slot(before)] -= 1;
        self.counts[state_slot(after)] += 1;
        Some(out)
    }

    /// Every member, ordered by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Member> {
        self.sorted.iter().map(|&i| &self.slots[i as usize])
    }

    /// Adds a new member at a random position of the probe order.
    pub(crate) fn insert_new<R: Rng>(&mut self, m: Member, rng: &mut R) {
        if self.slot_of(&m.name).is_some() {
            // Replaced as a whole, as a map insert would.
            let name = m.name.clone();
            self.update(&name, |old| *old = m);
            return;
        }
        let slot = slot_id(self.slots.len());
        self.counts[state_slot(m.state)] += 1;
        let slots = &self.slots;
        self.index.insert_unique(hash_name(&m.name), slot, |&i| {
            hash_name(&slots[i as usize].name)
        });
        // Names usually arrive in order (a push/pull lists them sorted), so the
        // end is checked first.
        let at = match self.sorted.last() {
            Some(&last) if *slots[last as usize].name < *m.name => self.sorted.len(),
            None => 0,
            _ => self
                .sorted
                .partition_point(|&i| *slots[i as usize].name < *m.name),
        };
        self.sorted.insert(at, slot);
        self.slots.push(m);
        let n = self.order.len();
        self.order.push(slot);
        if n > 0 {
            let off = rng.random_range(0..n);
            self.order.swap(off, n);
        }
    }

    /// The next member to probe: round robin over the shuffled order, skipping
    /// `me` and dead/left members. On wrap-around, members dead or left for longer
    /// than `reap_after` are forgotten and the order is reshuffled.
    pub(crate) fn next_probe_target<R: Rng>(
        &mut self,
        me: &[u8],
        now: Instant,
        reap_after: Duration,
        rng: &mut R,
    ) -> Option<Arc<[u8]>> {
        let mut checked = 0;
        loop {
            if checked >= self.order.len() {
                return None;
            }
            if self.probe_index >= self.order.len() {
                self.reset(now, reap_after, rng);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let m = &self.slots[self.order[self.probe_index] as usize];
            self.probe_index += 1;
            if *m.name == *me || m.state.is_dead_or_left() {
                checked += 1;
                continue;
            }
            return Some(m.name.clone());
        }
    }

    /// Forgets members dead or left for longer than `reap_after` and reshuffles.
    fn reset<R: Rng>(&mut self, now: Instant, reap_after: Duration, rng: &mut R) {
        let reap = |m: &Member| {
            m.state.is_dead_or_left() && now.saturating_duration_since(m.state_change) > reap_after
        };
        if self.slots.iter().any(reap) {
            // Compact the slots and renumber every index; the probe order keeps
            // its relative order, as a retain over names would.
            let mut renumber = vec![u32::MAX; self.slots.len()];
            let old = std::mem::take(&mut self.slots);
            self.slots.reserve_exact(old.len());
            for (i, m) in old.into_iter().enumerate() {
                if reap(&m) {
                    self.counts[state_slot(m.state)] -= 1;
                } else {
                    renumber[i] = slot_id(self.slots.len());
                    self.slots.push(m);
                }
            }
            let slots = &self.slots;
            self.index.clear();
            for (i, m) in slots.iter().enumerate() {
                self.index
                    .insert_unique(hash_name(&m.name), slot_id(i), |&j| {
                        hash_name(&slots[j as usize].name)
                    });
            }
            for list in [&mut self.sorted, &mut self.order] {
                list.retain_mut(|s| {
                    *s = renumber[*s as usize];
                    *s != u32::MAX
                });
            }
        }
        self.order.shuffle(rng);
    }

    /// Every member in probe order (memberlist's node slice order), which is the
    /// order zone-aware routing looks at them in.
    pub(crate) fn iter_probe_order(&self) -> impl Iterator<Item = &Member> {
        self.order.iter().map(|&s| &self.slots[s as usize])
    }

    /// Up to `k` distinct random members for which `pick` is true, chosen like
    /// memberlist's `kRandomNodes` (a shuffle for small tables, bounded random
    /// draws otherwise).
    pub(crate) fn k_random<R: Rng>(
        &self,
        k: usize,
        rng: &mut R,
        pick: impl FnMut(&Member) -> bool,
    ) -> Vec<Arc<[u8]>> {
        let mut out = Vec::with_capacity(k);
        self.k_random_from(&self.order, k, rng, pick, &mut out);
        out
    }

    /// [`Members::k_random`] through a node-selection step (the grafana memberlist
    /// fork's hook, used by zone-aware routing): `preferred`, if given and `pick`
    /// accepts it, comes first; the rest are drawn from the members `candidate`
    /// accepts.
    pub(crate) fn k_random_selected<R: Rng>(
        &self,
        k: usize,
        rng: &mut R,
        candidate: impl Fn(&Member) -> bool,
        preferred: Option<&[u8]>,
        mut pick: impl FnMut(&Member) -> bool,
    ) -> Vec<Arc<[u8]>> {
        let mut out: Vec<Arc<[u8]>> = Vec::with_capacity(k);
        if k == 0 {
            return out;
        }
        if let Some(p) = preferred.and_then(|p| self.get(p))
            && pick(p)
        {
            out.push(p.name.clone());
        }
        let pool: Vec<u32> = self
            .order
            .iter()
            .copied()
            .filter(|&s| candidate(&self.slots[s as usize]))
            .collect();
        let first = out.first().cloned();
        self.k_random_from(
            &pool,
            k,
            rng,
            |m| first.as_deref() != Some(&*m.name) && pick(m),
            &mut out,
        );
        out
    }

    /// Fills `out` up to `k` names drawn from the slots in `pool`.
    fn k_random_from<R: Rng>(
        &self,
        pool: &[u32],
        k: usize,
        rng: &mut R,
        mut pick: impl FnMut(&Member) -> bool,
        out: &mut Vec<Arc<[u8]>>,
    ) {
        let n = pool.len();
        if out.len() >= k || n == 0 {
            return;
        }
        if n < k * 3 {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.shuffle(rng);
            for i in idx {
                if out.len() >= k {
                    break;
                }
                let m = &self.slots[pool[i] as usize];
                if pick(m) {
                    out.push(m.name.clone());
                }
            }
            return;
        }
        let mut taken: Vec<u32> = Vec::with_capacity(k);
        for _ in 0..3 * n {
            if out.len() >= k {
                break;
            }
            let slot = pool[rng.random_range(0..n)];
            if taken.contains(&slot) {
                continue;
            }
            let m = &self.slots[slot as usize];
            if pick(m) {
                taken.push(slot);
                out.push(m.name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn member(name: &str, state: State, at: Instant) -> Member {
        Member {
            name: name.as_bytes().into(),
            addr: vec![10, 0, 0, 1].into(),
            port: 7946,
            meta: None,
            vsn: [1, 5, 2, 0, 0, 0],
            incarnation: 1,
            state,
            state_change: at,
        }
    }

    #[test]
    fn probing_visits_every_live_member_once_per_round_and_skips_self_and_dead() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(1);
        let mut ms = Members::new();
        for n in ["me", "a", "b", "c"] {
            ms.insert_new(member(n, State::Alive, t0), &mut rng);
        }
        ms.insert_new(member("dead", State::Dead, t0), &mut rng);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(
                ms.next_probe_target(b"me", t0, Duration::from_secs(30), &mut rng)
                    .unwrap(),
            );
        }
        seen.sort();
        let seen: Vec<&[u8]> = seen.iter().map(|n| &**n).collect();
        assert_eq!(seen, [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn dead_members_are_reaped_on_wrap_around_only_after_the_grace_time() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(2);
        let mut ms = Members::new();
        ms.insert_new(member("me", State::Alive, t0), &mut rng);
        ms.insert_new(member("a", State::Alive, t0), &mut rng);
        ms.insert_new(member("gone", State::Left, t0), &mut rng);
        let grace = Duration::from_secs(30);
        for _ in 0..3 {
            ms.next_probe_target(b"me", t0 + grace, grace, &mut rng);
        }
        assert!(
            ms.get(b"gone").is_some(),
            "kept while within the grace time"
        );
        for _ in 0..3 {
            ms.next_probe_target(b"me", t0 + grace * 2, grace, &mut rng);
        }
        assert!(ms.get(b"gone").is_none());
        assert_eq!(ms.len(), 2);
    }

    #[test]
    fn state_counts_follow_updates_and_reaps_and_lookups_survive_renumbering() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(4);
        let mut ms = Members::new();
        for n in ["me", "a", "b", "c", "d"] {
            ms.insert_new(member(n, State::Alive, t0), &mut rng);
        }
        assert_eq!(ms.count(State::Alive), 5);
        ms.update(b"b", |m| m.state = State::Suspect);
        ms.update(b"a", |m| m.state = State::Left);
        assert_eq!(ms.update(b"nobody", |m| m.state = State::Dead), None);
        assert_eq!(
            [State::Alive, State::Suspect, State::Dead, State::Left].map(|s| ms.count(s)),
            [3, 1, 0, 1]
        );
        // Wrap around long after "a" left: it is reaped, the rest renumbered.
        let grace = Duration::from_secs(30);
        for _ in 0..10 {
            ms.next_probe_target(b"me", t0 + grace * 2, grace, &mut rng);
        }
        assert!(ms.get(b"a").is_none());
        assert_eq!(ms.count(State::Left), 0);
        assert_eq!(ms.len(), 4);
        for n in ["me", "b", "c", "d"] {
            assert_eq!(ms.get(n.as_bytes()).map(|m| &*m.name), Some(n.as_bytes()));
        }
        let names: Vec<&[u8]> = ms.iter().map(|m| &*m.name).collect();
        assert_eq!(names, [&b"b"[..], b"c", b"d", b"me"], "name order kept");
        for _ in 0..8 {
            let p = ms.next_probe_target(b"me", t0, grace, &mut rng);
            assert!(matches!(p.as_deref(), Some(b"b" | b"c" | b"d")), "{p:?}");
        }
    }

    #[test]
    fn ip_bytes_keep_any_length_and_compare_by_content() {
        let v4 = IpBytes::from(&[10u8, 0, 0, 1][..]);
        let mapped = IpBytes::from(vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
        let odd = IpBytes::from(vec![7u8; 21]);
        assert_eq!(&*v4, &[10, 0, 0, 1]);
        assert_eq!(mapped.len(), 16);
        assert_eq!(&*odd, &[7u8; 21][..], "longer than 16 bytes is kept whole");
        assert_eq!(IpBytes::from(&[][..]), IpBytes::default());
        assert_ne!(v4, IpBytes::from(&[10u8, 0, 0, 1, 0][..]), "length counts");
        assert_eq!(format!("{v4:?}"), format!("{:?}", [10u8, 0, 0, 1]));
    }

    #[test]
    fn reserving_for_a_few_members_grows_by_doubling_and_for_many_exactly() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(5);
        let mut ms = Members::new();
        ms.reserve(1000);
        assert_eq!(ms.slots.capacity(), 1000);
        for i in 0..1000 {
            ms.insert_new(member(&format!("n{i:04}"), State::Alive, t0), &mut rng);
        }
        ms.reserve(1);
        assert!(ms.slots.capacity() >= 2000, "{}", ms.slots.capacity());
        let names: Vec<&[u8]> = ms.iter().map(|m| &*m.name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "name order kept");
    }

    #[test]
    fn k_random_returns_distinct_members_matching_the_filter() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(3);
        let mut ms = Members::new();
        for i in 0..50 {
            ms.insert_new(member(&format!("n{i}"), State::Alive, t0), &mut rng);
        }
        let got = ms.k_random(3, &mut rng, |m| *m.name != *b"n0");
        assert_eq!(got.len(), 3);
        let mut d = got.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 3);
        assert!(!got.iter().any(|n| **n == *b"n0"));
        assert!(ms.k_random(3, &mut rng, |_| false).is_empty());
    }
}
