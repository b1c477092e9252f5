//! `ReplicationSet` helpers and `do_until_quorum` (spec/ring.md §3.7), driven by tokio with
//! paused time so that "slow" instances cost no wall-clock time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ringkit_ring::quorum::{QuorumConfig, QuorumError, do_until_quorum_hedged};
use ringkit_ring::replication::{
    has_replication_set_changed, has_replication_set_changed_without_state,
    has_replication_set_changed_without_state_or_addr,
};
use ringkit_ring::{InstanceDesc, InstanceState, ReplicationSet};
use tokio::time::{Instant, sleep};

/// A set with one instance per zone name given (instance `i` is `instance-i`).
fn set(zones: &[&str], max_errors: usize, max_unavailable_zones: usize) -> ReplicationSet {
    ReplicationSet {
        instances: zones
            .iter()
            .enumerate()
            .map(|(i, z)| InstanceDesc {
                addr: format!("10.0.0.{i}:9095"),
                id: format!("instance-{i}"),
                zone: z.to_string(),
                tokens: vec![i as u32].into(),
                ..Default::default()
            })
            .collect(),
        max_errors,
        max_unavailable_zones,
        zone_awareness_enabled: max_unavailable_zones > 0,
    }
}

fn index(d: &InstanceDesc) -> usize {
    d.id.trim_start_matches("instance-").parse().unwrap()
}

/// What each instance does when called: answer after `delay`, with its index or an error.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok(u64),
    Err(u64),
}

/// Records which instances were called, which calls completed and which were dropped
/// before completing (cancelled).
#[derive(Default)]
struct Log {
    called: Vec<usize>,
    completed: Vec<usize>,
    cancelled: Vec<usize>,
}

struct CancelGuard {
    log: Rc<RefCell<Log>>,
    i: usize,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.log.borrow_mut().cancelled.push(self.i);
        }
    }
}

async fn run(
    s: &ReplicationSet,
    cfg: QuorumConfig<String>,
    behaviour: &[Behaviour],
) -> (Result<Vec<usize>, QuorumError<String>>, Vec<usize>, Log) {
    let log = Rc::new(RefCell::new(Log::default()));
    let mut cleaned = Vec::new();
    let result = s
        .do_until_quorum(
            cfg,
            |d| {
                let i = index(d);
                log.borrow_mut().called.push(i);
                let b = behaviour[i];
                let mut guard = CancelGuard {
                    log: log.clone(),
                    i,
                    done: false,
                };
                async move {
                    let (ms, ok) = match b {
                        Behaviour::Ok(ms) => (ms, true),
                        Behaviour::Err(ms) => (ms, false),
                    };
                    sleep(Duration::from_millis(ms)).await;
                    guard.done = true;
                    guard.log.borrow_mut().completed.push(i);
                    if ok {
                        Ok(i)
                    } else {
                        Err(format!("instance {i} failed"))
                    }
                }
            },
            |i| cleaned.push(i),
        )
        .await;
    let log = Rc::try_unwrap(log).ok().unwrap().into_inner();
    (result, cleaned, log)
}

use Behaviour::{Err as E, Ok as K};

#[tokio::test(start_paused = true)]
async fn quorum_is_reached_when_one_of_three_instances_fails() {
    let s = set(&["", "", ""], 1, 0);
    let (res, cleaned, _) = run(&s, QuorumConfig::default(), &[K(10), E(5), K(20)]).await;
    assert_eq!(res.unwrap(), vec![0, 2]);
    assert!(cleaned.is_empty());
}

#[tokio::test(start_paused = true)]
async fn quorum_fails_with_the_deciding_error_when_two_of_three_fail() {
    let s = set(&["", "", ""], 1, 0);
    let (res, cleaned, log) = run(&s, QuorumConfig::default(), &[K(5), E(10), E(20)]).await;
    match res {
        Err(QuorumError::Instance(e)) => assert_eq!(e, "instance 2 failed"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cleaned, vec![0], "the unused success is given back");
    assert_eq!(log.called.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn non_zone_aware_returns_only_the_minimum_results_and_cancels_the_slow_call() {
    let s = set(&["", "", ""], 1, 0);
    let start = Instant::now();
    let (res, cleaned, log) = run(&s, QuorumConfig::default(), &[K(10), K(3_600_000), K(20)]).await;
    assert_eq!(res.unwrap(), vec![0, 2]);
    assert!(cleaned.is_empty());
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(20),
        "no wait for the slow one"
    );
    assert_eq!(log.cancelled, vec![1]);
}

#[tokio::test(start_paused = true)]
async fn zone_aware_returns_whole_zones_and_cleans_up_the_partial_one() {
    // Zones a, b, c with two instances each; one zone may fail.
    let s = set(&["a", "b", "c", "a", "b", "c"], 0, 1);
    let behaviour = [K(1), K(10), K(10), E(2), K(10), K(10)];
    let (res, cleaned, log) = run(&s, QuorumConfig::default(), &behaviour).await;
    assert_eq!(
        res.unwrap(),
        vec![1, 2, 4, 5],
        "zones b and c, in set order"
    );
    assert_eq!(
        cleaned,
        vec![0],
        "zone a's success is not part of the answer"
    );
    assert!(log.cancelled.is_empty());
}

#[tokio::test(start_paused = true)]
async fn zone_aware_first_failure_cancels_the_rest_of_that_zone() {
    let s = set(&["a", "b", "c", "a", "b", "c"], 0, 1);
    let behaviour = [E(1), K(10), K(10), K(3_600_000), K(10), K(10)];
    let start = Instant::now();
    let (res, _, log) = run(&s, QuorumConfig::default(), &behaviour).await;
    assert_eq!(res.unwrap(), vec![1, 2, 4, 5]);
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    assert_eq!(
        log.cancelled,
        vec![3],
        "the slow call in failed zone a is dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn zone_aware_fails_when_more_zones_fail_than_allowed() {
    let s = set(&["a", "b", "c", "a", "b", "c"], 0, 1);
    let behaviour = [E(1), K(10), E(5), K(10), K(10), K(10)];
    let (res, _, _) = run(&s, QuorumConfig::default(), &behaviour).await;
    match res {
        Err(QuorumError::Instance(e)) => assert_eq!(e, "instance 2 failed"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn zone_awareness_with_max_errors_is_rejected_before_any_call() {
    let mut s = set(&["a", "b"], 1, 0);
    s.zone_awareness_enabled = true;
    let (res, _, log) = run(&s, QuorumConfig::default(), &[K(1), K(1)]).await;
    assert!(matches!(res, Err(QuorumError::InvalidReplicationSet(_))));
    assert!(log.called.is_empty());
}

#[tokio::test(start_paused = true)]
async fn minimized_requests_start_one_more_instance_per_failure() {
    let s = set(&["", "", "", "", ""], 2, 0);
    let cfg = QuorumConfig {
        minimize_requests: true,
        ..Default::default()
    };
    let (res, _, log) = run(&s, cfg, &[K(10), E(1), K(10), K(10), K(10)]).await;
    assert_eq!(res.unwrap(), vec![0, 2, 3]);
    assert_eq!(log.called, vec![0, 1, 2, 3], "instance 4 was never needed");
}

#[tokio::test(start_paused = true)]
async fn minimized_zone_aware_requests_start_another_zone_on_failure() {
    let s = set(&["a", "b", "c", "a", "b", "c"], 0, 1);
    let cfg = QuorumConfig {
        minimize_requests: true,
        ..Default::default()
    };
    let behaviour = [K(10), E(1), K(10), K(10), K(10), K(10)];
    let (res, _, log) = run(&s, cfg, &behaviour).await;
    assert_eq!(res.unwrap(), vec![0, 2, 3, 5]);
    assert_eq!(
        log.called,
        vec![0, 3, 1, 4, 2, 5],
        "zones a, b first; c after b fails"
    );
}

#[tokio::test(start_paused = true)]
async fn minimized_requests_without_failures_never_call_the_spare_instances() {
    let s = set(&["a", "b", "c"], 0, 1);
    let cfg = QuorumConfig {
        minimize_requests: true,
        ..Default::default()
    };
    let (res, _, log) = run(&s, cfg, &[K(1), K(1), K(1)]).await;
    assert_eq!(res.unwrap(), vec![0, 1]);
    assert_eq!(log.called, vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn terminal_error_cancels_everything_at_once() {
    let s = set(&["", "", "", "", ""], 3, 0);
    let cfg = QuorumConfig {
        is_terminal_error: Some(|e: &String| e.contains('1')),
        ..Default::default()
    };
    let (res, cleaned, log) = run(&s, cfg, &[K(1), E(2), K(50), K(50), K(50)]).await;
    match res {
        Err(QuorumError::Instance(e)) => assert_eq!(e, "instance 1 failed"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cleaned, vec![0]);
    let mut cancelled = log.cancelled;
    cancelled.sort_unstable();
    assert_eq!(cancelled, vec![2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn hedging_ticks_start_additional_instances_while_undecided() {
    let s = set(&["", "", ""], 1, 0);
    let cfg = QuorumConfig::<String> {
        minimize_requests: true,
        ..Default::default()
    };
    let called = RefCell::new(Vec::new());
    // Instance 1 is slow; a tick after 100 ms starts instance 2, which answers quickly.
    let ticks = Box::pin(futures::stream::unfold((), |()| async {
        sleep(Duration::from_millis(100)).await;
        Some(((), ()))
    }));
    let start = Instant::now();
    let res = do_until_quorum_hedged(
        &s,
        cfg,
        ticks,
        |d| {
            let i = index(d);
            called.borrow_mut().push(i);
            async move {
                sleep(Duration::from_millis(if i == 1 { 10_000 } else { 5 })).await;
                Ok::<_, String>(i)
            }
        },
        |_| {},
    )
    .await;
    assert_eq!(res.unwrap(), vec![0, 2]);
    assert_eq!(*called.borrow(), vec![0, 1, 2]);
    assert_eq!(start.elapsed(), Duration::from_millis(105));
}

#[tokio::test(start_paused = true)]
async fn empty_set_succeeds_without_calls() {
    let s = set(&[], 0, 0);
    let (res, _, log) = run(&s, QuorumConfig::default(), &[]).await;
    assert_eq!(res.unwrap(), Vec::<usize>::new());
    assert!(log.called.is_empty());
}

#[test]
fn addresses_without_drops_only_the_excluded_address() {
    let s = set(&["", "", ""], 1, 0);
    assert_eq!(
        s.addresses_without("10.0.0.1:9095"),
        vec!["10.0.0.0:9095", "10.0.0.2:9095"]
    );
    assert_eq!(s.addresses_without("nope").len(), 3);
    assert_eq!(s.ids(), vec!["instance-0", "instance-1", "instance-2"]);
}

#[test]
fn replication_set_change_ignores_timestamps_and_order() {
    let before = set(&["a", "b", "c"], 1, 0);
    let mut after = before.clone();
    after.instances.reverse();
    after.instances[0].timestamp = 12345;
    assert!(!has_replication_set_changed(&before, &after));
    after.instances[1].tokens.make_mut().push(99);
    assert!(has_replication_set_changed(&before, &after));
    let mut fewer = before.clone();
    fewer.instances.pop();
    assert!(has_replication_set_changed(&before, &fewer));
}

#[test]
fn replication_set_change_variants_ignore_state_and_addr_as_named() {
    let before = set(&["a", "b", "c"], 1, 0);
    let mut state = before.clone();
    state.instances[0].state = InstanceState::Leaving as i32;
    assert!(has_replication_set_changed(&before, &state));
    assert!(!has_replication_set_changed_without_state(&before, &state));

    let mut addr = state.clone();
    addr.instances[1].addr = "10.9.9.9:9095".into();
    assert!(has_replication_set_changed_without_state(&before, &addr));
    assert!(!has_replication_set_changed_without_state_or_addr(
        &before, &addr
    ));

    let mut zone = before.clone();
    zone.instances[2].zone = "z".into();
    assert!(has_replication_set_changed_without_state_or_addr(
        &before, &zone
    ));
}
