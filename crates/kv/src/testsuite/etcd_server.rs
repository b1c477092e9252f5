//! A throwaway etcd server for tests: a child process on 127.0.0.1, free ports, a temporary
//! data dir, killed (by its pid, through [`std::process::Child`]) when dropped.
//!
//! Environment:
//! - `RINGKIT_ETCD_ENDPOINTS`: use this running etcd instead of starting one (for the
//!   tests that do not restart the server; see `scripts/etcd.sh`).
//! - `RINGKIT_SKIP_ETCD=1`: skip etcd tests (they print that they were skipped). Without
//!   it, a missing etcd binary fails the tests with a message saying how to install it.
//! - `RINGKIT_ETCD_BIN`: etcd binary to run (default `/usr/bin/etcd`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Default etcd binary (Debian's `etcd-server` package).
pub const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";
/// Log lines etcd prints once it serves clients (3.4 with zap logs the second one, after
/// the server is ready; other versions and loggers the first).
const READY_LINES: [&str; 2] = ["ready to serve client requests", "serving client traffic"];
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// An etcd child process owned by a test.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Where the etcd tests should run.
#[derive(Debug)]
pub enum EtcdTarget {
    /// An etcd someone else runs (`RINGKIT_ETCD_ENDPOINTS`).
    External(Vec<String>),
    /// A child process this test owns.
    Owned(EtcdServer),
    /// `RINGKIT_SKIP_ETCD=1`.
    Skip,
}

/// The etcd binary to run.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("RINGKIT_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ETCD_BIN))
}

/// True when `RINGKIT_SKIP_ETCD=1`.
pub fn skip_etcd() -> bool {
    std::env::var("RINGKIT_SKIP_ETCD").is_ok_and(|v| v == "1")
}

/// Picks where to run: skip, an external etcd, or a child started now. Panics with a clear
/// message when etcd is needed but not installed.
pub fn etcd_target(allow_external: bool) -> EtcdTarget {
    if skip_etcd() {
        eprintln!("RINGKIT_SKIP_ETCD=1: skipping etcd test");
        return EtcdTarget::Skip;
    }
    if allow_external
        && let Ok(eps) = std::env::var("RINGKIT_ETCD_ENDPOINTS")
        && !eps.trim().is_empty()
    {
        return EtcdTarget::External(eps.split(',').map(|s| s.trim().to_owned()).collect());
    }
    match EtcdServer::start() {
        Ok(s) => EtcdTarget::Owned(s),
        Err(e) => panic!("{e}"),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdServer {
    /// Starts etcd on free 127.0.0.1 ports with a fresh data dir and waits until it serves.
    pub fn start() -> Result<Self, String> {
        let bin = etcd_binary();
        if !bin.exists() {
            return Err(format!(
                "etcd is not installed at {}: install it (`apt-get install -y etcd-server`), \
                 point RINGKIT_ETCD_BIN at it, or set RINGKIT_SKIP_ETCD=1 to skip etcd tests",
                bin.display()
            ));
        }
        let mut last_err = String::new();
        // A port picked free can be taken before etcd binds it: try a few times.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("ringkit-etcd-")
                .tempdir()
                .map_err(|e| format!("cannot create etcd data dir: {e}"))?;
            let client_port = free_port().map_err(|e| e.to_string())?;
            let peer_port = free_port().map_err(|e| e.to_string())?;
            if client_port == peer_port {
                continue;
            }
            let mut server = EtcdServer {
                child: None,
                dir,
                client_port,
                peer_port,
                log: Arc::default(),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Process id of the running etcd, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills etcd and starts it again on the same ports and data, waiting until it serves.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Stops the server (by its pid); [`EtcdServer::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut child = Command::new(etcd_binary())
            .arg("--name=ringkit-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=ringkit-test={peer}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", etcd_binary().display()))?;
        let stderr = child.stderr.take();
        self.child = Some(child);
        let (ready_tx, ready_rx) = mpsc::channel();
        let log = self.log.clone();
        if let Some(stderr) = stderr {
            // Drains etcd's log so it never blocks on a full pipe, keeps the tail for error
            // messages, and reports readiness: etcd logs a line when it serves clients.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if READY_LINES.iter().any(|r| line.contains(r)) {
                        let _ = ready_tx.send(());
                    }
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() == 50 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.kill();
                let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                let tail: Vec<&str> = log
                    .iter()
                    .rev()
                    .take(10)
                    .rev()
                    .map(String::as_str)
                    .collect();
                Err(format!(
                    "etcd on {client} did not become ready within {START_TIMEOUT:?}; last log lines:\n{}",
                    tail.join("\n")
                ))
            }
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
