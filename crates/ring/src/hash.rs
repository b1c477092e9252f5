//! Series hashing: FNV-1 32 (multiply then xor), as Cortex's shard-by-all-labels, Mimir and
//! Loki compute the ring key of a series. Note: FNV-1, not FNV-1a; the `fnv` crate does not
//! offer it, so it is written out here (spec/rust-ecosystem.md, "Series hash").

/// FNV-1 32 offset basis.
pub const FNV32_OFFSET: u32 = 2_166_136_261;
/// FNV-1 32 prime.
pub const FNV32_PRIME: u32 = 16_777_619;

/// Feeds `bytes` into a running FNV-1 32 hash `h`.
#[inline]
pub fn fnv1_32_add(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h = h.wrapping_mul(FNV32_PRIME);
        h ^= u32::from(b);
    }
    h
}

/// FNV-1 32 of `bytes` from the offset basis (Go's `fnv.New32`).
#[inline]
pub fn fnv1_32(bytes: &[u8]) -> u32 {
    fnv1_32_add(FNV32_OFFSET, bytes)
}

/// FNV-1a 32 offset basis (the same value as FNV-1's).
pub const FNV1A32_OFFSET: u32 = FNV32_OFFSET;

/// Feeds `bytes` into a running FNV-1a 32 hash `h` (xor then multiply).
#[inline]
pub fn fnv1a_32_add(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV32_PRIME);
    }
    h
}

/// FNV-1a 32 of `bytes` (Go's `fnv.New32a`, Cortex's `HashNew32a`/`HashAdd32a`): a good
/// default for turning a plain key (a user id, a blob name) into a ring key for
/// [`crate::RingSnapshot::get`]. Series keep [`shard_by_all_labels`], which Mimir uses.
#[inline]
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    fnv1a_32_add(FNV1A32_OFFSET, bytes)
}

/// Ring key of a series: FNV-1 32 over the tenant id, then every label name and value in
/// the order given, without separators (Mimir's `ShardByAllLabels`). Callers pass labels
/// sorted by name, as remote write requires.
pub fn shard_by_all_labels<'a, I>(tenant: &str, labels: I) -> u32
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut h = fnv1_32(tenant.as_bytes());
    for (name, value) in labels {
        h = fnv1_32_add(h, name.as_bytes());
        h = fnv1_32_add(h, value.as_bytes());
    }
    h
}

/// Ring key of a tenant alone (Cortex's `ShardByUser`).
pub fn shard_by_user(tenant: &str) -> u32 {
    fnv1_32(tenant.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_fnv_new32_on_a_series() {
        // Go: h := fnv.New32(); write "user-1","__name__","up","job","node" -> 3624131105.
        let key = shard_by_all_labels("user-1", [("__name__", "up"), ("job", "node")]);
        assert_eq!(key, 3_624_131_105);
    }

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        // The FNV reference test vectors (Fowler/Noll/Vo): "", "a", "foobar".
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
        assert_eq!(fnv1a_32_add(fnv1a_32(b"foo"), b"bar"), fnv1a_32(b"foobar"));
    }

    #[test]
    fn is_fnv1_not_fnv1a() {
        // FNV-1a over the same bytes gives 4205531845 (spec/rust-ecosystem.md).
        let mut a = FNV32_OFFSET;
        for b in b"user-1__name__upjobnode" {
            a ^= u32::from(*b);
            a = a.wrapping_mul(FNV32_PRIME);
        }
        assert_eq!(a, 4_205_531_845);
        assert_ne!(fnv1_32(b"user-1__name__upjobnode"), a);
    }

    #[test]
    fn empty_input_is_offset_basis() {
        assert_eq!(fnv1_32(b""), FNV32_OFFSET);
        assert_eq!(shard_by_user(""), FNV32_OFFSET);
    }

    #[test]
    fn known_vector_a() {
        // Published FNV-1 32 test vector: "a" -> 0x050c5d7e.
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
    }
}
