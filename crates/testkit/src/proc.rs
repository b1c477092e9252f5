//! A guard for a child process a test started: killed by its pid and reaped when dropped,
//! so a failing test never leaves a server behind, and never touches a process it did not
//! start (no kill by name).

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process owned by a test; SIGKILL + wait on drop. Derefs to the [`Child`] (take
/// its `stdout`, read its `id`). Keeps the path of the file its output goes to, if any, so
/// failure messages can show it ([`Guard::log_text`]).
#[derive(Debug)]
pub struct Guard {
    child: Child,
    log: Option<PathBuf>,
}

impl Guard {
    /// Takes ownership of a started child.
    pub fn new(child: Child) -> Guard {
        Guard { child, log: None }
    }

    /// Takes ownership of a started child whose output goes to `log`.
    pub fn with_log(child: Child, log: impl Into<PathBuf>) -> Guard {
        Guard {
            child,
            log: Some(log.into()),
        }
    }

    /// Spawns `cmd` and guards it; the error names the program.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Guard> {
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {:?}: {e}", cmd.get_program()),
            )
        })?;
        Ok(Guard::new(child))
    }

    /// Spawns `cmd` with its stdout piped, reads the first line it prints and returns it
    /// without `prefix` (e.g. a server announcing `HTTP 127.0.0.1:1234`); where stderr
    /// goes is left to `cmd`. Fails (the child killed) when the line does not start with
    /// `prefix` or the process exits first.
    pub fn spawn_announcing(cmd: &mut Command, prefix: &str) -> std::io::Result<(Guard, String)> {
        use std::io::BufRead;
        let mut guard = Guard::spawn(cmd.stdout(Stdio::piped()))?;
        let stdout = guard.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let Some(rest) = line.strip_prefix(prefix) else {
            return Err(std::io::Error::other(format!(
                "{:?} printed {line:?} first, not {prefix:?}…",
                cmd.get_program()
            )));
        };
        Ok((guard, rest.trim().to_owned()))
    }

    /// Sets (or replaces) the log path shown in failure messages.
    pub fn log_to(mut self, log: impl Into<PathBuf>) -> Guard {
        self.log = Some(log.into());
        self
    }

    /// The log path given at start, if any.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The log so far ("" without a log or when it cannot be read).
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    /// Sends `sig` (as `kill` takes it: `-TERM`, `-KILL`, `-STOP`) to this pid only;
    /// panics when `kill` fails (the process is gone or the signal is unknown).
    pub fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    /// SIGKILL and reap; a no-op when the process has already been reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the process to exit, e.g. after SIGTERM; `None` when it is still
    /// running after `limit` (it is left running: dropping the guard kills it).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` (`-TERM`, `-KILL`...) to `child`'s pid only; panics when `kill` fails.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {} failed", child.id());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A reaped child has no /proc entry; a zombie would show state Z.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    #[test]
    fn dropping_the_guard_kills_and_reaps_the_child() {
        let g = Guard::spawn(Command::new("sleep").arg("600")).unwrap();
        let pid = g.id();
        assert!(alive(pid));
        drop(g);
        assert!(!alive(pid));
    }

    #[test]
    fn wait_exit_reports_the_status_after_a_signal() {
        let mut g = Guard::spawn(Command::new("sleep").arg("600")).unwrap();
        assert!(g.is_running());
        g.signal("-TERM");
        let status = g.wait_exit(Duration::from_secs(10)).expect("exits on TERM");
        assert!(!status.success());
        assert!(!g.is_running());
    }

    #[test]
    fn log_text_reads_the_childs_log_file() {
        let dir = std::env::temp_dir().join(format!("testkit-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("echo.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut g = Guard::with_log(
            Command::new("echo")
                .arg("hello")
                .stdout(file)
                .spawn()
                .unwrap(),
            &log,
        );
        g.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(g.log_text(), "hello\n");
        assert_eq!(g.log_path(), Some(log.as_path()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn spawn_names_a_missing_program() {
        let e = Guard::spawn(&mut Command::new("/nonexistent/ringkit-testkit")).unwrap_err();
        assert!(e.to_string().contains("ringkit-testkit"), "{e}");
    }
}
