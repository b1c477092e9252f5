//! Quorum bookkeeping for calls that fan out to a replication set (spec/ring.md §3.7).
//!
//! [`QuorumTracker`] is the pure state machine behind
//! [`ReplicationSet::do_until_quorum`](crate::ReplicationSet::do_until_quorum): it is told
//! which instance finished and whether it succeeded, and answers "succeeded yet?", "failed
//! yet?", "which instances may start now?" and "is this instance's result part of the
//! answer?". It owns no futures and reads no clock, so every rule can be unit-tested by
//! feeding it sequences of outcomes.
//!
//! Two modes, chosen from the set as dskit's `DoUntilQuorum` does:
//!
//! - **Instances** (default): success once `len - max_errors` instances succeeded, failure
//!   once more than `max_errors` failed.
//! - **Zones** (`max_unavailable_zones > 0` or `zone_awareness_enabled`): a zone succeeds
//!   when every one of its instances succeeded and fails at its first failing instance.
//!   Success once `zones - max_unavailable_zones` zones succeeded, failure once more than
//!   `max_unavailable_zones` zones failed.
//!
//! Request minimisation releases instances in *units* (one instance, or one whole zone):
//! first the minimum number of units that could reach quorum, then one more unit per
//! failure (per failing zone in zone mode) or per [`QuorumTracker::start_additional`] call
//! (hedging). Units are released in set order (zones in order of first appearance), so a
//! caller that wants dskit's random spread shuffles the set's instances first.

use std::future::{Future, poll_fn};
use std::task::Poll;

use futures::future::{AbortHandle, Abortable, Aborted, abortable};
use futures::stream::{FuturesUnordered, Stream, StreamExt};

use crate::model::InstanceDesc;
use crate::replication::ReplicationSet;

/// Where a quorum call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumStatus {
    /// Neither enough successes nor too many failures yet.
    Pending,
    /// Quorum reached: the call can return.
    Succeeded,
    /// Quorum can no longer be reached.
    Failed,
}

/// The set asks for zone-aware counting and also allows instance errors, which dskit
/// rejects because the two budgets are exclusive.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid ReplicationSet: max_errors is non-zero (is {max_errors}) and zone awareness is enabled"
)]
pub struct InvalidReplicationSet {
    /// The set's `max_errors`.
    pub max_errors: usize,
}

/// Life cycle of one instance's call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// Not released yet (request minimisation) or released but not handed out.
    Idle,
    /// Handed out by [`QuorumTracker::next_to_start`], result outstanding.
    Started,
    /// Result recorded.
    Done,
}

/// Counting rules; see the module documentation.
#[derive(Clone, Debug)]
enum Mode {
    Instances {
        min_success: usize,
        max_errors: usize,
        succeeded: usize,
        failed: usize,
    },
    Zones {
        min_zones: usize,
        max_unavailable_zones: usize,
        /// Instances of each zone whose result is still outstanding.
        waiting: Vec<u32>,
        /// Failed instances per zone.
        failures: Vec<u32>,
        succeeded_zones: usize,
        failed_zones: usize,
    },
}

/// Pure quorum state machine for one fan-out over a [`ReplicationSet`]. Instances are
/// referred to by their position in `set.instances`.
#[derive(Clone, Debug)]
pub struct QuorumTracker {
    mode: Mode,
    /// Dense zone number of each instance (by first appearance in the set).
    zone: Vec<u32>,
    calls: Vec<Call>,
    /// Instance positions in release order; in zone mode grouped by zone.
    order: Vec<u32>,
    /// `order[unit_end[u - 1]..unit_end[u]]` is release unit `u`.
    unit_end: Vec<u32>,
    /// Release units handed out so far.
    released_units: usize,
    /// `order[..cursor]` has been handed out by `next_to_start`.
    cursor: usize,
}

impl QuorumTracker {
    /// A tracker for `set`, with no instance released yet: call [`Self::start_all`] or
    /// [`Self::start_minimum`] next.
    pub fn new(set: &ReplicationSet) -> Result<QuorumTracker, InvalidReplicationSet> {
        let zone_aware = set.max_unavailable_zones > 0 || set.zone_awareness_enabled;
        if zone_aware && set.max_errors > 0 {
            return Err(InvalidReplicationSet {
                max_errors: set.max_errors,
            });
        }
        let n = set.instances.len();
        // Zones by first appearance: a linear scan is cheaper than hashing for the handful
        // of zones real sets have.
        let mut zone_names: Vec<&str> = Vec::new();
        let mut zone = Vec::with_capacity(n);
        for d in &set.instances {
            let z = match zone_names.iter().position(|z| *z == d.zone) {
                Some(z) => z,
                None => {
                    zone_names.push(&d.zone);
                    zone_names.len() - 1
                }
            };
            zone.push(z as u32);
        }
        let zones = zone_names.len();

        let (mode, order, unit_end) = if zone_aware {
            let mut waiting = vec![0u32; zones];
            for &z in &zone {
                waiting[z as usize] += 1;
            }
            // Group instances by zone, zones in first-appearance order, set order inside.
            let mut unit_end = Vec::with_capacity(zones);
            let mut acc = 0u32;
            for &w in &waiting {
                acc += w;
                unit_end.push(acc);
            }
            let mut fill: Vec<u32> = unit_end.iter().zip(&waiting).map(|(e, w)| e - w).collect();
            let mut order = vec![0u32; n];
            for (i, &z) in zone.iter().enumerate() {
                order[fill[z as usize] as usize] = i as u32;
                fill[z as usize] += 1;
            }
            let mode = Mode::Zones {
                min_zones: zones.saturating_sub(set.max_unavailable_zones),
                max_unavailable_zones: set.max_unavailable_zones,
                waiting,
                failures: vec![0; zones],
                succeeded_zones: 0,
                failed_zones: 0,
            };
            (mode, order, unit_end)
        } else {
            let mode = Mode::Instances {
                min_success: n.saturating_sub(set.max_errors),
                max_errors: set.max_errors,
                succeeded: 0,
                failed: 0,
            };
            (mode, (0..n as u32).collect(), (1..=n as u32).collect())
        };
        Ok(QuorumTracker {
            mode,
            zone,
            calls: vec![Call::Idle; n],
            order,
            unit_end,
            released_units: 0,
            cursor: 0,
        })
    }

    /// Whether results are counted per zone.
    pub fn is_zone_aware(&self) -> bool {
        matches!(self.mode, Mode::Zones { .. })
    }

    /// Number of instances tracked.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether the set is empty (an empty set succeeds at once).
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Dense zone number of instance `i` (zones numbered by first appearance), or `None`
    /// if `i` is out of range.
    pub fn zone_of(&self, i: usize) -> Option<usize> {
        self.zone.get(i).map(|&z| z as usize)
    }

    /// Releases every instance (no request minimisation).
    pub fn start_all(&mut self) {
        self.released_units = self.unit_end.len();
    }

    /// Releases the minimum number of units that could reach quorum: `len - max_errors`
    /// instances, or `zones - max_unavailable_zones` zones.
    pub fn start_minimum(&mut self) {
        let units = match &self.mode {
            Mode::Instances { min_success, .. } => *min_success,
            Mode::Zones { min_zones, .. } => *min_zones,
        };
        self.released_units = self.released_units.max(units.min(self.unit_end.len()));
    }

    /// Releases one more unit (an instance, or a zone), if any is left and the call is
    /// still undecided: what a hedging tick does. Returns whether something was released.
    pub fn start_additional(&mut self) -> bool {
        if self.status() != QuorumStatus::Pending || self.released_units >= self.unit_end.len() {
            return false;
        }
        self.released_units += 1;
        true
    }

    /// The next released instance whose call has not been handed out yet. Nothing is
    /// handed out once the call is decided.
    pub fn next_to_start(&mut self) -> Option<usize> {
        if self.status() != QuorumStatus::Pending {
            return None;
        }
        let released = match self.released_units {
            0 => 0,
            u => self.unit_end[u - 1] as usize,
        };
        while self.cursor < released {
            let i = self.order[self.cursor] as usize;
            self.cursor += 1;
            if self.calls[i] == Call::Idle {
                self.calls[i] = Call::Started;
                return Some(i);
            }
        }
        None
    }

    /// Records the outcome of instance `i`'s call and returns the new status. A second
    /// result for the same instance, or an index out of range, is ignored. A failure
    /// releases one more unit when request minimisation held some back (in zone mode only
    /// the first failure of a zone does).
    pub fn record(&mut self, i: usize, ok: bool) -> QuorumStatus {
        match self.calls.get(i) {
            Some(Call::Done) | None => return self.status(),
            Some(_) => self.calls[i] = Call::Done,
        }
        let mut release = false;
        match &mut self.mode {
            Mode::Instances {
                succeeded, failed, ..
            } => {
                if ok {
                    *succeeded += 1;
                } else {
                    *failed += 1;
                    release = true;
                }
            }
            Mode::Zones {
                waiting,
                failures,
                succeeded_zones,
                failed_zones,
                ..
            } => {
                let z = self.zone[i] as usize;
                waiting[z] = waiting[z].saturating_sub(1);
                if ok {
                    if waiting[z] == 0 && failures[z] == 0 {
                        *succeeded_zones += 1;
                    }
                } else {
                    failures[z] += 1;
                    if failures[z] == 1 {
                        *failed_zones += 1;
                        release = true;
                    }
                }
            }
        }
        if release && self.status() == QuorumStatus::Pending {
            self.start_additional();
        }
        self.status()
    }

    /// Whether quorum was reached.
    pub fn succeeded(&self) -> bool {
        match &self.mode {
            Mode::Instances {
                min_success,
                succeeded,
                ..
            } => succeeded >= min_success,
            Mode::Zones {
                min_zones,
                succeeded_zones,
                ..
            } => succeeded_zones >= min_zones,
        }
    }

    /// Whether quorum can no longer be reached.
    pub fn failed(&self) -> bool {
        match &self.mode {
            Mode::Instances {
                max_errors, failed, ..
            } => failed > max_errors,
            Mode::Zones {
                max_unavailable_zones,
                failed_zones,
                ..
            } => failed_zones > max_unavailable_zones,
        }
    }

    /// The current status. Success is checked first: a call that already reached quorum
    /// stays successful whatever arrives later.
    pub fn status(&self) -> QuorumStatus {
        if self.succeeded() {
            QuorumStatus::Succeeded
        } else if self.failed() {
            QuorumStatus::Failed
        } else {
            QuorumStatus::Pending
        }
    }

    /// Whether the successful result of instance `i` belongs in the answer: always in
    /// instance mode (the call stops at exactly `len - max_errors` successes); in zone mode
    /// only results of zones that completed without failure. Meaningful once
    /// [`Self::succeeded`] is true.
    pub fn should_include_result_from(&self, i: usize) -> bool {
        match &self.mode {
            Mode::Instances { .. } => self.calls.get(i) == Some(&Call::Done),
            Mode::Zones {
                waiting, failures, ..
            } => match self.zone.get(i) {
                Some(&z) => waiting[z as usize] == 0 && failures[z as usize] == 0,
                None => false,
            },
        }
    }

    /// Whether instance `i`'s call was handed out and has no result yet.
    pub fn is_in_flight(&self, i: usize) -> bool {
        self.calls.get(i) == Some(&Call::Started)
    }
}

/// Options of [`do_until_quorum`] (dskit's `DoUntilQuorumConfig`, without the parts that
/// need a clock or a context).
pub struct QuorumConfig<E> {
    /// Start only as many calls as could reach quorum, then one more instance (or zone)
    /// per failure and per hedging tick. Off: call every instance at once.
    pub minimize_requests: bool,
    /// Errors for which asking other instances is pointless (for example a response-size
    /// limit): the first such error cancels every call and is returned at once.
    pub is_terminal_error: Option<fn(&E) -> bool>,
}

impl<E> Default for QuorumConfig<E> {
    fn default() -> Self {
        QuorumConfig {
            minimize_requests: false,
            is_terminal_error: None,
        }
    }
}

impl<E> Clone for QuorumConfig<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for QuorumConfig<E> {}

impl<E> std::fmt::Debug for QuorumConfig<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumConfig")
            .field("minimize_requests", &self.minimize_requests)
            .field("is_terminal_error", &self.is_terminal_error.is_some())
            .finish()
    }
}

/// Why [`do_until_quorum`] returned no results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError<E> {
    /// The set mixes zone awareness with an instance error budget.
    #[error(transparent)]
    InvalidReplicationSet(#[from] InvalidReplicationSet),
    /// An instance's error: the one that made quorum unreachable, or a terminal error.
    #[error(transparent)]
    Instance(E),
    /// Every call finished without deciding the quorum. The counting rules make this
    /// unreachable; it exists so that a broken invariant is an error, not a panic or a hang.
    #[error("all calls finished without reaching or losing quorum")]
    Undecided,
}

/// Calls `f` for the instances of `set` concurrently and returns once quorum is reached
/// (dskit's `DoUntilQuorum`; counting rules in the module documentation).
///
/// - Results are returned in set order: the first `len - max_errors` successes in instance
///   mode, all instances of the zones that fully succeeded first in zone mode.
/// - Calls still running when the answer is known are cancelled by dropping their futures,
///   as dskit cancels their contexts; in zone mode the first failure of a zone also
///   cancels that zone's other calls.
/// - Successful results that are not returned (zones that did not complete, results
///   collected before a failure) are passed to `cleanup` before this function returns.
///   Because unneeded calls are dropped rather than left running, `cleanup` never runs
///   after the return, unlike dskit's.
/// - All futures are polled by the task awaiting this one: `f` should spawn work that
///   needs its own thread.
pub async fn do_until_quorum<T, E, F, Fut, C>(
    set: &ReplicationSet,
    cfg: QuorumConfig<E>,
    f: F,
    cleanup: C,
) -> Result<Vec<T>, QuorumError<E>>
where
    F: FnMut(&InstanceDesc) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: FnMut(T),
{
    do_until_quorum_hedged(set, cfg, futures::stream::pending::<()>(), f, cleanup).await
}

/// [`do_until_quorum`] with hedging: with `minimize_requests`, every item of `ticks`
/// starts one more instance (or zone) while the quorum is undecided. The caller supplies
/// the timer (for example a tokio interval wrapped as a stream), keeping this crate free
/// of any runtime.
pub async fn do_until_quorum_hedged<T, E, F, Fut, C, H>(
    set: &ReplicationSet,
    cfg: QuorumConfig<E>,
    mut ticks: H,
    mut f: F,
    mut cleanup: C,
) -> Result<Vec<T>, QuorumError<E>>
where
    F: FnMut(&InstanceDesc) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: FnMut(T),
    H: Stream + Unpin,
{
    let mut tracker = QuorumTracker::new(set)?;
    if cfg.minimize_requests {
        tracker.start_minimum();
    } else {
        tracker.start_all();
    }
    let n = tracker.len();
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut aborts: Vec<Option<AbortHandle>> = (0..n).map(|_| None).collect();
    let mut in_flight = FuturesUnordered::new();
    let tag = |i: usize, fut: Abortable<Fut>| async move { (i, fut.await) };
    let mut hedging = cfg.minimize_requests;

    let give_back = |results: Vec<Option<T>>, cleanup: &mut C| {
        results.into_iter().flatten().for_each(&mut *cleanup);
    };

    loop {
        while let Some(i) = tracker.next_to_start() {
            let (fut, handle) = abortable(f(&set.instances[i]));
            aborts[i] = Some(handle);
            in_flight.push(tag(i, fut));
        }
        if tracker.succeeded() {
            break;
        }
        let event = poll_fn(|cx| {
            if let Poll::Ready(done) = in_flight.poll_next_unpin(cx) {
                return Poll::Ready(Some(done));
            }
            if hedging {
                match ticks.poll_next_unpin(cx) {
                    Poll::Ready(Some(_)) => return Poll::Ready(None),
                    Poll::Ready(None) => hedging = false,
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            // A hedging tick.
            None => {
                tracker.start_additional();
            }
            Some(None) => {
                drop(in_flight);
                give_back(results, &mut cleanup);
                return Err(QuorumError::Undecided);
            }
            // Cancelled with the rest of its failed zone: counts as one more failure in
            // that zone, which changes nothing.
            Some(Some((i, Err(Aborted)))) => {
                tracker.record(i, false);
            }
            Some(Some((i, Ok(Ok(value))))) => {
                results[i] = Some(value);
                tracker.record(i, true);
            }
            Some(Some((i, Ok(Err(err))))) => {
                let terminal = cfg.is_terminal_error.is_some_and(|t| t(&err));
                // A terminal error returns before being counted, so it releases nothing.
                if terminal || tracker.record(i, false) == QuorumStatus::Failed {
                    drop(in_flight);
                    give_back(results, &mut cleanup);
                    return Err(QuorumError::Instance(err));
                }
                if let Some(z) = tracker.zone_of(i).filter(|_| tracker.is_zone_aware()) {
                    for (j, handle) in aborts.iter().enumerate() {
                        if let Some(h) = handle
                            && tracker.zone_of(j) == Some(z)
                            && tracker.is_in_flight(j)
                        {
                            h.abort();
                        }
                    }
                }
            }
        }
    }
    // Cancel the calls whose results are not needed.
    drop(in_flight);
    let mut out = Vec::with_capacity(n);
    for (i, r) in results.into_iter().enumerate() {
        if let Some(value) = r {
            if tracker.should_include_result_from(i) {
                out.push(value);
            } else {
                cleanup(value);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(zones: &[&str], max_errors: usize, max_unavailable_zones: usize) -> ReplicationSet {
        ReplicationSet {
            instances: zones
                .iter()
                .enumerate()
                .map(|(i, z)| InstanceDesc {
                    addr: format!("10.0.0.{i}:9095"),
                    id: format!("instance-{i}"),
                    zone: z.to_string(),
                    ..Default::default()
                })
                .collect(),
            max_errors,
            max_unavailable_zones,
            zone_awareness_enabled: max_unavailable_zones > 0,
        }
    }

    fn drain(t: &mut QuorumTracker) -> Vec<usize> {
        std::iter::from_fn(|| t.next_to_start()).collect()
    }

    #[test]
    fn instance_mode_succeeds_at_len_minus_max_errors_successes() {
        let mut t = QuorumTracker::new(&set(&["", "", ""], 1, 0)).unwrap();
        t.start_all();
        assert_eq!(drain(&mut t), vec![0, 1, 2]);
        assert_eq!(t.record(0, true), QuorumStatus::Pending);
        assert_eq!(t.record(1, false), QuorumStatus::Pending);
        assert_eq!(t.record(2, true), QuorumStatus::Succeeded);
        assert!(t.should_include_result_from(0) && t.should_include_result_from(2));
    }

    #[test]
    fn instance_mode_fails_when_errors_exceed_max_errors() {
        let mut t = QuorumTracker::new(&set(&["", "", ""], 1, 0)).unwrap();
        t.start_all();
        drain(&mut t);
        assert_eq!(t.record(0, false), QuorumStatus::Pending);
        assert_eq!(t.record(2, false), QuorumStatus::Failed);
    }

    #[test]
    fn duplicate_and_out_of_range_results_are_ignored() {
        let mut t = QuorumTracker::new(&set(&["", "", ""], 1, 0)).unwrap();
        t.start_all();
        drain(&mut t);
        assert_eq!(t.record(0, false), QuorumStatus::Pending);
        assert_eq!(
            t.record(0, false),
            QuorumStatus::Pending,
            "same instance twice"
        );
        assert_eq!(
            t.record(7, false),
            QuorumStatus::Pending,
            "unknown instance"
        );
    }

    #[test]
    fn max_errors_at_least_len_succeeds_before_any_call() {
        let mut t = QuorumTracker::new(&set(&["", ""], 2, 0)).unwrap();
        t.start_minimum();
        assert_eq!(t.status(), QuorumStatus::Succeeded);
        assert_eq!(t.next_to_start(), None, "nothing is started once decided");
    }

    #[test]
    fn empty_set_succeeds_at_once() {
        let t = QuorumTracker::new(&set(&[], 0, 0)).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.status(), QuorumStatus::Succeeded);
    }

    #[test]
    fn zone_awareness_with_max_errors_is_rejected() {
        let mut s = set(&["a", "b"], 1, 0);
        s.zone_awareness_enabled = true;
        assert_eq!(
            QuorumTracker::new(&s).unwrap_err(),
            InvalidReplicationSet { max_errors: 1 }
        );
    }

    #[test]
    fn zone_mode_succeeds_when_enough_whole_zones_succeeded() {
        // Zones a, b, c with two instances each; one zone may be unavailable.
        let mut t = QuorumTracker::new(&set(&["a", "b", "c", "a", "b", "c"], 0, 1)).unwrap();
        assert!(t.is_zone_aware());
        t.start_all();
        assert_eq!(drain(&mut t).len(), 6);
        assert_eq!(t.record(0, true), QuorumStatus::Pending); // a: 1/2
        assert_eq!(t.record(1, true), QuorumStatus::Pending); // b: 1/2
        assert_eq!(t.record(3, true), QuorumStatus::Pending); // a done
        assert_eq!(t.record(2, true), QuorumStatus::Pending); // c: 1/2
        assert_eq!(t.record(4, true), QuorumStatus::Succeeded); // b done
        assert!(t.should_include_result_from(0) && t.should_include_result_from(4));
        assert!(!t.should_include_result_from(2), "zone c did not complete");
    }

    #[test]
    fn zone_mode_counts_failed_zones_not_failed_instances() {
        let mut t = QuorumTracker::new(&set(&["a", "b", "c", "a", "b", "c"], 0, 1)).unwrap();
        t.start_all();
        drain(&mut t);
        assert_eq!(t.record(0, false), QuorumStatus::Pending, "zone a fails");
        assert_eq!(t.record(3, false), QuorumStatus::Pending, "still one zone");
        assert_eq!(t.record(1, true), QuorumStatus::Pending);
        assert_eq!(
            t.record(2, false),
            QuorumStatus::Failed,
            "second zone fails"
        );
    }

    #[test]
    fn zone_mode_with_partial_zone_failure_still_succeeds_on_the_other_zones() {
        let mut t = QuorumTracker::new(&set(&["a", "b", "c", "a", "b", "c"], 0, 1)).unwrap();
        t.start_all();
        drain(&mut t);
        t.record(0, true);
        assert_eq!(t.record(3, false), QuorumStatus::Pending);
        t.record(1, true);
        t.record(4, true);
        t.record(2, true);
        assert_eq!(t.record(5, true), QuorumStatus::Succeeded);
        assert!(!t.should_include_result_from(0), "zone a had a failure");
    }

    #[test]
    fn minimise_releases_len_minus_max_errors_then_one_per_failure() {
        let mut t = QuorumTracker::new(&set(&["", "", "", "", ""], 2, 0)).unwrap();
        t.start_minimum();
        assert_eq!(drain(&mut t), vec![0, 1, 2]);
        t.record(0, true);
        t.record(1, false);
        assert_eq!(drain(&mut t), vec![3], "one more per failure");
        t.record(2, false);
        assert_eq!(drain(&mut t), vec![4]);
        assert_eq!(t.record(3, true), QuorumStatus::Pending);
        assert_eq!(t.record(4, true), QuorumStatus::Succeeded);
    }

    #[test]
    fn minimise_in_zone_mode_releases_whole_zones_and_one_more_per_failing_zone() {
        let mut t = QuorumTracker::new(&set(&["a", "b", "c", "a", "b", "c"], 0, 1)).unwrap();
        t.start_minimum();
        assert_eq!(drain(&mut t), vec![0, 3, 1, 4], "zones a and b");
        t.record(0, false);
        assert_eq!(drain(&mut t), vec![2, 5], "zone c after a's first failure");
        t.record(3, false);
        assert!(
            drain(&mut t).is_empty(),
            "a second failure in a does not release more"
        );
        t.record(1, true);
        t.record(4, true);
        t.record(2, true);
        assert_eq!(t.record(5, true), QuorumStatus::Succeeded);
    }

    #[test]
    fn hedging_releases_one_more_unit_until_all_are_released() {
        let mut t = QuorumTracker::new(&set(&["", "", ""], 1, 0)).unwrap();
        t.start_minimum();
        assert_eq!(drain(&mut t), vec![0, 1]);
        assert!(t.start_additional());
        assert_eq!(drain(&mut t), vec![2]);
        assert!(!t.start_additional(), "everything released");
    }

    #[test]
    fn max_unavailable_zones_at_least_zone_count_succeeds_at_once() {
        let mut t = QuorumTracker::new(&set(&["a", "b"], 0, 2)).unwrap();
        t.start_minimum();
        assert_eq!(t.status(), QuorumStatus::Succeeded);
        assert_eq!(drain(&mut t), Vec::<usize>::new());
    }
}
