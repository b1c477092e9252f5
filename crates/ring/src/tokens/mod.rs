//! Token generators and the tokens file format (spec/ring.md §1.3, §3.9).
//!
//! An instance joining the ring needs tokens: points on the 32-bit circle whose ranges it
//! will own. Two strategies exist, both behind [`TokenGenerator`]:
//!
//! - [`RandomTokenGenerator`]: uniform random tokens, the dskit default. Cheap, but with a
//!   few hundred tokens per instance the owned keyspace varies by tens of percent between
//!   instances.
//! - [`SpreadMinimizingTokenGenerator`]: deterministic tokens derived from the instance
//!   ordinal and zone, identical to dskit's, giving near-equal ownership when instances are
//!   added in ordinal order.
//!
//! Generation is pure: randomness comes from a caller-supplied [`Rng`], and the tokens
//! already in the ring come in as a slice. [`mod@format`] encodes and decodes the tokens file the
//! lifecycler persists tokens in across restarts; the file I/O itself lives in the lifecycle
//! crate, so this module does none.

use rand::Rng;
use std::borrow::Cow;

use crate::Desc;

pub mod format;
pub mod random;
pub mod spread_minimizing;

pub use random::RandomTokenGenerator;
pub use spread_minimizing::{
    ConfigError as SpreadMinimizingConfigError, PlacementError, SpreadMinimizingTokenGenerator,
};

/// Number of distinct tokens on the ring: 2^32.
pub const TOKEN_SPACE: u64 = 1 << 32;

/// A strategy for choosing the tokens of a joining instance.
///
/// The trait is object safe so a lifecycler can hold a `Box<dyn TokenGenerator>` chosen from
/// configuration.
pub trait TokenGenerator {
    /// Returns at most `n` distinct tokens, sorted ascending, none of which is in `taken`.
    ///
    /// `taken` holds the tokens already in the ring (typically [`Desc::all_tokens`]); it may be
    /// in any order and contain duplicates, but passing it sorted avoids a copy. Randomised
    /// strategies draw from `rng`; deterministic ones ignore it.
    ///
    /// [`RandomTokenGenerator`] always returns exactly `n` tokens or an error; the
    /// spread-minimizing generator may return fewer (see its docs), as dskit's does.
    fn generate_tokens(
        &self,
        n: usize,
        taken: &[u32],
        rng: &mut dyn Rng,
    ) -> Result<Vec<u32>, GenerateError>;

    /// Whether the lifecycler should poll [`TokenGenerator::can_join`] before joining.
    fn can_join_enabled(&self) -> bool;

    /// Checks whether this instance may join the ring described by `desc` now. Strategies
    /// without an ordering requirement always return `Ok`.
    fn can_join(&self, desc: &Desc) -> Result<(), CanJoinError>;
}

/// Why tokens could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// Fewer free tokens remain on the ring than were requested.
    #[error("cannot generate {requested} tokens: only {available} free tokens remain on the ring")]
    NotEnoughFreeTokens {
        /// Tokens asked for.
        requested: usize,
        /// Tokens not yet taken.
        available: u64,
    },
    /// The spread-minimizing replay found no instance whose ranges could fit a new token.
    #[error(
        "it was impossible to add token #{token_number} for instance with ordinal {ordinal} in \
         zone index {zone_index}: the instance with the highest ownership cannot satisfy the \
         requested ownership {token_ownership}"
    )]
    NoRoomForToken {
        /// Ordinal of the instance being placed during the replay.
        ordinal: usize,
        /// Zone index of the generator.
        zone_index: u32,
        /// 1-based number of the token being placed.
        token_number: usize,
        /// Per-token ownership that was being targeted.
        token_ownership: u32,
    },
    /// The spread-minimizing replay could not compute a token inside the chosen range.
    #[error(
        "it was impossible to calculate token #{token_number} for instance with ordinal {ordinal} \
         in zone index {zone_index}: {source}"
    )]
    Placement {
        /// Ordinal of the instance being placed during the replay.
        ordinal: usize,
        /// Zone index of the generator.
        zone_index: u32,
        /// 1-based number of the token being placed.
        token_number: usize,
        /// What made the placement impossible.
        source: PlacementError,
    },
}

/// Why an instance may not join the ring yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanJoinError {
    /// The spread-minimizing predecessor is not in the ring or has no tokens yet.
    #[error("the instance {0:?} has not been registered to the ring or has no tokens yet")]
    MissingPreviousInstance(String),
}

/// `taken` as a sorted slice, copying and sorting only when the caller's slice is unsorted.
pub(crate) fn sorted_taken(taken: &[u32]) -> Cow<'_, [u32]> {
    if taken.is_sorted() {
        Cow::Borrowed(taken)
    } else {
        let mut owned = taken.to_vec();
        owned.sort_unstable();
        Cow::Owned(owned)
    }
}

/// Number of distinct values in a sorted slice.
pub(crate) fn distinct_sorted(sorted: &[u32]) -> usize {
    match sorted.first() {
        None => 0,
        Some(_) => 1 + sorted.windows(2).filter(|w| w[0] != w[1]).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_taken_borrows_sorted_input_and_sorts_unsorted_input() {
        assert!(matches!(sorted_taken(&[1, 2, 2, 9]), Cow::Borrowed(_)));
        assert_eq!(&*sorted_taken(&[9, 1, 2]), &[1, 2, 9]);
    }

    #[test]
    fn distinct_sorted_counts_each_value_once() {
        assert_eq!(distinct_sorted(&[]), 0);
        assert_eq!(distinct_sorted(&[4]), 1);
        assert_eq!(distinct_sorted(&[1, 1, 2, 3, 3, 3]), 3);
    }

    #[test]
    fn generators_are_usable_as_trait_objects() {
        let generators: Vec<Box<dyn TokenGenerator>> = vec![
            Box::new(RandomTokenGenerator::new()),
            Box::new(
                SpreadMinimizingTokenGenerator::new(
                    "ingester-zone-a-0",
                    "zone-a",
                    &["zone-a"],
                    true,
                )
                .expect("valid config"),
            ),
        ];
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(7);
        for g in &generators {
            let tokens = g.generate_tokens(16, &[], &mut rng).expect("room for 16");
            assert_eq!(tokens.len(), 16);
            assert!(tokens.is_sorted());
        }
        assert!(!generators[0].can_join_enabled());
        assert!(generators[1].can_join_enabled());
    }
}
