//! A deterministic simulator: N [`crate::swim::Core`]s on a simulated network with
//! virtual time.
//!
//! Like quinn-proto's test `Pair`, the simulator jumps from one instant to the next
//! (the earliest message arrival or core deadline) and drives every core through
//! its `handle_*` / `poll_*` contract. Every packet and push/pull goes through the
//! real wire encoder and decoder, so the codec is exercised on every hop.
//!
//! Determinism: one seed feeds a [`StdRng`] that draws link behaviour and seeds
//! each core's own RNG; all collections iterate in a fixed order; the only clock
//! read is the base [`Instant`], and only offsets from it matter. A run with the
//! same seed and the same calls replays exactly. Tests print the seed
//! (see [`seed_from_env`]) so a failure can be replayed with `SIM_SEED`.
//!
//! Modelled: per-link loss, delay, duplication, partitions, crashes and restarts.
//! Streams are reliable (TCP) but fail as a whole with
//! [`LinkConfig::stream_failure`] and across partitions. Not modelled: bandwidth,
//! compression, labels, the dskit TCP frame, and the KV delegate (push/pull user
//! state is a fixed per-node byte string, see [`Sim::set_user_state`]), except for
//! [`Sim::start_ring_load`]: every node heartbeats its own entry of a stand-in ring,
//! merged newer-timestamp-wins and gossiped on like dskit's KV does.
//!
//! Two shortcuts make the ring load affordable at thousands of nodes, both off by
//! default and both leaving the core, its queues and the counted bytes as they are:
//! [`Sim::shared_ring_entries`] sends each ring entry as its instance index and
//! timestamp only and counts the padding it stands for, and
//! [`Sim::assume_converged`] starts every node knowing every other one alive
//! instead of replaying the joins.

pub mod network;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use network::{Delivery, LinkConfig, Network, Payload};

use crate::swim::{Config, Core, Cover, Event, LocalNode, Member, Origin, Transmit, UserBroadcast};
use crate::wire::message::IpForm;
use crate::wire::msgpack::write_int;
use crate::wire::packet::{Packet, decode_packet, encode_packet};
use crate::wire::stream::{StreamMessage, decode_stream, encode_stream};
use crate::wire::{Dialect, Message};

/// The seed to use: `SIM_SEED` from the environment if set, else `default`.
/// Printed, so a failing test shows it (the harness shows stdout of failures).
pub fn seed_from_env(default: u64) -> u64 {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    println!("sim seed = {seed} (replay with SIM_SEED={seed})");
    seed
}

/// An event observed at one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// Node index.
    pub node: usize,
    /// The event.
    pub event: Event,
}

/// Traffic counters of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Encoded bytes sent in packets.
    pub packet_bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Encoded bytes sent on streams (push/pull both ways).
    pub stream_bytes: u64,
    /// Packets or streams received that failed to decode (a codec bug).
    pub decode_errors: u64,
}

/// Traffic on one directed link (sender → receiver), by kind: what zone-aware routing
/// is judged on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Probe packets (ping, indirect ping, ack, nack; with whatever broadcasts were
    /// piggybacked on them).
    pub probe_packets: u64,
    /// Encoded bytes of the probe packets.
    pub probe_bytes: u64,
    /// Gossip packets (membership and user broadcasts only).
    pub gossip_packets: u64,
    /// Encoded bytes of the gossip packets.
    pub gossip_bytes: u64,
    /// Push/pull streams opened by the sender (periodic and join).
    pub push_pulls: u64,
    /// Encoded push/pull bytes sent (requests by the initiator, replies by the
    /// responder).
    pub stream_bytes: u64,
}

impl LinkStats {
    /// Every byte sent on the link.
    pub fn bytes(&self) -> u64 {
        self.probe_bytes + self.gossip_bytes + self.stream_bytes
    }

    fn add(&mut self, o: &LinkStats) {
        self.probe_packets += o.probe_packets;
        self.probe_bytes += o.probe_bytes;
        self.gossip_packets += o.gossip_packets;
        self.gossip_bytes += o.gossip_bytes;
        self.push_pulls += o.push_pulls;
        self.stream_bytes += o.stream_bytes;
    }
}

/// True for a packet whose first message belongs to a probe (memberlist puts the
/// probe message first and piggybacks broadcasts after it).
fn is_probe(m: &Message) -> bool {
    match m {
        Message::Compound(c) => c.parts.first().is_some_and(is_probe),
        Message::Compressed(c) => is_probe(&c.inner),
        Message::Ping(_) | Message::IndirectPing(_) | Message::Ack(_) | Message::Nack(_) => true,
        _ => false,
    }
}

struct SimNode {
    name: Vec<u8>,
    /// This node's configuration (nodes may differ, e.g. in zone and role).
    config: Config,
    addr: SocketAddr,
    core: Option<Core<StdRng>>,
    /// The deadline we last queued a timer entry for.
    scheduled: Option<Instant>,
    user_state: Vec<u8>,
    stats: NodeStats,
    /// User messages already seen (for [`Sim::rebroadcast_user_messages`]).
    seen: BTreeSet<Vec<u8>>,
    /// With a ring load: this node's view of every instance's last heartbeat.
    ring: Option<RingView>,
}

/// The ring load of [`Sim::start_ring_load`]: what each instance announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLoad {
    /// Heartbeat period of every instance (dskit's ring default: 5 s).
    pub period: Duration,
    /// Encoded bytes of one instance's entry in a message (a `ringDesc` instance with
    /// 128 random tokens and its addresses is about 700 bytes).
    pub entry_len: usize,
}

/// The store key of the stand-in ring.
const RING_KEY: &str = "ring";
/// First byte of a stand-in ring message.
const RING_MAGIC: u8 = b'R';
/// First byte of a shared-entry ring message: the same header and entries without
/// the padding (see [`Sim::shared_ring_entries`]).
const RING_SHARED: u8 = b'r';
/// Bytes of one entry's id and timestamp.
const ENTRY_HEAD: usize = 12;

/// One node's copy of the stand-in ring: heartbeat timestamps (virtual ms + 1, 0 =
/// never heard) by instance index, and the key's local version.
#[derive(Debug, Clone)]
struct RingView {
    ts: Vec<u64>,
    version: u64,
}

impl RingView {
    /// Newer-timestamp-wins merge of the entries in `body` (see [`ring_body`]);
    /// fills `changed` with those that changed (timestamps are compared before
    /// anything else is touched).
    fn merge(&mut self, body: &[u8], changed: &mut Vec<(u32, u64)>) {
        changed.clear();
        for (i, t) in ring_entries(body) {
            if let Some(slot) = self.ts.get_mut(i as usize)
                && t > *slot
            {
                *slot = t;
                changed.push((i, t));
            }
        }
    }

    /// Every entry heard of, as a message of the given form.
    fn encode(&self, entry_len: usize, shared: bool) -> Vec<u8> {
        let n = self.ts.iter().filter(|t| **t > 0).count();
        let mut b = ring_header(n, entry_len, shared);
        for (j, &t) in self.ts.iter().enumerate() {
            if t > 0 {
                b.extend_from_slice(&(j as u32).to_be_bytes());
                b.extend_from_slice(&t.to_be_bytes());
            }
        }
        if !shared {
            b.resize(b.len() + n * entry_len.saturating_sub(ENTRY_HEAD), 0);
        }
        b
    }
}

fn ring_header(n: usize, entry_len: usize, shared: bool) -> Vec<u8> {
    let per_entry = if shared {
        ENTRY_HEAD
    } else {
        ENTRY_HEAD.max(entry_len)
    };
    let mut b = Vec::with_capacity(5 + n * per_entry);
    b.push(if shared { RING_SHARED } else { RING_MAGIC });
    b.extend_from_slice(&(n as u32).to_be_bytes());
    b
}

/// A stand-in ring message (a change or a full state): magic, count, then per entry
/// its instance index and timestamp, then `entry_len - 12` padding bytes per entry so
/// the sizes are those of real ring changes.
/// With `shared`, the same message without the padding: the entries are the
/// shared part and only their (index, timestamp) handles travel.
fn encode_ring(entries: &[(u32, u64)], entry_len: usize, shared: bool) -> Vec<u8> {
    let mut b = ring_header(entries.len(), entry_len, shared);
    for &(i, t) in entries {
        b.extend_from_slice(&i.to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
    }
    if !shared {
        b.resize(
            b.len() + entries.len() * entry_len.saturating_sub(ENTRY_HEAD),
            0,
        );
    }
    b
}

/// The entries of a ring message of either form (index and timestamp, 12 bytes
/// each), without copying; `None` for anything else.
fn ring_body(b: &[u8]) -> Option<&[u8]> {
    let (&magic, rest) = b.split_first()?;
    if (magic != RING_MAGIC && magic != RING_SHARED) || rest.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    rest.get(4..4 + n.checked_mul(ENTRY_HEAD)?)
}

fn ring_entries(body: &[u8]) -> impl Iterator<Item = (u32, u64)> + '_ {
    body.chunks_exact(ENTRY_HEAD).map(|c| {
        let i = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let t = u64::from_be_bytes([c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]]);
        (i, t)
    })
}

/// Bytes a shared-entry ring message leaves out: what its full form would add.
fn ring_padding(b: &[u8], entry_len: usize) -> usize {
    match b.first() {
        Some(&RING_SHARED) => {
            ring_body(b).map_or(0, |body| body.len() / ENTRY_HEAD)
                * entry_len.saturating_sub(ENTRY_HEAD)
        }
        _ => 0,
    }
}

/// Padding left out by every shared-entry ring message inside a packet.
fn packet_padding(m: &Message, entry_len: usize) -> usize {
    match m {
        Message::Compound(c) => c.parts.iter().map(|p| packet_padding(p, entry_len)).sum(),
        Message::Compressed(c) => packet_padding(&c.inner, entry_len),
        Message::User(b) => ring_padding(b, entry_len),
        _ => 0,
    }
}

/// Encoded length of the integer `v` in a push/pull header.
fn int_len(v: usize) -> usize {
    let mut b = Vec::with_capacity(9);
    write_int(&mut b, v as i64, Dialect::V2);
    b.len()
}

/// Stream bytes a push/pull with shared-entry user state `state` leaves out: the
/// padding, and the longer `UserStateLen` the full state would need.
fn push_pull_padding(state: &[u8], entry_len: usize) -> usize {
    let pad = ring_padding(state, entry_len);
    if pad == 0 {
        return 0;
    }
    pad + int_len(state.len() + pad) - int_len(state.len())
}

/// The KV stand-in for one received ring message: merge, then gossip on only
/// what changed, covering older news of the same instances.
fn relay_ring(
    core: &mut Core<StdRng>,
    view: &mut RingView,
    load: RingLoad,
    shared: bool,
    bytes: Vec<u8>,
    changed: &mut Vec<(u32, u64)>,
) -> Result<(), ()> {
    let body = ring_body(&bytes).ok_or(())?;
    let total = body.len() / ENTRY_HEAD;
    view.merge(body, changed);
    if changed.is_empty() {
        return Ok(());
    }
    view.version += 1;
    let cover = ring_cover(changed, view.version);
    let body = if changed.len() == total {
        bytes
    } else {
        encode_ring(changed, load.entry_len, shared)
    };
    queue_ring(core, load, body, Origin::Relayed, cover);
    Ok(())
}

/// Queues a ring message, counted at the length of its full form.
fn queue_ring(
    core: &mut Core<StdRng>,
    load: RingLoad,
    bytes: Vec<u8>,
    origin: Origin,
    cover: Cover,
) {
    let wire_len = bytes.len() + ring_padding(&bytes, load.entry_len);
    let b = UserBroadcast {
        bytes,
        origin,
        cover: Some(cover),
    };
    if bytes_are_shared(&b.bytes) {
        core.queue_user_broadcast_as(b, wire_len);
    } else {
        core.queue_user_broadcast(b);
    }
}

fn bytes_are_shared(b: &[u8]) -> bool {
    b.first() == Some(&RING_SHARED)
}

fn ring_cover(entries: &[(u32, u64)], version: u64) -> Cover {
    Cover::new(
        RING_KEY,
        entries.iter().map(|(i, _)| i.to_string()).collect(),
        version,
    )
}

/// N nodes, a network and a virtual clock.
pub struct Sim {
    epoch: Instant,
    now: Instant,
    rng: StdRng,
    nodes: Vec<SimNode>,
    /// Traffic per directed link.
    links: BTreeMap<(usize, usize), LinkStats>,
    /// Lookups only (never iterated, so hashing keeps determinism).
    by_addr: HashMap<SocketAddr, usize>,
    /// The network (adjust `net.link` at any time).
    pub net: Network,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    events: Vec<SimEvent>,
    /// Whether membership events are recorded (user and leave events always are).
    pub record_membership: bool,
    /// Whether traffic is counted per directed link ([`Sim::link_stats`]); on by
    /// default. Off, the per-node counters still count everything, and a large run
    /// does not keep an entry for every pair of nodes that ever talked.
    pub record_links: bool,
    /// Stand-in for dskit's KV delegate: a node receiving a user message for the
    /// first time queues it for re-broadcast, as the KV re-gossips every change it
    /// merged (`spec/memberlist.md` §2.6). memberlist itself never re-gossips
    /// user messages. On by default.
    pub rebroadcast_user_messages: bool,
    /// The ring load, once started, and when (virtual ms + 1).
    ring_load: Option<RingLoad>,
    ring_started: u64,
    /// Next heartbeat of each node.
    heartbeats: BinaryHeap<Reverse<(Instant, usize)>>,
    /// With a ring load: ring entries are shared, not copied. A message carries
    /// each entry's instance index and timestamp only (the entry itself is
    /// implied by them, as an interned handle), but the queues, the packet
    /// budgets and the byte counters see it at the length of its full form
    /// (`entry_len` per entry), so the results are the same as without it, for
    /// less copying. Off by default; set it before [`Sim::start_ring_load`].
    pub shared_ring_entries: bool,
    /// Scratch for the entries a merge changed.
    changed: Vec<(u32, u64)>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.elapsed())
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// The address of node `i`: 10.x.y.z:7946.
pub fn node_addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).unwrap_or(u32::MAX) + 1;
    let ip = Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff));
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

/// The name of node `i`.
pub fn node_name(i: usize) -> Vec<u8> {
    format!("node-{i:05}").into_bytes()
}

impl Sim {
    /// `n` started but unjoined nodes (each knows only itself).
    pub fn new(n: usize, seed: u64, config: Config, link: LinkConfig) -> Self {
        Sim::with_configs(vec![config; n], seed, link)
    }

    /// One started but unjoined node per configuration (e.g. each with its own zone
    /// and role for zone-aware routing); node `i` runs `configs[i]`.
    pub fn with_configs(configs: Vec<Config>, seed: u64, link: LinkConfig) -> Self {
        let n = configs.len();
        let epoch = Instant::now();
        let mut sim = Sim {
            epoch,
            now: epoch,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::with_capacity(n),
            links: BTreeMap::new(),
            by_addr: HashMap::with_capacity(n),
            net: Network::new(link),
            timers: BinaryHeap::new(),
            events: Vec::new(),
            record_membership: true,
            record_links: true,
            rebroadcast_user_messages: true,
            ring_load: None,
            ring_started: 0,
            heartbeats: BinaryHeap::new(),
            shared_ring_entries: false,
            changed: Vec::new(),
        };
        for (i, config) in configs.into_iter().enumerate() {
            let addr = node_addr(i);
            sim.by_addr.insert(addr, i);
            sim.nodes.push(SimNode {
                name: node_name(i),
                config,
                addr,
                core: None,
                scheduled: None,
                user_state: Vec::new(),
                stats: NodeStats::default(),
                seen: BTreeSet::new(),
                ring: None,
            });
            sim.start(i);
        }
        sim
    }

    fn start(&mut self, i: usize) {
        let local = LocalNode {
            name: self.nodes[i].name.clone(),
            addr: self.nodes[i].addr,
            ip_form: IpForm::Mapped,
            meta: None,
        };
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        // The config was validated by the caller's choice; a failure here is a bug
        // in the test setup, reported loudly.
        let core = Core::new(self.now, self.nodes[i].config.clone(), local, rng)
            .unwrap_or_else(|e| panic!("invalid simulator config: {e}"));
        self.nodes[i].core = Some(core);
        self.nodes[i].scheduled = None;
        self.drain(i);
    }

    /// Number of nodes (crashed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a simulation without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Node `i`'s core, unless crashed.
    pub fn core(&self, i: usize) -> Option<&Core<StdRng>> {
        self.nodes.get(i)?.core.as_ref()
    }

    /// Node `i`'s traffic counters.
    pub fn stats(&self, i: usize) -> NodeStats {
        self.nodes[i].stats
    }

    /// Traffic on the link from node `from` to node `to`.
    pub fn link_stats(&self, from: usize, to: usize) -> LinkStats {
        self.links.get(&(from, to)).copied().unwrap_or_default()
    }

    /// Traffic summed over every link `keep(from, to)` accepts.
    pub fn traffic_where(&self, mut keep: impl FnMut(usize, usize) -> bool) -> LinkStats {
        let mut sum = LinkStats::default();
        for (&(a, b), l) in &self.links {
            if keep(a, b) {
                sum.add(l);
            }
        }
        sum
    }

    /// Forgets the traffic counted so far (e.g. to measure only after convergence).
    pub fn reset_link_stats(&mut self) {
        self.links.clear();
    }

    /// Sets the push/pull user state node `i` sends.
    pub fn set_user_state(&mut self, i: usize, state: Vec<u8>) {
        self.nodes[i].user_state = state;
    }

    /// Starts the ring load: from now on every node heartbeats its own entry every
    /// `load.period` (first beats spread over one period) into its local queue; a
    /// node merges what it receives by newer timestamp and gossips on only what
    /// changed, covering older news of the same instances (dskit's KV, §2.6–2.8);
    /// push/pull carries every node's whole view. Replaces the
    /// [`Sim::rebroadcast_user_messages`] stand-in, and user messages are no longer
    /// recorded as events.
    pub fn start_ring_load(&mut self, load: RingLoad) {
        let n = self.nodes.len();
        self.ring_load = Some(load);
        self.ring_started = self.elapsed().as_millis() as u64 + 1;
        let period = u64::try_from(load.period.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        for i in 0..n {
            self.nodes[i].ring = Some(RingView {
                ts: vec![0; n],
                version: 0,
            });
            let phase = Duration::from_nanos(self.rng.next_u64() % period);
            self.heartbeats.push(Reverse((self.now + phase, i)));
        }
    }

    /// With a ring load, the oldest heartbeat any running node holds of any running
    /// instance (`now − timestamp`), with its observer and instance; `None` without
    /// a load. An instance not heard of at all counts from the start of the load.
    pub fn ring_staleness(&self) -> Option<(Duration, usize, usize)> {
        self.ring_load?;
        let now = self.elapsed().as_millis() as u64 + 1;
        let running = self.running();
        let mut worst = (0u64, 0usize, 0usize);
        for &i in &running {
            let Some(view) = &self.nodes[i].ring else {
                continue;
            };
            for &j in &running {
                let age = now.saturating_sub(view.ts[j].max(self.ring_started));
                if age > worst.0 {
                    worst = (age, i, j);
                }
            }
        }
        Some((Duration::from_millis(worst.0), worst.1, worst.2))
    }

    /// Node `i` heartbeats now: its entry gets the current time and goes into its
    /// local queue.
    fn heartbeat(&mut self, i: usize) {
        let Some(load) = self.ring_load else { return };
        let t = self.elapsed().as_millis() as u64 + 1;
        let node = &mut self.nodes[i];
        let (Some(core), Some(view)) = (node.core.as_mut(), node.ring.as_mut()) else {
            return;
        };
        let entry = [(i as u32, t)];
        if let Some(slot) = view.ts.get_mut(i) {
            *slot = (*slot).max(t);
        }
        view.version += 1;
        let bytes = encode_ring(&entry, load.entry_len, self.shared_ring_entries);
        queue_ring(
            core,
            load,
            bytes,
            Origin::Local,
            ring_cover(&entry, view.version),
        );
        self.drain(i);
    }

    /// Starts the cluster converged: every running node learns every other running
    /// node alive, as a finished join would have taught it, without the news of
    /// each join being gossiped (see [`Core::assume_converged`]). For large
    /// simulations that measure the steady state rather than the joins.
    pub fn assume_converged(&mut self) {
        let now = self.now;
        // Each node's own entry, its name shared by every table.
        let members: Vec<Member> = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .flat_map(|c| c.member(c.name()).cloned())
            .collect();
        for i in 0..self.nodes.len() {
            if let Some(core) = self.nodes[i].core.as_mut() {
                core.assume_converged(now, &members);
            }
            self.drain(i);
        }
    }

    /// Runs a command on node `i` at the current instant, then drains its outputs.
    pub fn command<T>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Core<StdRng>, Instant) -> T,
    ) -> Option<T> {
        let now = self.now;
        let out = f(self.nodes[i].core.as_mut()?, now);
        self.drain(i);
        Some(out)
    }

    /// Node `i` broadcasts a user message (as the KV would for a local change);
    /// it will not re-broadcast the message when it comes back.
    pub fn broadcast(&mut self, i: usize, bytes: Vec<u8>) {
        self.nodes[i].seen.insert(bytes.clone());
        self.command(i, |c, _| c.queue_broadcast(bytes));
    }

    /// Node `i` joins through the given seed nodes.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&s| self.nodes[s].addr).collect();
        self.command(i, |c, now| c.join(now, &addrs));
    }

    /// Every node but `seed` joins through `seed`, `gap` apart (nodes starting one after
    /// another, as a rollout starts them).
    pub fn join_all_through(&mut self, seed: usize, gap: Duration) {
        for i in (0..self.nodes.len()).filter(|&i| i != seed) {
            self.join(i, &[seed]);
            self.run_for(gap);
        }
    }

    /// Runs in steps of `step`, at most `steps` of them, until `done` holds; after each
    /// step a node that knows no other member joins through `seed` again (dskit's join
    /// retries: a failed join push/pull leaves a node alone). Returns the number of steps
    /// after which `done` held.
    pub fn run_until_joined(
        &mut self,
        seed: usize,
        step: Duration,
        steps: u32,
        done: impl Fn(&Sim) -> bool,
    ) -> Option<u32> {
        for n in 1..=steps {
            self.run_for(step);
            if done(self) {
                return Some(n);
            }
            for i in (0..self.nodes.len()).filter(|&i| i != seed) {
                if self.core(i).is_some_and(|c| c.num_alive() < 2) {
                    self.join(i, &[seed]);
                }
            }
        }
        None
    }

    /// Crashes node `i`: its state is lost, messages to it vanish.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].core = None;
        self.nodes[i].scheduled = None;
    }

    /// Restarts a crashed node with a fresh state (same name and address) and
    /// joins it through `seeds`.
    pub fn restart(&mut self, i: usize, seeds: &[usize]) {
        self.nodes[i].seen.clear();
        if let Some(view) = &mut self.nodes[i].ring {
            view.ts.fill(0);
            view.version = 0;
        }
        self.start(i);
        self.join(i, seeds);
    }

    /// Takes the recorded events.
    pub fn take_events(&mut self) -> Vec<SimEvent> {
        std::mem::take(&mut self.events)
    }

    /// Advances virtual time by `d`, processing everything due.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Processes arrivals and timers in time order until `end`.
    pub fn run_until(&mut self, end: Instant) {
        loop {
            let arrival = self.net.next_arrival();
            let timer = self.next_timer();
            let beat = self.heartbeats.peek().map(|Reverse((t, _))| *t);
            let t = match [arrival, timer, beat].into_iter().flatten().min() {
                None => break,
                Some(t) => t,
            };
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            if beat == Some(t) {
                if let (Some(Reverse((_, i))), Some(load)) = (self.heartbeats.pop(), self.ring_load)
                {
                    self.heartbeats.push(Reverse((t + load.period, i)));
                    self.heartbeat(i);
                }
            } else if arrival == Some(t) {
                if let Some(d) = self.net.pop() {
                    self.deliver(d);
                }
            } else if let Some(Reverse((_, i))) = self.timers.pop() {
                let now = self.now;
                self.nodes[i].scheduled = None;
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.handle_timeout(now);
                }
                self.drain(i);
            }
        }
        self.now = self.now.max(end);
    }

    /// The earliest valid timer entry, dropping stale ones.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.nodes[i].scheduled == Some(t) && self.nodes[i].core.is_some() {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        let from_addr = self.nodes[d.from].addr;
        let to = d.to;
        let (user_state, state_pad) = self.user_state_of(to);
        let Some(core) = self.nodes[to].core.as_mut() else {
            return;
        };
        match d.payload {
            Payload::Packet(bytes) => match decode_packet(&bytes) {
                Ok(p) => core.handle_packet(now, from_addr, p.message),
                Err(_) => self.nodes[to].stats.decode_errors += 1,
            },
            Payload::PushPullRequest(bytes) => {
                let Some(req) = decode_push_pull(&bytes) else {
                    self.nodes[to].stats.decode_errors += 1;
                    return;
                };
                // memberlist answers first, then merges.
                let mut reply = core.push_pull_reply(req.join);
                reply.user_state = user_state;
                let _ = core.handle_push_pull(now, from_addr, req);
                if let Some(bytes) = encode_push_pull(reply) {
                    let len = (bytes.len() + state_pad) as u64;
                    self.nodes[to].stats.stream_bytes += len;
                    if self.record_links {
                        self.links.entry((to, d.from)).or_default().stream_bytes += len;
                    }
                    self.net.send_stream(
                        &mut self.rng,
                        now,
                        to,
                        d.from,
                        Payload::PushPullReply(bytes),
                    );
                }
            }
            Payload::PushPullReply(bytes) => match decode_push_pull(&bytes) {
                Some(reply) => {
                    let _ = core.handle_push_pull(now, from_addr, reply);
                }
                None => self.nodes[to].stats.decode_errors += 1,
            },
        }
        self.drain(to);
    }

    /// What node `i` sends as push/pull user state: its whole ring view with a ring
    /// load, else the fixed bytes set with [`Sim::set_user_state`]; with the stream
    /// bytes shared entries leave out.
    fn user_state_of(&self, i: usize) -> (Vec<u8>, usize) {
        match (&self.nodes[i].ring, self.ring_load) {
            (Some(view), Some(load)) => {
                let state = view.encode(load.entry_len, self.shared_ring_entries);
                let pad = push_pull_padding(&state, load.entry_len);
                (state, pad)
            }
            _ => (self.nodes[i].user_state.clone(), 0),
        }
    }

    /// Sends node `i`'s transmits, records its events and reschedules its timer.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        let elapsed = self.elapsed();
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = core.poll_transmit() {
            out.push(t);
        }
        while let Some(event) = core.poll_event() {
            let event = match (node.ring.as_mut(), self.ring_load) {
                // The KV stand-in: merge, gossip on only the change.
                (Some(view), Some(load)) => match event {
                    Event::UserMessage { bytes, .. } | Event::RemoteState { state: bytes, .. } => {
                        let shared = self.shared_ring_entries;
                        if relay_ring(core, view, load, shared, bytes, &mut self.changed).is_err() {
                            node.stats.decode_errors += 1;
                        }
                        continue;
                    }
                    other => other,
                },
                _ => event,
            };
            if self.rebroadcast_user_messages
                && let Event::UserMessage { bytes, .. } = &event
                && node.seen.insert(bytes.clone())
            {
                core.queue_broadcast(bytes.clone());
            }
            let keep = self.record_membership
                || matches!(
                    event,
                    Event::UserMessage { .. }
                        | Event::RemoteState { .. }
                        | Event::LeaveBroadcastDone
                );
            if keep {
                self.events.push(SimEvent {
                    at: elapsed,
                    node: i,
                    event,
                });
            }
        }
        let deadline = core.poll_timeout().map(|t| t.max(now));
        if deadline != node.scheduled {
            node.scheduled = deadline;
            if let Some(t) = deadline {
                self.timers.push(Reverse((t, i)));
            }
        }
        for t in out {
            let Some(&to) = self.by_addr.get(&t.to()) else {
                continue;
            };
            match t {
                Transmit::Packet { message, crc, .. } => {
                    let probe = is_probe(&message);
                    let pad = match (self.shared_ring_entries, self.ring_load) {
                        (true, Some(load)) => packet_padding(&message, load.entry_len),
                        _ => 0,
                    };
                    let p = Packet {
                        label: None,
                        crc,
                        message,
                    };
                    let Ok(bytes) = encode_packet(&p) else {
                        self.nodes[i].stats.decode_errors += 1;
                        continue;
                    };
                    let len = (bytes.len() + pad) as u64;
                    let s = &mut self.nodes[i].stats;
                    s.packets += 1;
                    s.packet_bytes += len;
                    let mut scratch = LinkStats::default();
                    let l = if self.record_links {
                        self.links.entry((i, to)).or_default()
                    } else {
                        &mut scratch
                    };
                    if probe {
                        l.probe_packets += 1;
                        l.probe_bytes += len;
                    } else {
                        l.gossip_packets += 1;
                        l.gossip_bytes += len;
                    }
                    self.net.send_packet(&mut self.rng, now, i, to, bytes);
                }
                Transmit::PushPull { mut request, .. } => {
                    let (state, pad) = self.user_state_of(i);
                    request.user_state = state;
                    let Some(bytes) = encode_push_pull(request) else {
                        continue;
                    };
                    let len = (bytes.len() + pad) as u64;
                    self.nodes[i].stats.stream_bytes += len;
                    let mut scratch = LinkStats::default();
                    let l = if self.record_links {
                        self.links.entry((i, to)).or_default()
                    } else {
                        &mut scratch
                    };
                    l.push_pulls += 1;
                    l.stream_bytes += len;
                    self.net.send_stream(
                        &mut self.rng,
                        now,
                        i,
                        to,
                        Payload::PushPullRequest(bytes),
                    );
                }
            }
        }
    }

    /// Indices of nodes that are running.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].core.is_some())
            .collect()
    }

    /// The name of node `i`.
    pub fn name(&self, i: usize) -> &[u8] {
        &self.nodes[i].name
    }
}

fn encode_push_pull(pp: crate::wire::message::PushPull) -> Option<Vec<u8>> {
    let m = StreamMessage {
        label: None,
        message: Message::PushPull(pp),
    };
    encode_stream(&m, Dialect::V2).ok()
}

fn decode_push_pull(bytes: &[u8]) -> Option<crate::wire::message::PushPull> {
    let (m, _) = decode_stream(bytes).ok()??;
    // Unwrap by value: a push/pull carries every member, too big to copy.
    let mut m = m.message;
    while let Message::Compressed(c) = m {
        m = *c.inner;
    }
    match m {
        Message::PushPull(pp) => Some(pp),
        _ => None,
    }
}
