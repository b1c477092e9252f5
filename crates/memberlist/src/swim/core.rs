//! [`Core`]: memberlist's SWIM + Lifeguard state machine without I/O.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::awareness::Awareness;
use super::broadcast::{BroadcastQueue, Tag, retransmit_limit};
use super::config::Config;
use super::error::Error;
use super::event::Event;
use super::member::{Member, Members, State, vsn_array};
use super::probe::{Phase, Probe, Relay};
use super::suspicion::{Suspicion, suspicion_timeout};
use super::transmit::Transmit;
use crate::wire::Message;
use crate::wire::frame::{MAX_COMPOUND_PART_LEN, MAX_COMPOUND_PARTS};
use crate::wire::message::{
    Ack, Alive, Compound, Dead, IndirectPing, IpForm, MAX_META_LEN, Nack, NodeState, Ping,
    PushPull, Suspect, ip_from_wire, ip_to_wire,
};
use crate::wire::packet::encode_packet_message;

/// memberlist's assumed compound header size (`compoundHeaderOverhead`).
const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// memberlist's assumed per-part compound overhead (`compoundOverhead`).
const COMPOUND_OVERHEAD: usize = 2;
/// Clusters up to this size push/pull at the configured interval.
const PUSH_PULL_SCALE_THRESHOLD: usize = 32;
/// The tag of our own leave message in the broadcast queue.
const LEAVE_TAG: Tag = 1;

/// `interval × (ceil(log2(n) − log2(32)) + 1)` for `n > 32`, else `interval`:
/// memberlist's push/pull scaling, keeping the full-state traffic per node roughly
/// constant as the cluster grows.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    if n <= PUSH_PULL_SCALE_THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - (PUSH_PULL_SCALE_THRESHOLD as f64).log2()).ceil() + 1.0;
    interval * (mult as u32)
}

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    /// Unique node name (dskit: hostname plus a random suffix).
    pub name: Vec<u8>,
    /// Advertised address and port.
    pub addr: SocketAddr,
    /// Byte form of an IPv4 address in our own messages; keep it fixed for the
    /// node's life (`spec/memberlist.md` §5).
    pub ip_form: IpForm,
    /// Initial metadata (`None` = Go nil; dskit: empty unless zone-aware routing).
    pub meta: Option<Vec<u8>>,
}

/// The SWIM failure detector and membership dissemination of one memberlist node,
/// sans I/O: same messages, timers and rules as hashicorp memberlist (with dskit's
/// settings by default), but every input is a method call and every output is
/// queued for the caller.
///
/// # Time and randomness
///
/// Time is a [`std::time::Instant`] passed to every input; the core never reads a
/// clock. A simulator may use any base instant and add virtual durations.
/// Randomness (probe order, gossip targets, timer staggers) comes only from the
/// `R: Rng` given to [`Core::new`]; with a seeded RNG and the same inputs, the
/// outputs are identical.
///
/// # Inputs
///
/// - [`Core::handle_packet`]: an already decoded packet message (compound and
///   compressed wrappers are walked here).
/// - [`Core::handle_push_pull`]: the peer's push/pull, on either side of a stream.
///   A responder first takes [`Core::push_pull_reply`] (memberlist answers before
///   merging), then hands the request in.
/// - [`Core::handle_stream_ping`]: a TCP fallback ping, answered on the stream.
/// - [`Core::handle_timeout`]: call when [`Core::poll_timeout`] has passed.
///
/// # Commands
///
/// [`Core::join`], [`Core::leave`], [`Core::set_meta`], [`Core::queue_broadcast`].
///
/// # Outputs and polling order
///
/// After every input or command, drain in this order:
/// 1. [`Core::poll_transmit`] until `None`: packets and push/pull streams to start;
/// 2. [`Core::poll_event`] until `None`: membership and delegate events;
/// 3. [`Core::poll_timeout`]: the single instant at which to call
///    [`Core::handle_timeout`] next (it can move after any input).
///
/// Transmits come first because an event handler (e.g. the KV merging remote
/// state) may queue broadcasts that are better piggybacked on the next round than
/// delayed behind replies already decided.
#[derive(Debug)]
pub struct Core<R> {
    config: Config,
    rng: R,
    me: Vec<u8>,
    addr: SocketAddr,
    addr_bytes: Vec<u8>,
    meta: Option<Vec<u8>>,
    incarnation: u32,
    seq_no: u32,
    members: Members,
    awareness: Awareness,
    /// Running suspicions with the `state_change` of the suspicion they belong to.
    suspicions: BTreeMap<Vec<u8>, (Suspicion, Instant)>,
    broadcasts: BroadcastQueue,
    user_broadcasts: BroadcastQueue,
    probe: Option<Probe>,
    /// A probe tick fell while a probe was running (Go's ticker keeps one).
    probe_tick_pending: bool,
    next_probe: Instant,
    next_gossip: Option<Instant>,
    next_push_pull: Option<Instant>,
    relays: Vec<Relay>,
    left: bool,
    conflicts: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
}

impl<R: Rng> Core<R> {
    /// Creates a node that knows only itself (incarnation 1), with timers staggered
    /// randomly within their first interval as memberlist does.
    pub fn new(now: Instant, config: Config, local: LocalNode, mut rng: R) -> Result<Self, Error> {
        config.validate()?;
        if let Some(m) = &local.meta
            && m.len() > MAX_META_LEN
        {
            return Err(Error::MetaTooLong(m.len()));
        }
        let stagger = |rng: &mut R, d: Duration| -> Duration {
            if d.is_zero() {
                return d;
            }
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.random_range(0..nanos))
        };
        let next_probe = now + stagger(&mut rng, config.probe_interval);
        let next_gossip = (!config.gossip_interval.is_zero() && config.gossip_nodes > 0)
            .then(|| now + stagger(&mut rng, config.gossip_interval));
        let next_push_pull = (!config.push_pull_interval.is_zero())
            .then(|| now + stagger(&mut rng, config.push_pull_interval));
        let awareness = Awareness::new(config.awareness_max_multiplier);
        let mut core = Core {
            addr_bytes: ip_to_wire(local.addr.ip(), local.ip_form),
            addr: local.addr,
            me: local.name,
            meta: local.meta,
            config,
            rng,
            incarnation: 0,
            seq_no: 0,
            members: Members::new(),
            awareness,
            suspicions: BTreeMap::new(),
            broadcasts: BroadcastQueue::new(),
            user_broadcasts: BroadcastQueue::new(),
            probe: None,
            probe_tick_pending: false,
            next_probe,
            next_gossip,
            next_push_pull,
            relays: Vec::new(),
            left: false,
            conflicts: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
        };
        core.incarnation = 1;
        let a = core.self_alive(1);
        core.alive_node(now, a, true);
        Ok(core)
    }

    // ----------------------------------------------------------------- getters

    /// Our node name.
    pub fn name(&self) -> &[u8] {
        &self.me
    }

    /// Our advertised address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Our current incarnation.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Lifeguard health score, 0 = healthy (memberlist `GetHealthScore`).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every known member (self included), by name.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// One member by name.
    pub fn member(&self, name: &[u8]) -> Option<&Member> {
        self.members.get(name)
    }

    /// Members not dead or left, self included (memberlist `NumMembers`).
    pub fn num_alive(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !m.state.is_dead_or_left())
            .count()
    }

    /// True after [`Core::leave`].
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Queued membership broadcasts and user broadcasts.
    pub fn queued_broadcasts(&self) -> (usize, usize) {
        (self.broadcasts.len(), self.user_broadcasts.len())
    }

    /// `alive` messages refused because a known name came from another address.
    pub fn address_conflicts(&self) -> u64 {
        self.conflicts
    }

    // ------------------------------------------------------------------ outputs

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Core::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = Some(self.next_probe);
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        min(self.probe.as_ref().map(Probe::deadline));
        min(self.next_gossip);
        min(self.next_push_pull);
        for (s, _) in self.suspicions.values() {
            min(Some(s.deadline()));
        }
        for r in &self.relays {
            min(Some(r.deadline));
        }
        t
    }

    // ---------------------------------------------------------------- commands

    /// Starts a join: one push/pull with `join = true` to each seed (memberlist
    /// `Join`). Results come back through [`Core::handle_push_pull`].
    pub fn join(&mut self, _now: Instant, seeds: &[SocketAddr]) {
        for &to in seeds {
            let request = self.push_pull_reply(true);
            self.transmits.push_back(Transmit::PushPull { to, request });
        }
    }

    /// Graceful leave: broadcast `dead` about ourselves (seen by peers as Left).
    /// [`Event::LeaveBroadcastDone`] follows once it has been gossiped to its
    /// retransmit limit, or at once when no other member is alive.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.left = true;
        let d = Dead {
            incarnation: self.incarnation,
            node: self.me.clone(),
            from: self.me.clone(),
        };
        self.dead_node(now, d);
        let any_alive = self
            .members
            .iter()
            .any(|m| m.name != self.me && !m.state.is_dead_or_left());
        if !any_alive {
            self.events.push_back(Event::LeaveBroadcastDone);
        }
    }

    /// Changes our metadata and announces it with a new incarnation (memberlist
    /// `UpdateNode`).
    pub fn set_meta(&mut self, now: Instant, meta: Option<Vec<u8>>) -> Result<(), Error> {
        if let Some(m) = &meta
            && m.len() > MAX_META_LEN
        {
            return Err(Error::MetaTooLong(m.len()));
        }
        self.meta = meta;
        self.incarnation += 1;
        let a = self.self_alive(self.incarnation);
        self.alive_node(now, a, true);
        Ok(())
    }

    /// Queues a user broadcast (a delegate message, for dskit one
    /// `KeyValuePair`), piggybacked on gossip and probes up to the retransmit limit.
    pub fn queue_broadcast(&mut self, bytes: Vec<u8>) {
        let len = bytes.len() + 1;
        self.user_broadcasts
            .push(Message::User(bytes), len, None, None);
    }

    /// Like [`Core::queue_broadcast`], but replaces a queued broadcast with the same
    /// `name` (e.g. a KV key whose newer value supersedes the old one).
    pub fn queue_named_broadcast(&mut self, name: Vec<u8>, bytes: Vec<u8>) {
        let len = bytes.len() + 1;
        self.user_broadcasts
            .push(Message::User(bytes), len, Some(name), None);
    }

    /// Our node states for a push/pull (request or reply). `user_state` is left
    /// empty for the driver to fill from the delegate.
    pub fn push_pull_reply(&self, join: bool) -> PushPull {
        PushPull {
            join,
            nodes: self.members.iter().map(Member::to_push_state).collect(),
            user_state: Vec::new(),
        }
    }

    // ------------------------------------------------------------------ inputs

    /// Handles one decoded packet message from `from` (its transport source).
    /// Compound and compressed messages are walked; messages that only belong on
    /// streams are ignored.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, message: Message) {
        match message {
            Message::Compound(c) => {
                for p in c.parts {
                    self.handle_packet(now, from, p);
                }
            }
            Message::Compressed(c) => self.handle_packet(now, from, *c.inner),
            Message::Ping(p) => self.on_ping(from, p),
            Message::IndirectPing(p) => self.on_indirect_ping(now, from, p),
            Message::Ack(a) => self.on_ack(now, a),
            Message::Nack(n) => {
                if let Some(p) = &mut self.probe
                    && p.seq_no == n.seq_no
                {
                    p.nacks += 1;
                }
            }
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Alive(mut a) => {
                if a.port == 0 {
                    a.port = self.addr.port();
                }
                self.alive_node(now, a, false);
            }
            Message::Dead(d) => self.dead_node(now, d),
            Message::User(bytes) => self.events.push_back(Event::UserMessage { from, bytes }),
            Message::PushPull(_) | Message::Error(_) => {}
        }
    }

    /// Answers a ping that arrived on a stream (the TCP fallback probe); `None`
    /// when it names another node.
    pub fn handle_stream_ping(&self, ping: &Ping) -> Option<Ack> {
        (ping.node.is_empty() || ping.node == self.me).then(|| Ack {
            seq_no: ping.seq_no,
            payload: None,
        })
    }

    /// Merges a peer's push/pull (memberlist `mergeRemoteState`): checks versions,
    /// applies every node state, then emits [`Event::RemoteState`] with the user
    /// state. On a version error nothing is merged.
    pub fn handle_push_pull(
        &mut self,
        now: Instant,
        from: SocketAddr,
        remote: PushPull,
    ) -> Result<(), Error> {
        self.verify_protocol(&remote.nodes)?;
        for n in remote.nodes {
            match n.state {
                NodeState::Alive => {
                    let a = Alive {
                        incarnation: n.incarnation,
                        port: if n.port == 0 { self.addr.port() } else { n.port },
                        node: n.name,
                        addr: n.addr,
                        meta: n.meta,
                        vsn: n.vsn,
                    };
                    self.alive_node(now, a, false);
                }
                NodeState::Left => {
                    let d = Dead {
                        incarnation: n.incarnation,
                        from: n.name.clone(),
                        node: n.name,
                    };
                    self.dead_node(now, d);
                }
                // A remote "dead" only makes us suspect: we may still reach it.
                NodeState::Dead | NodeState::Suspect => {
                    let s = Suspect {
                        incarnation: n.incarnation,
                        node: n.name,
                        from: self.me.clone(),
                    };
                    self.suspect_node(now, s);
                }
                NodeState::Other(_) => {}
            }
        }
        if !remote.user_state.is_empty() {
            self.events.push_back(Event::RemoteState {
                from,
                join: remote.join,
                state: remote.user_state,
            });
        }
        Ok(())
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.probe_timers(now);
        while self.next_probe <= now {
            self.next_probe += self.config.probe_interval;
            if self.probe.is_some() {
                self.probe_tick_pending = true;
            } else {
                self.start_probe(now);
            }
        }
        if let Some(t) = self.next_gossip
            && t <= now
        {
            let mut t = t;
            while t <= now {
                t += self.config.gossip_interval;
            }
            self.next_gossip = Some(t);
            self.gossip(now);
        }
        if let Some(t) = self.next_push_pull
            && t <= now
        {
            let every = push_pull_scale(self.config.push_pull_interval, self.members.len());
            let mut t = t;
            while t <= now {
                t += every;
            }
            self.next_push_pull = Some(t);
            self.periodic_push_pull();
        }
        let due: Vec<Vec<u8>> = self
            .suspicions
            .iter()
            .filter(|(_, (s, _))| s.deadline() <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some((_, changed)) = self.suspicions.remove(&name) else {
                continue;
            };
            let Some(m) = self.members.get(&name) else {
                continue;
            };
            if m.state == State::Suspect && m.state_change == changed {
                let d = Dead {
                    incarnation: m.incarnation,
                    node: name,
                    from: self.me.clone(),
                };
                self.dead_node(now, d);
            }
        }
        let mut i = 0;
        while i < self.relays.len() {
            if self.relays[i].deadline <= now {
                let r = self.relays.swap_remove(i);
                if r.nack {
                    self.send_msg(r.requester, Message::Nack(Nack { seq_no: r.orig_seq }));
                }
            } else {
                i += 1;
            }
        }
    }

    // ------------------------------------------------------------------ probing

    fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    fn own_ping(&mut self, target: &[u8]) -> Ping {
        Ping {
            seq_no: self.next_seq(),
            node: target.to_vec(),
            source_addr: self.addr_bytes.clone(),
            source_port: self.addr.port(),
            source_node: self.me.clone(),
        }
    }

    fn start_probe(&mut self, now: Instant) {
        self.probe_tick_pending = false;
        let Some(name) = self.members.next_probe_target(
            &self.me,
            now,
            self.config.gossip_to_the_dead_time,
            &mut self.rng,
        ) else {
            return;
        };
        let Some(m) = self.members.get(&name) else {
            return;
        };
        let (state, incarnation, pmax, to) = (m.state, m.incarnation, m.pmax(), m.socket_addr());
        let Some(to) = to else {
            return;
        };
        let ping = self.own_ping(&name);
        let seq_no = ping.seq_no;
        if state == State::Alive {
            self.send_msg(to, Message::Ping(ping));
        } else {
            // Tell a suspect why we ask, so it can refute.
            let s = Suspect {
                incarnation,
                node: name.clone(),
                from: self.me.clone(),
            };
            self.transmits.push_back(Transmit::Packet {
                to,
                message: Message::Compound(Compound {
                    parts: vec![Message::Ping(ping), Message::Suspect(s)],
                    truncated: 0,
                }),
                crc: pmax >= 5,
            });
        }
        self.probe = Some(Probe {
            seq_no,
            target: name,
            incarnation,
            ack_deadline: now + self.config.probe_timeout,
            end: now + self.awareness.scale(self.config.probe_interval),
            phase: Phase::Direct,
            expected_nacks: 0,
            nacks: 0,
        });
    }

    fn probe_timers(&mut self, now: Instant) {
        let Some(p) = &self.probe else {
            return;
        };
        if p.phase == Phase::Direct && p.ack_deadline <= now {
            let target = p.target.clone();
            let seq_no = p.seq_no;
            let me = self.me.clone();
            let helpers = self
                .members
                .k_random(self.config.indirect_checks, &mut self.rng, |m| {
                    m.name != me && m.name != target && m.state == State::Alive
                });
            let (t_addr, t_port) = self
                .members
                .get(&target)
                .map(|m| (m.addr.clone(), m.port))
                .unwrap_or_default();
            let mut expected = 0;
            for h in helpers {
                let Some(hm) = self.members.get(&h) else {
                    continue;
                };
                let Some(to) = hm.socket_addr() else {
                    continue;
                };
                let nack = hm.pmax() >= 4;
                expected += u32::from(nack);
                let ind = IndirectPing {
                    seq_no,
                    target: t_addr.clone(),
                    port: t_port,
                    node: target.clone(),
                    nack,
                    source_addr: self.addr_bytes.clone(),
                    source_port: self.addr.port(),
                    source_node: self.me.clone(),
                };
                self.send_msg(to, Message::IndirectPing(ind));
            }
            if let Some(p) = &mut self.probe {
                p.phase = Phase::Indirect;
                p.expected_nacks = expected;
            }
        }
        if let Some(p) = &self.probe
            && p.end <= now
        {
            let p = self.probe.take().unwrap_or_else(|| unreachable!());
            self.awareness.apply_delta(p.failure_delta());
            let s = Suspect {
                incarnation: p.incarnation,
                node: p.target,
                from: self.me.clone(),
            };
            self.suspect_node(now, s);
            if self.probe_tick_pending {
                self.start_probe(now);
            }
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Ack) {
        if let Some(p) = &self.probe
            && p.seq_no == ack.seq_no
        {
            self.probe = None;
            self.awareness.apply_delta(-1);
            if self.probe_tick_pending {
                self.start_probe(now);
            }
            return;
        }
        if let Some(i) = self.relays.iter().position(|r| r.local_seq == ack.seq_no) {
            let r = self.relays.swap_remove(i);
            let ack = Ack {
                seq_no: r.orig_seq,
                payload: None,
            };
            self.send_msg(r.requester, Message::Ack(ack));
        }
    }

    fn on_ping(&mut self, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != self.me {
            return;
        }
        let to = reply_addr(&p.source_addr, p.source_port).unwrap_or(from);
        let ack = Ack {
            seq_no: p.seq_no,
            payload: None,
        };
        self.send_msg(to, Message::Ack(ack));
    }

    fn on_indirect_ping(&mut self, now: Instant, from: SocketAddr, ind: IndirectPing) {
        let port = if ind.port == 0 {
            self.addr.port()
        } else {
            ind.port
        };
        let requester = reply_addr(&ind.source_addr, ind.source_port).unwrap_or(from);
        let ping = self.own_ping(&ind.node);
        self.relays.push(Relay {
            local_seq: ping.seq_no,
            orig_seq: ind.seq_no,
            requester,
            nack: ind.nack,
            deadline: now + self.config.probe_timeout,
        });
        if let Some(ip) = ip_from_wire(&ind.target) {
            self.send_msg(SocketAddr::new(ip, port), Message::Ping(ping));
        }
    }

    // ------------------------------------------------------------ dissemination

    fn encoded_len(&mut self, m: &Message) -> Option<usize> {
        self.scratch.clear();
        encode_packet_message(&mut self.scratch, m).ok()?;
        Some(self.scratch.len())
    }

    fn label_overhead(&self) -> usize {
        if self.config.label_len == 0 {
            0
        } else {
            2 + self.config.label_len
        }
    }

    /// Queues a membership message about `node`, replacing older news about it.
    fn broadcast(&mut self, node: &[u8], m: Message, tag: Option<Tag>) {
        if let Some(len) = self.encoded_len(&m) {
            self.broadcasts.push(m, len, Some(node.to_vec()), tag);
        }
    }

    /// Membership broadcasts first, then user broadcasts, within `limit` bytes.
    fn take_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<(Message, usize)> {
        let n = self.members.len();
        let mut out = self.broadcasts.take_sized(
            overhead,
            limit,
            retransmit_limit(self.config.retransmit_mult, n),
        );
        for t in self.broadcasts.drain_finished() {
            if t == LEAVE_TAG {
                self.events.push_back(Event::LeaveBroadcastDone);
            }
        }
        let used: usize = out.iter().map(|(_, l)| l + overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > overhead + 1 {
            let alive = self.num_alive();
            out.extend(self.user_broadcasts.take_sized(
                overhead,
                avail,
                retransmit_limit(self.config.retransmit_mult, alive),
            ));
        }
        out
    }

    /// Sends `m` to `to` with as many broadcasts piggybacked as fit (memberlist
    /// `sendMsg`).
    fn send_msg(&mut self, to: SocketAddr, m: Message) {
        let Some(len) = self.encoded_len(&m) else {
            return;
        };
        let avail = self
            .config
            .packet_budget
            .saturating_sub(len + COMPOUND_HEADER_OVERHEAD + self.label_overhead());
        let extra = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
        if extra.is_empty() {
            self.transmits.push_back(Transmit::Packet {
                to,
                message: m,
                crc: false,
            });
            return;
        }
        let mut parts = Vec::with_capacity(1 + extra.len());
        parts.push((m, len));
        parts.extend(extra);
        self.push_packets(to, parts, false);
    }

    /// Packs messages into packets: a single message bare, otherwise compounds of at
    /// most 255 parts; parts too long for a compound travel alone.
    fn push_packets(&mut self, to: SocketAddr, parts: Vec<(Message, usize)>, crc: bool) {
        if parts.len() == 1 {
            if let Some((message, _)) = parts.into_iter().next() {
                self.transmits.push_back(Transmit::Packet { to, message, crc });
            }
            return;
        }
        let mut batch = Vec::new();
        for (m, len) in parts {
            if len > MAX_COMPOUND_PART_LEN {
                self.transmits.push_back(Transmit::Packet {
                    to,
                    message: m,
                    crc,
                });
                continue;
            }
            batch.push(m);
            if batch.len() == MAX_COMPOUND_PARTS {
                let parts = std::mem::take(&mut batch);
                self.transmits.push_back(Transmit::Packet {
                    to,
                    message: Message::Compound(Compound {
                        parts,
                        truncated: 0,
                    }),
                    crc,
                });
            }
        }
        match batch.len() {
            0 => {}
            1 => {
                if let Some(message) = batch.pop() {
                    self.transmits.push_back(Transmit::Packet { to, message, crc });
                }
            }
            _ => self.transmits.push_back(Transmit::Packet {
                to,
                message: Message::Compound(Compound {
                    parts: batch,
                    truncated: 0,
                }),
                crc,
            }),
        }
    }

    /// One gossip round: fresh broadcasts to `gossip_nodes` random members that are
    /// alive, suspect, or dead for less than `gossip_to_the_dead_time`.
    fn gossip(&mut self, now: Instant) {
        let me = self.me.clone();
        let dead_window = self.config.gossip_to_the_dead_time;
        let targets = self
            .members
            .k_random(self.config.gossip_nodes, &mut self.rng, |m| {
                if m.name == me {
                    return false;
                }
                match m.state {
                    State::Alive | State::Suspect => true,
                    State::Dead => now.saturating_duration_since(m.state_change) <= dead_window,
                    State::Left => false,
                }
            });
        let avail = self
            .config
            .packet_budget
            .saturating_sub(COMPOUND_HEADER_OVERHEAD + self.label_overhead());
        for name in targets {
            let Some(m) = self.members.get(&name) else {
                continue;
            };
            let (to, crc) = (m.socket_addr(), m.pmax() >= 5);
            let Some(to) = to else {
                continue;
            };
            let msgs = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
            if msgs.is_empty() {
                return;
            }
            self.push_packets(to, msgs, crc);
        }
    }

    fn periodic_push_pull(&mut self) {
        let me = self.me.clone();
        let pick = self
            .members
            .k_random(1, &mut self.rng, |m| m.name != me && m.state == State::Alive);
        let Some(to) = pick
            .first()
            .and_then(|n| self.members.get(n))
            .and_then(Member::socket_addr)
        else {
            return;
        };
        let request = self.push_pull_reply(false);
        self.transmits.push_back(Transmit::PushPull { to, request });
    }

    // ----------------------------------------------------------- state changes

    fn self_alive(&self, incarnation: u32) -> Alive {
        Alive {
            incarnation,
            node: self.me.clone(),
            addr: self.addr_bytes.clone(),
            port: self.addr.port(),
            meta: self.meta.clone(),
            vsn: self.config.vsn.to_vec(),
        }
    }

    /// Answers an accusation against us with a higher incarnation.
    fn refute(&mut self, accused: u32) {
        let mut inc = self.incarnation.wrapping_add(1);
        if accused >= inc {
            inc = accused.wrapping_add(1);
        }
        self.incarnation = inc;
        if let Some(me) = self.members.get_mut(&self.me) {
            me.incarnation = inc;
        }
        self.awareness.apply_delta(1);
        let a = self.self_alive(inc);
        let me = self.me.clone();
        self.broadcast(&me, Message::Alive(a), None);
    }

    /// memberlist `aliveNode`.
    fn alive_node(&mut self, now: Instant, a: Alive, bootstrap: bool) {
        let is_local = a.node == self.me;
        if self.left && is_local {
            return;
        }
        if a.vsn.len() >= 3 && (a.vsn[0] == 0 || a.vsn[1] == 0 || a.vsn[0] > a.vsn[1]) {
            return;
        }
        let mut updates_node = false;
        match self.members.get(&a.node) {
            None => {
                // A never-seen node starts dead at incarnation 0, so an alive with
                // incarnation 0 leaves only a reapable entry, as in memberlist.
                let m = Member {
                    name: a.node.clone(),
                    addr: a.addr.clone(),
                    port: a.port,
                    meta: a.meta.clone(),
                    vsn: vsn_array(&a.vsn).unwrap_or_default(),
                    incarnation: 0,
                    state: State::Dead,
                    state_change: now
                        .checked_sub(self.config.gossip_to_the_dead_time + Duration::from_secs(1))
                        .unwrap_or(now),
                };
                self.members.insert_new(m, &mut self.rng);
            }
            Some(m) if m.addr != a.addr || m.port != a.port => {
                let reclaim = self.config.dead_node_reclaim_time;
                let can_reclaim = !reclaim.is_zero()
                    && now.saturating_duration_since(m.state_change) > reclaim;
                if m.state == State::Left || (m.state == State::Dead && can_reclaim) {
                    updates_node = true;
                } else {
                    self.conflicts += 1;
                    return;
                }
            }
            Some(_) => {}
        }
        let Some(m) = self.members.get(&a.node) else {
            return;
        };
        if a.incarnation <= m.incarnation && !is_local && !updates_node {
            return;
        }
        if a.incarnation < m.incarnation && is_local {
            return;
        }
        self.suspicions.remove(&a.node);
        let old_state = m.state;
        let old_meta = m.meta.clone();
        if !bootstrap && is_local {
            if a.incarnation == m.incarnation
                && a.meta == m.meta
                && a.vsn.as_slice() == m.vsn.as_slice()
            {
                return;
            }
            self.refute(a.incarnation);
        } else {
            let node = a.node.clone();
            self.broadcast(&node, Message::Alive(a.clone()), None);
            let Some(m) = self.members.get_mut(&a.node) else {
                return;
            };
            if let Some(v) = vsn_array(&a.vsn) {
                m.vsn = v;
            }
            m.incarnation = a.incarnation;
            m.meta = a.meta;
            m.addr = a.addr;
            m.port = a.port;
            if m.state != State::Alive {
                m.state = State::Alive;
                m.state_change = now;
            }
        }
        let Some(m) = self.members.get(&a.node) else {
            return;
        };
        if old_state.is_dead_or_left() {
            self.events.push_back(Event::MemberJoined(m.clone()));
        } else if old_meta != m.meta {
            self.events.push_back(Event::MemberUpdated(m.clone()));
        }
    }

    /// memberlist `suspectNode`.
    fn suspect_node(&mut self, now: Instant, s: Suspect) {
        let Some(m) = self.members.get(&s.node) else {
            return;
        };
        if s.incarnation < m.incarnation {
            return;
        }
        if let Some((susp, _)) = self.suspicions.get_mut(&s.node) {
            if susp.confirm(&s.from) {
                let node = s.node.clone();
                self.broadcast(&node, Message::Suspect(s), None);
            }
            return;
        }
        if m.state != State::Alive {
            return;
        }
        if s.node == self.me {
            self.refute(s.incarnation);
            return;
        }
        let node = s.node.clone();
        let from = s.from.clone();
        let incarnation = s.incarnation;
        self.broadcast(&node, Message::Suspect(s), None);
        let n = self.members.len();
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        m.incarnation = incarnation;
        m.state = State::Suspect;
        m.state_change = now;
        let mult = self.config.suspicion_mult;
        let mut k = mult.saturating_sub(2);
        if (n as i64) - 2 < i64::from(k) {
            k = 0;
        }
        let min = suspicion_timeout(mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        self.suspicions
            .insert(node, (Suspicion::new(now, &from, k, min, max), now));
        let ev = Event::MemberSuspect(m.clone());
        self.events.push_back(ev);
    }

    /// memberlist `deadNode`.
    fn dead_node(&mut self, now: Instant, d: Dead) {
        let Some(m) = self.members.get(&d.node) else {
            return;
        };
        if d.incarnation < m.incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        if m.state.is_dead_or_left() {
            return;
        }
        let node = d.node.clone();
        let left = d.node == d.from;
        let incarnation = d.incarnation;
        if node == self.me {
            if !self.left {
                self.refute(d.incarnation);
                return;
            }
            self.broadcast(&node, Message::Dead(d), Some(LEAVE_TAG));
        } else {
            self.broadcast(&node, Message::Dead(d), None);
        }
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        m.incarnation = incarnation;
        m.state = if left { State::Left } else { State::Dead };
        m.state_change = now;
        let ev = if left {
            Event::MemberLeft(m.clone())
        } else {
            Event::MemberDead(m.clone())
        };
        self.events.push_back(ev);
    }

    /// memberlist `verifyProtocol`: every node's current protocol and delegate
    /// versions must lie within what all alive nodes support.
    fn verify_protocol(&self, remote: &[crate::wire::message::PushNodeState]) -> Result<(), Error> {
        let (mut max_pmin, mut min_pmax, mut max_dmin, mut min_dmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        for r in remote {
            if r.state != NodeState::Alive || r.vsn.len() < 5 {
                continue;
            }
            max_pmin = max_pmin.max(r.vsn[0]);
            min_pmax = min_pmax.min(r.vsn[1]);
            max_dmin = max_dmin.max(r.vsn[3]);
            min_dmax = min_dmax.min(r.vsn[4]);
        }
        for m in self.members.iter().filter(|m| m.state == State::Alive) {
            max_pmin = max_pmin.max(m.vsn[0]);
            min_pmax = min_pmax.min(m.vsn[1]);
            max_dmin = max_dmin.max(m.vsn[3]);
            min_dmax = min_dmax.min(m.vsn[4]);
        }
        let check = |name: &[u8], pcur: u8, dcur: u8| -> Result<(), Error> {
            let err = |what, version, min, max| Error::IncompatibleVersions {
                node: String::from_utf8_lossy(name).into_owned(),
                what,
                version,
                min,
                max,
            };
            if pcur < max_pmin || pcur > min_pmax {
                return Err(err("protocol", pcur, max_pmin, min_pmax));
            }
            if dcur < max_dmin || dcur > min_dmax {
                return Err(err("delegate", dcur, max_dmin, min_dmax));
            }
            Ok(())
        };
        for r in remote {
            let (p, d) = match vsn_array(&r.vsn) {
                Some(v) => (v[2], v[5]),
                None => (0, 0),
            };
            check(&r.name, p, d)?;
        }
        for m in self.members.iter() {
            check(&m.name, m.vsn[2], m.vsn[5])?;
        }
        Ok(())
    }
}

/// The reply address a ping or indirect ping names, if it names a usable one.
fn reply_addr(ip: &[u8], port: u16) -> Option<SocketAddr> {
    if ip.is_empty() || port == 0 {
        return None;
    }
    ip_from_wire(ip).map(|ip| SocketAddr::new(ip, port))
}
