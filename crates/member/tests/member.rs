//! The builder and handles against the in-memory store: what a join leaves in the ring,
//! what a failed join leaves (nothing), background heartbeats, and readers following
//! members as they come and go.

use std::time::Duration;

use ringkit_member::kv::Client;
use ringkit_member::{DEFAULT_RING_KEY, Error, InstanceState, Member, RingReader, Store};

/// Bound on every wait for the ring to reach a shape.
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn join_registers_claims_tokens_and_shows_up_in_its_own_snapshot() {
    let store = Store::memory();
    let m = Member::builder(store.clone(), "a", "10.0.0.1:9095")
        .zone("zone-a")
        .tokens(16)
        .seed(1)
        .join()
        .await
        .unwrap();
    assert_eq!(m.id(), "a");
    assert_eq!(m.state(), InstanceState::Active);
    assert_eq!(m.tokens().len(), 16);
    let ring = m.snapshot();
    let me = ring.instance("a").unwrap();
    assert_eq!(
        (me.addr.as_str(), me.zone.as_str()),
        ("10.0.0.1:9095", "zone-a")
    );
    assert_eq!(me.tokens, m.tokens());
    // The entry is where dskit-based readers look for it.
    let Store::Memory(memory) = &store else {
        unreachable!()
    };
    let codec = ringkit_member::lifecycle::RingDescCodec::shared();
    let raw = memory.client(codec, Default::default());
    assert!(
        raw.get(DEFAULT_RING_KEY)
            .await
            .unwrap()
            .unwrap()
            .0
            .ingesters
            .contains_key("a")
    );
    m.leave().await.unwrap();
    assert!(
        raw.get(DEFAULT_RING_KEY)
            .await
            .unwrap()
            .unwrap()
            .0
            .ingesters
            .is_empty()
    );
}

#[tokio::test]
async fn join_after_claims_tokens_only_once_the_load_step_is_done() {
    let store = Store::memory();
    let reader = RingReader::open(store.clone()).await.unwrap();
    let view = reader.view();
    let load = async {
        // Registered, visible, but owning nothing while loading.
        let ring = tokio::time::timeout(WAIT, reader.wait_for(|r| r.has_instance("a")))
            .await
            .unwrap()
            .unwrap();
        let me = ring.instance("a").unwrap();
        Ok::<_, std::io::Error>((me.state(), me.tokens.len()))
    };
    let (m, during) = Member::builder(store, "a", "h:1")
        .tokens(8)
        .join_after(load)
        .await
        .unwrap();
    assert_eq!(during, (InstanceState::Pending, 0));
    let ring = tokio::time::timeout(
        WAIT,
        reader.wait_for(|r| r.instances_with_tokens_count() == 1),
    );
    assert!(ring.await.unwrap().is_some());
    assert_eq!(
        view.snapshot().instance("a").unwrap().state(),
        InstanceState::Active
    );
    m.leave().await.unwrap();
    reader.close().await;
}

#[tokio::test]
async fn a_failed_load_step_leaves_no_entry_behind() {
    let store = Store::memory();
    let failing = async { Err::<(), _>(std::io::Error::other("WAL is corrupt")) };
    let err = Member::builder(store.clone(), "a", "h:1")
        .join_after(failing)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Lifecycle(_)), "{err:?}");
    assert!(err.to_string().contains("WAL is corrupt"), "{err}");
    let reader = RingReader::open(store).await.unwrap();
    assert_eq!(reader.snapshot().instances_count(), 0);
}

#[tokio::test]
async fn invalid_settings_are_refused_before_anything_is_written() {
    let store = Store::memory();
    let err = Member::builder(store.clone(), "a", "h:1")
        .replication_factor(0)
        .join()
        .await;
    assert!(matches!(err, Err(Error::RingConfig(_))), "{err:?}");
    let err = Member::builder(store.clone(), "a", "h:1")
        .tokens(0)
        .join()
        .await;
    assert!(matches!(err, Err(Error::Lifecycle(_))), "{err:?}");
    let err = Member::builder(store.clone(), "", "h:1").join().await;
    assert!(err.unwrap_err().to_string().contains("id must be set"));
    let reader = RingReader::open(store).await.unwrap();
    assert_eq!(reader.snapshot().instances_count(), 0);
}

#[tokio::test]
async fn heartbeats_run_in_the_background_and_are_reported() {
    let m = Member::builder(Store::memory(), "a", "h:1")
        .heartbeat(Duration::from_millis(20), Duration::from_secs(10))
        .join()
        .await
        .unwrap();
    let mut changes = m.changes();
    // Each heartbeat is a store change, so the member's own watch sees it.
    for _ in 0..3 {
        tokio::time::timeout(WAIT, changes.next())
            .await
            .unwrap()
            .unwrap();
    }
    let status = m.heartbeat_status();
    assert!(status.written >= 2, "{status:?}");
    assert_eq!((status.failures_in_a_row, status.last_error), (0, None));
    m.leave().await.unwrap();
}

#[tokio::test]
async fn readers_follow_members_as_they_join_and_leave() {
    let store = Store::memory();
    let reader = RingReader::builder(store.clone()).open().await.unwrap();
    let mut members = Vec::new();
    for id in ["a", "b", "c"] {
        let m = Member::builder(store.clone(), id, format!("{id}:1")).tokens(4);
        members.push(m.join().await.unwrap());
    }
    let three = tokio::time::timeout(WAIT, reader.wait_for(|r| r.instances_count() == 3));
    let ring = three.await.unwrap().unwrap();
    let ids: Vec<_> = ring.instances().iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let b = members.remove(1);
    b.leave().await.unwrap();
    let two = tokio::time::timeout(WAIT, reader.wait_for(|r| !r.has_instance("b")));
    assert_eq!(two.await.unwrap().unwrap().instances_count(), 2);
    // After close, waiting for changes ends instead of hanging.
    let mut changes = reader.changes();
    reader.close().await;
    assert!(changes.next().await.is_none());
    for m in members {
        m.leave().await.unwrap();
    }
}
