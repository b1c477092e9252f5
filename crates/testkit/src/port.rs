//! Free TCP/UDP ports on 127.0.0.1 for servers a test starts.
//!
//! The classic picker (bind port 0, read the port, close, hand the number to a child)
//! races twice over: the kernel hands the same ephemeral port to the next `bind(0)` of any
//! process, including another test binary picking at the same moment, and to outgoing
//! connections. [`free`] avoids both:
//!
//! - it picks **below the kernel's ephemeral range** (`/proc/sys/net/ipv4/ip_local_port_range`),
//!   where neither `bind(0)` nor `connect` ever allocate, so a port it returns is not
//!   taken by the kernel for someone else between the check and the child's bind;
//! - each process walks **its own slice** of that space (chosen from its pid), so two test
//!   binaries running at once start far apart, and within a process a counter never hands
//!   out the same port twice (until the whole space wraps);
//! - every candidate is test-bound on TCP **and** UDP (memberlist uses both on one port),
//!   so ports some other server holds are skipped.
//!
//! When the machine has no room below its ephemeral range (a lower bound under 10,000),
//! it falls back to `bind(0)` with the in-process de-duplication only.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out: above the well-known and most registered service ports.
const LOW: u16 = 10_000;
/// Ports in one process' slice before it moves on to the next slice.
const SLICE: u32 = 128;

static NEXT: AtomicU32 = AtomicU32::new(0);
/// Ports handed out by the bind(0) fallback, so one process never gets one twice.
static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A port on 127.0.0.1 that is free on TCP and UDP now and that neither the kernel nor
/// another caller of this function (in this or another process) will hand out soon.
/// Panics when no port can be found (a test cannot go on without one).
pub fn free() -> u16 {
    try_free().expect("no free port on 127.0.0.1")
}

/// [`free`] as `127.0.0.1:PORT`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free()))
}

/// [`free`] that reports failure instead of panicking (for code that returns errors).
pub fn try_free() -> std::io::Result<u16> {
    let high = ephemeral_low().unwrap_or(32_768);
    if high <= LOW + SLICE as u16 {
        return free_from_kernel();
    }
    let span = u32::from(high - LOW);
    let slices = span / SLICE;
    let start = (std::process::id() % slices) * SLICE;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + ((start + n) % span) as u16;
        if bindable(port) {
            return Ok(port);
        }
    }
    free_from_kernel()
}

/// The lower bound of the kernel's ephemeral port range, when it can be read.
fn ephemeral_low() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn free_from_kernel() -> std::io::Result<u16> {
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..64 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if !given.contains(&port) && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no fresh port from bind(0) in 64 tries",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_within_a_process_and_bindable() {
        let ports: Vec<u16> = (0..200).map(|_| free()).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len(), "a port was handed out twice");
        for p in &ports[..10] {
            TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).expect("handed-out port binds");
        }
    }

    #[test]
    fn ports_lie_below_the_ephemeral_range() {
        let Some(low) = ephemeral_low() else { return };
        if low <= LOW + SLICE as u16 {
            return;
        }
        let p = free();
        assert!((LOW..low).contains(&p), "{p} not in {LOW}..{low}");
    }

    #[test]
    fn a_port_held_by_someone_else_is_skipped() {
        let p = free();
        let _held = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        assert!(!bindable(p));
        let q = free();
        assert_ne!(p, q);
    }
}
