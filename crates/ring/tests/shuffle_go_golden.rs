//! Shards compared with a Go program that runs the shuffle-shard walk of spec/ring.md §3.5
//! on Go's own `math/rand`, `crypto/md5` and `sort.Search` (Go 1.19): 45 instances in 3
//! zones with 64 tokens each drawn from `rand.NewSource(2024)`, every 11th (from 5)
//! read-only; 30 tenants, five sizes, with and without zone awareness.

use std::sync::Arc;
use std::time::Duration;

use ringkit_ring::gorand::GoRand;
use ringkit_ring::{Desc, InstanceState, RingConfig, RingSnapshot};

/// Lines `zone_aware size tenant id,id,...` printed by the Go program.
const GOLDEN: &str = "\
true 1 tenant-0 ingester-14,ingester-18,ingester-34\n\
true 1 tenant-1 ingester-07,ingester-36,ingester-44\n\
true 1 tenant-2 ingester-09,ingester-19,ingester-41\n\
true 1 tenant-3 ingester-02,ingester-04,ingester-18\n\
true 1 tenant-4 ingester-07,ingester-15,ingester-20\n\
true 1 tenant-5 ingester-10,ingester-11,ingester-18\n\
true 1 tenant-6 ingester-00,ingester-13,ingester-41\n\
true 1 tenant-7 ingester-40,ingester-42,ingester-44\n\
true 1 tenant-8 ingester-08,ingester-33,ingester-43\n\
true 1 tenant-9 ingester-18,ingester-22,ingester-32\n\
true 1 tenant-10 ingester-04,ingester-30,ingester-41\n\
true 1 tenant-11 ingester-06,ingester-08,ingester-40\n\
true 1 tenant-12 ingester-03,ingester-19,ingester-32\n\
true 1 tenant-13 ingester-12,ingester-23,ingester-25\n\
true 1 tenant-14 ingester-00,ingester-14,ingester-22\n\
true 1 tenant-15 ingester-10,ingester-24,ingester-44\n\
true 1 tenant-16 ingester-12,ingester-41,ingester-43\n\
true 1 tenant-17 ingester-29,ingester-31,ingester-36\n\
true 1 tenant-18 ingester-06,ingester-14,ingester-37\n\
true 1 tenant-19 ingester-01,ingester-30,ingester-41\n\
true 1 tenant-20 ingester-07,ingester-15,ingester-20\n\
true 1 tenant-21 ingester-03,ingester-26,ingester-34\n\
true 1 tenant-22 ingester-11,ingester-15,ingester-31\n\
true 1 tenant-23 ingester-00,ingester-25,ingester-26\n\
true 1 tenant-24 ingester-04,ingester-30,ingester-32\n\
true 1 tenant-25 ingester-02,ingester-12,ingester-13\n\
true 1 tenant-26 ingester-10,ingester-23,ingester-30\n\
true 1 tenant-27 ingester-11,ingester-15,ingester-22\n\
true 1 tenant-28 ingester-06,ingester-08,ingester-43\n\
true 1 tenant-29 ingester-10,ingester-12,ingester-29\n\
true 3 tenant-0 ingester-14,ingester-18,ingester-34\n\
true 3 tenant-1 ingester-07,ingester-36,ingester-44\n\
true 3 tenant-2 ingester-09,ingester-19,ingester-41\n\
true 3 tenant-3 ingester-02,ingester-04,ingester-18\n\
true 3 tenant-4 ingester-07,ingester-15,ingester-20\n\
true 3 tenant-5 ingester-10,ingester-11,ingester-18\n\
true 3 tenant-6 ingester-00,ingester-13,ingester-41\n\
true 3 tenant-7 ingester-40,ingester-42,ingester-44\n\
true 3 tenant-8 ingester-08,ingester-33,ingester-43\n\
true 3 tenant-9 ingester-18,ingester-22,ingester-32\n\
true 3 tenant-10 ingester-04,ingester-30,ingester-41\n\
true 3 tenant-11 ingester-06,ingester-08,ingester-40\n\
true 3 tenant-12 ingester-03,ingester-19,ingester-32\n\
true 3 tenant-13 ingester-12,ingester-23,ingester-25\n\
true 3 tenant-14 ingester-00,ingester-14,ingester-22\n\
true 3 tenant-15 ingester-10,ingester-24,ingester-44\n\
true 3 tenant-16 ingester-12,ingester-41,ingester-43\n\
true 3 tenant-17 ingester-29,ingester-31,ingester-36\n\
true 3 tenant-18 ingester-06,ingester-14,ingester-37\n\
true 3 tenant-19 ingester-01,ingester-30,ingester-41\n\
true 3 tenant-20 ingester-07,ingester-15,ingester-20\n\
true 3 tenant-21 ingester-03,ingester-26,ingester-34\n\
true 3 tenant-22 ingester-11,ingester-15,ingester-31\n\
true 3 tenant-23 ingester-00,ingester-25,ingester-26\n\
true 3 tenant-24 ingester-04,ingester-30,ingester-32\n\
true 3 tenant-25 ingester-02,ingester-12,ingester-13\n\
true 3 tenant-26 ingester-10,ingester-23,ingester-30\n\
true 3 tenant-27 ingester-11,ingester-15,ingester-22\n\
true 3 tenant-28 ingester-06,ingester-08,ingester-43\n\
true 3 tenant-29 ingester-10,ingester-12,ingester-29\n\
true 4 tenant-0 ingester-12,ingester-14,ingester-18,ingester-19,ingester-34,ingester-41\n\
true 4 tenant-1 ingester-07,ingester-09,ingester-25,ingester-32,ingester-36,ingester-44\n\
true 4 tenant-2 ingester-07,ingester-09,ingester-11,ingester-19,ingester-36,ingester-41\n\
true 4 tenant-3 ingester-02,ingester-04,ingester-10,ingester-18,ingester-24,ingester-29\n\
true 4 tenant-4 ingester-07,ingester-12,ingester-13,ingester-15,ingester-20,ingester-23\n\
true 4 tenant-5 ingester-01,ingester-10,ingester-11,ingester-12,ingester-18,ingester-26\n\
true 4 tenant-6 ingester-00,ingester-13,ingester-22,ingester-32,ingester-41,ingester-42\n\
true 4 tenant-7 ingester-18,ingester-23,ingester-34,ingester-40,ingester-42,ingester-44\n\
true 4 tenant-8 ingester-06,ingester-08,ingester-33,ingester-37,ingester-41,ingester-43\n\
true 4 tenant-9 ingester-13,ingester-18,ingester-22,ingester-32,ingester-35,ingester-42\n\
true 4 tenant-10 ingester-04,ingester-26,ingester-28,ingester-30,ingester-41,ingester-42\n\
true 4 tenant-11 ingester-06,ingester-08,ingester-10,ingester-36,ingester-40,ingester-44\n\
true 4 tenant-12 ingester-03,ingester-19,ingester-20,ingester-28,ingester-32,ingester-36\n\
true 4 tenant-13 ingester-12,ingester-18,ingester-23,ingester-25,ingester-35,ingester-43\n\
true 4 tenant-14 ingester-00,ingester-14,ingester-18,ingester-20,ingester-22,ingester-37\n\
true 4 tenant-15 ingester-02,ingester-10,ingester-24,ingester-25,ingester-42,ingester-44\n\
true 4 tenant-16 ingester-09,ingester-12,ingester-35,ingester-37,ingester-41,ingester-43\n\
true 4 tenant-17 ingester-11,ingester-18,ingester-29,ingester-31,ingester-36,ingester-37\n\
true 4 tenant-18 ingester-02,ingester-06,ingester-14,ingester-19,ingester-30,ingester-37\n\
true 4 tenant-19 ingester-01,ingester-04,ingester-08,ingester-30,ingester-36,ingester-41\n\
true 4 tenant-20 ingester-07,ingester-15,ingester-20,ingester-22,ingester-23,ingester-30\n\
true 4 tenant-21 ingester-03,ingester-15,ingester-26,ingester-29,ingester-34,ingester-37\n\
true 4 tenant-22 ingester-03,ingester-11,ingester-15,ingester-22,ingester-26,ingester-31\n\
true 4 tenant-23 ingester-00,ingester-17,ingester-18,ingester-25,ingester-26,ingester-40\n\
true 4 tenant-24 ingester-04,ingester-10,ingester-21,ingester-23,ingester-30,ingester-32\n\
true 4 tenant-25 ingester-02,ingester-04,ingester-06,ingester-12,ingester-13,ingester-35\n\
true 4 tenant-26 ingester-02,ingester-07,ingester-10,ingester-23,ingester-30,ingester-36\n\
true 4 tenant-27 ingester-02,ingester-11,ingester-15,ingester-18,ingester-19,ingester-22\n\
true 4 tenant-28 ingester-04,ingester-06,ingester-08,ingester-24,ingester-41,ingester-43\n\
true 4 tenant-29 ingester-01,ingester-08,ingester-10,ingester-12,ingester-29,ingester-36\n\
true 8 tenant-0 ingester-08,ingester-12,ingester-14,ingester-18,ingester-19,ingester-30,ingester-31,ingester-34,ingester-41\n\
true 8 tenant-1 ingester-07,ingester-09,ingester-12,ingester-22,ingester-25,ingester-32,ingester-35,ingester-36,ingester-44\n\
true 8 tenant-2 ingester-07,ingester-09,ingester-11,ingester-19,ingester-32,ingester-33,ingester-36,ingester-40,ingester-41\n\
true 8 tenant-3 ingester-02,ingester-04,ingester-07,ingester-10,ingester-11,ingester-18,ingester-24,ingester-29,ingester-33\n\
true 8 tenant-4 ingester-04,ingester-07,ingester-12,ingester-13,ingester-15,ingester-20,ingester-23,ingester-29,ingester-36\n\
true 8 tenant-5 ingester-01,ingester-02,ingester-10,ingester-11,ingester-12,ingester-18,ingester-25,ingester-26,ingester-36\n\
true 8 tenant-6 ingester-00,ingester-08,ingester-13,ingester-19,ingester-22,ingester-24,ingester-32,ingester-41,ingester-42\n\
true 8 tenant-7 ingester-04,ingester-11,ingester-12,ingester-18,ingester-23,ingester-34,ingester-40,ingester-42,ingester-44\n\
true 8 tenant-8 ingester-06,ingester-08,ingester-19,ingester-24,ingester-33,ingester-37,ingester-41,ingester-43,ingester-44\n\
true 8 tenant-9 ingester-01,ingester-13,ingester-18,ingester-22,ingester-29,ingester-30,ingester-32,ingester-35,ingester-42\n\
true 8 tenant-10 ingester-04,ingester-09,ingester-20,ingester-22,ingester-26,ingester-28,ingester-30,ingester-41,ingester-42\n\
true 8 tenant-11 ingester-06,ingester-08,ingester-10,ingester-15,ingester-17,ingester-25,ingester-36,ingester-40,ingester-44\n\
true 8 tenant-12 ingester-03,ingester-19,ingester-20,ingester-22,ingester-23,ingester-28,ingester-30,ingester-32,ingester-36\n\
true 8 tenant-13 ingester-01,ingester-03,ingester-08,ingester-12,ingester-18,ingester-23,ingester-25,ingester-35,ingester-43\n\
true 8 tenant-14 ingester-00,ingester-07,ingester-14,ingester-18,ingester-20,ingester-22,ingester-26,ingester-36,ingester-37\n\
true 8 tenant-15 ingester-02,ingester-10,ingester-17,ingester-24,ingester-25,ingester-33,ingester-42,ingester-43,ingester-44\n\
true 8 tenant-16 ingester-09,ingester-12,ingester-22,ingester-29,ingester-35,ingester-36,ingester-37,ingester-41,ingester-43\n\
true 8 tenant-17 ingester-04,ingester-06,ingester-11,ingester-18,ingester-26,ingester-29,ingester-31,ingester-36,ingester-37\n\
true 8 tenant-18 ingester-02,ingester-06,ingester-12,ingester-14,ingester-19,ingester-30,ingester-35,ingester-37,ingester-40\n\
true 8 tenant-19 ingester-00,ingester-01,ingester-04,ingester-08,ingester-30,ingester-32,ingester-36,ingester-37,ingester-41\n\
true 8 tenant-20 ingester-03,ingester-07,ingester-15,ingester-20,ingester-22,ingester-23,ingester-28,ingester-29,ingester-30\n\
true 8 tenant-21 ingester-00,ingester-03,ingester-15,ingester-19,ingester-26,ingester-29,ingester-32,ingester-34,ingester-37\n\
true 8 tenant-22 ingester-03,ingester-11,ingester-13,ingester-15,ingester-22,ingester-26,ingester-31,ingester-42,ingester-44\n\
true 8 tenant-23 ingester-00,ingester-11,ingester-17,ingester-18,ingester-24,ingester-25,ingester-26,ingester-28,ingester-40\n\
true 8 tenant-24 ingester-04,ingester-10,ingester-17,ingester-19,ingester-21,ingester-23,ingester-30,ingester-32,ingester-39\n\
true 8 tenant-25 ingester-02,ingester-04,ingester-06,ingester-12,ingester-13,ingester-14,ingester-25,ingester-33,ingester-35\n\
true 8 tenant-26 ingester-00,ingester-02,ingester-07,ingester-10,ingester-22,ingester-23,ingester-30,ingester-32,ingester-36\n\
true 8 tenant-27 ingester-02,ingester-11,ingester-15,ingester-18,ingester-19,ingester-22,ingester-29,ingester-36,ingester-40\n\
true 8 tenant-28 ingester-00,ingester-04,ingester-06,ingester-08,ingester-20,ingester-24,ingester-28,ingester-41,ingester-43\n\
true 8 tenant-29 ingester-01,ingester-08,ingester-10,ingester-12,ingester-18,ingester-28,ingester-29,ingester-36,ingester-41\n\
true 14 tenant-0 ingester-08,ingester-09,ingester-12,ingester-14,ingester-18,ingester-19,ingester-25,ingester-29,ingester-30,ingester-31,ingester-32,ingester-34,ingester-39,ingester-40,ingester-41\n\
true 14 tenant-1 ingester-04,ingester-07,ingester-08,ingester-09,ingester-10,ingester-12,ingester-14,ingester-22,ingester-24,ingester-25,ingester-32,ingester-33,ingester-35,ingester-36,ingester-44\n\
true 14 tenant-2 ingester-06,ingester-07,ingester-08,ingester-09,ingester-11,ingester-13,ingester-17,ingester-19,ingester-24,ingester-32,ingester-33,ingester-34,ingester-36,ingester-40,ingester-41\n\
true 14 tenant-3 ingester-02,ingester-04,ingester-07,ingester-10,ingester-11,ingester-12,ingester-13,ingester-15,ingester-18,ingester-23,ingester-24,ingester-29,ingester-31,ingester-33,ingester-41\n\
true 14 tenant-4 ingester-03,ingester-04,ingester-07,ingester-12,ingester-13,ingester-15,ingester-20,ingester-23,ingester-28,ingester-29,ingester-30,ingester-32,ingester-36,ingester-40,ingester-44\n\
true 14 tenant-5 ingester-00,ingester-01,ingester-02,ingester-03,ingester-04,ingester-10,ingester-11,ingester-12,ingester-14,ingester-17,ingester-18,ingester-25,ingester-26,ingester-28,ingester-36\n\
true 14 tenant-6 ingester-00,ingester-01,ingester-06,ingester-08,ingester-12,ingester-13,ingester-19,ingester-22,ingester-23,ingester-24,ingester-29,ingester-32,ingester-40,ingester-41,ingester-42\n\
true 14 tenant-7 ingester-04,ingester-06,ingester-08,ingester-10,ingester-11,ingester-12,ingester-15,ingester-18,ingester-22,ingester-23,ingester-29,ingester-34,ingester-40,ingester-42,ingester-44\n\
true 14 tenant-8 ingester-01,ingester-03,ingester-06,ingester-08,ingester-12,ingester-19,ingester-22,ingester-24,ingester-26,ingester-32,ingester-33,ingester-37,ingester-41,ingester-43,ingester-44\n\
true 14 tenant-9 ingester-01,ingester-04,ingester-09,ingester-13,ingester-18,ingester-22,ingester-23,ingester-29,ingester-30,ingester-32,ingester-34,ingester-35,ingester-36,ingester-42,ingester-44\n\
true 14 tenant-10 ingester-00,ingester-02,ingester-04,ingester-09,ingester-11,ingester-13,ingester-20,ingester-21,ingester-22,ingester-26,ingester-28,ingester-30,ingester-41,ingester-42,ingester-43\n\
true 14 tenant-11 ingester-06,ingester-07,ingester-08,ingester-09,ingester-10,ingester-15,ingester-17,ingester-18,ingester-25,ingester-29,ingester-34,ingester-36,ingester-40,ingester-41,ingester-44\n\
true 14 tenant-12 ingester-03,ingester-09,ingester-10,ingester-12,ingester-19,ingester-20,ingester-22,ingester-23,ingester-28,ingester-30,ingester-31,ingester-32,ingester-35,ingester-36,ingester-44\n\
true 14 tenant-13 ingester-01,ingester-03,ingester-04,ingester-08,ingester-12,ingester-14,ingester-15,ingester-17,ingester-18,ingester-22,ingester-23,ingester-25,ingester-35,ingester-36,ingester-43\n\
true 14 tenant-14 ingester-00,ingester-03,ingester-07,ingester-08,ingester-14,ingester-18,ingester-19,ingester-20,ingester-22,ingester-25,ingester-26,ingester-32,ingester-36,ingester-37,ingester-42\n\
true 14 tenant-15 ingester-02,ingester-09,ingester-10,ingester-17,ingester-20,ingester-24,ingester-25,ingester-33,ingester-35,ingester-37,ingester-39,ingester-40,ingester-42,ingester-43,ingester-44\n\
true 14 tenant-16 ingester-00,ingester-04,ingester-07,ingester-09,ingester-12,ingester-20,ingester-22,ingester-26,ingester-29,ingester-33,ingester-35,ingester-36,ingester-37,ingester-41,ingester-43\n\
true 14 tenant-17 ingester-02,ingester-04,ingester-06,ingester-09,ingester-11,ingester-18,ingester-22,ingester-23,ingester-26,ingester-29,ingester-31,ingester-36,ingester-37,ingester-40,ingester-42\n\
true 14 tenant-18 ingester-00,ingester-02,ingester-06,ingester-12,ingester-14,ingester-19,ingester-22,ingester-23,ingester-30,ingester-31,ingester-33,ingester-35,ingester-37,ingester-40,ingester-44\n\
true 14 tenant-19 ingester-00,ingester-01,ingester-04,ingester-08,ingester-15,ingester-17,ingester-22,ingester-30,ingester-32,ingester-35,ingester-36,ingester-37,ingester-41,ingester-42,ingester-43\n\
true 14 tenant-20 ingester-02,ingester-03,ingester-06,ingester-07,ingester-08,ingester-12,ingester-15,ingester-20,ingester-22,ingester-23,ingester-28,ingester-29,ingester-30,ingester-34,ingester-37\n\
true 14 tenant-21 ingester-00,ingester-01,ingester-02,ingester-03,ingester-06,ingester-15,ingester-17,ingester-18,ingester-19,ingester-25,ingester-26,ingester-29,ingester-32,ingester-34,ingester-37\n\
true 14 tenant-22 ingester-01,ingester-03,ingester-07,ingester-11,ingester-12,ingester-13,ingester-15,ingester-17,ingester-22,ingester-23,ingester-24,ingester-26,ingester-31,ingester-42,ingester-44\n\
true 14 tenant-23 ingester-00,ingester-11,ingester-17,ingester-18,ingester-21,ingester-24,ingester-25,ingester-26,ingester-28,ingester-29,ingester-34,ingester-36,ingester-40,ingester-41,ingester-43\n\
true 14 tenant-24 ingester-04,ingester-09,ingester-10,ingester-17,ingester-18,ingester-19,ingester-21,ingester-23,ingester-25,ingester-26,ingester-30,ingester-32,ingester-37,ingester-39,ingester-44\n\
true 14 tenant-25 ingester-02,ingester-04,ingester-06,ingester-08,ingester-10,ingester-12,ingester-13,ingester-14,ingester-18,ingester-21,ingester-25,ingester-26,ingester-28,ingester-33,ingester-35\n\
true 14 tenant-26 ingester-00,ingester-02,ingester-07,ingester-08,ingester-09,ingester-10,ingester-12,ingester-13,ingester-22,ingester-23,ingester-26,ingester-30,ingester-32,ingester-36,ingester-37\n\
true 14 tenant-27 ingester-02,ingester-11,ingester-12,ingester-15,ingester-18,ingester-19,ingester-22,ingester-29,ingester-31,ingester-33,ingester-35,ingester-36,ingester-37,ingester-40,ingester-41\n\
true 14 tenant-28 ingester-00,ingester-04,ingester-06,ingester-07,ingester-08,ingester-11,ingester-20,ingester-22,ingester-24,ingester-26,ingester-28,ingester-30,ingester-36,ingester-41,ingester-43\n\
true 14 tenant-29 ingester-01,ingester-08,ingester-10,ingester-11,ingester-12,ingester-14,ingester-15,ingester-18,ingester-22,ingester-28,ingester-29,ingester-33,ingester-34,ingester-36,ingester-41\n\
false 1 tenant-0 ingester-40\n\
false 1 tenant-1 ingester-08\n\
false 1 tenant-2 ingester-24\n\
false 1 tenant-3 ingester-33\n\
false 1 tenant-4 ingester-25\n\
false 1 tenant-5 ingester-10\n\
false 1 tenant-6 ingester-36\n\
false 1 tenant-7 ingester-19\n\
false 1 tenant-8 ingester-11\n\
false 1 tenant-9 ingester-11\n\
false 1 tenant-10 ingester-13\n\
false 1 tenant-11 ingester-08\n\
false 1 tenant-12 ingester-30\n\
false 1 tenant-13 ingester-24\n\
false 1 tenant-14 ingester-24\n\
false 1 tenant-15 ingester-17\n\
false 1 tenant-16 ingester-07\n\
false 1 tenant-17 ingester-14\n\
false 1 tenant-18 ingester-18\n\
false 1 tenant-19 ingester-09\n\
false 1 tenant-20 ingester-10\n\
false 1 tenant-21 ingester-07\n\
false 1 tenant-22 ingester-31\n\
false 1 tenant-23 ingester-34\n\
false 1 tenant-24 ingester-09\n\
false 1 tenant-25 ingester-07\n\
false 1 tenant-26 ingester-33\n\
false 1 tenant-27 ingester-43\n\
false 1 tenant-28 ingester-41\n\
false 1 tenant-29 ingester-33\n\
false 3 tenant-0 ingester-09,ingester-40,ingester-43\n\
false 3 tenant-1 ingester-08,ingester-21,ingester-26\n\
false 3 tenant-2 ingester-13,ingester-24,ingester-29\n\
false 3 tenant-3 ingester-06,ingester-08,ingester-33\n\
false 3 tenant-4 ingester-01,ingester-10,ingester-25\n\
false 3 tenant-5 ingester-01,ingester-10,ingester-40\n\
false 3 tenant-6 ingester-19,ingester-21,ingester-36\n\
false 3 tenant-7 ingester-19,ingester-35,ingester-44\n\
false 3 tenant-8 ingester-11,ingester-30,ingester-44\n\
false 3 tenant-9 ingester-09,ingester-11,ingester-34\n\
false 3 tenant-10 ingester-03,ingester-13,ingester-28\n\
false 3 tenant-11 ingester-08,ingester-17,ingester-22\n\
false 3 tenant-12 ingester-21,ingester-30,ingester-36\n\
false 3 tenant-13 ingester-01,ingester-10,ingester-24\n\
false 3 tenant-14 ingester-17,ingester-24,ingester-39\n\
false 3 tenant-15 ingester-10,ingester-17,ingester-37\n\
false 3 tenant-16 ingester-07,ingester-11,ingester-34\n\
false 3 tenant-17 ingester-02,ingester-04,ingester-14\n\
false 3 tenant-18 ingester-18,ingester-21,ingester-34\n\
false 3 tenant-19 ingester-09,ingester-25,ingester-36\n\
false 3 tenant-20 ingester-10,ingester-14,ingester-19\n\
false 3 tenant-21 ingester-07,ingester-25,ingester-44\n\
false 3 tenant-22 ingester-13,ingester-31,ingester-36\n\
false 3 tenant-23 ingester-08,ingester-22,ingester-34\n\
false 3 tenant-24 ingester-01,ingester-09,ingester-23\n\
false 3 tenant-25 ingester-03,ingester-07,ingester-13\n\
false 3 tenant-26 ingester-33,ingester-35,ingester-39\n\
false 3 tenant-27 ingester-10,ingester-18,ingester-43\n\
false 3 tenant-28 ingester-14,ingester-41,ingester-44\n\
false 3 tenant-29 ingester-33,ingester-40,ingester-42\n\
false 4 tenant-0 ingester-09,ingester-10,ingester-40,ingester-43\n\
false 4 tenant-1 ingester-08,ingester-10,ingester-21,ingester-26\n\
false 4 tenant-2 ingester-11,ingester-13,ingester-24,ingester-29\n\
false 4 tenant-3 ingester-06,ingester-08,ingester-18,ingester-33\n\
false 4 tenant-4 ingester-01,ingester-10,ingester-25,ingester-30\n\
false 4 tenant-5 ingester-01,ingester-10,ingester-35,ingester-40\n\
false 4 tenant-6 ingester-19,ingester-21,ingester-36,ingester-37\n\
false 4 tenant-7 ingester-19,ingester-28,ingester-35,ingester-44\n\
false 4 tenant-8 ingester-11,ingester-30,ingester-32,ingester-44\n\
false 4 tenant-9 ingester-09,ingester-11,ingester-15,ingester-34\n\
false 4 tenant-10 ingester-03,ingester-13,ingester-21,ingester-28\n\
false 4 tenant-11 ingester-08,ingester-17,ingester-22,ingester-39\n\
false 4 tenant-12 ingester-20,ingester-21,ingester-30,ingester-36\n\
false 4 tenant-13 ingester-01,ingester-10,ingester-23,ingester-24\n\
false 4 tenant-14 ingester-09,ingester-17,ingester-24,ingester-39\n\
false 4 tenant-15 ingester-06,ingester-10,ingester-17,ingester-37\n\
false 4 tenant-16 ingester-07,ingester-11,ingester-18,ingester-34\n\
false 4 tenant-17 ingester-02,ingester-04,ingester-12,ingester-14\n\
false 4 tenant-18 ingester-18,ingester-21,ingester-30,ingester-34\n\
false 4 tenant-19 ingester-08,ingester-09,ingester-25,ingester-36\n\
false 4 tenant-20 ingester-10,ingester-14,ingester-15,ingester-19\n\
false 4 tenant-21 ingester-06,ingester-07,ingester-25,ingester-44\n\
false 4 tenant-22 ingester-13,ingester-24,ingester-31,ingester-36\n\
false 4 tenant-23 ingester-03,ingester-08,ingester-22,ingester-34\n\
false 4 tenant-24 ingester-01,ingester-02,ingester-09,ingester-23\n\
false 4 tenant-25 ingester-03,ingester-07,ingester-13,ingester-33\n\
false 4 tenant-26 ingester-26,ingester-33,ingester-35,ingester-39\n\
false 4 tenant-27 ingester-10,ingester-18,ingester-32,ingester-43\n\
false 4 tenant-28 ingester-14,ingester-35,ingester-41,ingester-44\n\
false 4 tenant-29 ingester-24,ingester-33,ingester-40,ingester-42\n\
false 8 tenant-0 ingester-09,ingester-10,ingester-11,ingester-33,ingester-40,ingester-41,ingester-42,ingester-43\n\
false 8 tenant-1 ingester-02,ingester-08,ingester-10,ingester-13,ingester-17,ingester-21,ingester-26,ingester-39\n\
false 8 tenant-2 ingester-11,ingester-13,ingester-14,ingester-18,ingester-19,ingester-24,ingester-29,ingester-31\n\
false 8 tenant-3 ingester-06,ingester-08,ingester-14,ingester-18,ingester-20,ingester-33,ingester-34,ingester-43\n\
false 8 tenant-4 ingester-01,ingester-08,ingester-10,ingester-15,ingester-19,ingester-25,ingester-30,ingester-40\n\
false 8 tenant-5 ingester-01,ingester-10,ingester-22,ingester-24,ingester-25,ingester-35,ingester-40,ingester-44\n\
false 8 tenant-6 ingester-07,ingester-10,ingester-13,ingester-19,ingester-21,ingester-30,ingester-36,ingester-37\n\
false 8 tenant-7 ingester-04,ingester-10,ingester-19,ingester-20,ingester-28,ingester-34,ingester-35,ingester-44\n\
false 8 tenant-8 ingester-07,ingester-11,ingester-15,ingester-30,ingester-32,ingester-35,ingester-39,ingester-44\n\
false 8 tenant-9 ingester-09,ingester-11,ingester-15,ingester-22,ingester-32,ingester-34,ingester-40,ingester-44\n\
false 8 tenant-10 ingester-03,ingester-11,ingester-13,ingester-21,ingester-23,ingester-25,ingester-28,ingester-37\n\
false 8 tenant-11 ingester-01,ingester-08,ingester-17,ingester-21,ingester-22,ingester-37,ingester-39,ingester-41\n\
false 8 tenant-12 ingester-06,ingester-09,ingester-15,ingester-17,ingester-20,ingester-21,ingester-30,ingester-36\n\
false 8 tenant-13 ingester-01,ingester-04,ingester-06,ingester-10,ingester-23,ingester-24,ingester-25,ingester-43\n\
false 8 tenant-14 ingester-09,ingester-13,ingester-17,ingester-22,ingester-23,ingester-24,ingester-37,ingester-39\n\
false 8 tenant-15 ingester-06,ingester-10,ingester-13,ingester-17,ingester-20,ingester-28,ingester-37,ingester-41\n\
false 8 tenant-16 ingester-03,ingester-04,ingester-07,ingester-11,ingester-14,ingester-18,ingester-31,ingester-34\n\
false 8 tenant-17 ingester-02,ingester-03,ingester-04,ingester-12,ingester-14,ingester-18,ingester-22,ingester-29\n\
false 8 tenant-18 ingester-13,ingester-18,ingester-21,ingester-30,ingester-31,ingester-32,ingester-34,ingester-44\n\
false 8 tenant-19 ingester-01,ingester-04,ingester-08,ingester-09,ingester-11,ingester-25,ingester-36,ingester-40\n\
false 8 tenant-20 ingester-02,ingester-08,ingester-10,ingester-14,ingester-15,ingester-19,ingester-20,ingester-40\n\
false 8 tenant-21 ingester-03,ingester-06,ingester-07,ingester-11,ingester-21,ingester-23,ingester-25,ingester-44\n\
false 8 tenant-22 ingester-13,ingester-15,ingester-22,ingester-24,ingester-31,ingester-34,ingester-36,ingester-44\n\
false 8 tenant-23 ingester-01,ingester-03,ingester-08,ingester-11,ingester-17,ingester-22,ingester-28,ingester-34\n\
false 8 tenant-24 ingester-01,ingester-02,ingester-06,ingester-09,ingester-19,ingester-23,ingester-28,ingester-41\n\
false 8 tenant-25 ingester-03,ingester-04,ingester-07,ingester-13,ingester-22,ingester-33,ingester-35,ingester-37\n\
false 8 tenant-26 ingester-07,ingester-09,ingester-14,ingester-26,ingester-33,ingester-35,ingester-39,ingester-44\n\
false 8 tenant-27 ingester-06,ingester-10,ingester-18,ingester-21,ingester-22,ingester-32,ingester-42,ingester-43\n\
false 8 tenant-28 ingester-03,ingester-14,ingester-25,ingester-26,ingester-34,ingester-35,ingester-41,ingester-44\n\
false 8 tenant-29 ingester-04,ingester-13,ingester-22,ingester-24,ingester-25,ingester-33,ingester-40,ingester-42\n\
false 14 tenant-0 ingester-09,ingester-10,ingester-11,ingester-15,ingester-17,ingester-18,ingester-19,ingester-22,ingester-31,ingester-33,ingester-40,ingester-41,ingester-42,ingester-43\n\
false 14 tenant-1 ingester-02,ingester-06,ingester-08,ingester-10,ingester-11,ingester-13,ingester-15,ingester-17,ingester-19,ingester-21,ingester-23,ingester-26,ingester-30,ingester-39\n\
false 14 tenant-2 ingester-00,ingester-03,ingester-09,ingester-11,ingester-13,ingester-14,ingester-17,ingester-18,ingester-19,ingester-24,ingester-29,ingester-31,ingester-32,ingester-43\n\
false 14 tenant-3 ingester-03,ingester-06,ingester-08,ingester-11,ingester-14,ingester-18,ingester-20,ingester-24,ingester-32,ingester-33,ingester-34,ingester-42,ingester-43,ingester-44\n\
false 14 tenant-4 ingester-01,ingester-04,ingester-07,ingester-08,ingester-10,ingester-15,ingester-19,ingester-25,ingester-26,ingester-30,ingester-31,ingester-33,ingester-40,ingester-43\n\
false 14 tenant-5 ingester-01,ingester-06,ingester-07,ingester-10,ingester-12,ingester-14,ingester-22,ingester-24,ingester-25,ingester-30,ingester-35,ingester-37,ingester-40,ingester-44\n\
false 14 tenant-6 ingester-03,ingester-04,ingester-06,ingester-07,ingester-10,ingester-12,ingester-13,ingester-19,ingester-21,ingester-22,ingester-30,ingester-36,ingester-37,ingester-42\n\
false 14 tenant-7 ingester-00,ingester-04,ingester-10,ingester-12,ingester-15,ingester-18,ingester-19,ingester-20,ingester-26,ingester-28,ingester-34,ingester-35,ingester-42,ingester-44\n\
false 14 tenant-8 ingester-02,ingester-04,ingester-07,ingester-11,ingester-13,ingester-15,ingester-19,ingester-20,ingester-25,ingester-30,ingester-32,ingester-35,ingester-39,ingester-44\n\
false 14 tenant-9 ingester-09,ingester-11,ingester-14,ingester-15,ingester-18,ingester-20,ingester-22,ingester-24,ingester-26,ingester-32,ingester-34,ingester-36,ingester-40,ingester-44\n\
false 14 tenant-10 ingester-00,ingester-03,ingester-11,ingester-12,ingester-13,ingester-18,ingester-21,ingester-22,ingester-23,ingester-25,ingester-28,ingester-37,ingester-43,ingester-44\n\
false 14 tenant-11 ingester-01,ingester-08,ingester-17,ingester-19,ingester-20,ingester-21,ingester-22,ingester-36,ingester-37,ingester-39,ingester-40,ingester-41,ingester-42,ingester-43\n\
false 14 tenant-12 ingester-06,ingester-09,ingester-10,ingester-14,ingester-15,ingester-17,ingester-20,ingester-21,ingester-28,ingester-29,ingester-30,ingester-36,ingester-42,ingester-44\n\
false 14 tenant-13 ingester-01,ingester-04,ingester-06,ingester-10,ingester-17,ingester-18,ingester-23,ingester-24,ingester-25,ingester-28,ingester-30,ingester-33,ingester-43,ingester-44\n\
false 14 tenant-14 ingester-04,ingester-09,ingester-13,ingester-17,ingester-19,ingester-21,ingester-22,ingester-23,ingester-24,ingester-29,ingester-33,ingester-37,ingester-39,ingester-40\n\
false 14 tenant-15 ingester-06,ingester-09,ingester-10,ingester-12,ingester-13,ingester-17,ingester-20,ingester-22,ingester-28,ingester-37,ingester-40,ingester-41,ingester-42,ingester-44\n\
false 14 tenant-16 ingester-01,ingester-03,ingester-04,ingester-07,ingester-11,ingester-14,ingester-17,ingester-18,ingester-29,ingester-31,ingester-33,ingester-34,ingester-35,ingester-41\n\
false 14 tenant-17 ingester-00,ingester-01,ingester-02,ingester-03,ingester-04,ingester-12,ingester-14,ingester-15,ingester-18,ingester-22,ingester-25,ingester-29,ingester-37,ingester-44\n\
false 14 tenant-18 ingester-06,ingester-07,ingester-12,ingester-13,ingester-15,ingester-17,ingester-18,ingester-21,ingester-24,ingester-30,ingester-31,ingester-32,ingester-34,ingester-44\n\
false 14 tenant-19 ingester-00,ingester-01,ingester-04,ingester-08,ingester-09,ingester-11,ingester-12,ingester-15,ingester-25,ingester-35,ingester-36,ingester-39,ingester-40,ingester-41\n\
false 14 tenant-20 ingester-01,ingester-02,ingester-08,ingester-09,ingester-10,ingester-11,ingester-14,ingester-15,ingester-19,ingester-20,ingester-24,ingester-25,ingester-37,ingester-40\n\
false 14 tenant-21 ingester-03,ingester-04,ingester-06,ingester-07,ingester-11,ingester-12,ingester-20,ingester-21,ingester-23,ingester-25,ingester-33,ingester-34,ingester-41,ingester-44\n\
false 14 tenant-22 ingester-01,ingester-02,ingester-07,ingester-13,ingester-14,ingester-15,ingester-17,ingester-22,ingester-24,ingester-28,ingester-31,ingester-34,ingester-36,ingester-44\n\
false 14 tenant-23 ingester-01,ingester-03,ingester-08,ingester-11,ingester-17,ingester-22,ingester-28,ingester-29,ingester-30,ingester-33,ingester-34,ingester-39,ingester-43,ingester-44\n\
false 14 tenant-24 ingester-01,ingester-02,ingester-06,ingester-09,ingester-10,ingester-18,ingester-19,ingester-21,ingester-23,ingester-28,ingester-29,ingester-34,ingester-39,ingester-41\n\
false 14 tenant-25 ingester-03,ingester-04,ingester-06,ingester-07,ingester-08,ingester-13,ingester-22,ingester-23,ingester-33,ingester-34,ingester-35,ingester-37,ingester-40,ingester-41\n\
false 14 tenant-26 ingester-07,ingester-09,ingester-10,ingester-13,ingester-14,ingester-21,ingester-25,ingester-26,ingester-29,ingester-33,ingester-35,ingester-39,ingester-40,ingester-44\n\
false 14 tenant-27 ingester-01,ingester-06,ingester-10,ingester-15,ingester-18,ingester-20,ingester-21,ingester-22,ingester-28,ingester-32,ingester-37,ingester-40,ingester-42,ingester-43\n\
false 14 tenant-28 ingester-03,ingester-10,ingester-14,ingester-21,ingester-23,ingester-24,ingester-25,ingester-26,ingester-34,ingester-35,ingester-41,ingester-42,ingester-43,ingester-44\n\
false 14 tenant-29 ingester-04,ingester-11,ingester-12,ingester-13,ingester-14,ingester-22,ingester-23,ingester-24,ingester-25,ingester-26,ingester-33,ingester-37,ingester-40,ingester-42\n\
";

fn go_ring() -> Desc {
    let mut g = GoRand::new(2024);
    let mut used = std::collections::HashSet::new();
    let zones = ["zone-a", "zone-b", "zone-c"];
    let mut d = Desc::new();
    for i in 0..45 {
        let mut tokens = Vec::new();
        while tokens.len() < 64 {
            let t = g.uint32();
            if used.insert(t) {
                tokens.push(t);
            }
        }
        let id = format!("ingester-{i:02}");
        let inst = d.add_instance(&id, &id, zones[i % 3], tokens, InstanceState::Active, 1, 1);
        inst.read_only = i % 11 == 5;
    }
    d
}

#[test]
fn shards_match_the_go_reference_for_30_tenants_and_five_sizes() {
    let desc = go_ring();
    let mut checked = 0;
    for zone_aware in [true, false] {
        let cfg = RingConfig {
            zone_awareness_enabled: zone_aware,
            heartbeat_timeout: Duration::from_secs(60),
            ..RingConfig::default()
        };
        let ring = Arc::new(RingSnapshot::new(desc.clone(), cfg).expect("valid ring config"));
        for line in GOLDEN
            .lines()
            .filter(|l| l.starts_with(&zone_aware.to_string()))
        {
            let mut parts = line.split(' ');
            let (_, size, tenant, want) = (
                parts.next(),
                parts.next().unwrap().parse::<usize>().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap_or(""),
            );
            let shard = ring.shuffle_shard(tenant, size);
            let got: Vec<&str> = shard.instances().iter().map(|d| d.id.as_str()).collect();
            assert_eq!(
                got.join(","),
                want,
                "zone-aware {zone_aware}, size {size}, {tenant}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 300);
}
