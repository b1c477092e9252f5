//! The simulated network: per-link loss, delay, duplication and partitions, with
//! in-flight messages ordered by arrival time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::StdRng;

/// Behaviour of every link (the same for all pairs of nodes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a delivered packet arrives twice (second copy with its
    /// own delay).
    pub duplicate: f64,
    /// Shortest one-way delay.
    pub delay_min: Duration,
    /// Longest one-way delay (uniform in between).
    pub delay_max: Duration,
    /// Probability that a whole stream exchange (push/pull) fails. Streams are TCP
    /// connections: packet loss only slows them down, so this is separate.
    pub stream_failure: f64,
}

impl Default for LinkConfig {
    /// A clean LAN: no loss, 1–10 ms delay.
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            duplicate: 0.0,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(10),
            stream_failure: 0.0,
        }
    }
}

/// What travels between two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Encoded memberlist packet bytes.
    Packet(Vec<u8>),
    /// Encoded stream bytes of a push/pull request.
    PushPullRequest(Vec<u8>),
    /// Encoded stream bytes of a push/pull reply.
    PushPullReply(Vec<u8>),
}

/// A message in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Arrival time.
    pub at: Instant,
    /// Sender index.
    pub from: usize,
    /// Receiver index.
    pub to: usize,
    /// The bytes.
    pub payload: Payload,
}

/// A queued delivery, ordered by arrival time, then send order (ties resolve
/// by send order), so the payload travels inside the heap without a side table.
#[derive(Debug)]
struct Queued {
    at: Instant,
    id: u64,
    delivery: Delivery,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.id).cmp(&(other.at, other.id))
    }
}

/// Links, partitions and the in-flight queue.
#[derive(Debug)]
pub struct Network {
    /// Link behaviour.
    pub link: LinkConfig,
    /// Partition group of each node; nodes in different groups cannot talk.
    groups: Option<Vec<u32>>,
    /// Messages in flight, earliest first.
    queue: BinaryHeap<Reverse<Queued>>,
    next_id: u64,
    /// Packets dropped by loss or partitions.
    pub dropped: u64,
}

impl Network {
    /// A network with no partition.
    pub fn new(link: LinkConfig) -> Self {
        Network {
            link,
            groups: None,
            queue: BinaryHeap::new(),
            next_id: 0,
            dropped: 0,
        }
    }

    /// Splits the nodes: `group_of[i]` is node i's side.
    pub fn partition(&mut self, group_of: Vec<u32>) {
        self.groups = Some(group_of);
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    /// True when `a` and `b` can talk.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        match &self.groups {
            None => true,
            Some(g) => g.get(a) == g.get(b),
        }
    }

    fn delay(&self, rng: &mut StdRng) -> Duration {
        let (lo, hi) = (self.link.delay_min, self.link.delay_max);
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from((hi - lo).as_nanos()).unwrap_or(u64::MAX);
        lo + Duration::from_nanos(rng.random_range(0..=span))
    }

    fn enqueue(&mut self, d: Delivery) {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push(Reverse(Queued {
            at: d.at,
            id,
            delivery: d,
        }));
    }

    /// Sends a packet: subject to partitions, loss, delay and duplication.
    pub fn send_packet(
        &mut self,
        rng: &mut StdRng,
        now: Instant,
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    ) {
        if !self.connected(from, to) || rng.random::<f64>() < self.link.loss {
            self.dropped += 1;
            return;
        }
        if rng.random::<f64>() < self.link.duplicate {
            let at = now + self.delay(rng);
            let payload = Payload::Packet(bytes.clone());
            self.enqueue(Delivery {
                at,
                from,
                to,
                payload,
            });
        }
        let at = now + self.delay(rng);
        self.enqueue(Delivery {
            at,
            from,
            to,
            payload: Payload::Packet(bytes),
        });
    }

    /// Sends one leg of a stream exchange: subject to partitions, stream
    /// failure and delay, never duplicated.
    pub fn send_stream(
        &mut self,
        rng: &mut StdRng,
        now: Instant,
        from: usize,
        to: usize,
        payload: Payload,
    ) {
        if !self.connected(from, to) || rng.random::<f64>() < self.link.stream_failure {
            self.dropped += 1;
            return;
        }
        let at = now + self.delay(rng);
        self.enqueue(Delivery {
            at,
            from,
            to,
            payload,
        });
    }

    /// Arrival time of the next message.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(q)| q.at)
    }

    /// Takes the next message.
    pub fn pop(&mut self) -> Option<Delivery> {
        self.queue.pop().map(|Reverse(q)| q.delivery)
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
