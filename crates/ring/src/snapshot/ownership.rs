//! Ownership: keys each instance owns in the whole ring and in its zone, and the
//! per-zone token tables behind them.

use super::*;

/// Tables per zone, derived from the token table.
#[derive(Debug)]
pub(crate) struct ZoneTables {
    /// Tokens of each zone (in zone index order), sorted, with owners.
    pub(crate) zone_tokens: Vec<(Vec<u32>, Vec<InstanceIdx>)>,
    /// Keys owned per instance in its zone's ring (dskit's `CountTokens`).
    pub(crate) owned_in_zone: Vec<u64>,
    /// Bucket index and shift of each zone's tokens (see [`TokenTable::bucket`]), so the
    /// shard walk finds its start with one or two cache misses instead of a binary search.
    pub(super) zone_index: Vec<(Vec<u32>, u32)>,
}
impl RingSnapshot {
    /// Sorted tokens of zone `z` (index into [`Self::zones`]) and their owners.
    pub fn zone_tokens(&self, z: usize) -> (&[u32], &[InstanceIdx]) {
        let (t, o) = &self.zone_tables().zone_tokens[z];
        (t, o)
    }

    pub(super) fn zone_tables(&self) -> &ZoneTables {
        self.table.zoned.get_or_init(|| {
            zone_tables(
                &self.table.tokens,
                &self.table.owners,
                &self.hot,
                self.zones.len(),
                self.instances.len(),
            )
        })
    }

    /// Keys (out of 2^32) owned by an instance in its own zone's ring: dskit's
    /// `CountTokens`, what the `/ring` page shows as ownership.
    pub fn owned_keys_in_zone(&self, idx: InstanceIdx) -> u64 {
        self.zone_tables().owned_in_zone[idx as usize]
    }

    pub(super) fn owned_global(&self) -> &[u64] {
        self.table.owned_global.get_or_init(|| {
            owned_global(&self.table.tokens, &self.table.owners, self.instances.len())
        })
    }

    /// Keys (out of 2^32) for which the instance is the first owner in the whole ring.
    pub fn owned_keys(&self, idx: InstanceIdx) -> u64 {
        self.owned_global()[idx as usize]
    }

    /// Fraction of the keyspace owned by the instance in its zone's ring (0.0-1.0).
    pub fn ownership_in_zone(&self, idx: InstanceIdx) -> f64 {
        self.owned_keys_in_zone(idx) as f64 / KEYSPACE
    }

    /// Fraction of the whole keyspace for which the instance is the first owner (0.0-1.0).
    pub fn ownership(&self, idx: InstanceIdx) -> f64 {
        self.owned_keys(idx) as f64 / KEYSPACE
    }

    /// Fraction of the whole keyspace whose first owner is in zone `z` (0.0-1.0).
    pub fn zone_ownership(&self, z: usize) -> f64 {
        self.hot
            .iter()
            .enumerate()
            .filter(|(_, h)| h.zone as usize == z)
            .map(|(i, _)| self.owned_global()[i] as f64)
            .sum::<f64>()
            / KEYSPACE
    }
}

pub(super) const KEYSPACE: f64 = 4_294_967_296.0;

/// Keys owned per instance as first replica: the distance from each token's predecessor.
pub(super) fn owned_global(tokens: &[u32], owners: &[InstanceIdx], n_instances: usize) -> Vec<u64> {
    let mut owned = vec![0u64; n_instances];
    let mut prev = tokens.last().copied().unwrap_or(0);
    for (&t, &o) in tokens.iter().zip(owners) {
        owned[o as usize] += token_distance(prev, t);
        prev = t;
    }
    owned
}

/// The per-zone token tables and zone-local ownership of a token table.
pub(super) fn zone_tables(
    tokens: &[u32],
    owners: &[InstanceIdx],
    hot: &[Hot],
    zones: usize,
    n_instances: usize,
) -> ZoneTables {
    let mut per_zone = vec![0usize; zones];
    for &o in owners {
        per_zone[hot[o as usize].zone as usize] += 1;
    }
    let mut zone_tokens: Vec<(Vec<u32>, Vec<InstanceIdx>)> = per_zone
        .iter()
        .map(|&n| (Vec::with_capacity(n), Vec::with_capacity(n)))
        .collect();
    for (&t, &o) in tokens.iter().zip(owners) {
        let (zt, zo) = &mut zone_tokens[hot[o as usize].zone as usize];
        zt.push(t);
        zo.push(o);
    }
    let mut owned_in_zone = vec![0u64; n_instances];
    for (zt, zo) in &zone_tokens {
        let mut prev = zt.last().copied().unwrap_or(0);
        for (&t, &o) in zt.iter().zip(zo) {
            owned_in_zone[o as usize] += token_distance(prev, t);
            prev = t;
        }
    }
    let zone_index = zone_tokens.iter().map(|(zt, _)| bucket_index(zt)).collect();
    ZoneTables {
        zone_tokens,
        owned_in_zone,
        zone_index,
    }
}
