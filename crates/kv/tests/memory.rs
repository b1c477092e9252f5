//! The behaviour suite against the in-memory store, and the multi store over two of them.

use ringkit_kv::MemoryStore;
use ringkit_kv::testsuite::{MemoryFactory, MultiFactory, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_behaviour_suite() {
    run_all(&MemoryFactory::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_store_over_two_memory_stores_passes_the_behaviour_suite() {
    run_all(&MultiFactory {
        primary: MemoryFactory {
            store: MemoryStore::new(),
        },
        secondary: MemoryFactory {
            store: MemoryStore::new(),
        },
    })
    .await;
}
