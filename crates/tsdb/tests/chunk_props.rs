//! Property tests of the XOR chunk against a plain `Vec` of samples, and a fuzz-style check
//! that decoding arbitrary bytes never panics.

use proptest::prelude::*;
use ringkit_tsdb::{XorChunk, decode_xor};

/// Prometheus' stale marker: a NaN with a payload that must survive storage.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(STALE_NAN),
        Just(f64::NAN.to_bits()),
        Just(0x7ff8_0000_0000_0001), // Go's math.NaN()
        Just(0.0f64.to_bits()),
        Just((-0.0f64).to_bits()),
        Just(f64::INFINITY.to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        Just(f64::MIN_POSITIVE.to_bits()),
        Just(1u64), // smallest subnormal
        (0u32..2000).prop_map(|x| f64::from(x).to_bits()),
        (-1000.0f64..1000.0).prop_map(f64::to_bits),
    ]
}

/// Strictly increasing timestamps: realistic scrape intervals with jitter, or anything at all.
fn timestamps(max: usize) -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        // 15 s scrapes with a few ms of jitter around a random start.
        (
            -(1i64 << 50)..(1i64 << 50),
            prop::collection::vec(-50i64..50, 0..max)
        )
            .prop_map(|(start, jitter)| {
                jitter
                    .iter()
                    .enumerate()
                    .map(|(i, j)| start + i as i64 * 15_000 + j)
                    .collect()
            }),
        // Any distinct timestamps over the whole i64 range, extremes included.
        prop::collection::btree_set(
            prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(0i64)],
            0..max
        )
        .prop_map(|s| s.into_iter().collect()),
        // Small and large gaps mixed, to hit every delta-of-delta bucket.
        (
            any::<i32>(),
            prop::collection::vec(
                prop_oneof![
                    1i64..20,
                    8000i64..9000,
                    60_000i64..70_000,
                    500_000i64..600_000,
                    (1i64 << 30)..(1i64 << 40)
                ],
                0..max
            )
        )
            .prop_map(|(start, gaps)| {
                let mut t = i64::from(start);
                gaps.iter()
                    .map(|g| {
                        t += g;
                        t
                    })
                    .collect()
            }),
    ]
}

fn samples(max: usize) -> impl Strategy<Value = Vec<(i64, u64)>> {
    timestamps(max).prop_flat_map(|ts| {
        let n = ts.len();
        (Just(ts), prop::collection::vec(value_bits(), n))
            .prop_map(|(ts, vs)| ts.into_iter().zip(vs).collect())
    })
}

fn encode(model: &[(i64, u64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in model {
        c.append(t, f64::from_bits(v));
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip_matches_the_model(model in samples(300)) {
        let c = encode(&model);
        let got: Vec<(i64, u64)> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
        prop_assert_eq!(&got, &model);
        prop_assert_eq!(usize::from(c.num_samples()), model.len());
        prop_assert_eq!(c.min_time(), model.first().map(|s| s.0));
        prop_assert_eq!(c.max_time(), model.last().map(|s| s.0));
        // Decoding the stored bytes gives the same as iterating the live chunk.
        let mut it = decode_xor(c.bytes()).unwrap();
        let decoded: Vec<(i64, u64)> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        prop_assert_eq!(&decoded, &model);
        prop_assert!(it.err().is_none());
    }

    #[test]
    fn reopened_chunk_appends_the_same_bytes(model in samples(200), split in 0usize..200) {
        let split = split.min(model.len());
        let whole = encode(&model);
        let mut reopened = XorChunk::from_bytes(encode(&model[..split]).bytes()).unwrap();
        for &(t, v) in &model[split..] {
            reopened.append(t, f64::from_bits(v));
        }
        prop_assert_eq!(reopened.bytes(), whole.bytes());
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(it) = decode_xor(&bytes) {
            let total = it.num_samples();
            prop_assert!(it.count() <= usize::from(total));
        }
        let _ = XorChunk::from_bytes(&bytes);
    }

    #[test]
    fn corrupted_chunks_never_panic(
        model in samples(150),
        flips in prop::collection::vec((any::<usize>(), 0u8..8), 1..8),
        cut in any::<usize>(),
    ) {
        let c = encode(&model);
        let mut bytes = c.bytes().to_vec();
        for (pos, bit) in flips {
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(mut it) = decode_xor(&bytes) {
            let n = it.by_ref().count();
            prop_assert!(n == usize::from(it.num_samples()) || it.err().is_some());
        }
        let _ = XorChunk::from_bytes(&bytes);
    }
}
