//! Turning your keys into ring keys. The ring does not hash: a lookup takes a `u32`.
//! Use the hash your peers use, so every process picks the same replicas:
//!
//! | what you shard | function | dskit / Mimir / Loki |
//! |---|---|---|
//! | a plain key (a user id, a cache key, a file name) | [`hash_key`] | FNV-1 32, as Loki's `TokenFor` and Cortex's `ShardByUser` hash their strings |
//! | a tenant | [`ringkit_ring::hash::shard_by_user`] | Cortex `shardByUser` |
//! | a series: tenant + sorted labels | [`ringkit_ring::hash::shard_by_all_labels`] | Mimir's distributor `ShardByAllLabels` |
//!
//! All three are FNV-1 32 (multiply, then xor; Go's `hash/fnv.New32`), not FNV-1a: the
//! values match Go's byte for byte.
//!
//! ```
//! use ringkit_member::hash_key;
//!
//! // Go: h := fnv.New32(); h.Write([]byte("a")); h.Sum32() == 0x050c5d7e
//! assert_eq!(hash_key("a"), 0x050c_5d7e);
//! ```

/// Ring key of a plain key: FNV-1 32 of its bytes (Go's `fnv.New32`), the hash dskit-based
/// services use for strings. Stable across processes, versions and platforms.
pub fn hash_key(key: impl AsRef<[u8]>) -> u32 {
    ringkit_ring::hash::fnv1_32(key.as_ref())
}
