//! The lifecycler and ring watcher against the real in-memory KV store.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringkit_kv::{CancellationToken, Client, ClientOptions, MemoryStore};
use ringkit_lifecycle::{
    Lifecycler, LifecyclerConfig, RingDesc, RingDescCodec, RingWatcher, lifecycler::Clock,
};
use ringkit_ring::tokens::RandomTokenGenerator;
use ringkit_ring::{InstanceState, RingConfig};

const KEY: &str = "collectors/ring";

fn store_client(store: &MemoryStore) -> Arc<dyn Client<RingDesc>> {
    Arc::new(store.client(RingDescCodec::shared(), ClientOptions::default()))
}

/// A settable clock shared by the lifecyclers of one test.
fn clock(start: i64) -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start));
    let n = Arc::clone(&now);
    let clock: Clock =
        Arc::new(move || UNIX_EPOCH + Duration::from_secs(n.load(Ordering::SeqCst) as u64));
    (clock, now)
}

fn cfg(id: &str, zone: &str) -> LifecyclerConfig {
    LifecyclerConfig {
        id: id.into(),
        addr: format!("{id}:9095"),
        zone: zone.into(),
        num_tokens: 64,
        min_ready_duration: Duration::ZERO,
        ..LifecyclerConfig::default()
    }
}

fn lifecycler(store: &MemoryStore, c: LifecyclerConfig, clock: &Clock, seed: u64) -> Lifecycler {
    Lifecycler::new(
        c,
        store_client(store),
        KEY,
        Arc::new(RandomTokenGenerator::new()),
    )
    .unwrap()
    .with_clock(Arc::clone(clock))
    .with_seed(seed)
}

async fn ring(store: &MemoryStore) -> ringkit_ring::Desc {
    store_client(store).get(KEY).await.unwrap().unwrap().0
}

#[tokio::test]
async fn instances_register_without_tokens_then_claim_disjoint_tokens() {
    let store = MemoryStore::new();
    let (clock, _) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", "a"), &clock, 1);
    let b = lifecycler(&store, cfg("ing-b", "b"), &clock, 2);
    a.register().await.unwrap();
    b.register().await.unwrap();
    let desc = ring(&store).await;
    assert_eq!(desc.ingesters.len(), 2, "visible before loading data");
    assert!(desc.ingesters.values().all(|d| d.tokens.is_empty()));
    assert!(
        desc.ingesters
            .values()
            .all(|d| d.state() == InstanceState::Pending)
    );

    a.claim_tokens().await.unwrap();
    b.claim_tokens().await.unwrap();
    let desc = ring(&store).await;
    let ta = &desc.ingesters["ing-a"].tokens;
    let tb = &desc.ingesters["ing-b"].tokens;
    assert_eq!((ta.len(), tb.len()), (64, 64));
    assert!(
        ta.iter().all(|t| tb.binary_search(t).is_err()),
        "no shared token"
    );
    assert_eq!(a.state(), InstanceState::Active);
    assert_eq!(desc.ingesters["ing-b"].state(), InstanceState::Active);
    assert_eq!(a.check_ready(Instant::now()).await, Ok(()));
}

#[tokio::test]
async fn changes_within_one_second_carry_strictly_newer_timestamps() {
    // Register, claim and a state change in the same second: each change of our entry
    // must be newer than the last, or a merging store (gossip) keeps the older one.
    let store = MemoryStore::new();
    let (clock, now) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", ""), &clock, 1);
    a.register().await.unwrap();
    let registered = ring(&store).await.ingesters["ing-a"].clone();
    assert_eq!(
        registered.timestamp, 1_799_999_999,
        "a first registration is dated a second back"
    );
    a.claim_tokens().await.unwrap();
    let active = ring(&store).await.ingesters["ing-a"].clone();
    assert_eq!(active.state(), InstanceState::Active);
    assert_eq!(
        active.timestamp, 1_800_000_000,
        "newer than the PENDING write, at the clock's time, not ahead of it"
    );
    assert_eq!(active.registered_timestamp, 1_800_000_000);
    // Heartbeats that change nothing else never run ahead of the clock, however
    // often they come, and never go back either.
    for _ in 0..5 {
        a.heartbeat().await.unwrap();
    }
    assert_eq!(
        ring(&store).await.ingesters["ing-a"].timestamp,
        1_800_000_000
    );
    a.change_state(InstanceState::Leaving).await.unwrap();
    let leaving = ring(&store).await.ingesters["ing-a"].clone();
    assert_eq!(leaving.state(), InstanceState::Leaving);
    assert_eq!(
        leaving.timestamp, 1_800_000_001,
        "a third change in that second goes one past the clock"
    );
    // Once the clock is ahead again, writes carry the clock's time.
    now.store(1_800_000_010, Ordering::SeqCst);
    a.heartbeat().await.unwrap();
    assert_eq!(
        ring(&store).await.ingesters["ing-a"].timestamp,
        1_800_000_010
    );
    // Other instances' entries keep the timestamps their owners wrote.
    now.store(1_800_000_011, Ordering::SeqCst);
    let b = lifecycler(&store, cfg("ing-b", ""), &clock, 2);
    b.register().await.unwrap();
    now.store(1_800_000_012, Ordering::SeqCst);
    a.heartbeat().await.unwrap();
    let desc = ring(&store).await;
    assert_eq!(desc.ingesters["ing-a"].timestamp, 1_800_000_012);
    assert_eq!(
        desc.ingesters["ing-b"].timestamp, 1_800_000_010,
        "b's first registration, a second back"
    );
}

#[tokio::test]
async fn heartbeat_moves_the_timestamp_and_leave_unregisters() {
    let store = MemoryStore::new();
    let (clock, now) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", ""), &clock, 1);
    a.register().await.unwrap();
    a.claim_tokens().await.unwrap();
    now.fetch_add(5, Ordering::SeqCst);
    a.heartbeat().await.unwrap();
    assert_eq!(
        ring(&store).await.ingesters["ing-a"].timestamp,
        1_800_000_005
    );
    assert_eq!(a.heartbeat_count(), 1);
    a.leave().await.unwrap();
    assert!(!ring(&store).await.ingesters.contains_key("ing-a"));
}

#[tokio::test]
async fn restart_reuses_the_tokens_file_and_ring_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = MemoryStore::new();
    let (clock, _) = clock(1_800_000_000);
    let mut c = cfg("ing-a", "");
    c.tokens_file_path = Some(path.clone());
    let first = lifecycler(&store, c.clone(), &clock, 1);
    first.register().await.unwrap();
    first.claim_tokens().await.unwrap();
    let tokens = first.tokens();
    assert_eq!(ringkit_lifecycle::tokens_file::load(&path).unwrap(), tokens);
    first.leave().await.unwrap();

    // Ring entry gone, file kept: the restarted instance reclaims the same tokens.
    let again = lifecycler(&store, c.clone(), &clock, 99);
    again.register().await.unwrap();
    assert!(ring(&store).await.ingesters["ing-a"].tokens.is_empty());
    again.claim_tokens().await.unwrap();
    assert_eq!(again.tokens(), tokens);

    // Crash without leaving: the entry still holds the tokens; restart is JOINING first.
    let third = lifecycler(&store, c, &clock, 7);
    third.register().await.unwrap();
    assert_eq!(third.state(), InstanceState::Joining);
    assert_eq!(ring(&store).await.ingesters["ing-a"].tokens, tokens);
    third.claim_tokens().await.unwrap();
    assert_eq!(third.state(), InstanceState::Active);
    assert_eq!(third.tokens(), tokens);
}

#[tokio::test]
async fn a_live_member_auto_forgets_a_dead_one() {
    let store = MemoryStore::new();
    let (clock, now) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", ""), &clock, 1);
    let b = lifecycler(&store, cfg("ing-b", ""), &clock, 2);
    let c = lifecycler(&store, cfg("ing-c", ""), &clock, 3);
    for l in [&a, &b, &c] {
        l.register().await.unwrap();
        l.claim_tokens().await.unwrap();
    }
    // b dies; a and c keep heartbeating past 10 heartbeat timeouts.
    for _ in 0..13 {
        now.fetch_add(60, Ordering::SeqCst);
        c.heartbeat().await.unwrap();
        let forgotten = a.heartbeat().await.unwrap();
        if !forgotten.is_empty() {
            assert_eq!(forgotten, vec!["ing-b".to_string()]);
        }
    }
    let desc = ring(&store).await;
    assert!(!desc.ingesters.contains_key("ing-b"));
    assert!(desc.ingesters.contains_key("ing-a") && desc.ingesters.contains_key("ing-c"));
}

#[tokio::test]
async fn disallowed_state_change_is_an_error_and_changes_nothing() {
    let store = MemoryStore::new();
    let (clock, _) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", ""), &clock, 1);
    a.register().await.unwrap();
    let err = a.change_state(InstanceState::Leaving).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "changing instance state from PENDING -> LEAVING is disallowed"
    );
    assert_eq!(a.state(), InstanceState::Pending);
    assert_eq!(
        ring(&store).await.ingesters["ing-a"].state(),
        InstanceState::Pending
    );
}

#[tokio::test]
async fn watcher_publishes_snapshots_as_the_ring_changes() {
    let store = MemoryStore::new();
    let (clock, _) = clock(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let watcher = RingWatcher::new(RingConfig::default()).expect("valid ring config");
    let cancel = CancellationToken::new();
    let task =
        tokio::spawn(Arc::clone(&watcher).run(store_client(&store), KEY.into(), cancel.clone()));
    let mut updates = watcher.subscribe();

    let a = lifecycler(&store, cfg("ing-a", ""), &clock, 1);
    a.register().await.unwrap();
    a.claim_tokens().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let snap = watcher.snapshot();
        if snap.instances_with_tokens_count() == 1 {
            assert_eq!(snap.tokens().len(), 64);
            break;
        }
        tokio::time::timeout_at(deadline, updates.changed())
            .await
            .expect("watcher published the claimed tokens in time")
            .unwrap();
    }
    a.leave().await.unwrap();
    loop {
        if watcher.snapshot().instances_count() == 0 {
            break;
        }
        tokio::time::timeout_at(deadline, updates.changed())
            .await
            .expect("watcher saw the instance leave")
            .unwrap();
    }
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn join_runs_the_load_step_while_registered_without_tokens() {
    let store = MemoryStore::new();
    let (clock, _) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", "a"), &clock, 1);
    let seen = a
        .join(async {
            let desc = ring(&store).await;
            let me = &desc.ingesters["ing-a"];
            Ok::<_, std::io::Error>((me.state(), me.tokens.len()))
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        (InstanceState::Pending, 0),
        "load ran before the claim"
    );
    let desc = ring(&store).await;
    assert_eq!(desc.ingesters["ing-a"].state(), InstanceState::Active);
    assert_eq!(desc.ingesters["ing-a"].tokens.len(), 64);
}

#[tokio::test]
async fn a_failed_load_step_claims_no_tokens() {
    let store = MemoryStore::new();
    let (clock, _) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", "a"), &clock, 1);
    let err = a
        .join(async { Err::<(), _>(std::io::Error::other("disk on fire")) })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("load step: disk on fire"), "{err}");
    let desc = ring(&store).await;
    assert_eq!(desc.ingesters["ing-a"].state(), InstanceState::Pending);
    assert!(desc.ingesters["ing-a"].tokens.is_empty());
}

#[tokio::test]
async fn read_only_is_set_and_cleared_in_the_store_with_its_timestamp() {
    let store = MemoryStore::new();
    let (clock, now) = clock(1_800_000_000);
    let a = lifecycler(&store, cfg("ing-a", "a"), &clock, 1);
    a.register().await.unwrap();
    a.claim_tokens().await.unwrap();
    assert_eq!(a.read_only(), (false, 0));

    now.store(1_800_000_010, Ordering::SeqCst);
    a.set_read_only(true).await.unwrap();
    let e = ring(&store).await.ingesters["ing-a"].clone();
    assert!(e.read_only);
    assert_eq!(e.read_only_updated_timestamp, 1_800_000_010);
    assert_eq!(a.read_only(), (true, 1_800_000_010));

    // Heartbeats keep it; setting it again keeps the first timestamp.
    now.store(1_800_000_020, Ordering::SeqCst);
    a.heartbeat().await.unwrap();
    a.set_read_only(true).await.unwrap();
    let e = ring(&store).await.ingesters["ing-a"].clone();
    assert!(e.read_only);
    assert_eq!(e.read_only_updated_timestamp, 1_800_000_010);

    // A restart adopts it from the ring.
    let again = lifecycler(&store, cfg("ing-a", "a"), &clock, 1);
    again.register().await.unwrap();
    assert_eq!(again.read_only(), (true, 1_800_000_010));

    now.store(1_800_000_030, Ordering::SeqCst);
    again.set_read_only(false).await.unwrap();
    let e = ring(&store).await.ingesters["ing-a"].clone();
    assert!(!e.read_only);
    assert_eq!(e.read_only_updated_timestamp, 1_800_000_030);
}

#[tokio::test]
async fn unregister_on_shutdown_can_be_turned_on_at_run_time() {
    let store = MemoryStore::new();
    let (clock, _) = clock(1_800_000_000);
    let c = LifecyclerConfig {
        unregister_on_shutdown: false,
        ..cfg("ing-a", "a")
    };
    let a = lifecycler(&store, c, &clock, 1);
    a.register().await.unwrap();
    a.claim_tokens().await.unwrap();
    assert!(!a.unregister_on_shutdown());
    a.set_unregister_on_shutdown(true);
    a.leave().await.unwrap();
    assert!(!ring(&store).await.ingesters.contains_key("ing-a"));
}
