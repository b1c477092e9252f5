//! A 100-byte input that declares 60 MiB must not make any decoder allocate megabytes
//! (issue 14). Every snappy and LZW path goes through ringkit-decompress; this binary has
//! a counting global allocator of its own, so it measures what each path really allocates
//! on the calling thread while it refuses such input.
#![allow(unsafe_code)] // the counting allocator below; nothing else

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringkit_memberlist::wire::compress::CompressionAlgo;
use ringkit_memberlist::wire::message::encode_compress_body;

/// Counts bytes requested by the current thread (allocations and growth).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    // try_with: the slot may be gone while a thread exits.
    let _ = ALLOCATED.try_with(|c| c.set(c.get().saturating_add(bytes)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only
// adds to a const-initialised thread-local Cell, which allocates nothing itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size.saturating_sub(layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes the current thread allocated while running `f`.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (ALLOCATED.with(Cell::get) - before, out)
}

const DECLARED: usize = 60 << 20;
/// "A few MiB" is the goal; the helper does far better (its LZW chunk is 16 KiB).
const ALLOWED: usize = 1 << 20;

/// 100 bytes: a snappy header declaring 60 MiB, then literal-looking junk.
fn lying_snappy() -> Vec<u8> {
    let mut out = Vec::new();
    let mut v = DECLARED;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out.resize(100, 0xab);
    out
}

/// A few KiB of LZW that expand to 8 MiB (a run of one byte).
fn lzw_bomb() -> Vec<u8> {
    let plain = vec![0u8; 8 << 20];
    let bomb = ringkit_memberlist::wire::compress::compress(CompressionAlgo::Lzw, &plain);
    assert!(bomb.len() < 8 << 10, "{}", bomb.len());
    bomb
}

fn refused(algo: ringkit_decompress::Algorithm) -> u64 {
    ringkit_decompress::refused_total(algo)
}

#[test]
fn ring_codec_refuses_a_lying_header_without_allocating_it() {
    let input = lying_snappy();
    let before = refused(ringkit_decompress::Algorithm::Snappy);
    let (bytes, res) = allocated_by(|| ringkit_ring::codec::decode(&input));
    let err = res.unwrap_err();
    assert!(
        err.to_string().contains("exceeds the allowed ratio"),
        "{err}"
    );
    assert!(bytes < ALLOWED, "ring codec allocated {bytes} bytes");
    assert!(refused(ringkit_decompress::Algorithm::Snappy) > before);
}

#[test]
fn heartbeat_shortcut_refuses_a_lying_header_without_allocating_it() {
    let input = lying_snappy();
    let mut desc = ringkit_ring::Desc::new();
    let (bytes, res) = allocated_by(|| ringkit_ring::heartbeat::merge_heartbeat(&mut desc, &input));
    assert!(res.is_none());
    assert!(
        bytes < ALLOWED,
        "heartbeat shortcut allocated {bytes} bytes"
    );
}

#[test]
fn remote_write_refuses_a_lying_header_without_allocating_it() {
    let input = lying_snappy();
    let limits = ringkit_ingest::decode::DecodeLimits::default();
    let (bytes, res) =
        allocated_by(|| ringkit_ingest::decode::decode_write_request(&input, &limits));
    let err = res.unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(
        err.to_string().starts_with("snappy: corrupt input"),
        "{err}"
    );
    assert!(bytes < ALLOWED, "remote write allocated {bytes} bytes");
}

#[test]
fn gossip_packets_refuse_a_lying_snappy_header_without_allocating_it() {
    let mut packet = vec![0x09];
    encode_compress_body(&mut packet, CompressionAlgo::Snappy, &lying_snappy());
    let before = refused(ringkit_decompress::Algorithm::Snappy);
    let (bytes, res) = allocated_by(|| ringkit_memberlist::wire::decode_packet(&packet));
    let err = res.unwrap_err();
    assert!(
        err.to_string().contains("exceeds the allowed ratio"),
        "{err}"
    );
    assert!(
        bytes < ALLOWED,
        "packet of {} bytes allocated {bytes}",
        packet.len()
    );
    assert!(refused(ringkit_decompress::Algorithm::Snappy) > before);
}

#[test]
fn gossip_packets_stop_an_lzw_bomb_near_its_size_bound() {
    // LZW declares nothing: ~100 bytes can only grow to a few KiB, so the bomb here is a
    // few KiB that would expand to 8 MiB. Decoding stops once the output passes
    // size * LZW_MAX_RATIO (plus the output buffer's doubling and one chunk).
    let bomb = lzw_bomb();
    let bound = ringkit_decompress::Limits::lzw(usize::MAX).bound(bomb.len());
    let mut packet = vec![0x09];
    encode_compress_body(&mut packet, CompressionAlgo::Lzw, &bomb);
    let before = refused(ringkit_decompress::Algorithm::Lzw);
    let (bytes, res) = allocated_by(|| ringkit_memberlist::wire::decode_packet(&packet));
    let err = res.unwrap_err();
    assert!(
        err.to_string().contains("exceeds the allowed ratio"),
        "{err}"
    );
    assert!(
        bytes < 2 * bound + (64 << 10) && bytes < ALLOWED * 2,
        "LZW packet of {} bytes allocated {bytes} (bound {bound})",
        packet.len()
    );
    assert!(refused(ringkit_decompress::Algorithm::Lzw) > before);
}
