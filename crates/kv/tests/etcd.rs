//! The behaviour suite against a real etcd v3 server.
//!
//! Each test starts its own etcd child (127.0.0.1, free ports, temporary data dir, killed
//! by pid when the test ends) unless `RINGKIT_ETCD_ENDPOINTS` points at a running one (the
//! restart tests always own their server, since they restart it). `RINGKIT_SKIP_ETCD=1`
//! skips them; otherwise a missing etcd binary is a failure, not a silent pass.

use ringkit_kv::MemoryStore;
use ringkit_kv::testsuite::{
    EtcdFactory, MemoryFactory, MultiFactory, etcd_target, namespace, run_all,
    watch_survives_server_restart,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_passes_the_behaviour_suite() {
    let Some(factory) = EtcdFactory::new(etcd_target(true)) else {
        return;
    };
    run_all(&factory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_survives_server_restart() {
    let Some(factory) = EtcdFactory::new(etcd_target(false)) else {
        return;
    };
    watch_survives_server_restart(&factory, &namespace("restart")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_store_with_etcd_primary_passes_the_behaviour_suite() {
    let Some(primary) = EtcdFactory::new(etcd_target(false)) else {
        return;
    };
    run_all(&MultiFactory {
        primary,
        secondary: MemoryFactory {
            store: MemoryStore::new(),
        },
    })
    .await;
}
