//! Token ranges: the keys an instance or a partition owns (dskit's `TokenRanges`,
//! spec/partition-ring.md §4.6).
//!
//! Why: an ingester that knows which keys it owns can find series it holds but no longer
//! owns (Mimir's owned-series tracking) without asking the ring for every series.

use crate::snapshot::RingSnapshot;

/// Owned key ranges as a flat sorted list `[start0, end0, start1, end1, ...]`, both ends
/// inclusive (dskit's `TokenRanges`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenRanges(pub Vec<u32>);

impl TokenRanges {
    /// Wraps an already sorted flat list.
    pub fn from_sorted(values: Vec<u32>) -> TokenRanges {
        TokenRanges(values)
    }

    /// Whether `key` falls in one of the ranges (dskit's `IncludesKey`: a binary search
    /// where an exact hit or an odd insertion index means "inside").
    pub fn includes_key(&self, key: u32) -> bool {
        let tr = &self.0;
        match (tr.first(), tr.last()) {
            (Some(&first), Some(&last)) if key >= first && key <= last => {}
            _ => return false,
        }
        match tr.binary_search(&key) {
            Ok(_) => true,
            Err(i) => i % 2 == 1,
        }
    }

    /// The flat list.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// The ranges as `(start, end)` pairs, both inclusive.
    pub fn pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.chunks_exact(2).map(|c| (c[0], c[1]))
    }

    /// Number of keys covered (ranges as dskit builds them do not overlap).
    pub fn key_count(&self) -> u64 {
        self.pairs()
            .map(|(s, e)| u64::from(e.wrapping_sub(s)) + 1)
            .sum()
    }
}

impl std::ops::Deref for TokenRanges {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        &self.0
    }
}

/// Why an instance's token ranges could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRangesError {
    /// The instance is not in the ring.
    #[error("instance not found in the ring")]
    InstanceNotFound,
    /// The instance has no zone.
    #[error("zone not set")]
    ZoneNotSet,
    /// Only zone-aware rings with replication factor equal to the number of zones are
    /// supported (each zone is then its own ring).
    #[error("can't use ring configuration for computing token ranges")]
    UnsupportedConfiguration,
    /// The instance's zone holds no token.
    #[error("no tokens for zone")]
    NoTokensForZone,
}

impl RingSnapshot {
    /// The key ranges instance `id` is a replica for (dskit's `GetTokenRangesForInstance`).
    ///
    /// Needs zone awareness with replication factor equal to the number of zones: every
    /// zone then holds one replica of each key, so the instance owns, in its zone's ring,
    /// `[previous zone token, t - 1]` for each of its tokens `t`, with consecutive own tokens
    /// forming one range and the wrap-around range split at 0. dskit's edge behaviour is
    /// kept: a range ending at key 0 that does not start the zone's ring is lost (own token
    /// 1 that is not the zone's first token).
    pub fn get_token_ranges_for_instance(&self, id: &str) -> Result<TokenRanges, TokenRangesError> {
        let idx = self
            .instance_index(id)
            .ok_or(TokenRangesError::InstanceNotFound)?;
        let inst = self.instance_at(idx);
        if inst.zone.is_empty() {
            return Err(TokenRangesError::ZoneNotSet);
        }
        let cfg = self.config();
        if !cfg.zone_awareness_enabled || cfg.replication_factor != self.zones_count() {
            return Err(TokenRangesError::UnsupportedConfiguration);
        }
        let z = self
            .zone_index(&inst.zone)
            .ok_or(TokenRangesError::NoTokensForZone)?;
        let (tokens, owners) = self.zone_tokens(z);
        if tokens.is_empty() {
            return Err(TokenRangesError::NoTokensForZone);
        }
        let mut ranges: Vec<u32> = Vec::with_capacity(2 * (inst.tokens.len() + 1));
        // Non-zero: the end of an open range whose start is being looked for; zero: looking
        // for the next own token (dskit's encoding, which is where the edge case comes from).
        let mut range_end = 0u32;
        let first_token = tokens[0];
        let first_is_own = owners[0] == idx;
        if first_is_own {
            range_end = u32::MAX;
        }
        for i in (1..tokens.len()).rev() {
            let own = owners[i] == idx;
            if range_end == 0 {
                if own {
                    range_end = tokens[i].wrapping_sub(1);
                }
            } else if !own {
                ranges.push(range_end);
                ranges.push(tokens[i]);
                range_end = 0;
            }
        }
        if range_end == 0 {
            if first_is_own && first_token != 0 {
                ranges.push(first_token - 1);
                ranges.push(0);
            }
        } else if first_is_own {
            ranges.push(range_end);
            ranges.push(0);
        } else {
            ranges.push(range_end);
            ranges.push(first_token);
        }
        ranges.sort_unstable();
        Ok(TokenRanges(ranges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_key_follows_inclusive_pairs() {
        let tr = TokenRanges(vec![5, 10, 20, 30]);
        for (k, want) in [
            (4, false),
            (5, true),
            (7, true),
            (10, true),
            (11, false),
            (19, false),
            (20, true),
            (25, true),
            (30, true),
            (31, false),
        ] {
            assert_eq!(tr.includes_key(k), want, "key {k}");
        }
        assert!(!TokenRanges::default().includes_key(0));
        assert_eq!(tr.key_count(), 6 + 11);
        let full = TokenRanges(vec![0, u32::MAX]);
        assert_eq!(full.key_count(), 1u64 << 32);
        assert!(full.includes_key(0) && full.includes_key(u32::MAX));
    }
}
