//! Polling loops bounded in time: "until this probe says yes, or fail naming what we
//! waited for". Every loop sleeps between tries and panics at its limit with the caller's
//! description and the last value seen, so a hung server fails the test instead of hanging
//! it.

use std::fmt::Debug;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Pause between two tries.
pub const POLL: Duration = Duration::from_millis(200);

/// Calls `probe` every [`POLL`] until it returns `Some`; panics after `limit` with `what`.
pub fn until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// The async twin of [`until`] (tokio's sleep between tries).
pub async fn until_async<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Calls `probe` every [`POLL`] until `ok` holds for its value, and returns that value;
/// panics after `limit` showing `what` and the last value (async).
pub async fn until_ok<T: Debug>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let v = probe().await;
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}: {v:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `addr` accepts a TCP connection.
pub fn tcp(addr: SocketAddr, limit: Duration) {
    until(&format!("{addr} to accept connections"), limit, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .ok()
            .map(drop)
    });
}

/// Waits until a GET of `path` on 127.0.0.1:`port` answers 200; returns the body.
pub fn http_ok(port: u16, path: &str, limit: Duration) -> String {
    until(
        &format!("GET 127.0.0.1:{port}{path} = 200"),
        limit,
        || match http_get(port, path) {
            Some((200, body)) => Some(body),
            _ => None,
        },
    )
}

/// A plain HTTP/1.0 GET of `path_and_query` on 127.0.0.1:`port` (30 s read timeout):
/// `(status, body)`, or `None` when the connection or the answer fails. Enough for the
/// readiness and JSON endpoints of the servers tests start, without an HTTP client crate.
pub fn http_get(port: u16, path_and_query: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn until_returns_the_first_some() {
        let mut n = 0;
        let v = until("the third try", Duration::from_secs(10), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for nothing")]
    fn until_panics_at_its_limit_naming_what_it_waited_for() {
        until::<()>("nothing", Duration::from_millis(1), || None);
    }

    #[test]
    fn http_ok_reads_a_200_body() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"GET /-/ready HTTP/1.0"));
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nready")
                .unwrap();
        });
        assert_eq!(http_ok(port, "/-/ready", Duration::from_secs(10)), "ready");
        server.join().unwrap();
    }

    #[tokio::test]
    async fn until_ok_returns_the_value_that_passed() {
        let mut n = 0;
        let v = until_ok(
            "n to reach 2",
            Duration::from_secs(10),
            async || {
                n += 1;
                n
            },
            |v| *v == 2,
        )
        .await;
        assert_eq!(v, 2);
    }
}
