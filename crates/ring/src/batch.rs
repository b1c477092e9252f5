//! `DoBatch`: send many keyed items to their replicas with one call per instance, and
//! decide per item whether a quorum of replicas accepted it (spec/ring.md §3.6).
//!
//! A distributor pushing 1000 series to a 100-instance ring with RF 3 does not make 3000
//! calls: it looks up each key's replicas, groups the items by instance, calls each
//! instance once with its items, and returns once every item has reached quorum (or one
//! item cannot). The work is split in two steps so each can be measured and tested alone:
//!
//! 1. [`BatchBuffers::plan`] (synchronous, pure): keys → replica lookups → per-instance
//!    item lists plus one quorum tracker per item. Buffers are caller-owned and reused, so
//!    a steady stream of batches does not allocate for this step once they have grown.
//! 2. [`BatchPlan::run`] (async): calls the callback once per instance, polls the calls
//!    with bounded concurrency and records each call's result against its items.
//!
//! [`do_batch`] does both.
//!
//! # Decision rules (as dskit's `batchTracker`)
//!
//! Each item tracks `min_success = replicas - max_errors`, `max_failures = max_errors`,
//! `remaining = replicas`. Errors are split into client errors (4xx-like, per the caller's
//! `is_client_error`) and server errors, and counted per class:
//!
//! - an error fails the item if its class's count exceeds `max_failures`, or else if it
//!   brings `remaining` to 0;
//! - a success that brings the item to `min_success` settles it; below that it lowers
//!   `remaining`, and at 0 the item fails with its last recorded error.
//!
//! So `success, 4xx, 5xx` fails with the 5xx and `4xx, 4xx, success` fails with the 4xx:
//! a quorum of client errors rejects the request as a client error. The first item to fail
//! decides the batch's error; the batch succeeds once every item settled. Zone awareness
//! changes only which replicas `get` returns and their `max_errors`, exactly as in dskit:
//! items are always counted per instance.
//!
//! # Calls, early return and cleanup
//!
//! The callback is invoked once per instance, up front, to create that instance's future;
//! futures are then polled with at most `max_concurrency` in flight. Like dskit, the batch
//! returns as soon as the answer is known while some calls may still be running. Those
//! calls are handed back in [`BatchOutcome::rest`], a future that drives them to
//! completion and then runs the cleanup:
//!
//! - spawn it (or await it) to let the remaining calls finish, as dskit does;
//! - drop it to cancel them (their futures are dropped) — the cleanup then runs at once.
//!
//! Either way the cleanup runs exactly once, after no call future is left alive, and no
//! instance is ever called twice. If the batch future itself is dropped before returning,
//! the same happens: every call future is dropped, then the cleanup runs. Calls that are
//! already complete at decision time are reaped before returning, so when nothing else is
//! left the cleanup has already run when `do_batch` returns ([`BatchRest::is_finished`]).
//!
//! All futures are polled by whichever task drives the batch: a callback whose work needs
//! its own thread should spawn it and return the join handle's future.
//!
//! # Divergences from dskit
//!
//! - No `context`: cancel by dropping the future. The grouping step is synchronous.
//! - An empty key list succeeds at once (dskit waits for its context to end).
//! - An item with no quorum requirement (`max_errors >= replicas`, which `get` never
//!   returns) counts as settled from the start instead of never settling.
//! - Items are grouped by instance **address**, as in dskit; the descriptor handed to the
//!   callback is the first instance met with that address.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::model::InstanceDesc;
use crate::op::Operation;
use crate::snapshot::{GetBuffer, InstanceIdx, RingError, RingSnapshot};

const NONE: u32 = u32::MAX;

/// Why planning a batch failed (before any call was made).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The ring has no instances.
    #[error("DoBatch: InstancesCount <= 0")]
    NoInstances,
    /// A key's replica lookup failed.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// More keys than item indexes (`u32`) can number.
    #[error("DoBatch: too many keys")]
    TooManyKeys,
}

/// Why a batch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError<E> {
    /// The ring has no instances.
    #[error("DoBatch: InstancesCount <= 0")]
    NoInstances,
    /// A key's replica lookup failed; no call was made.
    #[error(transparent)]
    Ring(RingError),
    /// More keys than item indexes (`u32`) can number; no call was made.
    #[error("DoBatch: too many keys")]
    TooManyKeys,
    /// An instance's error that made an item fail (the first item to fail decides).
    #[error(transparent)]
    Instance(E),
    /// Every call finished without settling every item. The decision rules make this
    /// unreachable; it exists so a broken invariant is an error rather than a panic.
    #[error("DoBatch: all calls finished without deciding every item")]
    Undecided,
}

impl<E> From<PlanError> for BatchError<E> {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::NoInstances => BatchError::NoInstances,
            PlanError::Ring(r) => BatchError::Ring(r),
            PlanError::TooManyKeys => BatchError::TooManyKeys,
        }
    }
}

/// Options of a batch (dskit's `DoBatchOptions`).
pub struct BatchOptions<E, C = fn()> {
    /// Runs exactly once after every call finished or was cancelled, or at once when the
    /// batch fails before calling anyone. Typically returns pooled request buffers.
    pub cleanup: C,
    /// Whether an instance error is a client error (4xx-like); such errors are counted
    /// apart from server errors. Default: none is.
    pub is_client_error: fn(&E) -> bool,
    /// Most calls in flight at once; 0 means no limit (dskit's default of one goroutine
    /// per instance).
    pub max_concurrency: usize,
}

fn noop() {}

fn never<E>(_: &E) -> bool {
    false
}

impl<E> Default for BatchOptions<E, fn()> {
    fn default() -> Self {
        BatchOptions {
            cleanup: noop as fn(),
            is_client_error: never::<E>,
            max_concurrency: 0,
        }
    }
}

impl<E, C> BatchOptions<E, C> {
    /// Sets the cleanup.
    pub fn with_cleanup<C2: FnOnce()>(self, cleanup: C2) -> BatchOptions<E, C2> {
        BatchOptions {
            cleanup,
            is_client_error: self.is_client_error,
            max_concurrency: self.max_concurrency,
        }
    }

    /// Sets the client-error classifier.
    pub fn with_client_errors(mut self, is_client_error: fn(&E) -> bool) -> Self {
        self.is_client_error = is_client_error;
        self
    }

    /// Sets the concurrency limit (0: none).
    pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency;
        self
    }
}

/// Quorum bookkeeping of one item.
#[derive(Clone, Copy, Debug, Default)]
struct ItemTracker {
    min_success: u32,
    max_failures: u32,
    succeeded: u32,
    failed_client: u32,
    failed_server: u32,
    remaining: u32,
    /// Call slot whose error was recorded last, or `NONE`.
    last_err: u32,
}

/// Caller-owned scratch space for batches: keep one per worker and pass it to every
/// [`do_batch`]/[`BatchBuffers::plan`] call so the grouping step stops allocating once the
/// buffers have grown to the largest batch.
#[derive(Debug, Default)]
pub struct BatchBuffers {
    get: GetBuffer,
    /// Per snapshot instance: usable straight from the precomputed walk picks.
    plain: Vec<bool>,
    /// Call slot of each snapshot instance in this batch, or `NONE`.
    slot_of: Vec<u32>,
    /// Instance handed to each slot's callback.
    slot_instance: Vec<InstanceIdx>,
    /// Item indexes in lookup order.
    order: Vec<u32>,
    /// Counting-sort buckets for `order`.
    counts: Vec<u32>,
    /// Replica slots of every key, concatenated in lookup order; item `i`'s run is
    /// `key_slots[key_start[2i]..key_start[2i + 1]]`.
    key_slots: Vec<u32>,
    key_start: Vec<u32>,
    /// `items[slot_start[s]..slot_start[s + 1]]` are the item indexes of slot `s`.
    slot_start: Vec<u32>,
    items: Vec<u32>,
    fill: Vec<u32>,
    trackers: Vec<ItemTracker>,
    /// Items not yet settled.
    pending: usize,
}

impl BatchBuffers {
    /// Empty buffers; they grow on first use.
    pub fn new() -> BatchBuffers {
        BatchBuffers::default()
    }

    /// The synchronous half of `DoBatch`: looks up each key's replicas for `op` at `now`
    /// (key `i` is item `i`), groups the item indexes by instance address and sets up one
    /// quorum tracker per item. Fails if the ring has no instances or a lookup fails (with
    /// the error of the first failing key, in key order).
    ///
    /// Keys are looked up in an order bucketed by their top bits, so consecutive lookups
    /// touch neighbouring parts of the token table instead of missing the cache on every
    /// key; results are stored per item, so the order is invisible to callers.
    pub fn plan<'a>(
        &'a mut self,
        ring: &'a RingSnapshot,
        op: Operation,
        now: SystemTime,
        keys: &[u32],
    ) -> Result<BatchPlan<'a>, PlanError> {
        let n = ring.instances_count();
        if n == 0 {
            return Err(PlanError::NoInstances);
        }
        if keys.len() >= u32::MAX as usize {
            // Item indexes are u32; no real batch comes close.
            return Err(PlanError::TooManyKeys);
        }
        let BatchBuffers {
            get,
            plain,
            slot_of,
            slot_instance,
            order,
            counts,
            key_slots,
            key_start,
            slot_start,
            items,
            fill,
            trackers,
            pending,
        } = self;
        slot_of.clear();
        slot_of.resize(n, NONE);
        slot_instance.clear();
        key_slots.clear();
        // Every entry of these is written below: resize without clearing, so a reused buffer
        // of the right size costs no memset.
        set_len(key_start, keys.len() * 2, 0);
        set_len(trackers, keys.len(), ItemTracker::default());
        *pending = 0;
        locality_order(keys, order, counts);
        ring.plain_healthy(op, now, plain);
        slot_start.clear();
        slot_start.push(0);
        // Address → slot, consulted once per instance met (not per replica).
        let mut by_addr: HashMap<&'a str, u32, BuildHasherDefault<Fnv1a>> = HashMap::default();

        let walk = ring.primary_picks();
        // The quorum of a full set of healthy picks, the same for every key that has one.
        let full_max_errors = walk.and_then(|w| ring.healthy_set_max_errors(w.width()));
        for &item in order.iter() {
            let key = keys[item as usize];
            // Most keys: the walk's precomputed picks, all healthy and none extending the
            // walk, are exactly what `get` would return. Others take the general lookup.
            let fast = walk.and_then(|w| {
                let picks = w.get(key);
                // Unused slots (`NONE`) only trail when the ring is too small for a full set.
                let (picks, max_errors) = match picks.last() {
                    Some(&NONE) => {
                        let len = picks.iter().position(|&p| p == NONE).unwrap_or(0);
                        (&picks[..len], ring.healthy_set_max_errors(len))
                    }
                    _ => (picks, full_max_errors),
                };
                if picks.iter().any(|&p| !plain[p as usize]) {
                    return None;
                }
                max_errors.map(|e| (picks, e))
            });
            let (indices, max_errors) = match fast {
                Some(hit) => hit,
                None => match ring.get(key, op, now, get) {
                    Ok(r) => (r.indices(), r.max_errors),
                    Err(_) => return Err(first_lookup_error(ring, op, now, keys, get)),
                },
            };
            let len = indices.len() as u32;
            let max_failures = max_errors as u32;
            key_start[item as usize * 2] = key_slots.len() as u32;
            for &idx in indices {
                let mut slot = slot_of[idx as usize];
                if slot == NONE {
                    let addr = ring.instance_at(idx).addr.as_str();
                    if by_addr.capacity() == 0 {
                        by_addr.reserve(n.min(keys.len().saturating_mul(len as usize)));
                    }
                    let next = slot_instance.len() as u32;
                    slot = *by_addr.entry(addr).or_insert(next);
                    if slot == next {
                        slot_instance.push(idx);
                        slot_start.push(0);
                    }
                    slot_of[idx as usize] = slot;
                }
                // Counted here for the counting sort below (`slot_start[s + 1]`).
                slot_start[slot as usize + 1] += 1;
                key_slots.push(slot);
            }
            key_start[item as usize * 2 + 1] = key_slots.len() as u32;
            let min_success = len.saturating_sub(max_failures);
            if min_success > 0 {
                *pending += 1;
            }
            trackers[item as usize] = ItemTracker {
                min_success,
                max_failures,
                succeeded: 0,
                failed_client: 0,
                failed_server: 0,
                remaining: len,
                last_err: NONE,
            };
        }

        // Counting sort of (slot, item) pairs into per-slot runs, items ascending.
        let slots = slot_instance.len();
        for s in 0..slots {
            slot_start[s + 1] += slot_start[s];
        }
        fill.clear();
        fill.extend_from_slice(&slot_start[..slots]);
        set_len(items, key_slots.len(), 0);
        for (item, run) in key_start.chunks_exact(2).enumerate() {
            for &s in &key_slots[run[0] as usize..run[1] as usize] {
                let at = &mut fill[s as usize];
                items[*at as usize] = item as u32;
                *at += 1;
            }
        }

        Ok(BatchPlan { ring, bufs: self })
    }
}

/// FNV-1a: instance addresses are short and come from the ring, not from an attacker, so
/// a cheap hash beats SipHash here (hashing was ~7% of a 100×100 batch).
#[derive(Default)]
struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Orders item indexes by the top bits of their keys (a one-pass counting sort), about
/// one bucket per key: lookups in this order walk the token table forwards.
fn locality_order(keys: &[u32], order: &mut Vec<u32>, counts: &mut Vec<u32>) {
    if keys.len() < 64 {
        // Too few keys for locality to pay for the pass.
        order.clear();
        order.extend(0..keys.len() as u32);
        return;
    }
    let bits = (usize::BITS - keys.len().leading_zeros()).clamp(4, 16);
    let shift = 32 - bits;
    counts.clear();
    counts.resize((1 << bits) + 1, 0);
    for &k in keys {
        counts[(k >> shift) as usize + 1] += 1;
    }
    for b in 1..counts.len() {
        counts[b] += counts[b - 1];
    }
    set_len(order, keys.len(), 0);
    for (i, &k) in keys.iter().enumerate() {
        let at = &mut counts[(k >> shift) as usize];
        order[*at as usize] = i as u32;
        *at += 1;
    }
}

/// Makes `v` exactly `len` long; existing entries keep stale values the caller overwrites.
fn set_len<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    v.truncate(len);
    v.resize(len, fill);
}

/// The error of the first key, in key order, whose lookup fails (the error dskit returns).
fn first_lookup_error(
    ring: &RingSnapshot,
    op: Operation,
    now: SystemTime,
    keys: &[u32],
    buf: &mut GetBuffer,
) -> PlanError {
    keys.iter()
        .find_map(|&k| ring.get(k, op, now, buf).err())
        .map_or(PlanError::Ring(RingError::EmptyRing), PlanError::Ring)
}

/// A planned batch: which instance gets which items. Borrowing the buffers, it is either
/// inspected or [run](Self::run).
#[derive(Debug)]
pub struct BatchPlan<'a> {
    ring: &'a RingSnapshot,
    bufs: &'a mut BatchBuffers,
}

impl<'a> BatchPlan<'a> {
    /// Number of calls the batch makes (distinct instance addresses).
    pub fn calls(&self) -> usize {
        self.bufs.slot_instance.len()
    }

    /// The instance and item indexes of call `slot` (`0..self.calls()`), items ascending.
    pub fn call(&self, slot: usize) -> Option<(&InstanceDesc, &[u32])> {
        let b = &*self.bufs;
        let idx = *b.slot_instance.get(slot)?;
        let items = &b.items[b.slot_start[slot] as usize..b.slot_start[slot + 1] as usize];
        Some((self.ring.instance_at(idx), items))
    }

    /// Number of items that still need a quorum (all items with replicas).
    pub fn pending_items(&self) -> usize {
        self.bufs.pending
    }

    /// Calls `callback` once per instance with its item indexes and drives the calls until
    /// every item settled or one failed. See the module documentation for the rules and for
    /// what happens to calls still running at that point.
    pub async fn run<F, Fut, E, C>(
        self,
        mut callback: F,
        opts: BatchOptions<E, C>,
    ) -> BatchOutcome<Fut, C, E>
    where
        F: FnMut(&InstanceDesc, &[u32]) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        C: FnOnce(),
    {
        let BatchPlan { ring, bufs } = self;
        let slots = bufs.slot_instance.len();
        let mut calls = Vec::with_capacity(slots);
        for (slot, &idx) in bufs.slot_instance.iter().enumerate() {
            let items =
                &bufs.items[bufs.slot_start[slot] as usize..bufs.slot_start[slot + 1] as usize];
            calls.push(callback(ring.instance_at(idx), items));
        }
        let mut rest = BatchRest::new(calls, opts.max_concurrency, opts.cleanup);
        let is_client_error = opts.is_client_error;
        let result = decide(bufs, &mut rest, is_client_error).await;
        // Finish the calls that are already done (and run the cleanup if that was all), so
        // a batch of quick calls leaves nothing behind for the caller to drive.
        poll_fn(|cx| {
            let _ = Pin::new(&mut rest).poll(cx);
            Poll::Ready(())
        })
        .await;
        BatchOutcome { result, rest }
    }
}

/// Polls the calls in `rest` and records their results until the batch is decided.
async fn decide<Fut, E, C>(
    bufs: &mut BatchBuffers,
    rest: &mut BatchRest<Fut, C>,
    is_client_error: fn(&E) -> bool,
) -> Result<(), BatchError<E>>
where
    Fut: Future<Output = Result<(), E>>,
    C: FnOnce(),
{
    let BatchBuffers {
        slot_start,
        items,
        trackers,
        pending,
        ..
    } = bufs;
    if *pending == 0 {
        return Ok(());
    }
    // Errors by call slot, allocated at the first error: an item failing on a success
    // reports the last error recorded against it, which may come from an earlier call.
    let mut errors: Vec<Option<E>> = Vec::new();
    loop {
        let Some((slot, result)) = poll_fn(|cx| rest.poll_next_result(cx)).await else {
            return Err(BatchError::Undecided);
        };
        let s = slot as usize;
        let mine = &items[slot_start[s] as usize..slot_start[s + 1] as usize];
        let failed_item = match result {
            Ok(()) => {
                let mut failed = None;
                for &item in mine {
                    let t = &mut trackers[item as usize];
                    t.succeeded += 1;
                    if t.succeeded == t.min_success {
                        *pending -= 1;
                        if *pending == 0 {
                            return Ok(());
                        }
                    } else if t.succeeded < t.min_success {
                        t.remaining = t.remaining.saturating_sub(1);
                        if t.remaining == 0 {
                            failed = Some(t.last_err);
                            break;
                        }
                    }
                }
                failed
            }
            Err(err) => {
                let client = is_client_error(&err);
                if errors.is_empty() {
                    errors.resize_with(slot_start.len().saturating_sub(1), || None);
                }
                errors[s] = Some(err);
                let mut failed = None;
                for &item in mine {
                    let t = &mut trackers[item as usize];
                    t.last_err = slot;
                    let count = if client {
                        t.failed_client += 1;
                        t.failed_client
                    } else {
                        t.failed_server += 1;
                        t.failed_server
                    };
                    if count > t.max_failures || {
                        t.remaining = t.remaining.saturating_sub(1);
                        t.remaining == 0
                    } {
                        failed = Some(slot);
                        break;
                    }
                }
                failed
            }
        };
        if let Some(err_slot) = failed_item {
            return Err(errors
                .get_mut(err_slot as usize)
                .and_then(Option::take)
                .map_or(BatchError::Undecided, BatchError::Instance));
        }
    }
}

/// What a batch returns: the decision, and the calls that were still running.
#[must_use = "dropping `rest` cancels the calls still running; spawn or await it to let them finish"]
pub struct BatchOutcome<Fut: Future, C: FnOnce(), E> {
    /// `Ok` once every item reached quorum, else the error that decided the failure.
    pub result: Result<(), BatchError<E>>,
    /// The calls still running when the batch was decided, then the cleanup.
    pub rest: BatchRest<Fut, C>,
}

impl<Fut: Future, C: FnOnce(), E: std::fmt::Debug> std::fmt::Debug for BatchOutcome<Fut, C, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOutcome")
            .field("result", &self.result)
            .field("rest", &self.rest)
            .finish()
    }
}

/// A call that did not finish on its first poll: its future stays in the heap slot it was
/// first polled in, and the call slot number travels with it.
struct Started<Fut> {
    slot: u32,
    fut: Pin<Box<Option<Fut>>>,
}

impl<Fut: Future> Future for Started<Fut> {
    type Output = (u32, Fut::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.slot;
        match self.fut.as_mut().as_pin_mut() {
            Some(f) => f.poll(cx).map(|out| (slot, out)),
            // Never polled again once ready: `FuturesUnordered` drops finished futures.
            None => Poll::Pending,
        }
    }
}

/// The calls of a batch that were still running (or not yet started because of the
/// concurrency limit) when the batch was decided, followed by the cleanup.
///
/// As a future it drives those calls to completion, ignoring their results, then runs the
/// cleanup. Dropped, it drops the calls (cancelling them) and then runs the cleanup. The
/// cleanup runs exactly once either way.
///
/// Each call is first polled in one reusable heap slot; only a call that is still pending
/// after that poll keeps the slot and moves into a `FuturesUnordered` to be woken on its
/// own. Calls that answer at once (local or cached work) thus cost neither an allocation
/// nor a task of their own.
pub struct BatchRest<Fut: Future, C: FnOnce()> {
    queue: std::iter::Enumerate<std::vec::IntoIter<Fut>>,
    /// The slot the next call is first polled in (`None` inside between calls).
    probe: Option<Pin<Box<Option<Fut>>>>,
    in_flight: FuturesUnordered<Started<Fut>>,
    limit: usize,
    cleanup: Option<C>,
}

// No call future is ever pinned inside `queue`: each is moved into a heap slot before its
// first poll and stays there. So moving a `BatchRest` is fine.
impl<Fut: Future, C: FnOnce()> Unpin for BatchRest<Fut, C> {}

impl<Fut: Future, C: FnOnce()> std::fmt::Debug for BatchRest<Fut, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRest")
            .field("not_started", &self.queue.len())
            .field("in_flight", &self.in_flight.len())
            .field("cleaned_up", &self.cleanup.is_none())
            .finish()
    }
}

impl<Fut: Future, C: FnOnce()> BatchRest<Fut, C> {
    fn new(calls: Vec<Fut>, limit: usize, cleanup: C) -> Self {
        BatchRest {
            queue: calls.into_iter().enumerate(),
            probe: None,
            in_flight: FuturesUnordered::new(),
            limit: if limit == 0 { usize::MAX } else { limit },
            cleanup: Some(cleanup),
        }
    }

    /// Calls not finished yet (running or waiting for a concurrency slot).
    pub fn unfinished_calls(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Whether the cleanup has run (then nothing is left to drive).
    pub fn is_finished(&self) -> bool {
        self.cleanup.is_none()
    }

    fn run_cleanup(&mut self) {
        if let Some(c) = self.cleanup.take() {
            c();
        }
    }

    /// Starts calls up to the limit and returns the next finished one; `None` when every
    /// call finished. A call is started by polling it once in the probe slot; if it is
    /// pending, the slot goes with it into `in_flight` and a new probe is made.
    fn poll_next_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u32, Fut::Output)>> {
        loop {
            while self.in_flight.len() < self.limit {
                let Some((slot, call)) = self.queue.next() else {
                    break;
                };
                let slot = slot as u32;
                let probe = self.probe.get_or_insert_with(|| Box::pin(None));
                probe.set(Some(call));
                let polled = probe
                    .as_mut()
                    .as_pin_mut()
                    .map(|f| f.poll(cx))
                    .expect("just filled");
                match polled {
                    Poll::Ready(out) => {
                        probe.set(None);
                        return Poll::Ready(Some((slot, out)));
                    }
                    Poll::Pending => {
                        let fut = self.probe.take().expect("just filled");
                        self.in_flight.push(Started { slot, fut });
                    }
                }
            }
            match self.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some(done)) => return Poll::Ready(Some(done)),
                Poll::Ready(None) if self.queue.len() == 0 => return Poll::Ready(None),
                Poll::Ready(None) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<Fut: Future, C: FnOnce()> Future for BatchRest<Fut, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.cleanup.is_none() {
            return Poll::Ready(());
        }
        loop {
            match this.poll_next_result(cx) {
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => {
                    this.run_cleanup();
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<Fut: Future, C: FnOnce()> Drop for BatchRest<Fut, C> {
    fn drop(&mut self) {
        // Calls first, so the cleanup never runs while a call future is alive.
        self.in_flight.clear();
        self.probe = None;
        self.queue.by_ref().for_each(drop);
        self.run_cleanup();
    }
}

/// dskit's `DoBatchWithOptions`: plans the batch ([`BatchBuffers::plan`]) and runs it
/// ([`BatchPlan::run`]). If planning fails, the cleanup runs before this returns and no
/// callback is called.
pub async fn do_batch<F, Fut, E, C>(
    ring: &RingSnapshot,
    op: Operation,
    now: SystemTime,
    keys: &[u32],
    bufs: &mut BatchBuffers,
    callback: F,
    opts: BatchOptions<E, C>,
) -> BatchOutcome<Fut, C, E>
where
    F: FnMut(&InstanceDesc, &[u32]) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    C: FnOnce(),
{
    match bufs.plan(ring, op, now, keys) {
        Ok(plan) => plan.run(callback, opts).await,
        Err(e) => {
            let mut rest = BatchRest::new(Vec::new(), 0, opts.cleanup);
            rest.run_cleanup();
            BatchOutcome {
                result: Err(e.into()),
                rest,
            }
        }
    }
}
