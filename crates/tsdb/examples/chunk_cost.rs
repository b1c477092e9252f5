//! CPU cost of the XOR chunk per sample, measured as on-CPU time of this thread
//! (`/proc/thread-self/schedstat`), so the figure holds on a shared, loaded machine where
//! wall-clock benchmarks do not.
//!
//! Usage: `cargo run --profile bench -p ringkit-tsdb --example chunk_cost [-- <chunks>]`
//! (default 20000 chunks of 120 samples: a 15 s counter and a two-decimal gauge, half each).

use std::hint::black_box;

use ringkit_tsdb::{XorChunk, decode_xor};

/// Nanoseconds this thread has spent on a CPU (Linux only; 0 elsewhere).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let chunks: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let samples: Vec<Vec<(i64, f64)>> = (0..chunks)
        .map(|i| {
            let mut v = (i * 1000) as f64;
            (0..120i64)
                .map(|k| {
                    v = if i % 2 == 0 {
                        v + ((k * 7 + i as i64) % 13) as f64
                    } else {
                        ((v * 100.0).round() + ((k * 3 + i as i64) % 21 - 10) as f64) / 100.0
                    };
                    (1_700_000_000_000 + k * 15_000, v)
                })
                .collect()
        })
        .collect();
    let total = (chunks * 120) as f64;

    let start = cpu_ns();
    let built: Vec<XorChunk> = samples
        .iter()
        .map(|part| {
            let mut c = XorChunk::new();
            for &(t, v) in part {
                c.append(t, v);
            }
            c
        })
        .collect();
    let append_ns = cpu_ns() - start;

    let start = cpu_ns();
    let mut sum = 0.0;
    for c in &built {
        for (_, v) in decode_xor(black_box(c.bytes())).expect("valid chunk") {
            sum += v;
        }
    }
    let iterate_ns = cpu_ns() - start;
    black_box(sum);

    let bytes: usize = built.iter().map(|c| c.bytes().len()).sum();
    println!(
        "{chunks} chunks, {total} samples, {:.2} B/sample",
        bytes as f64 / total
    );
    println!("append:  {:.1} ns CPU per sample", append_ns as f64 / total);
    println!(
        "iterate: {:.1} ns CPU per sample",
        iterate_ns as f64 / total
    );
}
