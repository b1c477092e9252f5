//! `get` must not allocate once its buffer has grown (dskit asserts the same with
//! `TestRing_Get_NoMemoryAllocations`). A counting global allocator checks it.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{Desc, GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ring(instances: usize, zones: usize, zone_aware: bool, leaving: bool) -> RingSnapshot {
    let mut d = Desc::new();
    let mut x: u32 = 12345;
    for i in 0..instances {
        let tokens: Vec<u32> = (0..512)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            })
            .collect();
        let state = if leaving && i % zones == 0 {
            InstanceState::Leaving
        } else {
            InstanceState::Active
        };
        d.add_instance(
            &format!("i-{i}"),
            "10.0.0.1:9095",
            &format!("zone-{}", i % zones),
            tokens,
            state,
            1,
            1000,
        );
    }
    RingSnapshot::new(
        d,
        RingConfig {
            zone_awareness_enabled: zone_aware,
            ..RingConfig::default()
        },
    )
    .expect("valid ring config")
}

#[test]
fn get_does_not_allocate_after_warm_up() {
    let all = [
        Operation::WRITE,
        Operation::READ,
        Operation::WRITE_NO_EXTEND,
    ];
    // With a whole zone LEAVING, writes fail by design (and errors may allocate their
    // message); reads walk every instance of that zone, the pathological case.
    let cases = [
        ("99 instances, 3 zones", ring(99, 3, true, false), &all[..]),
        ("3 instances, 1 zone", ring(3, 1, false, false), &all[..]),
        (
            "whole zone leaving",
            ring(30, 3, true, true),
            &[Operation::READ][..],
        ),
        (
            "12 zones (heap zone counters)",
            ring(24, 12, true, false),
            &all[..],
        ),
    ];
    let now = unix_seconds(1000);
    for (name, r, ops) in &cases {
        let mut buf = GetBuffer::new();
        for &op in ops.iter() {
            // Warm-up: the buffer grows to its working size.
            for k in 0..2000u32 {
                let _ = r.get(k.wrapping_mul(2_654_435_761), op, now, &mut buf);
            }
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let mut replicas = 0;
            for k in 0..10_000u32 {
                if let Ok(set) = r.get(k.wrapping_mul(2_654_435_761), op, now, &mut buf) {
                    replicas += set.len();
                }
            }
            let after = ALLOCATIONS.load(Ordering::Relaxed);
            assert!(replicas > 0, "{name}: lookups returned replicas");
            assert_eq!(after - before, 0, "{name} {op:?}: allocations during get");
        }
    }
}
