//! [`Core`]: memberlist's SWIM + Lifeguard state machine without I/O.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use super::awareness::Awareness;
use super::broadcast::{
    BroadcastQueue, BroadcastQueueStats, Origin, Tag, UserBroadcast, retransmit_limit,
};
use super::config::Config;
use super::error::Error;
use super::event::Event;
use super::member::{Member, Members, State, vsn_array};
use super::probe::{Phase, Probe, Relay};
use super::routing::{RoutingStats, Selection};
use super::suspicion::{Suspicion, suspicion_timeout};
use super::transmit::Transmit;
use crate::wire::Message;
use crate::wire::frame::{MAX_COMPOUND_PART_LEN, MAX_COMPOUND_PARTS};
use crate::wire::message::{
    Ack, Alive, Compound, Dead, IndirectPing, IpForm, MAX_META_LEN, Nack, NodeState, Ping,
    PushPull, Suspect, ip_from_wire, ip_to_wire,
};
use crate::wire::node_meta::NodeMeta;
use crate::wire::packet::encode_packet_message;

/// Fast rounds of our own changes allowed back to back (see
/// [`Core::gossip_local_changes`]).
const FAST_ROUNDS_BURST: u32 = 2;

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
pub(crate) fn push_pull_scale(interval: Duration, n: usize) -> Duration {
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
    /// With [`Config::zone_aware_routing`] set, leave it `None`: the core announces
    /// the routing's metadata (anything else is refused).
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
    /// Our own user broadcasts (dskit's local queue), served before relayed ones.
    local_broadcasts: BroadcastQueue,
    /// Relayed user broadcasts (dskit's gossip queue).
    gossip_broadcasts: BroadcastQueue,
    /// [`Event::UserMessage`]s queued and not yet polled (the handoff queue).
    pending_user: usize,
    /// User messages dropped because the handoff queue was full.
    received_dropped: u64,
    probe: Option<Probe>,
    /// A probe tick fell while a probe was running (Go's ticker keeps one).
    probe_tick_pending: bool,
    next_probe: Instant,
    next_gossip: Option<Instant>,
    /// Rounds [`Core::gossip_local_changes`] may still run at once (at most
    /// `FAST_ROUNDS_BURST`), and when the last one was earned (one per gossip interval).
    fast_rounds: u32,
    fast_round_earned: Option<Instant>,
    next_push_pull: Option<Instant>,
    relays: Vec<Relay>,
    left: bool,
    conflicts: u64,
    /// Zone-aware routing decisions so far.
    routing_stats: RoutingStats,
    /// The startup join is over (routing skips are counted from then on).
    joined: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
}

impl<R: Rng> Core<R> {
    /// Creates a node that knows only itself (incarnation 1), with timers staggered
    /// randomly within their first interval as memberlist does.
    pub fn new(now: Instant, config: Config, local: LocalNode, mut rng: R) -> Result<Self, Error> {
        config.validate()?;
        let mut local = local;
        if let Some(r) = &config.zone_aware_routing {
            let want = r.node_meta();
            match &local.meta {
                None => local.meta = want,
                Some(m) if Some(m) == want.as_ref() => {}
                Some(_) => return Err(Error::MetaConflict),
            }
        }
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
        let limits = config.broadcast_queue_limits;
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
            local_broadcasts: BroadcastQueue::with_limits(limits),
            gossip_broadcasts: BroadcastQueue::with_limits(limits),
            pending_user: 0,
            received_dropped: 0,
            probe: None,
            probe_tick_pending: false,
            next_probe,
            next_gossip,
            fast_rounds: FAST_ROUNDS_BURST,
            fast_round_earned: None,
            next_push_pull,
            relays: Vec::new(),
            left: false,
            conflicts: 0,
            routing_stats: RoutingStats::default(),
            joined: false,
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
        self.members.count(State::Alive) + self.members.count(State::Suspect)
    }

    /// Members in exactly `state`, self included, in O(1) (e.g. a convergence
    /// check: every node counting all nodes as [`State::Alive`]).
    pub fn num_in_state(&self, state: State) -> usize {
        self.members.count(state)
    }

    /// True after [`Core::leave`].
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Queued membership broadcasts and user broadcasts (both user queues).
    pub fn queued_broadcasts(&self) -> (usize, usize) {
        (
            self.broadcasts.len(),
            self.local_broadcasts.len() + self.gossip_broadcasts.len(),
        )
    }

    /// Our own user broadcasts still queued (what a leaving dskit node waits for).
    pub fn queued_local_broadcasts(&self) -> usize {
        self.local_broadcasts.len()
    }

    /// Sizes of the user broadcast queues and what was dropped, for metrics.
    pub fn broadcast_stats(&self) -> BroadcastQueueStats {
        BroadcastQueueStats {
            local: self.local_broadcasts.stats(),
            gossip: self.gossip_broadcasts.stats(),
            received_dropped: self.received_dropped,
            channel_dropped: 0,
        }
    }

    /// Zone-aware routing decisions so far (all zero without routing).
    pub fn routing_stats(&self) -> RoutingStats {
        self.routing_stats
    }

    /// Tells the core the startup join is over, whatever its outcome (dskit counts
    /// routing skips only from then on: before, a partial view of the cluster is
    /// expected to lack bridges).
    pub fn mark_joined(&mut self) {
        self.joined = true;
    }

    /// `alive` messages refused because a known name came from another address.
    pub fn address_conflicts(&self) -> u64 {
        self.conflicts
    }

    // ------------------------------------------------------------------ outputs

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front();
        if t.is_none() {
            release_burst(&mut self.transmits);
        }
        t
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let Some(e) = self.events.pop_front() else {
            release_burst(&mut self.events);
            return None;
        };
        if matches!(e, Event::UserMessage { .. }) {
            self.pending_user = self.pending_user.saturating_sub(1);
        }
        Some(e)
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
            .any(|m| *m.name != *self.me && !m.state.is_dead_or_left());
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
        self.incarnation = self.incarnation.saturating_add(1);
        let a = self.self_alive(self.incarnation);
        self.alive_node(now, a, true);
        Ok(())
    }

    /// Queues a relayed user broadcast (a delegate message, for dskit one
    /// `KeyValuePair`) that replaces nothing, piggybacked on gossip and probes up to
    /// the retransmit limit.
    pub fn queue_broadcast(&mut self, bytes: Vec<u8>) {
        self.queue_user_broadcast(UserBroadcast {
            bytes,
            origin: Origin::Relayed,
            cover: None,
        });
    }

    /// Like [`Core::queue_broadcast`], but replaces a queued broadcast with the same
    /// `name`.
    pub fn queue_named_broadcast(&mut self, name: Vec<u8>, bytes: Vec<u8>) {
        let len = bytes.len() + 1;
        self.gossip_broadcasts
            .push(Message::User(bytes.into()), len, Some(name), None);
    }

    /// Queues a user broadcast in the queue of its origin; with a cover it replaces
    /// the queued broadcasts of that queue it covers (dskit's rule, §2.8).
    pub fn queue_user_broadcast(&mut self, b: UserBroadcast) {
        // Counted at its own length (`wire_len` 0 never exceeds it).
        self.queue_user_broadcast_as(b, 0);
    }

    /// Sends our own queued changes now, in one gossip round, rather than at the next
    /// tick (with [`Config::gossip_local_changes_at_once`]; a burst of two, then at most
    /// one per gossip interval, so a burst of changes costs few extra rounds). The round goes to as many
    /// members as a broadcast's transmit quota (`retransmit_limit`): the change would be
    /// sent that many times over the next ticks anyway, so the bytes are the same and
    /// one tick of the spread is saved. The driver calls it after queueing local
    /// broadcasts. Returns whether a round ran.
    pub fn gossip_local_changes(&mut self, now: Instant) -> bool {
        if !self.config.gossip_local_changes_at_once
            || self.next_gossip.is_none()
            || self.local_broadcasts.is_empty()
        {
            return false;
        }
        // A small burst (a join's PENDING then ACTIVE, a few milliseconds apart), then one
        // round per gossip interval.
        let every = self.config.gossip_interval.max(Duration::from_millis(1));
        let earned_at = *self.fast_round_earned.get_or_insert(now);
        let earned = now.saturating_duration_since(earned_at).as_nanos() / every.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.fast_rounds = self
                .fast_rounds
                .saturating_add(earned)
                .min(FAST_ROUNDS_BURST);
            self.fast_round_earned = Some(if self.fast_rounds == FAST_ROUNDS_BURST {
                now
            } else {
                earned_at + every * earned
            });
        }
        if self.fast_rounds == 0 {
            return false;
        }
        self.fast_rounds -= 1;
        let quota = retransmit_limit(self.config.retransmit_mult, self.num_alive());
        self.gossip_to(now, quota.max(self.config.gossip_nodes));
        true
    }

    /// Like [`Core::queue_user_broadcast`], but the queue counts the message as
    /// `wire_len` body bytes. For a simulator that sends a compact stand-in of a
    /// larger message: queue sizes, bounds and packet budgets stay those of the
    /// message it stands for. Not part of memberlist.
    #[doc(hidden)]
    pub fn queue_user_broadcast_as(&mut self, b: UserBroadcast, wire_len: usize) {
        let len = wire_len.max(b.bytes.len()) + 1;
        let q = match b.origin {
            Origin::Local => &mut self.local_broadcasts,
            Origin::Relayed => &mut self.gossip_broadcasts,
        };
        match b.cover {
            Some(c) => q.push_covered(Message::User(b.bytes.into()), len, c),
            None => q.push(Message::User(b.bytes.into()), len, None, None),
        }
    }

    /// Learns `members` alive as a finished join (a push/pull listing them) would
    /// have taught them, without the membership news that join would queue: for a
    /// simulator that starts a large cluster in its converged state instead of
    /// replaying every join (each node would otherwise gossip news of every other
    /// node). New members are taken as they are, names shared with the caller's
    /// entries (a simulator passes each node's own entry to every node, so N
    /// tables hold one copy of each name); anything else goes through memberlist's
    /// `aliveNode`. Protocol versions are not checked. Marks the node joined. Not
    /// part of memberlist.
    #[doc(hidden)]
    pub fn assume_converged(&mut self, now: Instant, members: &[Member]) {
        self.members
            .reserve(members.len().saturating_sub(self.members.len()));
        for m in members {
            let valid_vsn = m.vsn[0] != 0 && m.vsn[1] != 0 && m.vsn[0] <= m.vsn[1];
            if m.state == State::Alive
                && m.incarnation > 0
                && valid_vsn
                && !self.left
                && self.members.get(&m.name).is_none()
            {
                // What `alive_node` leaves for a new member, in one step.
                let new = Member {
                    state: State::Alive,
                    state_change: now,
                    ..m.clone()
                };
                self.members.insert_new(new.clone(), &mut self.rng);
                self.events.push_back(Event::MemberJoined(new));
            } else {
                let a = Alive {
                    incarnation: m.incarnation,
                    node: m.name.to_vec(),
                    addr: m.addr.to_vec(),
                    port: m.port,
                    meta: m.meta.clone(),
                    vsn: m.vsn.to_vec(),
                };
                self.alive_node(now, a, false);
            }
        }
        self.broadcasts.clear();
        self.broadcasts.drain_finished();
        self.mark_joined();
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
            Message::User(bytes) => {
                if self.pending_user >= self.config.handoff_queue_depth {
                    self.received_dropped += 1;
                } else {
                    self.pending_user += 1;
                    self.events.push_back(Event::UserMessage {
                        from,
                        bytes: bytes.into(),
                    });
                }
            }
            Message::PushPull(_) | Message::Error(_) => {}
        }
    }

    /// Answers a ping that arrived on a stream (the TCP fallback probe); `None`
    /// when it names another node.
    pub fn handle_stream_ping(&self, ping: &Ping) -> Option<Ack> {
        (ping.node.is_empty() || ping.node == self.me).then_some(Ack {
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
        // A join's push/pull brings the whole cluster at once.
        self.members
            .reserve(remote.nodes.len().saturating_sub(self.members.len()));
        for n in remote.nodes {
            match n.state {
                NodeState::Alive => {
                    let a = Alive {
                        incarnation: n.incarnation,
                        port: if n.port == 0 {
                            self.addr.port()
                        } else {
                            n.port
                        },
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
                node: name.to_vec(),
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
            target: name.to_vec(),
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
                    *m.name != *me && *m.name != *target && m.state == State::Alive
                });
            let (t_addr, t_port) = self
                .members
                .get(&target)
                .map(|m| (m.addr.to_vec(), m.port))
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
            let Some(p) = self.probe.take() else {
                return;
            };
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

    /// Membership broadcasts first, then our own user broadcasts, then relayed ones
    /// (dskit's `GetBroadcasts`), within `limit` bytes.
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
        let alive = self.num_alive();
        let user_limit = retransmit_limit(self.config.retransmit_mult, alive);
        let mut used: usize = out.iter().map(|(_, l)| l + overhead).sum();
        for q in [&mut self.local_broadcasts, &mut self.gossip_broadcasts] {
            let avail = limit.saturating_sub(used);
            if avail <= overhead + 1 || q.is_empty() {
                continue;
            }
            let got = q.take_sized(overhead, avail, user_limit);
            used += got.iter().map(|(_, l)| l + overhead).sum::<usize>();
            out.extend(got);
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
                self.transmits
                    .push_back(Transmit::Packet { to, message, crc });
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
                    self.transmits
                        .push_back(Transmit::Packet { to, message, crc });
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
        self.gossip_to(now, self.config.gossip_nodes);
    }

    /// A gossip round to `k` random members (see [`Core::gossip`]).
    fn gossip_to(&mut self, now: Instant, k: usize) {
        let me = self.me.clone();
        let dead_window = self.config.gossip_to_the_dead_time;
        let targets = self.targets(k, |m| {
            if *m.name == *me {
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

    /// Push/pull with `push_pull_nodes` random live members (memberlist `pushPull`).
    fn periodic_push_pull(&mut self) {
        let me = self.me.clone();
        let picks = self.targets(self.config.push_pull_nodes, |m| {
            *m.name != *me && m.state == State::Alive
        });
        for name in picks {
            let Some(to) = self.members.get(&name).and_then(Member::socket_addr) else {
                continue;
            };
            let request = self.push_pull_reply(false);
            self.transmits.push_back(Transmit::PushPull { to, request });
        }
    }

    /// Up to `k` random members that `pick` accepts, through zone-aware routing when
    /// it is on (memberlist `kRandomNodes` with dskit's node-selection delegate).
    fn targets(&mut self, k: usize, pick: impl Fn(&Member) -> bool) -> Vec<Arc<[u8]>> {
        let Some(routing) = &self.config.zone_aware_routing else {
            return self.members.k_random(k, &mut self.rng, pick);
        };
        self.routing_stats.select_calls += 1;
        match routing.select(self.members.iter_probe_order(), &mut self.rng) {
            Selection::Skipped => {
                if self.joined {
                    self.routing_stats.skipped += 1;
                }
                self.members.k_random(k, &mut self.rng, pick)
            }
            Selection::Routed { preferred } => self.members.k_random_selected(
                k,
                &mut self.rng,
                |m| routing.candidate(NodeMeta(m.meta.as_deref())).0,
                preferred.as_deref(),
                pick,
            ),
        }
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
        // Saturating where Go's uint32 wraps to 0 (after which every peer would
        // ignore us): a peer claiming u32::MAX pins us there instead.
        let mut inc = self.incarnation.saturating_add(1);
        if accused >= inc {
            inc = accused.saturating_add(1);
        }
        self.incarnation = inc;
        let me = self.me.clone();
        self.members.update(&me, |m| m.incarnation = inc);
        self.awareness.apply_delta(1);
        let a = self.self_alive(inc);
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
        // One lookup on the common path (news we already have).
        let found = match self.members.get(&a.node) {
            None => {
                // A never-seen node starts dead at incarnation 0, so an alive with
                // incarnation 0 leaves only a reapable entry, as in memberlist.
                let m = Member {
                    name: a.node.as_slice().into(),
                    addr: a.addr.as_slice().into(),
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
                self.members.get(&a.node)
            }
            Some(m) if *m.addr != *a.addr || m.port != a.port => {
                let reclaim = self.config.dead_node_reclaim_time;
                let can_reclaim =
                    !reclaim.is_zero() && now.saturating_duration_since(m.state_change) > reclaim;
                if m.state == State::Left || (m.state == State::Dead && can_reclaim) {
                    updates_node = true;
                } else {
                    self.conflicts += 1;
                    return;
                }
                Some(m)
            }
            Some(m) => Some(m),
        };
        let Some(m) = found else {
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
        let node = a.node.clone();
        if !bootstrap && is_local {
            if a.incarnation == m.incarnation
                && a.meta == m.meta
                && a.vsn.as_slice() == m.vsn.as_slice()
            {
                return;
            }
            self.refute(a.incarnation);
        } else {
            // Update the member from the message, then queue the message itself
            // (no copy of it is needed).
            let updated = self.members.update(&a.node, |m| {
                if let Some(v) = vsn_array(&a.vsn) {
                    m.vsn = v;
                }
                m.incarnation = a.incarnation;
                m.meta.clone_from(&a.meta);
                if *m.addr != *a.addr {
                    m.addr = a.addr.as_slice().into();
                }
                m.port = a.port;
                if m.state != State::Alive {
                    m.state = State::Alive;
                    m.state_change = now;
                }
            });
            if updated.is_none() {
                return;
            }
            self.broadcast(&node, Message::Alive(a), None);
        }
        let Some(m) = self.members.get(&node) else {
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
        let Some(m) = self.members.update(&node, |m| {
            m.incarnation = incarnation;
            m.state = State::Suspect;
            m.state_change = now;
            m.clone()
        }) else {
            return;
        };
        let mult = self.config.suspicion_mult;
        let mut k = mult.saturating_sub(2);
        if (n as i64) - 2 < i64::from(k) {
            k = 0;
        }
        let min = suspicion_timeout(mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        self.suspicions
            .insert(node, (Suspicion::new(now, &from, k, min, max), now));
        self.events.push_back(Event::MemberSuspect(m));
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
        let Some(m) = self.members.update(&node, |m| {
            m.incarnation = incarnation;
            m.state = if left { State::Left } else { State::Dead };
            m.state_change = now;
            m.clone()
        }) else {
            return;
        };
        let ev = if left {
            Event::MemberLeft(m)
        } else {
            Event::MemberDead(m)
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

/// Room kept in an output queue once it is drained: a join's push/pull queues one
/// event per member, and N nodes keeping room for N events each would hold N² of
/// them for nothing.
const KEPT_OUTPUT_ROOM: usize = 64;

/// Gives back the room a drained output queue grew to in a burst.
fn release_burst<T>(q: &mut VecDeque<T>) {
    if q.capacity() > KEPT_OUTPUT_ROOM {
        q.shrink_to(KEPT_OUTPUT_ROOM);
    }
}

/// The reply address a ping or indirect ping names, if it names a usable one.
fn reply_addr(ip: &[u8], port: u16) -> Option<SocketAddr> {
    if ip.is_empty() || port == 0 {
        return None;
    }
    ip_from_wire(ip).map(|ip| SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::{DSKIT_VSN, PushNodeState};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 7946)
    }

    fn new_core(config: Config) -> (Core<StdRng>, Instant) {
        let now = Instant::now();
        let local = LocalNode {
            name: b"me".to_vec(),
            addr: addr(1),
            ip_form: IpForm::V4,
            meta: None,
        };
        let mut c = Core::new(now, config, local, StdRng::seed_from_u64(7)).unwrap();
        drain(&mut c);
        (c, now)
    }

    fn alive(name: &str, i: u8, incarnation: u32) -> Alive {
        Alive {
            incarnation,
            node: name.as_bytes().to_vec(),
            addr: vec![10, 0, 0, i],
            port: 7946,
            meta: None,
            vsn: DSKIT_VSN.to_vec(),
        }
    }

    /// A core that knows `peers` members named p2, p3, ... (all alive, inc 1).
    fn with_peers(config: Config, peers: u8) -> (Core<StdRng>, Instant) {
        let (mut c, now) = new_core(config);
        for i in 2..2 + peers {
            c.handle_packet(now, addr(i), Message::Alive(alive(&format!("p{i}"), i, 1)));
        }
        drain(&mut c);
        (c, now)
    }

    fn drain(c: &mut Core<StdRng>) -> (Vec<Transmit>, Vec<Event>) {
        let mut t = Vec::new();
        while let Some(x) = c.poll_transmit() {
            t.push(x);
        }
        let mut e = Vec::new();
        while let Some(x) = c.poll_event() {
            e.push(x);
        }
        (t, e)
    }

    fn leaves(m: &Message) -> Vec<Message> {
        let mut out = Vec::new();
        m.walk(&mut |x| {
            if !matches!(x, Message::Compound(_) | Message::Compressed(_)) {
                out.push(x.clone());
            }
        });
        out
    }

    fn packets_to(t: &[Transmit], to: SocketAddr) -> Vec<Message> {
        t.iter()
            .filter_map(|x| match x {
                Transmit::Packet { to: d, message, .. } if *d == to => Some(leaves(message)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn state(c: &Core<StdRng>, name: &str) -> Option<(State, u32)> {
        c.member(name.as_bytes()).map(|m| (m.state, m.incarnation))
    }

    fn suspect(node: &str, from: &str, incarnation: u32) -> Message {
        Message::Suspect(Suspect {
            incarnation,
            node: node.as_bytes().to_vec(),
            from: from.as_bytes().to_vec(),
        })
    }

    fn dead(node: &str, from: &str, incarnation: u32) -> Message {
        Message::Dead(Dead {
            incarnation,
            node: node.as_bytes().to_vec(),
            from: from.as_bytes().to_vec(),
        })
    }

    #[test]
    fn a_new_core_knows_itself_alive_at_incarnation_one_and_announces_it() {
        let now = Instant::now();
        let local = LocalNode {
            name: b"me".to_vec(),
            addr: addr(1),
            ip_form: IpForm::Mapped,
            meta: None,
        };
        let mut c = Core::new(now, Config::dskit(), local, StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(state(&c, "me"), Some((State::Alive, 1)));
        assert_eq!(
            c.member(b"me").unwrap().addr.len(),
            16,
            "IPv4-mapped form kept"
        );
        assert_eq!(c.queued_broadcasts(), (1, 0));
        let (_, ev) = drain(&mut c);
        assert!(matches!(&ev[..], [Event::MemberJoined(m)] if *m.name == *b"me"));
    }

    #[test]
    fn alive_with_incarnation_zero_about_an_unknown_node_is_not_accepted() {
        let (mut c, now) = new_core(Config::default_lan());
        c.handle_packet(now, addr(2), Message::Alive(alive("x", 2, 0)));
        assert_ne!(state(&c, "x").map(|s| s.0), Some(State::Alive));
        let (_, ev) = drain(&mut c);
        assert!(ev.is_empty());
    }

    #[test]
    fn alive_applies_only_with_a_strictly_higher_incarnation() {
        let (mut c, now) = with_peers(Config::default_lan(), 1);
        let mut a = alive("p2", 2, 1);
        a.meta = Some(b"new".to_vec());
        c.handle_packet(now, addr(2), Message::Alive(a.clone()));
        assert_eq!(
            c.member(b"p2").unwrap().meta,
            None,
            "equal incarnation ignored"
        );
        a.incarnation = 2;
        c.handle_packet(now, addr(2), Message::Alive(a));
        assert_eq!(c.member(b"p2").unwrap().meta, Some(b"new".to_vec()));
        let (_, ev) = drain(&mut c);
        assert!(matches!(&ev[..], [Event::MemberUpdated(m)] if m.incarnation == 2));
    }

    #[test]
    fn alive_with_bad_versions_is_ignored() {
        let (mut c, now) = new_core(Config::default_lan());
        let mut a = alive("x", 2, 1);
        a.vsn = vec![3, 2, 2, 0, 0, 0];
        c.handle_packet(now, addr(2), Message::Alive(a));
        assert_eq!(state(&c, "x"), None);
    }

    #[test]
    fn suspicion_about_self_is_refuted_with_a_higher_incarnation_and_costs_health() {
        let (mut c, now) = with_peers(Config::default_lan(), 2);
        c.handle_packet(now, addr(2), suspect("me", "p2", 5));
        assert_eq!(c.incarnation(), 6);
        assert_eq!(state(&c, "me"), Some((State::Alive, 6)));
        assert_eq!(c.health_score(), 1);
        // The refutation is gossiped.
        c.handle_timeout(now + Duration::from_secs(1));
        let (t, _) = drain(&mut c);
        let all: Vec<Message> = t
            .iter()
            .filter_map(|x| match x {
                Transmit::Packet { message, .. } => Some(leaves(message)),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(
            all.iter()
                .any(|m| matches!(m, Message::Alive(a) if a.node == b"me" && a.incarnation == 6))
        );
    }

    #[test]
    fn dead_about_self_is_refuted_while_we_have_not_left() {
        let (mut c, now) = with_peers(Config::default_lan(), 1);
        c.handle_packet(now, addr(2), dead("me", "p2", 1));
        assert_eq!(state(&c, "me"), Some((State::Alive, 2)));
    }

    #[test]
    fn alive_about_self_with_other_metadata_at_our_incarnation_is_refuted() {
        let (mut c, now) = new_core(Config::default_lan());
        let mut a = alive("me", 1, 1);
        a.meta = Some(b"impostor".to_vec());
        c.handle_packet(now, addr(9), Message::Alive(a));
        assert_eq!(c.incarnation(), 2);
        assert_eq!(c.member(b"me").unwrap().meta, None);
        // Our own alive echoed back changes nothing.
        c.handle_packet(now, addr(9), Message::Alive(alive("me", 1, 2)));
        assert_eq!(c.incarnation(), 2);
    }

    #[test]
    fn suspect_marks_alive_members_and_ignores_stale_incarnations() {
        let (mut c, now) = with_peers(Config::default_lan(), 2);
        c.handle_packet(now, addr(2), Message::Alive(alive("p3", 3, 4)));
        c.handle_packet(now, addr(2), suspect("p3", "p2", 3));
        assert_eq!(state(&c, "p3"), Some((State::Alive, 4)));
        c.handle_packet(now, addr(2), suspect("p3", "p2", 4));
        assert_eq!(state(&c, "p3"), Some((State::Suspect, 4)));
        let (_, ev) = drain(&mut c);
        assert!(matches!(ev.last(), Some(Event::MemberSuspect(m)) if *m.name == *b"p3"));
    }

    #[test]
    fn a_refuting_alive_cancels_the_suspicion() {
        let (mut c, now) = with_peers(Config::default_lan(), 2);
        c.handle_packet(now, addr(2), suspect("p3", "p2", 1));
        c.handle_packet(now, addr(3), Message::Alive(alive("p3", 3, 2)));
        assert_eq!(state(&c, "p3"), Some((State::Alive, 2)));
        c.handle_timeout(now + Duration::from_secs(3600));
        assert_eq!(state(&c, "p3").unwrap().0, State::Alive);
    }

    #[test]
    fn suspicion_expires_at_max_alone_and_at_min_with_k_confirmations() {
        // 10 members: n = 10, k = 2, min = 4 × 1 × probe_interval, max = 6 × min.
        // A long probe interval keeps our own probes out of the way.
        let p = Duration::from_secs(1000);
        let cfg = Config {
            probe_interval: p,
            probe_timeout: Duration::from_secs(1),
            ..Config::default_lan()
        };
        let (mut c, now) = with_peers(cfg.clone(), 9);
        c.handle_packet(now, addr(2), suspect("p3", "p2", 1));
        c.handle_timeout(now + p * 24 - Duration::from_millis(1));
        assert_eq!(state(&c, "p3").unwrap().0, State::Suspect);
        c.handle_timeout(now + p * 24);
        assert_eq!(state(&c, "p3").unwrap().0, State::Dead);

        let (mut c, now) = with_peers(cfg, 9);
        c.handle_packet(now, addr(2), suspect("p3", "p2", 1));
        c.handle_packet(now, addr(4), suspect("p3", "p2", 1)); // same accuser: no confirmation
        c.handle_packet(now, addr(4), suspect("p3", "p4", 1));
        c.handle_packet(now, addr(5), suspect("p3", "p5", 1));
        c.handle_timeout(now + p * 4 - Duration::from_millis(1));
        assert_eq!(state(&c, "p3").unwrap().0, State::Suspect);
        c.handle_timeout(now + p * 4);
        assert_eq!(state(&c, "p3"), Some((State::Dead, 1)));
        let (_, ev) = drain(&mut c);
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::MemberDead(m) if *m.name == *b"p3"))
        );
    }

    #[test]
    fn dead_from_the_node_itself_means_left() {
        let (mut c, now) = with_peers(Config::default_lan(), 1);
        c.handle_packet(now, addr(2), dead("p2", "p2", 1));
        assert_eq!(state(&c, "p2"), Some((State::Left, 1)));
        let (_, ev) = drain(&mut c);
        assert!(matches!(ev.last(), Some(Event::MemberLeft(_))));
        // A stale dead does not turn a left node into a dead one.
        c.handle_packet(now, addr(3), dead("p2", "p3", 0));
        assert_eq!(state(&c, "p2").unwrap().0, State::Left);
    }

    #[test]
    fn a_dead_name_is_reclaimed_from_a_new_address_only_after_the_reclaim_time() {
        let cfg = Config {
            dead_node_reclaim_time: Duration::from_secs(60),
            ..Config::default_lan()
        };
        let (mut c, now) = with_peers(cfg, 1);
        c.handle_packet(now, addr(3), dead("p2", "p3", 1));
        assert_eq!(state(&c, "p2").unwrap().0, State::Dead);
        let moved = alive("p2", 9, 1);
        c.handle_packet(
            now + Duration::from_secs(30),
            addr(9),
            Message::Alive(moved.clone()),
        );
        assert_eq!(
            state(&c, "p2").unwrap().0,
            State::Dead,
            "too early: conflict"
        );
        assert_eq!(c.address_conflicts(), 1);
        c.handle_packet(
            now + Duration::from_secs(61),
            addr(9),
            Message::Alive(moved),
        );
        let m = c.member(b"p2").unwrap();
        assert_eq!(
            (m.state, m.addr.as_slice()),
            (State::Alive, &[10, 0, 0, 9][..])
        );
    }

    #[test]
    fn without_a_reclaim_time_only_a_left_name_moves_to_a_new_address() {
        let (mut c, now) = with_peers(Config::dskit(), 2);
        c.handle_packet(now, addr(3), dead("p2", "p3", 1));
        c.handle_packet(
            now + Duration::from_secs(3600),
            addr(9),
            Message::Alive(alive("p2", 9, 5)),
        );
        assert_eq!(state(&c, "p2").unwrap().0, State::Dead);
        c.handle_packet(now, addr(3), dead("p3", "p3", 1));
        c.handle_packet(now, addr(8), Message::Alive(alive("p3", 8, 1)));
        assert_eq!(
            state(&c, "p3"),
            Some((State::Alive, 1)),
            "left: taken even at equal incarnation"
        );
    }

    #[test]
    fn a_ping_is_answered_to_its_source_address_with_the_same_sequence_number() {
        let (mut c, now) = new_core(Config::default_lan());
        let ping = Ping {
            seq_no: 42,
            node: b"me".to_vec(),
            source_addr: vec![10, 0, 0, 7],
            source_port: 7000,
            source_node: b"x".to_vec(),
        };
        c.handle_packet(now, addr(2), Message::Ping(ping.clone()));
        let (t, _) = drain(&mut c);
        let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 7000);
        let got = packets_to(&t, to);
        assert!(matches!(got.first(), Some(Message::Ack(a)) if a.seq_no == 42));
        // A ping for another node is ignored.
        let other = Ping {
            node: b"someone-else".to_vec(),
            ..ping
        };
        c.handle_packet(now, addr(2), Message::Ping(other));
        assert!(drain(&mut c).0.is_empty());
    }

    #[test]
    fn acks_carry_piggybacked_broadcasts_in_a_compound() {
        let (mut c, now) = new_core(Config::default_lan());
        c.queue_broadcast(b"kv-change".to_vec());
        let ping = Ping {
            seq_no: 1,
            ..Default::default()
        };
        c.handle_packet(now, addr(2), Message::Ping(ping));
        let (t, _) = drain(&mut c);
        let Transmit::Packet { message, .. } = &t[0] else {
            panic!("expected a packet");
        };
        let parts = leaves(message);
        assert!(matches!(message, Message::Compound(_)));
        assert!(matches!(parts[0], Message::Ack(_)), "the reply comes first");
        assert!(parts.contains(&Message::User(b"kv-change".to_vec().into())));
    }

    fn user(bytes: &[u8], origin: Origin, key: &str, items: &[&str], v: u64) -> UserBroadcast {
        UserBroadcast {
            bytes: bytes.to_vec(),
            origin,
            cover: Some(super::super::broadcast::Cover::new(
                key,
                items.iter().map(|s| s.to_string()).collect(),
                v,
            )),
        }
    }

    /// The user messages of one ping's ack, in order.
    fn piggybacked(c: &mut Core<StdRng>, now: Instant) -> Vec<Vec<u8>> {
        let ping = Ping {
            seq_no: 1,
            ..Default::default()
        };
        c.handle_packet(now, addr(2), Message::Ping(ping));
        let (t, _) = drain(c);
        t.iter()
            .filter_map(|x| match x {
                Transmit::Packet { message, .. } => Some(leaves(message)),
                _ => None,
            })
            .flatten()
            .filter_map(|m| match m {
                Message::User(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect()
    }

    fn user_packets(t: &[Transmit]) -> usize {
        t.iter()
            .filter(|x| match x {
                Transmit::Packet { message, .. } => leaves(message)
                    .iter()
                    .any(|m| matches!(m, Message::User(_))),
                _ => false,
            })
            .count()
    }

    #[test]
    fn own_changes_are_gossiped_at_once_at_most_once_per_interval() {
        let (mut c, now) = with_peers(Config::dskit(), 5);
        // Relayed news waits for the tick.
        c.queue_user_broadcast(user(b"relayed", Origin::Relayed, "ring", &["b"], 1));
        assert!(!c.gossip_local_changes(now));
        assert_eq!(user_packets(&drain(&mut c).0), 0);
        // Our own change goes out now, to as many members as its transmit quota
        // (4 × ⌈log10(6 alive + 1)⌉ = 4), more than gossip_nodes (3).
        c.queue_user_broadcast(user(b"mine-1", Origin::Local, "ring", &["me"], 2));
        assert!(c.gossip_local_changes(now));
        assert_eq!(user_packets(&drain(&mut c).0), 4);
        assert_eq!(c.queued_local_broadcasts(), 0, "its quota is spent");
        // A second one right after (a join's ACTIVE after its PENDING) goes at once too...
        c.queue_user_broadcast(user(b"mine-2", Origin::Local, "ring", &["me"], 3));
        assert!(c.gossip_local_changes(now + Duration::from_millis(20)));
        assert_eq!(user_packets(&drain(&mut c).0), 4);
        // ...a third within the interval waits for the tick...
        c.queue_user_broadcast(user(b"mine-3", Origin::Local, "ring", &["me"], 4));
        assert!(!c.gossip_local_changes(now + Duration::from_millis(50)));
        assert_eq!(user_packets(&drain(&mut c).0), 0);
        // ...and one earned an interval later goes at once again.
        assert!(c.gossip_local_changes(now + Duration::from_millis(200)));
        assert_eq!(user_packets(&drain(&mut c).0), 4);
        // memberlist's timing when switched off.
        let (mut c, now) = with_peers(
            Config {
                gossip_local_changes_at_once: false,
                ..Config::dskit()
            },
            5,
        );
        c.queue_user_broadcast(user(b"mine-1", Origin::Local, "ring", &["me"], 2));
        assert!(!c.gossip_local_changes(now));
        assert_eq!(user_packets(&drain(&mut c).0), 0);
    }

    #[test]
    fn our_own_changes_go_before_relayed_ones_even_when_relayed_are_larger() {
        // A 1400-byte budget: either message fits next to the ack (and our own queued
        // alive), not both; relayed-first (larger first) would pick the relayed one.
        let (mut c, now) = new_core(Config::default_lan());
        c.queue_user_broadcast(user(&[b'r'; 1100], Origin::Relayed, "ring", &["b"], 1));
        c.queue_user_broadcast(user(&[b'l'; 300], Origin::Local, "ring", &["me"], 2));
        assert_eq!(c.queued_local_broadcasts(), 1);
        assert_eq!(c.queued_broadcasts().1, 2);
        assert_eq!(piggybacked(&mut c, now), vec![vec![b'l'; 300]]);
        // With room for both, local first, then relayed.
        let (mut c, now) = new_core(Config::default_lan());
        c.queue_user_broadcast(user(&[b'r'; 40], Origin::Relayed, "ring", &["b"], 1));
        c.queue_user_broadcast(user(&[b'l'; 30], Origin::Local, "ring", &["me"], 2));
        assert_eq!(
            piggybacked(&mut c, now),
            vec![vec![b'l'; 30], vec![b'r'; 40]]
        );
    }

    #[test]
    fn a_newer_change_replaces_the_one_it_covers_only_in_its_own_queue() {
        let (mut c, now) = new_core(Config::default_lan());
        c.queue_user_broadcast(user(b"hb-a-1", Origin::Relayed, "ring", &["a"], 1));
        c.queue_user_broadcast(user(b"hb-b-1", Origin::Relayed, "ring", &["b"], 2));
        c.queue_user_broadcast(user(b"mine-1", Origin::Local, "ring", &["a"], 3));
        c.queue_user_broadcast(user(b"hb-a-2", Origin::Relayed, "ring", &["a"], 4));
        let s = c.broadcast_stats();
        assert_eq!((s.local.messages, s.gossip.messages), (1, 2));
        assert_eq!(s.gossip.invalidated, 1);
        assert_eq!(s.bytes(), 3 * 7);
        let mut got = piggybacked(&mut c, now);
        got.sort();
        assert_eq!(
            got,
            vec![b"hb-a-2".to_vec(), b"hb-b-1".to_vec(), b"mine-1".to_vec()]
        );
    }

    #[test]
    fn user_queues_stay_within_their_bound_and_count_drops() {
        let cfg = Config {
            broadcast_queue_limits: super::super::broadcast::QueueLimits {
                max_messages: 4,
                max_bytes: 1 << 20,
            },
            ..Config::default_lan()
        };
        let (mut c, _) = new_core(cfg);
        for i in 0..10u8 {
            let name = format!("i{i}");
            c.queue_user_broadcast(user(&[i; 10], Origin::Relayed, "ring", &[&name], 1));
        }
        let s = c.broadcast_stats();
        assert_eq!((s.gossip.messages, s.gossip.dropped), (4, 6));
        assert_eq!(s.dropped(), 6);
        assert_eq!(s.local.messages, 0);
    }

    #[test]
    fn received_user_messages_beyond_the_handoff_depth_are_dropped_and_counted() {
        let cfg = Config {
            handoff_queue_depth: 3,
            ..Config::default_lan()
        };
        let (mut c, now) = new_core(cfg);
        let parts = (0..5u8).map(|i| Message::User(vec![i].into())).collect();
        c.handle_packet(
            now,
            addr(2),
            Message::Compound(Compound {
                parts,
                truncated: 0,
            }),
        );
        assert_eq!(c.broadcast_stats().received_dropped, 2);
        let (_, ev) = drain(&mut c);
        let users: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, Event::UserMessage { .. }))
            .collect();
        assert_eq!(users.len(), 3);
        // Polled events free their places.
        c.handle_packet(now, addr(2), Message::User(vec![9].into()));
        let (_, ev) = drain(&mut c);
        assert_eq!(ev.len(), 1);
        assert_eq!(c.broadcast_stats().received_dropped, 2);
    }

    #[test]
    fn a_silent_member_gets_indirect_probes_then_is_suspected_and_health_drops() {
        let cfg = Config::default_lan();
        let (mut c, now) = with_peers(cfg.clone(), 4);
        // Run the probe tick and find the target.
        let t0 = c.poll_timeout().unwrap();
        c.handle_timeout(t0);
        let (tx, _) = drain(&mut c);
        let (target, seq) = tx
            .iter()
            .find_map(|x| match x {
                Transmit::Packet { message, .. } => {
                    leaves(message).into_iter().find_map(|m| match m {
                        Message::Ping(p) => Some((p.node, p.seq_no)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .expect("a ping");
        // No ack: after probe_timeout, three helpers get an indirect ping.
        c.handle_timeout(t0 + cfg.probe_timeout);
        let (tx, _) = drain(&mut c);
        let ind: Vec<IndirectPing> = tx
            .iter()
            .filter_map(|x| match x {
                Transmit::Packet { message, .. } => Some(leaves(message)),
                _ => None,
            })
            .flatten()
            .filter_map(|m| match m {
                Message::IndirectPing(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(ind.len(), 3);
        assert!(
            ind.iter()
                .all(|p| p.node == target && p.seq_no == seq && p.nack)
        );
        // One helper reports a nack; two stay silent.
        c.handle_packet(now, addr(2), Message::Nack(Nack { seq_no: seq }));
        c.handle_timeout(t0 + cfg.probe_interval);
        let name = String::from_utf8(target).unwrap();
        assert_eq!(state(&c, &name).unwrap().0, State::Suspect);
        assert_eq!(c.health_score(), 2, "two missing nacks");
        let _ = now;
    }

    #[test]
    fn an_ack_within_the_probe_completes_it_without_suspicion() {
        let cfg = Config::default_lan();
        let (mut c, _) = with_peers(cfg.clone(), 2);
        c.awareness.apply_delta(3);
        let t0 = c.poll_timeout().unwrap();
        c.handle_timeout(t0);
        let (tx, _) = drain(&mut c);
        let seq = tx
            .iter()
            .find_map(|x| match x {
                Transmit::Packet { message, .. } => {
                    leaves(message).into_iter().find_map(|m| match m {
                        Message::Ping(p) => Some(p.seq_no),
                        _ => None,
                    })
                }
                _ => None,
            })
            .unwrap();
        c.handle_packet(
            t0,
            addr(2),
            Message::Ack(Ack {
                seq_no: seq,
                payload: None,
            }),
        );
        c.handle_timeout(t0 + cfg.probe_interval * 8);
        assert!(c.members().all(|m| m.state == State::Alive));
        assert!(c.health_score() < 3);
    }

    #[test]
    fn an_indirect_ping_is_relayed_and_the_ack_forwarded_with_the_requesters_sequence() {
        let cfg = Config::default_lan();
        let (mut c, now) = new_core(cfg.clone());
        let ind = IndirectPing {
            seq_no: 77,
            target: vec![10, 0, 0, 5],
            port: 7946,
            node: b"t".to_vec(),
            nack: true,
            source_addr: vec![10, 0, 0, 2],
            source_port: 7946,
            source_node: b"req".to_vec(),
        };
        c.handle_packet(now, addr(2), Message::IndirectPing(ind.clone()));
        let (tx, _) = drain(&mut c);
        let Some(Message::Ping(p)) = packets_to(&tx, addr(5)).into_iter().next() else {
            panic!("expected a ping to the target");
        };
        c.handle_packet(
            now,
            addr(5),
            Message::Ack(Ack {
                seq_no: p.seq_no,
                payload: None,
            }),
        );
        let (tx, _) = drain(&mut c);
        assert!(
            matches!(packets_to(&tx, addr(2)).first(), Some(Message::Ack(a)) if a.seq_no == 77)
        );
        // Without an ack, a nack goes back after probe_timeout.
        c.handle_packet(
            now,
            addr(2),
            Message::IndirectPing(IndirectPing { seq_no: 78, ..ind }),
        );
        drain(&mut c);
        c.handle_timeout(now + cfg.probe_timeout);
        let (tx, _) = drain(&mut c);
        assert!(packets_to(&tx, addr(2)).contains(&Message::Nack(Nack { seq_no: 78 })));
    }

    #[test]
    fn gossip_packets_stay_within_the_packet_budget() {
        let cfg = Config {
            packet_budget: 300,
            ..Config::default_lan()
        };
        let (mut c, now) = with_peers(cfg, 3);
        for i in 0..40u8 {
            c.queue_broadcast(vec![i; 40]);
        }
        c.handle_timeout(now + Duration::from_secs(1));
        let (tx, _) = drain(&mut c);
        let mut n = 0;
        for t in &tx {
            if let Transmit::Packet { message, .. } = t {
                let mut buf = Vec::new();
                encode_packet_message(&mut buf, message).unwrap();
                assert!(buf.len() <= 300, "packet of {} bytes", buf.len());
                n += 1;
            }
        }
        assert!(n > 0);
    }

    #[test]
    fn leave_broadcasts_our_own_dead_and_reports_when_it_is_drained() {
        let (mut c, now) = with_peers(Config::default_lan(), 3);
        c.leave(now);
        assert_eq!(state(&c, "me").unwrap().0, State::Left);
        let mut done_at = None;
        for step in 1..200 {
            c.handle_timeout(now + Duration::from_millis(200 * step));
            let (_, ev) = drain(&mut c);
            if ev.contains(&Event::LeaveBroadcastDone) {
                done_at = Some(step);
                break;
            }
        }
        assert!(done_at.is_some(), "leave broadcast never drained");
        // Accusations no longer trigger refutation after leaving.
        c.handle_packet(now, addr(2), Message::Alive(alive("me", 1, 99)));
        assert_eq!(state(&c, "me").unwrap().0, State::Left);
    }

    #[test]
    fn leaving_alone_is_done_at_once() {
        let (mut c, now) = new_core(Config::default_lan());
        c.leave(now);
        let (_, ev) = drain(&mut c);
        assert!(ev.contains(&Event::LeaveBroadcastDone));
    }

    fn push(name: &str, i: u8, inc: u32, st: NodeState) -> PushNodeState {
        PushNodeState {
            name: name.as_bytes().to_vec(),
            addr: vec![10, 0, 0, i],
            port: 7946,
            meta: None,
            incarnation: inc,
            state: st,
            vsn: DSKIT_VSN.to_vec(),
        }
    }

    #[test]
    fn assuming_convergence_leaves_what_a_join_push_pull_leaves_without_its_news() {
        // Peers in shuffled name order, plus ourselves, as a join's push/pull lists them.
        let mut ids: Vec<u8> = (2..40).collect();
        ids.reverse();
        ids.swap(3, 17);
        let states: Vec<PushNodeState> = ids
            .iter()
            .map(|&i| {
                push(
                    &format!("p{i:02}"),
                    i,
                    u32::from(i % 3) + 1,
                    NodeState::Alive,
                )
            })
            .chain([push("me", 1, 1, NodeState::Alive)])
            .collect();
        let (mut joined, now) = new_core(Config::dskit());
        joined
            .handle_push_pull(
                now,
                addr(2),
                PushPull {
                    join: true,
                    nodes: states.clone(),
                    user_state: Vec::new(),
                },
            )
            .unwrap();
        let (_, joined_events) = drain(&mut joined);
        let (mut assumed, _) = new_core(Config::dskit());
        let members: Vec<Member> = states
            .iter()
            .map(|s| Member {
                name: s.name.as_slice().into(),
                addr: s.addr.as_slice().into(),
                port: s.port,
                meta: s.meta.clone(),
                vsn: vsn_array(&s.vsn).unwrap_or_default(),
                incarnation: s.incarnation,
                state: State::Alive,
                state_change: now,
            })
            .collect();
        assumed.assume_converged(now, &members);
        let (t, assumed_events) = drain(&mut assumed);
        assert!(t.is_empty());
        assert_eq!(
            assumed_events, joined_events,
            "one MemberJoined per peer, in order"
        );
        assert_eq!(assumed_events.len(), ids.len());
        // Peers only: each core was created at its own instant.
        let table = |c: &Core<StdRng>| {
            c.members()
                .filter(|m| *m.name != *b"me")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(table(&assumed), table(&joined));
        let probe_order = |c: &Core<StdRng>| {
            c.members
                .iter_probe_order()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            probe_order(&assumed),
            probe_order(&joined),
            "same random draws"
        );
        // The join queued news of every peer; the bootstrap queued none.
        assert_eq!(assumed.queued_broadcasts().0, 0);
        assert!(joined.queued_broadcasts().0 >= ids.len());
        // Names are shared with the caller's entries, not copied.
        let p = assumed.member(b"p05").unwrap();
        let given = members.iter().find(|m| *m.name == *b"p05").unwrap();
        assert!(Arc::ptr_eq(&p.name, &given.name));
    }

    #[test]
    fn push_pull_merge_downgrades_remote_dead_to_suspect_and_hands_over_user_state() {
        let (mut c, now) = with_peers(Config::default_lan(), 1);
        let remote = PushPull {
            join: true,
            nodes: vec![
                push("p2", 2, 1, NodeState::Dead),
                push("new", 9, 3, NodeState::Alive),
                push("gone", 8, 2, NodeState::Left),
            ],
            user_state: b"kv".to_vec(),
        };
        c.handle_push_pull(now, addr(2), remote).unwrap();
        assert_eq!(state(&c, "p2").unwrap().0, State::Suspect);
        assert_eq!(state(&c, "new"), Some((State::Alive, 3)));
        let (_, ev) = drain(&mut c);
        assert!(ev.contains(&Event::RemoteState {
            from: addr(2),
            join: true,
            state: b"kv".to_vec()
        }));
    }

    #[test]
    fn push_pull_with_incompatible_protocol_versions_merges_nothing() {
        let (mut c, now) = with_peers(Config::default_lan(), 1);
        let mut n = push("new", 9, 3, NodeState::Alive);
        n.vsn = vec![3, 5, 3, 0, 0, 0]; // needs protocol >= 3, we speak 2
        let remote = PushPull {
            join: false,
            nodes: vec![n],
            user_state: b"kv".to_vec(),
        };
        let err = c.handle_push_pull(now, addr(2), remote).unwrap_err();
        assert!(matches!(
            err,
            Error::IncompatibleVersions {
                what: "protocol",
                ..
            }
        ));
        assert_eq!(state(&c, "new"), None);
        assert!(drain(&mut c).1.is_empty());
    }

    #[test]
    fn push_pull_interval_scales_with_log2_of_cluster_size_above_32() {
        let i = Duration::from_secs(30);
        assert_eq!(push_pull_scale(i, 32), i);
        assert_eq!(push_pull_scale(i, 33), i * 2);
        assert_eq!(push_pull_scale(i, 64), i * 2);
        assert_eq!(push_pull_scale(i, 100), i * 3);
        assert_eq!(push_pull_scale(i, 128), i * 3);
        assert_eq!(push_pull_scale(i, 256), i * 4);
        assert_eq!(push_pull_scale(i, 1000), i * 6);
    }

    #[test]
    fn set_meta_announces_a_new_incarnation_and_oversized_meta_is_refused() {
        let (mut c, now) = new_core(Config::default_lan());
        c.set_meta(now, Some(vec![1, 2, 0])).unwrap();
        assert_eq!(c.incarnation(), 2);
        assert_eq!(c.member(b"me").unwrap().meta, Some(vec![1, 2, 0]));
        assert_eq!(
            c.set_meta(now, Some(vec![0; 513])),
            Err(Error::MetaTooLong(513))
        );
        assert_eq!(c.incarnation(), 2);
    }

    #[test]
    fn join_sends_a_join_push_pull_to_every_seed() {
        let (mut c, now) = new_core(Config::dskit());
        c.join(now, &[addr(2), addr(3)]);
        let (tx, _) = drain(&mut c);
        assert_eq!(tx.len(), 2);
        for t in tx {
            let Transmit::PushPull { request, .. } = t else {
                panic!("expected push/pull");
            };
            assert!(request.join);
            assert_eq!(request.nodes.len(), 1);
            assert_eq!(request.nodes[0].vsn, DSKIT_VSN.to_vec());
        }
    }

    fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
        let n = rng.random_range(0..=max);
        (0..n).map(|_| rng.random()).collect()
    }

    fn random_name(rng: &mut StdRng) -> Vec<u8> {
        let names: [&[u8]; 6] = [b"me", b"p2", b"p3", b"p4", b"", b"\xff\x00"];
        names[rng.random_range(0..names.len())].to_vec()
    }

    fn random_message(rng: &mut StdRng, depth: u32) -> Message {
        let inc = |rng: &mut StdRng| {
            if rng.random_bool(0.1) {
                u32::MAX - rng.random_range(0..2)
            } else {
                rng.random_range(0..6)
            }
        };
        match rng.random_range(0..10) {
            0 => Message::Ping(Ping {
                seq_no: rng.random(),
                node: random_name(rng),
                source_addr: random_bytes(rng, 17),
                source_port: rng.random(),
                source_node: random_name(rng),
            }),
            1 => Message::IndirectPing(IndirectPing {
                seq_no: rng.random(),
                target: random_bytes(rng, 17),
                port: rng.random(),
                node: random_name(rng),
                nack: rng.random(),
                source_addr: random_bytes(rng, 17),
                source_port: rng.random(),
                source_node: random_name(rng),
            }),
            2 => Message::Ack(Ack {
                seq_no: rng.random_range(0..20),
                payload: None,
            }),
            3 => Message::Nack(Nack {
                seq_no: rng.random_range(0..20),
            }),
            4 => Message::Suspect(Suspect {
                incarnation: inc(rng),
                node: random_name(rng),
                from: random_name(rng),
            }),
            5 => Message::Alive(Alive {
                incarnation: inc(rng),
                node: random_name(rng),
                addr: random_bytes(rng, 17),
                port: rng.random(),
                meta: rng.random_bool(0.5).then(|| random_bytes(rng, 600)),
                vsn: random_bytes(rng, 8),
            }),
            6 => Message::Dead(Dead {
                incarnation: inc(rng),
                node: random_name(rng),
                from: random_name(rng),
            }),
            7 => Message::User(random_bytes(rng, 30).into()),
            8 if depth < 3 => Message::Compound(Compound {
                parts: (0..rng.random_range(0..5))
                    .map(|_| random_message(rng, depth + 1))
                    .collect(),
                truncated: 0,
            }),
            _ => Message::Error(crate::wire::message::ErrResp::default()),
        }
    }

    #[test]
    fn random_peer_input_never_panics_and_keeps_self_alive_with_growing_incarnation() {
        for seed in 0..8 {
            let mut rng = StdRng::seed_from_u64(seed);
            let (mut c, mut now) = new_core(Config::default_lan());
            let mut last_inc = c.incarnation();
            for _ in 0..2000 {
                match rng.random_range(0..20) {
                    0 => now += Duration::from_millis(rng.random_range(0..3000)),
                    1 => {
                        let nodes = (0..rng.random_range(0..4))
                            .map(|_| PushNodeState {
                                name: random_name(&mut rng),
                                addr: random_bytes(&mut rng, 17),
                                port: rng.random(),
                                meta: None,
                                incarnation: rng.random_range(0..6),
                                state: NodeState::from_wire(rng.random_range(-1..5)),
                                vsn: random_bytes(&mut rng, 8),
                            })
                            .collect();
                        let pp = PushPull {
                            join: rng.random(),
                            nodes,
                            user_state: random_bytes(&mut rng, 4),
                        };
                        let _ = c.handle_push_pull(now, addr(2), pp);
                    }
                    _ => {
                        let m = random_message(&mut rng, 0);
                        c.handle_packet(now, addr(2), m);
                    }
                }
                c.handle_timeout(now);
                drain(&mut c);
                let me = c.member(b"me").expect("self stays known");
                assert_eq!(me.state, State::Alive, "seed {seed}");
                assert!(c.incarnation() >= last_inc, "seed {seed}");
                assert_eq!(me.incarnation, c.incarnation(), "seed {seed}");
                last_inc = c.incarnation();
                assert!(c.health_score() < 8);
                assert!(c.poll_timeout().is_some_and(|t| t > now));
            }
        }
    }

    // ------------------------------------------------------ zone-aware routing

    mod zone_aware {
        use super::*;
        use crate::swim::routing::ZoneAwareRouting;
        use crate::wire::node_meta::{NodeRole, encode_node_meta};
        use std::collections::BTreeSet;

        /// The peers: zones a, b, c, each with one bridge and members; "me" (10.0.0.1)
        /// is in zone a. Returns (name, zone, role, address index).
        fn layout() -> Vec<(String, &'static str, NodeRole, u8)> {
            let mut out = Vec::new();
            let mut i = 2;
            for zone in ["zone-a", "zone-b", "zone-c"] {
                let members = if zone == "zone-a" { 2 } else { 3 };
                out.push((format!("bridge-{zone}"), zone, NodeRole::Bridge, i));
                i += 1;
                for k in 0..members {
                    out.push((format!("member-{zone}-{k}"), zone, NodeRole::Member, i));
                    i += 1;
                }
            }
            out
        }

        /// Probes out of the way (one per hour), so every packet is gossip.
        fn config(role: NodeRole) -> Config {
            Config {
                probe_interval: Duration::from_secs(3600),
                probe_timeout: Duration::from_secs(1800),
                push_pull_interval: Duration::ZERO,
                push_pull_nodes: if role == NodeRole::Bridge { 2 } else { 1 },
                zone_aware_routing: Some(ZoneAwareRouting {
                    role,
                    zone: b"zone-a".to_vec(),
                }),
                ..Config::dskit()
            }
        }

        fn routed_core(
            config: Config,
            extra: &[(&str, &str, NodeRole, u8)],
        ) -> (Core<StdRng>, Instant) {
            let (mut c, now) = new_core(config);
            let mut peers = layout();
            peers.extend(extra.iter().map(|&(n, z, r, i)| (n.to_owned(), z, r, i)));
            for (name, zone, role, i) in peers {
                let mut a = alive(&name, i, 1);
                a.meta = Some(encode_node_meta(role, zone.as_bytes()).unwrap());
                c.handle_packet(now, addr(i), Message::Alive(a));
            }
            drain(&mut c);
            c.mark_joined();
            (c, now)
        }

        fn name_of(to: SocketAddr) -> String {
            let IpAddr::V4(ip) = to.ip() else { panic!() };
            let i = ip.octets()[3];
            layout()
                .into_iter()
                .find(|p| p.3 == i)
                .map(|p| p.0)
                .unwrap_or_else(|| format!("10.0.0.{i}"))
        }

        /// Runs `rounds` gossip rounds with fresh broadcasts queued before each; the
        /// targets of each round in order.
        fn gossip_rounds(
            c: &mut Core<StdRng>,
            mut now: Instant,
            rounds: usize,
        ) -> Vec<Vec<String>> {
            let mut out = Vec::new();
            for r in 0..rounds {
                for k in 0..3 {
                    c.queue_broadcast(format!("round {r} msg {k}").into_bytes());
                }
                now += c.config().gossip_interval;
                c.handle_timeout(now);
                let (t, _) = drain(c);
                out.push(
                    t.iter()
                        .filter_map(|x| match x {
                            Transmit::Packet { to, .. } => Some(name_of(*to)),
                            _ => None,
                        })
                        .collect(),
                );
            }
            out
        }

        #[test]
        fn the_core_announces_the_routing_metadata_and_refuses_other_metadata() {
            let (c, _) = new_core(config(NodeRole::Bridge));
            assert_eq!(
                c.member(b"me").unwrap().meta.as_deref(),
                Some(&b"\x01\x02\x06zone-a"[..])
            );
            let local = LocalNode {
                name: b"me".to_vec(),
                addr: addr(1),
                ip_form: IpForm::V4,
                meta: Some(b"other".to_vec()),
            };
            let err = Core::new(
                Instant::now(),
                config(NodeRole::Member),
                local,
                StdRng::seed_from_u64(1),
            );
            assert_eq!(err.err(), Some(Error::MetaConflict));
        }

        #[test]
        fn a_member_gossips_only_within_its_zone_and_reaches_all_of_it() {
            let (mut c, now) = routed_core(config(NodeRole::Member), &[]);
            let rounds = gossip_rounds(&mut c, now, 200);
            let seen: BTreeSet<String> = rounds.into_iter().flatten().collect();
            let want: BTreeSet<String> = layout()
                .into_iter()
                .filter(|p| p.1 == "zone-a")
                .map(|p| p.0)
                .collect();
            assert_eq!(seen, want);
            assert_eq!(c.routing_stats().select_calls, 200);
            assert_eq!(c.routing_stats().skipped, 0);
        }

        #[test]
        fn a_bridge_gossips_first_to_another_zones_bridge_every_round_and_never_to_their_members() {
            let (mut c, now) = routed_core(config(NodeRole::Bridge), &[]);
            let rounds = gossip_rounds(&mut c, now, 200);
            let mut first = BTreeSet::new();
            for r in &rounds {
                assert_eq!(r.len(), 3, "three gossip targets per round: {r:?}");
                first.insert(r[0].clone());
                for t in r {
                    assert!(
                        t.contains("zone-a") || t.starts_with("bridge-"),
                        "bridge gossiped to {t}"
                    );
                }
            }
            let other_bridges: BTreeSet<String> =
                ["bridge-zone-b", "bridge-zone-c"].map(String::from).into();
            assert_eq!(
                first, other_bridges,
                "the preferred node is an other-zone bridge"
            );
        }

        #[test]
        fn push_pull_goes_to_two_nodes_for_a_bridge_one_of_them_across_zones_and_to_one_for_a_member()
         {
            for role in [NodeRole::Bridge, NodeRole::Member] {
                let cfg = Config {
                    push_pull_interval: Duration::from_secs(30),
                    gossip_interval: Duration::ZERO,
                    ..config(role)
                };
                let (mut c, mut now) = routed_core(cfg, &[]);
                for _ in 0..50 {
                    now += Duration::from_secs(30);
                    c.handle_timeout(now);
                    let (t, _) = drain(&mut c);
                    let to: Vec<String> = t
                        .iter()
                        .filter_map(|x| match x {
                            Transmit::PushPull { to, .. } => Some(name_of(*to)),
                            _ => None,
                        })
                        .collect();
                    match role {
                        NodeRole::Bridge => {
                            assert_eq!(to.len(), 2, "{to:?}");
                            assert!(
                                to[0] == "bridge-zone-b" || to[0] == "bridge-zone-c",
                                "{to:?}"
                            );
                            assert!(
                                to[1].contains("zone-a") || to[1].starts_with("bridge-"),
                                "{to:?}"
                            );
                        }
                        _ => {
                            assert_eq!(to.len(), 1, "{to:?}");
                            assert!(to[0].contains("zone-a"), "{to:?}");
                        }
                    }
                }
            }
        }

        #[test]
        fn a_zone_without_a_bridge_turns_routing_off_and_counts_the_skip() {
            // zone-d has a member and no bridge: a member of zone-a then gossips to
            // anyone, as dskit does, so zone-d is not cut off.
            let extra = [("member-zone-d", "zone-d", NodeRole::Member, 40)];
            let (mut c, now) = routed_core(config(NodeRole::Member), &extra);
            let rounds = gossip_rounds(&mut c, now, 100);
            let seen: BTreeSet<String> = rounds.into_iter().flatten().collect();
            assert!(
                seen.iter()
                    .any(|t| t.contains("zone-b") || t.contains("zone-c"))
            );
            assert!(seen.contains("10.0.0.40"), "{seen:?}");
            assert_eq!(c.routing_stats().skipped, 100);
        }

        #[test]
        fn nodes_without_metadata_are_gossiped_to_by_routed_members() {
            let (mut c, now) = routed_core(config(NodeRole::Member), &[]);
            c.handle_packet(now, addr(50), Message::Alive(alive("old-dskit", 50, 1)));
            drain(&mut c);
            let rounds = gossip_rounds(&mut c, now, 200);
            let seen: BTreeSet<String> = rounds.into_iter().flatten().collect();
            assert!(seen.contains("10.0.0.50"), "{seen:?}");
            assert!(
                !seen
                    .iter()
                    .any(|t| t.contains("zone-b") || t.contains("zone-c"))
            );
        }

        #[test]
        fn skips_before_the_join_is_over_are_not_counted() {
            let (mut c, now) = new_core(config(NodeRole::Member));
            let mut a = alive("member-zone-d", 40, 1);
            a.meta = Some(encode_node_meta(NodeRole::Member, b"zone-d").unwrap());
            c.handle_packet(now, addr(40), Message::Alive(a));
            drain(&mut c);
            let now = now + Duration::from_secs(1);
            gossip_rounds(&mut c, now, 5);
            let s = c.routing_stats();
            assert_eq!((s.select_calls, s.skipped), (5, 0));
            c.mark_joined();
            gossip_rounds(&mut c, now + Duration::from_secs(1), 5);
            let s = c.routing_stats();
            assert_eq!((s.select_calls, s.skipped), (10, 5));
        }
    }
}
