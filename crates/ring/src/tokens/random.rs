//! Uniform random tokens, dskit's default strategy (spec/ring.md §3.9).

use rand::Rng;

use super::{
    CanJoinError, GenerateError, TOKEN_SPACE, TokenGenerator, distinct_sorted, sorted_taken,
};
use crate::Desc;

/// Draws tokens uniformly from the free part of the 32-bit ring.
///
/// Stateless: the randomness is the caller's [`Rng`], so tests can seed it and the
/// lifecycler can share one generator without locking. Membership in `taken` is checked by
/// binary search on a sorted slice, so a ring of 250k tokens costs no set construction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RandomTokenGenerator;

impl RandomTokenGenerator {
    /// A random generator; it holds no state.
    pub fn new() -> RandomTokenGenerator {
        RandomTokenGenerator
    }
}

impl TokenGenerator for RandomTokenGenerator {
    /// Returns exactly `n` distinct sorted tokens outside `taken`, or
    /// [`GenerateError::NotEnoughFreeTokens`] when fewer than `n` are free.
    fn generate_tokens(
        &self,
        n: usize,
        taken: &[u32],
        rng: &mut dyn Rng,
    ) -> Result<Vec<u32>, GenerateError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let taken = sorted_taken(taken);
        let requested = n as u64;
        // Only count distinct taken tokens when the cheap bound says we might run out.
        if requested > TOKEN_SPACE.saturating_sub(taken.len() as u64) {
            let available = TOKEN_SPACE - distinct_sorted(&taken) as u64;
            if requested > available {
                return Err(GenerateError::NotEnoughFreeTokens {
                    requested: n,
                    available,
                });
            }
        }

        let mut tokens = Vec::with_capacity(n);
        // Draw until we hold n candidates outside `taken`, then drop repeats among the draws
        // (rare: 512 draws from 2^32 collide with probability ~3e-5) and top up.
        while tokens.len() < n {
            while tokens.len() < n {
                let candidate = rng.next_u32();
                if taken.binary_search(&candidate).is_err() {
                    tokens.push(candidate);
                }
            }
            tokens.sort_unstable();
            tokens.dedup();
        }
        Ok(tokens)
    }

    /// Random tokens have no join order.
    fn can_join_enabled(&self) -> bool {
        false
    }

    /// Always `Ok`: random tokens have no join order.
    fn can_join(&self, _desc: &Desc) -> Result<(), CanJoinError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashSet;
    use std::convert::Infallible;

    /// An rng that replays a fixed list of values, to force collisions.
    struct Replay(Vec<u32>, usize);

    impl rand::TryRng for Replay {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            let v = self.0[self.1 % self.0.len()];
            self.1 += 1;
            Ok(v)
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            self.try_next_u32().map(u64::from)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for b in dst {
                *b = self.next_u32() as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn a_million_tokens_are_sorted_and_distinct() {
        let mut rng = SmallRng::seed_from_u64(1);
        let tokens = RandomTokenGenerator
            .generate_tokens(1_000_000, &[], &mut rng)
            .unwrap();
        assert_eq!(tokens.len(), 1_000_000);
        assert!(tokens.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn second_generation_never_returns_taken_tokens_even_when_taken_is_unsorted() {
        let mut rng = SmallRng::seed_from_u64(2);
        let first = RandomTokenGenerator
            .generate_tokens(200_000, &[], &mut rng)
            .unwrap();
        let mut shuffled = first.clone();
        shuffled.reverse();
        let second = RandomTokenGenerator
            .generate_tokens(200_000, &shuffled, &mut rng)
            .unwrap();
        let first: HashSet<u32> = first.into_iter().collect();
        assert_eq!(second.len(), 200_000);
        assert!(second.iter().all(|t| !first.contains(t)));
    }

    #[test]
    fn repeated_draws_and_taken_values_are_rejected_until_n_distinct_tokens_are_found() {
        let mut rng = Replay(vec![5, 5, 7, 5, 9, 7, 11, 13], 0);
        let tokens = RandomTokenGenerator
            .generate_tokens(3, &[9, 7], &mut rng)
            .unwrap();
        assert_eq!(tokens, vec![5, 11, 13]);
    }

    #[test]
    fn same_seed_gives_same_tokens() {
        let a = RandomTokenGenerator
            .generate_tokens(512, &[], &mut SmallRng::seed_from_u64(42))
            .unwrap();
        let b = RandomTokenGenerator
            .generate_tokens(512, &[], &mut SmallRng::seed_from_u64(42))
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn zero_tokens_requested_gives_an_empty_list() {
        let mut rng = SmallRng::seed_from_u64(3);
        assert_eq!(
            RandomTokenGenerator.generate_tokens(0, &[1, 2], &mut rng),
            Ok(vec![])
        );
    }

    #[test]
    fn asking_for_more_tokens_than_the_ring_has_is_an_error_not_a_hang() {
        let mut rng = SmallRng::seed_from_u64(4);
        // usize is 64 bits on every target we build for, so 2^32 + 1 fits.
        let n = (TOKEN_SPACE + 1) as usize;
        assert_eq!(
            RandomTokenGenerator.generate_tokens(n, &[], &mut rng),
            Err(GenerateError::NotEnoughFreeTokens {
                requested: n,
                available: TOKEN_SPACE,
            })
        );
    }

    #[test]
    fn duplicates_in_taken_do_not_shrink_the_free_count() {
        let mut rng = SmallRng::seed_from_u64(5);
        let taken = vec![3u32; 10];
        let tokens = RandomTokenGenerator
            .generate_tokens(4, &taken, &mut rng)
            .unwrap();
        assert_eq!(tokens.len(), 4);
        assert!(!tokens.contains(&3));
    }

    #[test]
    fn random_generator_never_gates_joining() {
        assert!(!RandomTokenGenerator.can_join_enabled());
        assert_eq!(RandomTokenGenerator.can_join(&Desc::new()), Ok(()));
    }

    #[test]
    fn tokens_are_roughly_uniform_over_the_ring() {
        let mut rng = SmallRng::seed_from_u64(6);
        let tokens = RandomTokenGenerator
            .generate_tokens(80_000, &[], &mut rng)
            .unwrap();
        let mut buckets = [0usize; 8];
        for t in tokens {
            buckets[(t >> 29) as usize] += 1;
        }
        // 10_000 expected per bucket; 5 sigma is 500.
        assert!(
            buckets.iter().all(|&b| (9_500..=10_500).contains(&b)),
            "{buckets:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn output_is_n_sorted_distinct_tokens_outside_taken(
            taken in proptest::collection::vec(0u32..4096, 0..3000),
            n in 0usize..600,
            seed in proptest::prelude::any::<u64>(),
        ) {
            // A narrow rng forces collisions with `taken` and between draws.
            struct Narrow(SmallRng);
            impl rand::TryRng for Narrow {
                type Error = Infallible;
                fn try_next_u32(&mut self) -> Result<u32, Infallible> { Ok(self.0.next_u32() % 8192) }
                fn try_next_u64(&mut self) -> Result<u64, Infallible> { self.try_next_u32().map(u64::from) }
                fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> { self.0.fill_bytes(dst); Ok(()) }
            }
            let mut rng = Narrow(SmallRng::seed_from_u64(seed));
            let tokens = RandomTokenGenerator.generate_tokens(n, &taken, &mut rng).unwrap();
            proptest::prop_assert_eq!(tokens.len(), n);
            proptest::prop_assert!(tokens.windows(2).all(|w| w[0] < w[1]));
            let taken: HashSet<u32> = taken.into_iter().collect();
            proptest::prop_assert!(tokens.iter().all(|t| !taken.contains(t)));
        }
    }
}
