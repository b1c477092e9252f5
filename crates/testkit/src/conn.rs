//! Client-side helpers for the hostile-client tests and their full-size example: many idle
//! TCP connections to one port, and a look at the server process' descriptors and memory.

use std::time::Duration;

use tokio::net::TcpStream;

/// Opens up to `n` connections to 127.0.0.1:`port` and returns the ones that connected.
/// `wave` attempts run at once (1 for one after another); each gets `per_try` (past a
/// server's connection limit, connects wait in or overflow the listen backlog, so an
/// attempt needs a bound). The connections send nothing: they only hold server slots.
pub async fn open_idle(port: u16, n: usize, wave: usize, per_try: Duration) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for start in (0..n).step_by(wave.max(1)) {
        let tries = (start..n.min(start + wave.max(1)))
            .map(|_| tokio::time::timeout(per_try, TcpStream::connect(("127.0.0.1", port))));
        for r in futures::future::join_all(tries).await {
            if let Ok(Ok(s)) = r {
                conns.push(s);
            }
        }
    }
    conns
}

/// A `kB` field of `/proc/PID/status` (`"VmRSS:"`, `"VmHWM:"`); `None` when the process or
/// the field is gone.
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How many descriptors process `pid` holds open (0 when it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_idle_connects_in_waves_and_keeps_the_connections() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = open_idle(port, 10, 4, Duration::from_secs(5)).await;
        assert_eq!(conns.len(), 10);
        let one = open_idle(port, 3, 1, Duration::from_secs(5)).await;
        assert_eq!(one.len(), 3);
    }

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let me = std::process::id();
        assert!(status_kb(me, "VmRSS:").unwrap() > 0);
        assert!(open_fds(me) >= 3);
        assert_eq!(status_kb(me, "NoSuchField:"), None);
    }
}
