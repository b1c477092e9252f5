//! Spread-minimizing tokens, bit-for-bit compatible with dskit's
//! `SpreadMinimizingTokenGenerator` (spec/ring.md §3.9).
//!
//! Why: with random tokens, the hottest instance of a large ring owns far more keyspace than
//! the coldest (Mimir measured 64% spread with 64 tokens per instance), and capacity is sized
//! for the hottest. This generator gives every instance 512 tokens chosen so that, when
//! instances are added in ordinal order, every instance owns almost exactly `2^32 / count`.
//!
//! How: instance IDs look like `<prefix>-<ordinal>`. Instance 0 of the zone with index `z`
//! gets evenly spaced tokens `i · 2^23 + z`. Instance `k` replays the addition of instances
//! `1..=k`: each new instance takes its fair share by splitting the largest ranges of the
//! instances that currently own the most. All tokens of a zone are `≡ z (mod 8)`, so zones
//! never collide and each zone's ring is a shifted copy of zone 0's.
//!
//! The replay must match dskit exactly because every member of a cluster (Go or Rust) must
//! derive the same tokens. Two details make that hold: priority ties are broken by the larger
//! key (instance ordinal, token value), which makes the order total so any correct heap picks
//! the same element; and ownership arithmetic mirrors Go's float64/uint32 conversions.
//!
//! Deliberate differences, all on inputs where dskit cannot produce a usable result: an
//! impossible placement is a [`GenerateError`] instead of a panic; ordinals above
//! [`MAX_ORDINAL`] are rejected when the generator is built; and a placement that would
//! duplicate an existing token ([`PlacementError::WrapLandsOnToken`]) is an error.

use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::sync::OnceLock;

use rand::Rng;

use super::{CanJoinError, GenerateError, TOKEN_SPACE, TokenGenerator, sorted_taken};
use crate::Desc;
use crate::model::token_distance;

/// Tokens every spread-minimizing instance owns.
pub const TOKENS_PER_INSTANCE: usize = 512;

/// Largest number of zones the scheme supports: zone tokens are spaced 8 apart.
pub const MAX_ZONES: usize = 8;

/// Gap between consecutive tokens of instance 0: `2^32 / 512 = 2^23`, a multiple of 8.
const FIRST_INSTANCE_GAP: u32 =
    (TOKEN_SPACE / TOKENS_PER_INSTANCE as u64 / MAX_ZONES as u64 * MAX_ZONES as u64) as u32;

/// Highest zone-0 token a split may produce; the 7 values above it are other zones' copies.
const MAX_LEADING_TOKEN: u32 = ((TOKEN_SPACE / MAX_ZONES as u64 - 1) * MAX_ZONES as u64) as u32;

/// Largest ordinal accepted. From `2^20` on, an instance would own at most
/// `2^32 / 2^20 = 4096` keys, under 8 per token, so placement is impossible; rejecting such
/// IDs up front avoids a replay of a million joins that could only end in an error.
pub const MAX_ORDINAL: usize = (1 << 20) - 1;

/// Why a spread-minimizing generator could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The instance ID does not end in `-<digits>`.
    #[error("unable to extract instance id from {0:?}")]
    BadInstanceId(String),
    /// The ordinal is beyond [`MAX_ORDINAL`], where no placement is possible.
    #[error("instance ordinal {0} is too large: ordinals up to {MAX_ORDINAL} can be placed")]
    OrdinalTooLarge(u64),
    /// The zone list is empty or longer than [`MAX_ZONES`].
    #[error(
        "number of zones {0} is not correct: it must be greater than 0 and less or equal than {MAX_ZONES}"
    )]
    ZoneCountOutOfBound(usize),
    /// The instance zone is not in the zone list.
    #[error("zone {0} is not valid")]
    ZoneNotValid(String),
    /// A zone index given directly is not below [`MAX_ZONES`].
    #[error("zone index {0} is not below {MAX_ZONES}")]
    ZoneIndexOutOfBound(u32),
}

/// Why a new token could not be placed inside a range (dskit's `calculateNewToken` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// The per-token ownership is zero or not a multiple of 8.
    #[error(
        "calculation of a new token between {prev} and {token} with optimal token ownership \
         {ownership} was impossible: optimal token ownership must be a positive multiple of \
         maximal allowed number of zones {MAX_ZONES}"
    )]
    NotMultipleOfZones {
        /// Range start (exclusive owner).
        prev: u32,
        /// Range end (owning token).
        token: u32,
        /// Requested per-token ownership.
        ownership: u32,
    },
    /// The range bounds belong to different zones.
    #[error(
        "calculation of a new token between {prev} and {token} with optimal token ownership \
         {ownership} was impossible: lower and upper bounds must be congruent modulo maximal \
         allowed number of zones {MAX_ZONES}"
    )]
    BoundsNotCongruent {
        /// Range start.
        prev: u32,
        /// Range end.
        token: u32,
        /// Requested per-token ownership.
        ownership: u32,
    },
    /// The range is not larger than the requested ownership.
    #[error(
        "calculation of a new token between {prev} and {token} with optimal token ownership \
         {ownership} was impossible: distance between lower and upper bound {distance} is not \
         big enough"
    )]
    RangeTooSmall {
        /// Range start.
        prev: u32,
        /// Range end.
        token: u32,
        /// Requested per-token ownership.
        ownership: u32,
        /// Size of the range.
        distance: u64,
    },
    /// Skipping over the other zones' tokens near 2^32 would put the new token on `token`.
    #[error(
        "calculation of a new token between {prev} and {token} with optimal token ownership \
         {ownership} was impossible: wrapping around the end of the ring lands on the upper bound"
    )]
    WrapLandsOnToken {
        /// Range start.
        prev: u32,
        /// Range end.
        token: u32,
        /// Requested per-token ownership.
        ownership: u32,
    },
}

/// dskit-compatible deterministic token generator; see the [module docs](self).
///
/// Computing the tokens of ordinal `k` replays `k` joins of 512 tokens each (a few hundred
/// milliseconds for `k = 1000`, growing faster than linearly), so unlike dskit, which replays
/// on every call, the result is computed on first use and cached.
#[derive(Debug)]
pub struct SpreadMinimizingTokenGenerator {
    prefix: String,
    ordinal: usize,
    zone_index: u32,
    can_join_enabled: bool,
    cache: OnceLock<Result<Vec<u32>, GenerateError>>,
}

impl SpreadMinimizingTokenGenerator {
    /// A generator for `instance_id` (`<prefix><ordinal>`, prefix ending in `-`) in `zone`,
    /// one of `zones` (1 to 8 zones; their sorted position is the zone index).
    /// `can_join_enabled` turns on the in-order join gate of [`TokenGenerator::can_join`].
    pub fn new(
        instance_id: &str,
        zone: &str,
        zones: &[impl AsRef<str>],
        can_join_enabled: bool,
    ) -> Result<SpreadMinimizingTokenGenerator, ConfigError> {
        let zone_index = zone_index(zone, zones)?;
        let (prefix, ordinal) = parse_instance_id(instance_id)?;
        SpreadMinimizingTokenGenerator::for_ordinal(prefix, ordinal, zone_index, can_join_enabled)
    }

    /// A generator from already-parsed parts, e.g. for partition-ring tokens (partition ID as
    /// ordinal, zone index 0).
    pub fn for_ordinal(
        prefix: &str,
        ordinal: usize,
        zone_index: u32,
        can_join_enabled: bool,
    ) -> Result<SpreadMinimizingTokenGenerator, ConfigError> {
        if ordinal > MAX_ORDINAL {
            return Err(ConfigError::OrdinalTooLarge(ordinal as u64));
        }
        if zone_index as usize >= MAX_ZONES {
            return Err(ConfigError::ZoneIndexOutOfBound(zone_index));
        }
        Ok(SpreadMinimizingTokenGenerator {
            prefix: prefix.to_owned(),
            ordinal,
            zone_index,
            can_join_enabled,
            cache: OnceLock::new(),
        })
    }

    /// The instance ordinal parsed from the ID.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The position of the zone in the sorted zone list.
    pub fn zone_index(&self) -> u32 {
        self.zone_index
    }

    /// All 512 tokens of this instance, sorted (cached after the first call).
    pub fn all_tokens(&self) -> Result<&[u32], GenerateError> {
        self.cache
            .get_or_init(|| {
                let mut last = Vec::new();
                replay(self.ordinal, self.zone_index, |ordinal, tokens| {
                    if ordinal == self.ordinal {
                        last = tokens.to_vec();
                    }
                })?;
                last.sort_unstable();
                Ok(last)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The sorted tokens of every ordinal `0..=self.ordinal()` in this zone, indexed by
    /// ordinal: the ring this instance expects to join. Not cached.
    pub fn tokens_by_ordinal(&self) -> Result<Vec<Vec<u32>>, GenerateError> {
        let mut all = Vec::with_capacity(self.ordinal + 1);
        replay(self.ordinal, self.zone_index, |_, tokens| {
            let mut tokens = tokens.to_vec();
            tokens.sort_unstable();
            all.push(tokens);
        })?;
        Ok(all)
    }

    /// ID of the instance that must be in the ring before this one may join.
    fn predecessor_id(&self) -> Option<String> {
        self.ordinal
            .checked_sub(1)
            .map(|p| format!("{}{p}", self.prefix))
    }
}

impl TokenGenerator for SpreadMinimizingTokenGenerator {
    /// The first `n` of this instance's 512 sorted tokens that are not in `taken`; fewer when
    /// `n > 512` or some of them are taken, as in dskit. `rng` is not used.
    fn generate_tokens(
        &self,
        n: usize,
        taken: &[u32],
        _rng: &mut dyn Rng,
    ) -> Result<Vec<u32>, GenerateError> {
        let all = self.all_tokens()?;
        let taken = sorted_taken(taken);
        Ok(all
            .iter()
            .copied()
            .filter(|t| taken.binary_search(t).is_err())
            .take(n)
            .collect())
    }

    fn can_join_enabled(&self) -> bool {
        self.can_join_enabled
    }

    /// When enabled, instance `N > 0` may join only once `<prefix>(N-1)` is in `desc` with at
    /// least one token, so instances are added in ordinal order and balance stays optimal.
    fn can_join(&self, desc: &Desc) -> Result<(), CanJoinError> {
        if !self.can_join_enabled {
            return Ok(());
        }
        let Some(previous) = self.predecessor_id() else {
            return Ok(());
        };
        match desc.ingesters.get(&previous) {
            Some(d) if !d.tokens.is_empty() => Ok(()),
            _ => Err(CanJoinError::MissingPreviousInstance(previous)),
        }
    }
}

/// Splits `<prefix><digits>` (dskit's `^(.*-)(\d+)$`) into the prefix, ending in `-`, and the
/// ordinal.
pub fn parse_instance_id(instance_id: &str) -> Result<(&str, usize), ConfigError> {
    let bad = || ConfigError::BadInstanceId(instance_id.to_owned());
    // A greedy `.*-` followed by digits to the end can only split at the last '-'.
    let dash = instance_id.rfind('-').ok_or_else(bad)?;
    let (prefix, digits) = instance_id.split_at(dash + 1);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ordinal = match digits.parse::<u64>() {
        Ok(n) => n,
        // All digits but too long for u64: certainly too large.
        Err(_) => return Err(ConfigError::OrdinalTooLarge(u64::MAX)),
    };
    if ordinal > MAX_ORDINAL as u64 {
        return Err(ConfigError::OrdinalTooLarge(ordinal));
    }
    Ok((prefix, ordinal as usize))
}

/// Index of `zone` in the sorted `zones` (1 to 8 of them).
pub fn zone_index(zone: &str, zones: &[impl AsRef<str>]) -> Result<u32, ConfigError> {
    if zones.is_empty() || zones.len() > MAX_ZONES {
        return Err(ConfigError::ZoneCountOutOfBound(zones.len()));
    }
    let mut sorted: Vec<&str> = zones.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    sorted
        .iter()
        .position(|z| *z == zone)
        .map(|i| i as u32)
        .ok_or_else(|| ConfigError::ZoneNotValid(zone.to_owned()))
}

/// Tokens of ordinal 0 in zone `zone_index`: `i · 2^23 + zone_index`, sorted.
pub fn first_instance_tokens(zone_index: u32) -> Vec<u32> {
    (0..TOKENS_PER_INSTANCE as u32)
        .map(|i| i * FIRST_INSTANCE_GAP + zone_index)
        .collect()
}

/// Per-token ownership still to reach `instance_target` from `owned` over `remaining` tokens,
/// rounded down to a multiple of 8.
///
/// Mirrors dskit's float64 arithmetic: the difference is truncated through int64 to uint32
/// as Go does on 64-bit targets, so results match even in degenerate cases.
fn per_token_target(instance_target: f64, owned: i64, remaining: u32) -> u32 {
    let whole = (instance_target - owned as f64) as i64 as u32;
    let per_token = whole.checked_div(remaining).unwrap_or(0);
    per_token / MAX_ZONES as u32 * MAX_ZONES as u32
}

/// Where to put a new token that takes the first `ownership` keys of the range owned by
/// `token` (keys `prev..token`, wrapping), keeping zone congruence and leaving room for the
/// other zones' copies near 2^32.
fn place_token(prev: u32, token: u32, ownership: u32) -> Result<u32, PlacementError> {
    let zones = MAX_ZONES as u32;
    if ownership < zones || !ownership.is_multiple_of(zones) {
        return Err(PlacementError::NotMultipleOfZones {
            prev,
            token,
            ownership,
        });
    }
    if prev % zones != token % zones {
        return Err(PlacementError::BoundsNotCongruent {
            prev,
            token,
            ownership,
        });
    }
    let distance = token_distance(prev, token);
    if distance <= u64::from(ownership) {
        return Err(PlacementError::RangeTooSmall {
            prev,
            token,
            ownership,
            distance,
        });
    }
    // Past MAX_LEADING_TOKEN the leading zone's token would collide with the other zones'
    // copies of it, so such a placement continues from 0 instead (8 keys further along).
    let headroom = MAX_LEADING_TOKEN.wrapping_sub(prev);
    if headroom >= ownership {
        return Ok(prev.wrapping_add(ownership));
    }
    let wrapped = ownership - headroom;
    // The detour costs 8 keys; in a range of exactly `ownership + 8` keys it would land on
    // `token` itself. dskit would emit a duplicate token there; we refuse instead.
    if wrapped == token {
        return Err(PlacementError::WrapLandsOnToken {
            prev,
            token,
            ownership,
        });
    }
    Ok(wrapped)
}

/// A token of an existing instance with the range it owns, keys `prev..token`.
///
/// Packed into one `u64` as `ownership << 32 | token`: integer order is then ownership first,
/// ties broken by the larger token, which is dskit's priority, and `prev` is implied as
/// `token - ownership`. Halving the entry size matters: the replay touches the heap of a
/// different instance on every step, so it is bound by cache misses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OwnedRange(u64);

impl OwnedRange {
    /// The range from `prev` to `token`; `prev != token`, so the size fits in 32 bits.
    fn new(prev: u32, token: u32) -> OwnedRange {
        let ownership = u64::from(token.wrapping_sub(prev));
        OwnedRange(ownership << 32 | u64::from(token))
    }

    fn ownership(self) -> i64 {
        (self.0 >> 32) as i64
    }

    fn token(self) -> u32 {
        self.0 as u32
    }

    fn prev(self) -> u32 {
        self.token().wrapping_sub((self.0 >> 32) as u32)
    }
}

/// The ranges of one instance as a 4-ary max-heap. Shallower than a binary heap (5 levels
/// for 512 ranges instead of 9), so replacing the top touches fewer cache lines. The order
/// is total, so the top is the same element any correct priority queue would return.
#[derive(Debug)]
struct RangeHeap(Vec<OwnedRange>);

impl RangeHeap {
    const ARITY: usize = 4;

    fn new(mut ranges: Vec<OwnedRange>) -> RangeHeap {
        let len = ranges.len();
        for i in (0..len.div_ceil(Self::ARITY)).rev() {
            Self::sift_down(&mut ranges, i);
        }
        RangeHeap(ranges)
    }

    fn top(&self) -> Option<OwnedRange> {
        self.0.first().copied()
    }

    /// Replaces the largest range (the heap must not be empty) and restores heap order.
    fn replace_top(&mut self, range: OwnedRange) {
        self.0[0] = range;
        Self::sift_down(&mut self.0, 0);
    }

    fn sift_down(heap: &mut [OwnedRange], mut i: usize) {
        let moving = heap[i];
        loop {
            let first = Self::ARITY * i + 1;
            if first >= heap.len() {
                break;
            }
            let end = (first + Self::ARITY).min(heap.len());
            let mut child = first;
            for c in first + 1..end {
                if heap[c] > heap[child] {
                    child = c;
                }
            }
            if heap[child] <= moving {
                break;
            }
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = moving;
    }
}

/// An instance and its total ownership. Ordered by ownership, ties broken by the larger
/// ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct InstanceOwnership {
    ownership: i64,
    ordinal: usize,
}

/// Replays the joins of ordinals `0..=last` in zone `zone_index`, handing each ordinal's
/// (unsorted) tokens to `sink` in ordinal order.
fn replay(
    last: usize,
    zone_index: u32,
    mut sink: impl FnMut(usize, &[u32]),
) -> Result<(), GenerateError> {
    let first = first_instance_tokens(zone_index);
    sink(0, &first);
    if last == 0 {
        return Ok(());
    }

    // ranges[o]: the tokens of ordinal o, largest range first.
    let mut ranges: Vec<RangeHeap> = Vec::with_capacity(last);
    let mut prev = first[first.len() - 1];
    let mut first_ranges = Vec::with_capacity(TOKENS_PER_INSTANCE);
    let mut first_ownership = 0i64;
    for &token in &first {
        let range = OwnedRange::new(prev, token);
        first_ownership += range.ownership();
        first_ranges.push(range);
        prev = token;
    }
    ranges.push(RangeHeap::new(first_ranges));

    let mut instances = BinaryHeap::with_capacity(last);
    instances.push(InstanceOwnership {
        ownership: first_ownership,
        ordinal: 0,
    });

    let mut set_aside: Vec<InstanceOwnership> = Vec::new();
    let mut new_tokens: Vec<u32> = Vec::with_capacity(TOKENS_PER_INSTANCE);
    for ordinal in 1..=last {
        let instance_target = TOKEN_SPACE as f64 / (ordinal + 1) as f64;
        let mut owned = 0i64;
        set_aside.clear();
        new_tokens.clear();
        let mut new_ranges = Vec::with_capacity(TOKENS_PER_INSTANCE);

        while new_tokens.len() < TOKENS_PER_INSTANCE {
            let remaining = (TOKENS_PER_INSTANCE - new_tokens.len()) as u32;
            let target = per_token_target(instance_target, owned, remaining);
            let no_room = || GenerateError::NoRoomForToken {
                ordinal,
                zone_index,
                token_number: new_tokens.len() + 1,
                token_ownership: target,
            };
            let Some(mut donor) = instances.peek_mut() else {
                return Err(no_room());
            };
            if donor.ownership <= i64::from(target) {
                return Err(no_room());
            }
            let donor_ranges = &mut ranges[donor.ordinal];
            let largest = match donor_ranges.top() {
                Some(r) if r.ownership() > i64::from(target) => r,
                // Even the donor's largest range is too small: try the next instance.
                _ => {
                    set_aside.push(PeekMut::pop(donor));
                    continue;
                }
            };
            let (prev, owner) = (largest.prev(), largest.token());
            let token =
                place_token(prev, owner, target).map_err(|source| GenerateError::Placement {
                    ordinal,
                    zone_index,
                    token_number: new_tokens.len() + 1,
                    source,
                })?;
            new_ranges.push(OwnedRange::new(prev, token));

            let before = largest.ownership();
            let shrunk = OwnedRange::new(token, owner);
            let after = shrunk.ownership();
            owned += before - after;
            donor_ranges.replace_top(shrunk);
            donor.ownership = donor.ownership - before + after;
            drop(donor);

            new_tokens.push(token);
        }

        sink(ordinal, &new_tokens);
        if ordinal == last {
            break;
        }
        instances.extend(set_aside.drain(..));
        ranges.push(RangeHeap::new(new_ranges));
        instances.push(InstanceOwnership {
            ownership: owned,
            ordinal,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceState;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

    fn generator(instance: &str, zone: &str) -> SpreadMinimizingTokenGenerator {
        SpreadMinimizingTokenGenerator::new(instance, zone, &ZONES, true).expect("valid config")
    }

    /// Rings of ordinals `0..=1000` in each of [`ZONES`], computed once and shared: a replay
    /// of 1000 joins takes seconds in an unoptimised test build.
    fn rings_1000() -> &'static [Vec<Vec<u32>>] {
        static RINGS: OnceLock<Vec<Vec<Vec<u32>>>> = OnceLock::new();
        RINGS.get_or_init(|| {
            ZONES
                .iter()
                .map(|z| {
                    generator(&format!("instance-{z}-1000"), z)
                        .tokens_by_ordinal()
                        .unwrap()
                })
                .collect()
        })
    }

    /// `instance-zone-a-1000`, shared so its cached tokens are computed once.
    fn zone_a_1000() -> &'static SpreadMinimizingTokenGenerator {
        static G: OnceLock<SpreadMinimizingTokenGenerator> = OnceLock::new();
        G.get_or_init(|| generator("instance-zone-a-1000", "zone-a"))
    }

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(0)
    }

    /// FNV-1a over the 32-bit tokens, to compare whole token lists against dskit's output.
    fn fnv1a_words(tokens: &[u32]) -> u32 {
        tokens
            .iter()
            .fold(2_166_136_261u32, |h, &t| (h ^ t).wrapping_mul(16_777_619))
    }

    #[test]
    fn instance_ids_split_into_prefix_and_ordinal_like_dskit() {
        assert_eq!(
            parse_instance_id("instance-zone-a-10"),
            Ok(("instance-zone-a-", 10))
        );
        assert_eq!(
            parse_instance_id("instance-zone-b-0"),
            Ok(("instance-zone-b-", 0))
        );
        assert_eq!(
            parse_instance_id("store-gateway-zone-c-7"),
            Ok(("store-gateway-zone-c-", 7))
        );
        assert_eq!(parse_instance_id("ingester-007"), Ok(("ingester-", 7)));
        assert_eq!(parse_instance_id("-3"), Ok(("-", 3)));
        for bad in [
            "instance-zone-c",
            "",
            "ingester-",
            "ingester-1a",
            "ingester-+1",
            "12",
        ] {
            assert_eq!(
                parse_instance_id(bad),
                Err(ConfigError::BadInstanceId(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ordinals_that_cannot_be_placed_are_rejected_up_front() {
        assert_eq!(
            parse_instance_id("ingester-1048576"),
            Err(ConfigError::OrdinalTooLarge(1 << 20))
        );
        assert_eq!(
            parse_instance_id("ingester-99999999999999999999999"),
            Err(ConfigError::OrdinalTooLarge(u64::MAX))
        );
        assert!(parse_instance_id("ingester-1048575").is_ok());
        assert!(matches!(
            SpreadMinimizingTokenGenerator::for_ordinal("p-", MAX_ORDINAL + 1, 0, false),
            Err(ConfigError::OrdinalTooLarge(_))
        ));
    }

    #[test]
    fn zone_index_is_the_position_in_the_sorted_zone_list() {
        assert_eq!(zone_index("zone-a", &ZONES), Ok(0));
        assert_eq!(zone_index("zone-c", &ZONES), Ok(2));
        assert_eq!(zone_index("zone-c", &["zone-c", "zone-a", "zone-b"]), Ok(2));
        assert_eq!(
            zone_index("zone-d", &ZONES),
            Err(ConfigError::ZoneNotValid("zone-d".into()))
        );
    }

    #[test]
    fn zone_lists_must_hold_one_to_eight_zones() {
        let none: [&str; 0] = [];
        assert_eq!(
            SpreadMinimizingTokenGenerator::new("i-1", "zone1", &none, true).unwrap_err(),
            ConfigError::ZoneCountOutOfBound(0)
        );
        let nine: Vec<String> = (1..=9).map(|i| format!("zone{i}")).collect();
        assert_eq!(
            SpreadMinimizingTokenGenerator::new("i-1", "zone1", &nine, true).unwrap_err(),
            ConfigError::ZoneCountOutOfBound(9)
        );
        assert!(SpreadMinimizingTokenGenerator::new("i-1", "zone1", &nine[..8], true).is_ok());
        assert_eq!(
            SpreadMinimizingTokenGenerator::new("i-1", "zone3", &nine[..2], true).unwrap_err(),
            ConfigError::ZoneNotValid("zone3".into())
        );
        assert_eq!(
            SpreadMinimizingTokenGenerator::for_ordinal("p-", 1, 8, false).unwrap_err(),
            ConfigError::ZoneIndexOutOfBound(8)
        );
    }

    #[test]
    fn first_instance_tokens_are_evenly_spaced_and_congruent_to_the_zone_index() {
        for z in 0..3u32 {
            let tokens = first_instance_tokens(z);
            assert_eq!(tokens.len(), TOKENS_PER_INSTANCE);
            for (i, &t) in tokens.iter().enumerate() {
                assert_eq!(t, (1u32 << 23) * i as u32 + z);
                assert_eq!(t % 8, z);
            }
        }
    }

    #[test]
    fn per_token_target_is_rounded_down_to_a_multiple_of_eight() {
        assert_eq!(per_token_target(1000.0, 900, 4), 24);
        assert_eq!(per_token_target(1000.0, 990, 4), 0);
        assert_eq!(per_token_target(2f64.powi(31), 0, 512), 1 << 22);
        assert_eq!(per_token_target(1000.0, 0, 0), 0);
    }

    #[test]
    fn place_token_matches_dskit_cases_including_the_wrap_near_two_to_the_32() {
        // (token, prev, ownership, expected): the cases of dskit's calculateNewToken test.
        let cases = [
            (800, 40, 80, 120),
            (801, 41, 80, 121),
            (802, 42, 80, 122),
            (416, 4_294_967_136, 240, 88),
            (417, 4_294_967_137, 240, 89),
            (418, 4_294_967_138, 240, 90),
            (416, 4_294_967_136, 120, 4_294_967_256),
            (417, 4_294_967_137, 120, 4_294_967_257),
            (418, 4_294_967_138, 120, 4_294_967_258),
        ];
        for (token, prev, ownership, expected) in cases {
            assert_eq!(
                place_token(prev, token, ownership),
                Ok(expected),
                "{prev}..{token}"
            );
        }
    }

    #[test]
    fn place_token_errors_carry_dskit_messages() {
        let e = place_token(31, 90, 80).unwrap_err();
        assert_eq!(
            e.to_string(),
            "calculation of a new token between 31 and 90 with optimal token ownership 80 was \
             impossible: lower and upper bounds must be congruent modulo maximal allowed number \
             of zones 8"
        );
        for small in [2, 42, 0] {
            let e = place_token(80, 240, small).unwrap_err();
            assert!(
                matches!(e, PlacementError::NotMultipleOfZones { .. }),
                "{small}"
            );
            assert!(e.to_string().ends_with(
                "optimal token ownership must be a positive multiple of maximal allowed number of zones 8"
            ));
        }
        let e = place_token(80, 240, 400).unwrap_err();
        assert_eq!(
            e.to_string(),
            "calculation of a new token between 80 and 240 with optimal token ownership 400 was \
             impossible: distance between lower and upper bound 160 is not big enough"
        );
        // dskit would return 88 here, the upper bound itself, duplicating a token.
        assert_eq!(
            place_token(4_294_967_136, 88, 240),
            Err(PlacementError::WrapLandsOnToken {
                prev: 4_294_967_136,
                token: 88,
                ownership: 240,
            })
        );
        assert!(matches!(
            place_token(80, 240, 160),
            Err(PlacementError::RangeTooSmall { distance: 160, .. })
        ));
    }

    /// Expected values were produced by running dskit's own generator: the first four
    /// tokens, the last token and FNV-1a of the sorted 512 tokens.
    const DSKIT_TOKENS: [(&str, &str, [u32; 4], u32, u32); 14] = [
        (
            "instance-zone-a-0",
            "zone-a",
            [0, 8388608, 16777216, 25165824],
            4286578688,
            3765896645,
        ),
        (
            "instance-zone-a-1",
            "zone-a",
            [4194304, 12582912, 20971520, 29360128],
            4290772992,
            829883845,
        ),
        (
            "instance-zone-a-2",
            "zone-a",
            [2146085552, 2150279856, 2154474160, 2158668464],
            4289374888,
            116957285,
        ),
        (
            "instance-zone-a-3",
            "zone-a",
            [710934528, 715128832, 719323136, 723517440],
            2854223872,
            188155333,
        ),
        (
            "instance-zone-a-7",
            "zone-a",
            [711983104, 716177408, 720371712, 724566016],
            4290423464,
            329807085,
        ),
        (
            "instance-zone-a-29",
            "zone-a",
            [1524080, 120795952, 122559712, 124990256],
            4281265904,
            2954766093,
        ),
        (
            "instance-zone-a-100",
            "zone-a",
            [44070104, 47092400, 48264408, 51286704],
            4282964840,
            4261988229,
        ),
        (
            "instance-zone-a-511",
            "zone-a",
            [2714640, 6455592, 24250272, 55128208],
            4288971848,
            2488833357,
        ),
        (
            "instance-zone-a-1000",
            "zone-a",
            [12622608, 32218624, 49713144, 60626408],
            4294326296,
            1023888637,
        ),
        (
            "instance-zone-b-3",
            "zone-b",
            [710934529, 715128833, 719323137, 723517441],
            2854223873,
            1057368005,
        ),
        (
            "instance-zone-b-1000",
            "zone-b",
            [12622609, 32218625, 49713145, 60626409],
            4294326297,
            2346402749,
        ),
        (
            "instance-zone-c-29",
            "zone-c",
            [1524082, 120795954, 122559714, 124990258],
            4281265906,
            193868205,
        ),
        (
            "instance-zone-c-1000",
            "zone-c",
            [12622610, 32218626, 49713146, 60626410],
            4294326298,
            2721914029,
        ),
        (
            "store-gateway-zone-c-7",
            "zone-c",
            [711983106, 716177410, 720371714, 724566018],
            4290423466,
            2239074861,
        ),
    ];

    fn assert_dskit_tokens(what: &str, tokens: &[u32], first4: [u32; 4], last: u32, fnv: u32) {
        assert_eq!(tokens.len(), 512, "{what}");
        assert_eq!(tokens[..4], first4, "{what}");
        assert_eq!(tokens[511], last, "{what}");
        assert_eq!(fnv1a_words(tokens), fnv, "{what}");
    }

    #[test]
    fn tokens_equal_dskit_for_the_same_instance_and_zone() {
        for (instance, zone, first4, last, fnv) in DSKIT_TOKENS {
            let (_, ordinal) = parse_instance_id(instance).unwrap();
            let z = zone_index(zone, &ZONES).unwrap() as usize;
            assert_dskit_tokens(instance, &rings_1000()[z][ordinal], first4, last, fnv);
        }
        // And through the public entry point.
        for (instance, zone, first4, last, fnv) in [DSKIT_TOKENS[8], DSKIT_TOKENS[13]] {
            let g = if instance == "instance-zone-a-1000" {
                zone_a_1000()
            } else {
                &generator(instance, zone)
            };
            let tokens = g.generate_tokens(512, &[], &mut rng()).unwrap();
            assert_dskit_tokens(instance, &tokens, first4, last, fnv);
        }
    }

    /// Slow in debug builds; run with `cargo test --release -p ringkit-ring -- --ignored`.
    #[test]
    #[ignore = "replays 4095 joins"]
    fn tokens_of_ordinal_4095_equal_dskit() {
        let tokens = generator("instance-zone-a-4095", "zone-a")
            .all_tokens()
            .unwrap()
            .to_vec();
        let first4 = [25079112, 29287168, 30146008, 33660136];
        assert_dskit_tokens(
            "instance-zone-a-4095",
            &tokens,
            first4,
            4285468696,
            3292503213,
        );
    }

    #[test]
    fn instance_one_halves_every_range_of_instance_zero() {
        let tokens = generator("instance-zone-b-1", "zone-b")
            .all_tokens()
            .unwrap()
            .to_vec();
        let expected: Vec<u32> = (0..512u32).map(|i| i * (1 << 23) + (1 << 22) + 1).collect();
        assert_eq!(tokens, expected);
    }

    #[test]
    fn every_zone_ring_is_the_zone_a_ring_shifted_by_the_zone_index() {
        let rings = rings_1000();
        for (z, ring) in rings.iter().enumerate().skip(1) {
            assert_eq!(ring.len(), 1001);
            for (ordinal, tokens) in ring.iter().enumerate() {
                let shifted: Vec<u32> = rings[0][ordinal].iter().map(|t| t + z as u32).collect();
                assert_eq!(*tokens, shifted, "ordinal {ordinal} zone {z}");
                assert!(tokens.iter().all(|t| t % 8 == z as u32));
            }
        }
    }

    fn assert_all_unique(rings: &[Vec<Vec<u32>>], instances: usize) {
        let mut all = Vec::with_capacity(rings.len() * instances * 512);
        for ring in rings {
            assert_eq!(ring.len(), instances);
            for tokens in ring {
                assert_eq!(tokens.len(), 512);
                all.extend_from_slice(tokens);
            }
        }
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            panic!("token {} appears more than once", w[0]);
        }
    }

    #[test]
    fn tokens_are_unique_across_instances_and_zones() {
        assert_all_unique(rings_1000(), 1001);
    }

    /// dskit's own size. Slow in debug builds; run with `--release -- --ignored`.
    #[test]
    #[ignore = "replays 10000 joins per zone"]
    fn tokens_of_ten_thousand_instances_per_zone_are_unique() {
        let rings: Vec<Vec<Vec<u32>>> = ZONES
            .iter()
            .map(|z| {
                generator(&format!("instance-{z}-10000"), z)
                    .tokens_by_ordinal()
                    .unwrap()
            })
            .collect();
        assert_all_unique(&rings, 10_001);
    }

    #[test]
    fn tokens_by_ordinal_agrees_with_each_instance_generator() {
        let all = generator("instance-zone-b-40", "zone-b")
            .tokens_by_ordinal()
            .unwrap();
        for k in [0usize, 1, 17, 39, 40] {
            let own = generator(&format!("instance-zone-b-{k}"), "zone-b");
            assert_eq!(own.all_tokens().unwrap(), all[k].as_slice(), "ordinal {k}");
        }
    }

    /// Puts ordinals `0..count` of every zone ring into one descriptor and returns, per zone,
    /// the spread (max-min)/max of owned keyspace in percent.
    fn ownership_spread_by_zone(rings: &[Vec<Vec<u32>>], count: usize) -> Vec<f64> {
        let mut desc = Desc::new();
        for (z, ring) in ZONES.iter().zip(rings) {
            for (i, tokens) in ring[..count].iter().enumerate() {
                let id = format!("ingester-{z}-{i}");
                desc.add_instance(&id, &id, z, tokens.clone(), InstanceState::Active, 1, 1);
            }
        }
        let owned = desc.owned_keyspace();
        ZONES[..rings.len()]
            .iter()
            .map(|z| {
                let in_zone: Vec<u64> = desc
                    .ingesters
                    .iter()
                    .filter(|(_, d)| d.zone == *z)
                    .map(|(id, _)| owned[id])
                    .collect();
                assert_eq!(in_zone.iter().sum::<u64>(), TOKEN_SPACE);
                let max = *in_zone.iter().max().unwrap() as f64;
                let min = *in_zone.iter().min().unwrap() as f64;
                100.0 * (1.0 - min / max)
            })
            .collect()
    }

    /// Spread (max-min)/max of owned keyspace, in percent, for `count` instances holding
    /// 512 uniformly random tokens each, for comparison.
    fn random_tokens_spread(count: usize) -> f64 {
        let mut desc = Desc::new();
        let mut rng = rng();
        for i in 0..count {
            let taken = desc.all_tokens();
            let tokens = super::super::RandomTokenGenerator
                .generate_tokens(512, &taken, &mut rng)
                .unwrap();
            let id = format!("r-{i}");
            desc.add_instance(&id, &id, "", tokens, InstanceState::Active, 1, 1);
        }
        let owned: Vec<u64> = desc.owned_keyspace().into_values().collect();
        let max = *owned.iter().max().unwrap() as f64;
        let min = *owned.iter().min().unwrap() as f64;
        100.0 * (1.0 - min / max)
    }

    #[test]
    fn thirty_instances_in_three_zones_stay_below_the_dskit_spread_bound() {
        // Measured: 0.194% in every zone; 512 random tokens per instance give ~10%.
        let random = random_tokens_spread(30);
        for spread in ownership_spread_by_zone(rings_1000(), 30) {
            assert!(spread < 0.2, "spread {spread}%");
            assert!(
                spread * 20.0 < random,
                "spread {spread}% vs random {random}%"
            );
        }
    }

    #[test]
    fn every_prefix_of_the_ordinal_order_is_balanced() {
        let all = generator("instance-zone-a-64", "zone-a")
            .tokens_by_ordinal()
            .unwrap();
        for count in 1..=all.len() {
            let mut desc = Desc::new();
            for (i, tokens) in all[..count].iter().enumerate() {
                let id = format!("i-{i}");
                desc.add_instance(
                    &id,
                    &id,
                    "zone-a",
                    tokens.clone(),
                    InstanceState::Active,
                    1,
                    1,
                );
            }
            let owned = desc.owned_keyspace();
            let fair = TOKEN_SPACE as f64 / count as f64;
            for (id, o) in owned {
                let off = (o as f64 - fair).abs() / fair;
                assert!(off < 0.002, "{id} of {count}: {o} vs fair {fair}");
            }
        }
    }

    #[test]
    fn a_thousand_and_one_instances_per_zone_stay_within_dskit_spread_bound() {
        // dskit asserts a spread below 0.2% for this size.
        for spread in ownership_spread_by_zone(rings_1000(), 1001) {
            assert!(spread < 0.2, "spread {spread}%");
        }
    }

    #[test]
    fn generate_tokens_skips_taken_tokens_and_returns_the_rest_in_order() {
        let g = zone_a_1000();
        let all = g.all_tokens().unwrap().to_vec();
        let first = g.generate_tokens(300, &[], &mut rng()).unwrap();
        assert_eq!(first, all[..300]);
        let rest = g.generate_tokens(212, &first, &mut rng()).unwrap();
        assert_eq!(rest, all[300..]);
        let mut taken = first;
        taken.extend(&rest);
        assert_eq!(
            g.generate_tokens(1, &taken, &mut rng()).unwrap(),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn generate_tokens_returns_at_most_512() {
        let g = zone_a_1000();
        assert_eq!(g.generate_tokens(1024, &[], &mut rng()).unwrap().len(), 512);
        assert_eq!(
            g.generate_tokens(0, &[], &mut rng()).unwrap(),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn generate_tokens_fills_exactly_the_missing_tokens_even_with_unsorted_taken() {
        let g = zone_a_1000();
        let all = g.all_tokens().unwrap().to_vec();
        let missing = [3usize, 200, 511];
        let mut taken: Vec<u32> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !missing.contains(i))
            .map(|(_, &t)| t)
            .collect();
        taken.reverse();
        let tokens = g.generate_tokens(10, &taken, &mut rng()).unwrap();
        assert_eq!(tokens, missing.map(|i| all[i]));
    }

    #[test]
    fn for_ordinal_gives_the_same_tokens_as_parsing_the_id() {
        let parsed =
            SpreadMinimizingTokenGenerator::new("partition-5", "z", &["z"], false).unwrap();
        let direct =
            SpreadMinimizingTokenGenerator::for_ordinal("partition-", 5, 0, false).unwrap();
        assert_eq!(parsed.ordinal(), 5);
        assert_eq!(parsed.zone_index(), 0);
        assert_eq!(parsed.all_tokens(), direct.all_tokens());
    }

    #[test]
    fn can_join_waits_for_the_previous_ordinal_to_hold_tokens() {
        let first = generator("instance-zone-a-0", "zone-a");
        assert_eq!(first.can_join(&Desc::new()), Ok(()));

        let target = generator("instance-zone-a-128", "zone-a");
        let all = &rings_1000()[0];
        let mut desc = Desc::new();
        for (i, tokens) in all.iter().enumerate().take(128) {
            let id = format!("instance-zone-a-{i}");
            let (state, tokens) = if i < 127 {
                (InstanceState::Active, tokens.clone())
            } else {
                (InstanceState::Pending, Vec::new())
            };
            desc.add_instance(&id, &id, "zone-a", tokens, state, 1, 1);
        }
        assert_eq!(
            target.can_join(&desc),
            Err(CanJoinError::MissingPreviousInstance(
                "instance-zone-a-127".into()
            ))
        );
        assert_eq!(
            target.can_join(&desc).unwrap_err().to_string(),
            "the instance \"instance-zone-a-127\" has not been registered to the ring or has no \
             tokens yet"
        );

        let disabled =
            SpreadMinimizingTokenGenerator::new("instance-zone-a-128", "zone-a", &ZONES, false)
                .unwrap();
        assert!(!disabled.can_join_enabled());
        assert_eq!(disabled.can_join(&desc), Ok(()));

        desc.ingesters
            .get_mut("instance-zone-a-127")
            .unwrap()
            .tokens = all[127].clone().into();
        assert_eq!(target.can_join(&desc), Ok(()));

        desc.remove_instance("instance-zone-a-127");
        assert!(target.can_join(&desc).is_err());
    }

    #[test]
    fn leading_zeros_in_the_ordinal_name_the_predecessor_without_them() {
        let g = generator("instance-zone-a-010", "zone-a");
        assert_eq!(g.ordinal(), 10);
        assert_eq!(
            g.can_join(&Desc::new()),
            Err(CanJoinError::MissingPreviousInstance(
                "instance-zone-a-9".into()
            ))
        );
    }

    #[test]
    fn all_tokens_is_stable_across_calls() {
        let g = generator("instance-zone-c-77", "zone-c");
        let a = g.all_tokens().unwrap().to_vec();
        assert_eq!(g.all_tokens().unwrap(), a.as_slice());
        assert_eq!(
            generator("instance-zone-c-77", "zone-c")
                .all_tokens()
                .unwrap(),
            a.as_slice()
        );
    }

    proptest::proptest! {
        #[test]
        fn placed_tokens_stay_inside_the_range_and_in_the_zone(
            prev in proptest::prelude::any::<u32>(),
            gap in 2u32..(1 << 26),
            share in 1u32..(1 << 26),
        ) {
            // A congruent range of `gap * 8` keys and a multiple-of-8 ownership below it.
            let distance = gap * 8;
            let ownership = (share % gap).max(1) * 8;
            let token = prev.wrapping_add(distance);
            match place_token(prev, token, ownership) {
                Ok(new) => {
                    let from_prev = token_distance(prev, new);
                    proptest::prop_assert!(
                        from_prev == u64::from(ownership) || from_prev == u64::from(ownership) + 8
                    );
                    proptest::prop_assert!(from_prev < u64::from(distance));
                    proptest::prop_assert_eq!(new % 8, prev % 8);
                }
                Err(e) => {
                    proptest::prop_assert!(
                        matches!(e, PlacementError::WrapLandsOnToken { .. }),
                        "{}", e
                    );
                }
            }
        }
    }
}
