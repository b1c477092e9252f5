//! `DoBatch` (spec/ring.md §3.6): grouping, per-item quorum, error classification, call
//! and cleanup guarantees. Timing-dependent tests run on tokio with paused time, so delays
//! order the calls deterministically and cost no wall-clock time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringkit_ring::batch::PlanError;
use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{
    BatchBuffers, BatchError, BatchOptions, Desc, InstanceState, Operation, RingConfig, RingError,
    RingSnapshot, do_batch,
};
use tokio::time::{Instant, sleep};

const NOW: i64 = 1_800_000_000;

/// A ring of `(id, addr, zone, tokens)` instances, all ACTIVE and fresh.
fn ring(instances: &[(&str, &str, &str, &[u32])], rf: usize, zone_aware: bool) -> RingSnapshot {
    let mut d = Desc::new();
    for &(id, addr, zone, tokens) in instances {
        d.add_instance(
            id,
            addr,
            zone,
            tokens.to_vec(),
            InstanceState::Active,
            1,
            NOW,
        );
    }
    RingSnapshot::new(
        d,
        RingConfig {
            replication_factor: rf,
            zone_awareness_enabled: zone_aware,
            ..RingConfig::default()
        },
    )
    .expect("valid ring config")
}

/// Three instances, RF 3: every key goes to all three (quorum 2, one error tolerated).
fn three() -> RingSnapshot {
    ring(
        &[
            ("a", "a:9095", "", &[100, 1_000_000]),
            ("b", "b:9095", "", &[200, 2_000_000]),
            ("c", "c:9095", "", &[300, 3_000_000]),
        ],
        3,
        false,
    )
}

const KEYS: [u32; 5] = [1, 150, 250, 2_500_000, u32::MAX];

/// A test error: an HTTP-status-like error or a mock that knows its own class.
#[derive(Clone, Debug, PartialEq)]
enum TestErr {
    Http(u16),
    Mock { client: bool },
}

impl std::fmt::Display for TestErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for TestErr {}

fn is_http_4xx(e: &TestErr) -> bool {
    matches!(e, TestErr::Http(code) if code / 100 == 4)
}

fn is_mock_client(e: &TestErr) -> bool {
    matches!(e, TestErr::Mock { client: true })
}

const H429: Option<TestErr> = Some(TestErr::Http(429));
const H500: Option<TestErr> = Some(TestErr::Http(500));
const MC: Option<TestErr> = Some(TestErr::Mock { client: true });
const MS: Option<TestErr> = Some(TestErr::Mock { client: false });

/// Runs a batch over `r` where the instance with address `addr` answers after
/// `delay_ms[addr]` with `outcome[addr]` (`None` = success). Returns the result, the call
/// count per address and the cleanup count (after driving the rest to completion).
async fn run_batch(
    r: &RingSnapshot,
    keys: &[u32],
    outcome: &BTreeMap<&str, (u64, Option<TestErr>)>,
    is_client_error: fn(&TestErr) -> bool,
) -> (
    Result<(), BatchError<TestErr>>,
    BTreeMap<String, usize>,
    usize,
) {
    let calls = RefCell::new(BTreeMap::<String, usize>::new());
    let cleanups = Cell::new(0usize);
    let mut bufs = BatchBuffers::new();
    let out = do_batch(
        r,
        Operation::WRITE,
        unix_seconds(NOW),
        keys,
        &mut bufs,
        |inst, _items| {
            *calls.borrow_mut().entry(inst.addr.clone()).or_default() += 1;
            let (ms, res) = outcome
                .get(inst.addr.as_str())
                .cloned()
                .unwrap_or((1, None));
            async move {
                sleep(Duration::from_millis(ms)).await;
                res.map_or(Ok(()), Err)
            }
        },
        BatchOptions::default()
            .with_client_errors(is_client_error)
            .with_cleanup(|| cleanups.set(cleanups.get() + 1)),
    )
    .await;
    out.rest.await;
    (out.result, calls.into_inner(), cleanups.get())
}

/// Instances a, b, c answer in that order (1, 2, 3 ms) with the given outcomes.
fn ordered(errs: [Option<TestErr>; 3]) -> BTreeMap<&'static str, (u64, Option<TestErr>)> {
    ["a:9095", "b:9095", "c:9095"]
        .into_iter()
        .zip(errs)
        .enumerate()
        .map(|(i, (addr, e))| (addr, (i as u64 + 1, e)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn quorum_is_reached_when_one_instance_fails_for_every_key() {
    let (res, calls, cleanups) =
        run_batch(&three(), &KEYS, &ordered([None, H500, None]), is_http_4xx).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(calls.values().copied().collect::<Vec<_>>(), vec![1, 1, 1]);
    assert_eq!(cleanups, 1);
}

#[tokio::test(start_paused = true)]
async fn batch_fails_when_two_of_three_instances_fail() {
    let (res, _, cleanups) =
        run_batch(&three(), &KEYS, &ordered([H500, None, H500]), is_http_4xx).await;
    assert!(matches!(res, Err(BatchError::Instance(TestErr::Http(500)))));
    assert_eq!(cleanups, 1);
}

/// A classification case: name, outcomes of a, b, c in answer order, classifier, and the
/// expected error (`None`: success).
type Case = (
    &'static str,
    [Option<TestErr>; 3],
    fn(&TestErr) -> bool,
    Option<TestErr>,
);

#[tokio::test(start_paused = true)]
async fn error_classification_matches_dskit_cases() {
    let cases: Vec<Case> = vec![
        ("no error", [None, None, None], is_http_4xx, None),
        ("one 5xx", [H500, None, None], is_http_4xx, None),
        ("one client error", [MC, None, None], is_http_4xx, None),
        (
            "4xx, 5xx, 4xx => 4xx",
            [H429, H500, H429],
            is_http_4xx,
            H429,
        ),
        (
            "5xx, 4xx, 5xx => 5xx",
            [H500, H429, H500],
            is_http_4xx,
            H500,
        ),
        (
            "success, 4xx, 5xx => 5xx",
            [None, H429, H500],
            is_http_4xx,
            H500,
        ),
        (
            "4xx, 4xx, success => 4xx",
            [H429, H429, None],
            is_http_4xx,
            H429,
        ),
        (
            "4xx, 5xx, success => 5xx",
            [H429, H500, None],
            is_http_4xx,
            H500,
        ),
        (
            "5xx, 4xx, success => 4xx",
            [H500, H429, None],
            is_http_4xx,
            H429,
        ),
        (
            "client, client, server => client",
            [MC, MC, MS],
            is_mock_client,
            MC,
        ),
        (
            "server, client, server => server",
            [MS, MC, MS],
            is_mock_client,
            MS,
        ),
        // The mock classifier does not see HTTP 4xx as client errors.
        (
            "429, 429, client => 429",
            [H429, H429, MC],
            is_mock_client,
            H429,
        ),
        (
            "429, 500, client => 500",
            [H429, H500, MC],
            is_mock_client,
            H500,
        ),
        (
            "429, client, server => server",
            [H429, MC, MS],
            is_mock_client,
            MS,
        ),
    ];
    for (name, errs, classify, want) in cases {
        let (res, calls, cleanups) = run_batch(&three(), &KEYS, &ordered(errs), classify).await;
        match want {
            None => assert!(res.is_ok(), "{name}: {res:?}"),
            Some(w) => match res {
                Err(BatchError::Instance(got)) => assert_eq!(got, w, "{name}"),
                other => panic!("{name}: {other:?}"),
            },
        }
        assert_eq!(calls.len(), 3, "{name}");
        assert_eq!(cleanups, 1, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn one_error_fails_when_an_instance_is_missing_from_the_ring() {
    // dskit: "1 HTTP error and 1 unhealthy instance should return that error". Instance c
    // left the ring: RF 3 over two instances needs both.
    let r = ring(
        &[("a", "a:9095", "", &[100]), ("b", "b:9095", "", &[200])],
        3,
        false,
    );
    for (err, classify) in [
        (H500, is_http_4xx as fn(&TestErr) -> bool),
        (MC, is_mock_client),
        (MS, is_mock_client),
    ] {
        let (res, _, _) = run_batch(&r, &KEYS, &ordered([err.clone(), None, None]), classify).await;
        match res {
            Err(BatchError::Instance(got)) => assert_eq!(Some(got), err),
            other => panic!("{other:?}"),
        }
    }
}

/// Three zones with two instances each; RF 3 zone-aware puts one replica in each zone.
fn zoned() -> RingSnapshot {
    ring(
        &[
            ("a1", "a1:9095", "zone-a", &[100, 4_000_000]),
            ("a2", "a2:9095", "zone-a", &[700, 1_000_000]),
            ("b1", "b1:9095", "zone-b", &[200, 5_000_000]),
            ("b2", "b2:9095", "zone-b", &[800, 2_000_000]),
            ("c1", "c1:9095", "zone-c", &[300, 6_000_000]),
            ("c2", "c2:9095", "zone-c", &[900, 3_000_000]),
        ],
        3,
        true,
    )
}

#[tokio::test(start_paused = true)]
async fn zone_aware_batch_survives_a_whole_failing_zone() {
    let zone_a_down: BTreeMap<_, _> = [("a1:9095", (1, H500)), ("a2:9095", (1, H500))].into();
    let (res, calls, cleanups) = run_batch(&zoned(), &KEYS, &zone_a_down, is_http_4xx).await;
    assert!(res.is_ok(), "{res:?}");
    assert!(calls.values().all(|&n| n == 1));
    assert_eq!(cleanups, 1);
}

#[tokio::test(start_paused = true)]
async fn zone_aware_batch_fails_when_two_zones_fail() {
    let two_down: BTreeMap<_, _> = [
        ("a1:9095", (1, H500)),
        ("a2:9095", (1, H500)),
        ("b1:9095", (2, H500)),
        ("b2:9095", (2, H500)),
    ]
    .into();
    let (res, _, _) = run_batch(&zoned(), &KEYS, &two_down, is_http_4xx).await;
    assert!(matches!(res, Err(BatchError::Instance(TestErr::Http(500)))));
}

#[test]
fn zone_aware_plan_counts_one_replica_per_zone_with_one_error_allowed() {
    let r = zoned();
    let mut bufs = BatchBuffers::new();
    let plan = bufs
        .plan(&r, Operation::WRITE, unix_seconds(NOW), &KEYS)
        .unwrap();
    let mut per_item = vec![Vec::new(); KEYS.len()];
    for s in 0..plan.calls() {
        let (inst, items) = plan.call(s).unwrap();
        for &i in items {
            per_item[i as usize].push(inst.zone.clone());
        }
    }
    for zones in &mut per_item {
        zones.sort();
        assert_eq!(zones, &["zone-a", "zone-b", "zone-c"]);
    }
    assert_eq!(plan.pending_items(), KEYS.len());
}

/// A ring of `n` instances with `tokens` random tokens each, as the benchmark builds.
fn random_ring(n: usize, tokens: usize, seed: u64) -> RingSnapshot {
    use rand::{RngExt, SeedableRng, rngs::SmallRng};
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut d = Desc::new();
    for i in 0..n {
        let t: Vec<u32> = (0..tokens).map(|_| rng.random()).collect();
        d.add_instance(
            &format!("instance-{i}"),
            &format!("10.0.0.{i}:9095"),
            &format!("zone-{}", i % 3),
            t,
            InstanceState::Active,
            1,
            NOW,
        );
    }
    RingSnapshot::new(d, RingConfig::default()).expect("valid ring config")
}

#[test]
fn plan_calls_each_instance_once_with_every_replica_of_every_key() {
    use rand::{RngExt, SeedableRng, rngs::SmallRng};
    let r = random_ring(20, 64, 7);
    let keys: Vec<u32> = {
        let mut rng = SmallRng::seed_from_u64(8);
        (0..1000).map(|_| rng.random()).collect()
    };
    let mut bufs = BatchBuffers::new();
    // Twice with the same buffers: reuse must not leak state between batches.
    for _ in 0..2 {
        let plan = bufs
            .plan(&r, Operation::WRITE, unix_seconds(NOW), &keys)
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut got: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
        for s in 0..plan.calls() {
            let (inst, items) = plan.call(s).unwrap();
            assert!(seen.insert(inst.addr.clone()), "one call per address");
            assert!(items.is_sorted(), "items ascending");
            for &i in items {
                got[i as usize].push(inst.id.clone());
            }
        }
        let mut gb = ringkit_ring::GetBuffer::new();
        for (i, &k) in keys.iter().enumerate() {
            let set = r
                .get(k, Operation::WRITE, unix_seconds(NOW), &mut gb)
                .unwrap();
            let mut want: Vec<String> = set.instances().map(|d| d.id.clone()).collect();
            want.sort();
            got[i].sort();
            assert_eq!(got[i], want, "key {i}");
        }
    }
}

#[test]
fn instances_sharing_an_address_get_one_call() {
    let r = ring(
        &[
            ("x1", "shared:9095", "", &[100]),
            ("x2", "shared:9095", "", &[200]),
            ("y", "y:9095", "", &[300]),
        ],
        3,
        false,
    );
    let mut bufs = BatchBuffers::new();
    let plan = bufs
        .plan(&r, Operation::WRITE, unix_seconds(NOW), &[1, 2])
        .unwrap();
    assert_eq!(plan.calls(), 2);
    let (inst, items) = plan.call(0).unwrap();
    assert_eq!(inst.addr, "shared:9095");
    // Both replicas behind the shared address carry the items, as dskit's buckets do.
    assert_eq!(items, &[0, 0, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn batch_on_an_empty_ring_errors_and_cleans_up_without_calls() {
    let calls = Cell::new(0);
    let cleanups = Cell::new(0);
    let mut bufs = BatchBuffers::new();
    let out = do_batch(
        &RingSnapshot::empty(RingConfig::default()).expect("valid ring config"),
        Operation::WRITE,
        unix_seconds(NOW),
        &KEYS,
        &mut bufs,
        |_, _| {
            calls.set(calls.get() + 1);
            async { Ok::<(), TestErr>(()) }
        },
        BatchOptions::default().with_cleanup(|| cleanups.set(cleanups.get() + 1)),
    )
    .await;
    assert!(matches!(out.result, Err(BatchError::NoInstances)));
    assert_eq!(
        out.result.unwrap_err().to_string(),
        "DoBatch: InstancesCount <= 0"
    );
    assert!(out.rest.is_finished());
    assert_eq!((calls.get(), cleanups.get()), (0, 1));
    drop(out.rest);
    assert_eq!(
        cleanups.get(),
        1,
        "dropping a finished rest does not clean up again"
    );
}

#[test]
fn a_ring_without_tokens_fails_the_lookup() {
    let r = ring(&[("a", "a:9095", "", &[])], 3, false);
    let mut bufs = BatchBuffers::new();
    let err = bufs
        .plan(&r, Operation::WRITE, unix_seconds(NOW), &KEYS)
        .unwrap_err();
    assert_eq!(err, PlanError::Ring(RingError::EmptyRing));
}

#[tokio::test(start_paused = true)]
async fn empty_key_list_succeeds_without_calls() {
    let (res, calls, cleanups) = run_batch(&three(), &[], &BTreeMap::new(), is_http_4xx).await;
    assert!(res.is_ok());
    assert!(calls.is_empty());
    assert_eq!(cleanups, 1);
}

/// Counts of a batch whose instance `c` is slow: (calls, completions, cancellations,
/// cleanups), shared so the batch's rest can be spawned.
#[derive(Default)]
struct Counters {
    calls: AtomicUsize,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
    cleanups: AtomicUsize,
}

struct DropGuard(Arc<Counters>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Starts a batch on `three()` where `c` takes an hour; returns the outcome.
async fn batch_with_slow_c(
    counters: &Arc<Counters>,
    bufs: &mut BatchBuffers,
) -> ringkit_ring::BatchOutcome<
    impl Future<Output = Result<(), TestErr>> + Send + 'static,
    impl FnOnce() + Send + 'static,
    TestErr,
> {
    let r = three();
    let c2 = counters.clone();
    do_batch(
        &r,
        Operation::WRITE,
        unix_seconds(NOW),
        &KEYS,
        bufs,
        move |inst, _| {
            c2.calls.fetch_add(1, Ordering::SeqCst);
            let ms = if inst.addr == "c:9095" { 3_600_000 } else { 10 };
            let mut guard = DropGuard(c2.clone(), false);
            async move {
                sleep(Duration::from_millis(ms)).await;
                guard.1 = true;
                guard.0.completed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        BatchOptions::default().with_cleanup({
            let c = counters.clone();
            move || {
                c.cleanups.fetch_add(1, Ordering::SeqCst);
            }
        }),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn early_return_leaves_the_slow_call_running_and_cleanup_waits_for_it() {
    let counters = Arc::new(Counters::default());
    let mut bufs = BatchBuffers::new();
    let start = Instant::now();
    let out = batch_with_slow_c(&counters, &mut bufs).await;
    assert!(out.result.is_ok());
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(10),
        "returned at quorum"
    );
    assert_eq!(out.rest.unfinished_calls(), 1);
    assert_eq!(
        counters.cleanups.load(Ordering::SeqCst),
        0,
        "c still running"
    );

    // The rest is Send + 'static: hand it to the runtime, as dskit leaves goroutines.
    tokio::spawn(out.rest).await.unwrap();
    assert_eq!(counters.completed.load(Ordering::SeqCst), 3);
    assert_eq!(counters.cancelled.load(Ordering::SeqCst), 0);
    assert_eq!(counters.calls.load(Ordering::SeqCst), 3, "no call twice");
    assert_eq!(counters.cleanups.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_rest_cancels_the_slow_call_then_cleans_up_once() {
    let counters = Arc::new(Counters::default());
    let mut bufs = BatchBuffers::new();
    let out = batch_with_slow_c(&counters, &mut bufs).await;
    assert!(out.result.is_ok());
    drop(out.rest);
    assert_eq!(counters.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(counters.cleanups.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_batch_future_midway_cancels_every_call_and_cleans_up_once() {
    let counters = Arc::new(Counters::default());
    let mut bufs = BatchBuffers::new();
    let timed_out = tokio::time::timeout(
        Duration::from_millis(5),
        batch_with_slow_c(&counters, &mut bufs),
    )
    .await;
    assert!(timed_out.is_err());
    assert_eq!(counters.calls.load(Ordering::SeqCst), 3);
    assert_eq!(counters.cancelled.load(Ordering::SeqCst), 3);
    assert_eq!(counters.cleanups.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_bounds_calls_in_flight() {
    let r = random_ring(10, 64, 3);
    let keys: Vec<u32> = (0..200u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
    let in_flight = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let calls = Cell::new(0usize);
    let mut bufs = BatchBuffers::new();
    let start = Instant::now();
    let out = do_batch(
        &r,
        Operation::WRITE,
        unix_seconds(NOW),
        &keys,
        &mut bufs,
        |_, _| {
            calls.set(calls.get() + 1);
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            async move {
                in_flight.set(in_flight.get() + 1);
                peak.set(peak.get().max(in_flight.get()));
                sleep(Duration::from_millis(10)).await;
                in_flight.set(in_flight.get() - 1);
                Ok::<(), TestErr>(())
            }
        },
        BatchOptions::default().with_max_concurrency(2),
    )
    .await;
    assert!(out.result.is_ok());
    out.rest.await;
    assert_eq!(calls.get(), 10);
    assert_eq!(peak.get(), 2);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(50),
        "five rounds of two"
    );
}

#[test]
fn batch_runs_on_the_futures_executor_without_tokio() {
    let r = random_ring(10, 64, 5);
    let keys: Vec<u32> = (0..100u32).map(|i| i.wrapping_mul(40_503)).collect();
    let mut bufs = BatchBuffers::new();
    let out = futures::executor::block_on(do_batch(
        &r,
        Operation::WRITE,
        unix_seconds(NOW),
        &keys,
        &mut bufs,
        |_, _| async { Ok::<(), TestErr>(()) },
        BatchOptions::default(),
    ));
    assert!(out.result.is_ok());
    assert!(
        out.rest.is_finished(),
        "all calls done: cleanup already ran"
    );
}

/// Plans over rings with LEAVING, JOINING, PENDING and stale instances (which make `get`
/// extend or filter the set), zone-aware or not, under both strategies: every key must
/// be grouped exactly as its own `get` answers, and a failing `get` must fail the plan
/// with the first failing key's error.
#[test]
fn plan_matches_get_on_rings_with_unhealthy_and_extending_instances() {
    use rand::{RngExt, SeedableRng, rngs::SmallRng};
    use ringkit_ring::snapshot::ReplicationStrategy;
    let states = [
        InstanceState::Active,
        InstanceState::Leaving,
        InstanceState::Joining,
        InstanceState::Pending,
    ];
    for seed in 0..24u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = rng.random_range(1..12usize);
        let mut d = Desc::new();
        for i in 0..n {
            let t: Vec<u32> = (0..16).map(|_| rng.random()).collect();
            // Mostly ACTIVE and fresh, so both the fast and the general path run.
            let state = if rng.random_bool(0.7) {
                InstanceState::Active
            } else {
                states[rng.random_range(0..states.len())]
            };
            let heartbeat = if rng.random_bool(0.85) {
                NOW
            } else {
                NOW - 3600
            };
            d.add_instance(
                &format!("instance-{i}"),
                &format!("10.0.0.{}:9095", i % 9),
                &format!("zone-{}", i % 3),
                t,
                state,
                1,
                heartbeat,
            );
        }
        let cfg = RingConfig {
            zone_awareness_enabled: seed % 2 == 0,
            strategy: if seed % 4 < 2 {
                ReplicationStrategy::Default
            } else {
                ReplicationStrategy::IgnoreUnhealthy
            },
            ..RingConfig::default()
        };
        let r = RingSnapshot::new(d, cfg).expect("valid ring config");
        let keys: Vec<u32> = (0..300).map(|_| rng.random()).collect();
        let now = unix_seconds(NOW);
        let mut gb = ringkit_ring::GetBuffer::new();
        let want: Result<Vec<Vec<String>>, RingError> = keys
            .iter()
            .map(|&k| {
                r.get(k, Operation::WRITE, now, &mut gb).map(|set| {
                    let mut addrs: Vec<String> = set.instances().map(|d| d.addr.clone()).collect();
                    addrs.sort();
                    addrs
                })
            })
            .collect();
        let mut bufs = BatchBuffers::new();
        match (bufs.plan(&r, Operation::WRITE, now, &keys), want) {
            (Ok(plan), Ok(want)) => {
                let mut got: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
                for s in 0..plan.calls() {
                    let (inst, items) = plan.call(s).unwrap();
                    for &i in items {
                        got[i as usize].push(inst.addr.clone());
                    }
                }
                for g in &mut got {
                    g.sort();
                }
                // Replicas sharing an address are one call: compare distinct addresses.
                let dedup = |v: &[Vec<String>]| -> Vec<Vec<String>> {
                    v.iter()
                        .map(|a| {
                            let mut a = a.clone();
                            a.dedup();
                            a
                        })
                        .collect()
                };
                assert_eq!(dedup(&got), dedup(&want), "seed {seed}");
            }
            (Err(PlanError::Ring(e)), Err(w)) => assert_eq!(e, w, "seed {seed}"),
            (got, want) => panic!("seed {seed}: plan {:?} vs get {:?}", got.err(), want.err()),
        }
    }
}
