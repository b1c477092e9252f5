//! The behaviour suite every store must pass, shared so that stores outside this crate
//! (the memberlist store) run the same checks: call [`run_all`] with a [`StoreFactory`].
//!
//! Every wait is bounded ([`WAIT`]) and driven by the store's own notifications (watch
//! callbacks feeding channels); nothing sleeps and polls. Each run uses a fresh random key
//! namespace, so runs can share a long-lived store.

mod etcd_server;
mod factories;
mod value;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::mpsc;

pub use etcd_server::{
    DEFAULT_ETCD_BIN, EtcdServer, EtcdTarget, etcd_binary, etcd_target, skip_etcd,
};
pub use factories::{EtcdFactory, MemoryFactory, MultiFactory};
pub use value::{TEST_SET_CODEC_ID, TestSet, TestSetCodec, check_merge_laws};

use crate::CancellationToken;
use crate::client::{CasDecision, Client, ClientOptions, Value};
use crate::codec::{BytesCodec, Codec};
use crate::error::Error;

/// Longest any single step of the suite waits before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// Makes clients of one store under test. All clients of a factory share the store.
pub trait StoreFactory: Send + Sync {
    /// A new client of the store.
    fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> Arc<dyn Client<V>>;

    /// Restarts the store's server, returning once it serves again; `false` if this store
    /// has no server to restart (then the restart test is skipped).
    fn restart(&self) -> impl Future<Output = bool> + Send {
        async { false }
    }
}

fn set_client<F: StoreFactory>(f: &F) -> Arc<dyn Client<TestSet>> {
    f.client(Arc::new(TestSetCodec), ClientOptions::default())
}

/// A fresh key namespace for one run, ending in `/`.
pub fn namespace(test: &str) -> String {
    format!("ringkit-test-{:08x}/{test}/", rand::rng().random::<u32>())
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

async fn add(c: &dyn Client<TestSet>, key: &str, item: &str) -> Result<(), Error> {
    c.cas(key, &mut |cur: Option<TestSet>| {
        let cur = cur.unwrap_or_default();
        if cur.0.contains(item) {
            CasDecision::Unchanged
        } else {
            CasDecision::Write(cur.with(item))
        }
    })
    .await
}

/// Runs every behaviour test, each in its own namespace.
pub async fn run_all<F: StoreFactory>(f: &F) {
    eprintln!("testsuite: put_get_delete");
    put_get_delete(f, &namespace("basic")).await;
    eprintln!("testsuite: list_by_prefix");
    list_by_prefix(f, &namespace("list")).await;
    eprintln!("testsuite: cas_races_lose_no_update");
    cas_races_lose_no_update(f, &namespace("race")).await;
    eprintln!("testsuite: cas_decisions");
    cas_decisions(f, &namespace("decisions")).await;
    eprintln!("testsuite: watch_key_sees_every_final_state");
    watch_key_sees_every_final_state(f, &namespace("watchkey")).await;
    eprintln!("testsuite: watch_prefix_sees_every_final_state");
    watch_prefix_sees_every_final_state(f, &namespace("watchprefix")).await;
    eprintln!("testsuite: undecodable_value_is_an_error_and_stays_untouched");
    undecodable_value_is_an_error_and_stays_untouched(f, &namespace("baddata")).await;
    eprintln!("testsuite: oversized_value_is_rejected");
    oversized_value_is_rejected(f, &namespace("oversized")).await;
    eprintln!("testsuite: watch_survives_server_restart");
    watch_survives_server_restart(f, &namespace("restart")).await;
}

/// CAS creates, get reads, delete removes (get then returns `None`), and deleting an
/// absent key is fine.
pub async fn put_get_delete<F: StoreFactory>(f: &F, ns: &str) {
    let c = set_client(f);
    let key = format!("{ns}k");
    assert_eq!(
        c.get(&key).await.unwrap(),
        None,
        "fresh key should be absent"
    );
    add(&*c, &key, "a").await.unwrap();
    add(&*c, &key, "b").await.unwrap();
    assert_eq!(c.get(&key).await.unwrap(), Some(TestSet::of(["a", "b"])));
    c.delete(&key).await.unwrap();
    assert_eq!(c.get(&key).await.unwrap(), None, "get after delete");
    c.delete(&key)
        .await
        .expect("deleting an absent key is not an error");
    add(&*c, &key, "c").await.unwrap();
    assert_eq!(
        c.get(&key).await.unwrap(),
        Some(TestSet::of(["c"])),
        "recreated after delete"
    );
}

/// `list` returns exactly the keys under the prefix, sorted, prefix included.
pub async fn list_by_prefix<F: StoreFactory>(f: &F, ns: &str) {
    let c = set_client(f);
    for k in ["b/2", "a/1", "a/2", "ab", "c"] {
        add(&*c, &format!("{ns}{k}"), "x").await.unwrap();
    }
    let full = |ks: &[&str]| ks.iter().map(|k| format!("{ns}{k}")).collect::<Vec<_>>();
    assert_eq!(
        c.list(&format!("{ns}a/")).await.unwrap(),
        full(&["a/1", "a/2"])
    );
    assert_eq!(
        c.list(&format!("{ns}a")).await.unwrap(),
        full(&["a/1", "a/2", "ab"])
    );
    assert_eq!(
        c.list(ns).await.unwrap(),
        full(&["a/1", "a/2", "ab", "b/2", "c"])
    );
    assert!(c.list(&format!("{ns}zzz")).await.unwrap().is_empty());
    c.delete(&format!("{ns}a/1")).await.unwrap();
    assert_eq!(c.list(&format!("{ns}a/")).await.unwrap(), full(&["a/2"]));
}

/// 8 writers, each with its own client, add 5 items each to one key concurrently: the
/// final value holds all 40 (no update lost to a race).
pub async fn cas_races_lose_no_update<F: StoreFactory>(f: &F, ns: &str) {
    const WRITERS: usize = 8;
    const ITEMS: usize = 5;
    let key = format!("{ns}set");
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let c = set_client(f);
        let key = key.clone();
        tasks.spawn(async move {
            for i in 0..ITEMS {
                add(&*c, &key, &format!("w{w}-{i}")).await?;
            }
            Ok::<_, Error>(())
        });
    }
    within("concurrent CAS writers", async {
        while let Some(r) = tasks.join_next().await {
            r.expect("writer task panicked").expect("writer CAS failed");
        }
    })
    .await;
    let all: TestSet = TestSet(
        (0..WRITERS)
            .flat_map(|w| (0..ITEMS).map(move |i| format!("w{w}-{i}")))
            .collect(),
    );
    assert_eq!(
        set_client(f).get(&key).await.unwrap(),
        Some(all),
        "an update was lost"
    );
}

/// `Unchanged` writes nothing, `Abort` returns [`Error::Aborted`] and writes nothing,
/// `Retry` gives up after exactly `max_cas_attempts` calls.
pub async fn cas_decisions<F: StoreFactory>(f: &F, ns: &str) {
    let c = set_client(f);
    let key = format!("{ns}k");
    add(&*c, &key, "a").await.unwrap();
    c.cas(&key, &mut |_| CasDecision::Unchanged).await.unwrap();
    let err = c
        .cas(&key, &mut |_| CasDecision::Abort("no thanks".into()))
        .await
        .unwrap_err();
    assert!(err.is_aborted(), "expected Aborted, got {err}");
    let options = ClientOptions {
        max_cas_attempts: 3,
        ..ClientOptions::default()
    };
    let c3 = f.client::<TestSet>(Arc::new(TestSetCodec), options);
    let calls = AtomicU32::new(0);
    let err = c3
        .cas(&key, &mut |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            CasDecision::Retry("not yet".into())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::CasGaveUp { attempts: 3, .. }),
        "got {err}"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(c.get(&key).await.unwrap(), Some(TestSet::of(["a"])));
}

/// A key watch delivers the current value, then changes in order (each a superset of the
/// last, since writers only add), reaches the final value of 8 racing writers, and reports
/// the deletion.
pub async fn watch_key_sees_every_final_state<F: StoreFactory>(f: &F, ns: &str) {
    let key = format!("{ns}k");
    let c = set_client(f);
    add(&*c, &key, "start").await.unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let watcher = {
        let (c, key, cancel) = (set_client(f), key.clone(), cancel.clone());
        tokio::spawn(async move {
            c.watch_key(&key, &cancel, &mut |v| {
                let deleted = v.is_none();
                let _ = tx.send(v);
                !deleted
            })
            .await
        })
    };
    let first = within("the watch's first value", rx.recv()).await.flatten();
    assert_eq!(first, Some(TestSet::of(["start"])));

    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (c, key) = (set_client(f), key.clone());
        writers.spawn(async move {
            for i in 0..3 {
                add(&*c, &key, &format!("w{w}-{i}")).await?;
            }
            Ok::<_, Error>(())
        });
    }
    let mut expected = TestSet::of(["start"]);
    for w in 0..8 {
        for i in 0..3 {
            expected.0.insert(format!("w{w}-{i}"));
        }
    }
    let mut last = first.unwrap_or_default();
    within("the final value through the key watch", async {
        while last != expected {
            let v = rx
                .recv()
                .await
                .expect("watch ended early")
                .expect("unexpected deletion");
            assert!(
                v.0.is_superset(&last.0),
                "watch went back in time: {last:?} then {v:?}"
            );
            last = v;
        }
    })
    .await;
    within("writers", async {
        while let Some(r) = writers.join_next().await {
            r.unwrap().unwrap();
        }
    })
    .await;
    c.delete(&key).await.unwrap();
    within("the deletion through the key watch", async {
        loop {
            match rx.recv().await.expect("watch ended before the deletion") {
                None => break,
                Some(v) => assert_eq!(v, expected),
            }
        }
    })
    .await;
    within("the watch to return after its callback said stop", watcher)
        .await
        .unwrap();

    // Cancellation ends a watch too.
    let cancel = CancellationToken::new();
    let waiting = {
        let (c, key, cancel) = (set_client(f), key.clone(), cancel.clone());
        tokio::spawn(async move { c.watch_key(&key, &cancel, &mut |_| true).await })
    };
    cancel.cancel();
    within("the watch to return after cancellation", waiting)
        .await
        .unwrap();
}

/// A prefix watch sees the final value of every key under the prefix and nothing outside.
pub async fn watch_prefix_sees_every_final_state<F: StoreFactory>(f: &F, ns: &str) {
    let prefix = format!("{ns}p/");
    let c = set_client(f);
    add(&*c, &format!("{prefix}k0"), "start").await.unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let watcher = {
        let (c, prefix, cancel) = (set_client(f), prefix.clone(), cancel.clone());
        tokio::spawn(async move {
            c.watch_prefix(&prefix, &cancel, &mut |k, v| {
                tx.send((k.to_owned(), v)).is_ok()
            })
            .await
        })
    };
    let (k, _) = within("the prefix watch's first value", rx.recv())
        .await
        .unwrap();
    assert_eq!(k, format!("{prefix}k0"));

    let mut writers = tokio::task::JoinSet::new();
    let mut expected = BTreeMap::new();
    for k in 0..3 {
        let key = format!("{prefix}k{k}");
        let mut set = if k == 0 {
            TestSet::of(["start"])
        } else {
            TestSet::default()
        };
        for w in 0..3 {
            let (c, key) = (set_client(f), key.clone());
            for i in 0..4 {
                set.0.insert(format!("w{w}-{i}"));
            }
            writers.spawn(async move {
                for i in 0..4 {
                    add(&*c, &key, &format!("w{w}-{i}")).await?;
                }
                Ok::<_, Error>(())
            });
        }
        expected.insert(key, set);
    }
    // A key next to the prefix that must not be reported.
    add(&*c, &format!("{ns}p-outside"), "x").await.unwrap();

    let mut latest: BTreeMap<String, TestSet> = BTreeMap::new();
    within("every key's final value through the prefix watch", async {
        while latest != expected {
            let (k, v) = rx.recv().await.expect("watch ended early");
            assert!(
                k.starts_with(&prefix),
                "key {k:?} is outside the watched prefix"
            );
            latest.insert(k, v);
        }
    })
    .await;
    within("writers", async {
        while let Some(r) = writers.join_next().await {
            r.unwrap().unwrap();
        }
    })
    .await;
    cancel.cancel();
    within("the prefix watch to return after cancellation", watcher)
        .await
        .unwrap();
}

/// Bytes that do not decode under the codec: `get` and `cas` fail with [`Error::Decode`]
/// (or [`Error::CodecMismatch`] on stores that record codec ids), the CAS callback is not
/// called, and the stored bytes are untouched.
pub async fn undecodable_value_is_an_error_and_stays_untouched<F: StoreFactory>(f: &F, ns: &str) {
    let key = format!("{ns}k");
    let garbage = b"\xffnot a set".to_vec();
    let raw = f.client::<Vec<u8>>(
        Arc::new(BytesCodec::with_id(TEST_SET_CODEC_ID)),
        ClientOptions::default(),
    );
    raw.cas(&key, &mut |_| CasDecision::Write(garbage.clone()))
        .await
        .unwrap();
    let c = set_client(f);
    let err = c.get(&key).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode { .. } | Error::CodecMismatch { .. }),
        "get: expected a decode error, got {err}"
    );
    assert!(
        err.to_string().contains(&key),
        "error should name the key: {err}"
    );
    let mut called = false;
    let err = c
        .cas(&key, &mut |_| {
            called = true;
            CasDecision::Write(TestSet::of(["overwritten"]))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Decode { .. } | Error::CodecMismatch { .. }),
        "cas: got {err}"
    );
    assert!(!called, "CAS callback must not see an undecodable value");
    assert_eq!(
        raw.get(&key).await.unwrap(),
        Some(garbage),
        "stored bytes changed"
    );
}

/// A value larger than `max_value_size` is refused with [`Error::TooLarge`], leaving the
/// stored value as it was; a small one from the same client is accepted.
pub async fn oversized_value_is_rejected<F: StoreFactory>(f: &F, ns: &str) {
    let key = format!("{ns}k");
    let options = ClientOptions {
        max_value_size: 64,
        ..ClientOptions::default()
    };
    let c = f.client::<TestSet>(Arc::new(TestSetCodec), options);
    add(&*c, &key, "small").await.unwrap();
    let big = "x".repeat(100);
    let err = add(&*c, &key, &big).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { max: 64, .. }), "got {err}");
    assert!(err.to_string().contains("limit"), "unclear message: {err}");
    assert_eq!(c.get(&key).await.unwrap(), Some(TestSet::of(["small"])));
}

/// Key and prefix watches keep working across a server restart: the value written after
/// the restart arrives through both. Skipped for stores without a server.
pub async fn watch_survives_server_restart<F: StoreFactory>(f: &F, ns: &str) {
    let prefix = format!("{ns}p/");
    let key = format!("{prefix}k");
    let c = set_client(f);
    add(&*c, &key, "before").await.unwrap();
    let cancel = CancellationToken::new();
    let (key_tx, mut key_rx) = mpsc::unbounded_channel();
    let key_watcher = {
        let (c, key, cancel) = (set_client(f), key.clone(), cancel.clone());
        tokio::spawn(async move {
            c.watch_key(&key, &cancel, &mut |v| key_tx.send(v).is_ok())
                .await
        })
    };
    let (prefix_tx, mut prefix_rx) = mpsc::unbounded_channel();
    let prefix_watcher = {
        let (c, prefix, cancel) = (set_client(f), prefix.clone(), cancel.clone());
        tokio::spawn(async move {
            c.watch_prefix(&prefix, &cancel, &mut |_, v| prefix_tx.send(v).is_ok())
                .await
        })
    };
    let before = TestSet::of(["before"]);
    assert_eq!(
        within("the key watch's first value", key_rx.recv())
            .await
            .flatten(),
        Some(before.clone())
    );
    assert_eq!(
        within("the prefix watch's first value", prefix_rx.recv()).await,
        Some(before)
    );
    if !f.restart().await {
        eprintln!("testsuite: store has no server to restart; skipping the restart test");
        cancel.cancel();
        let _ = key_watcher.await;
        let _ = prefix_watcher.await;
        return;
    }
    within("a CAS after the restart", add(&*c, &key, "after"))
        .await
        .expect("CAS after restart");
    let after = TestSet::of(["after", "before"]);
    within("the post-restart value through the key watch", async {
        while key_rx.recv().await.expect("key watch ended").as_ref() != Some(&after) {}
    })
    .await;
    within("the post-restart value through the prefix watch", async {
        while prefix_rx.recv().await.expect("prefix watch ended") != after {}
    })
    .await;
    cancel.cancel();
    within("the key watch to return after cancellation", key_watcher)
        .await
        .unwrap();
    within(
        "the prefix watch to return after cancellation",
        prefix_watcher,
    )
    .await
    .unwrap();
}
