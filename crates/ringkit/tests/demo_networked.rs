//! `ringkit demo` end to end: real child processes on 127.0.0.1 gossiping the ring, remote
//! write, a fourth ingester, a kill -9 mid-write, remote read. Bounded: the demo is killed
//! by pid if it runs longer than two minutes.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// Runs `ringkit ARGS`, killing it (by pid) after `LIMIT`; returns exit success and stdout.
fn run_bounded(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkit"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringkit binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.is_some(),
        "ringkit {args:?} ran longer than {LIMIT:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    (status.unwrap().success(), out, err)
}

#[test]
fn networked_demo_reads_back_every_acknowledged_sample_and_moves_a_share_to_the_newcomer() {
    let (ok, out, err) = run_bounded(&["demo"]);
    assert!(ok, "demo failed\nstdout:\n{out}\nstderr:\n{err}");
    let summary = out
        .split("== Summary")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let read_back = summary
        .lines()
        .find(|l| l.contains("acknowledged samples read back"))
        .unwrap_or_else(|| panic!("no read-back row:\n{out}"));
    assert!(read_back.contains("(0 missing)"), "{out}");
    let owners = summary
        .lines()
        .find(|l| l.contains("of series changed first owner"))
        .unwrap_or_else(|| panic!("no owner-change row:\n{out}"));
    assert!(owners.contains("all to the newcomer: yes"), "{out}");
    let pct: f64 = owners
        .split(" % of series changed first owner")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no percentage in {owners:?}"));
    assert!((10.0..50.0).contains(&pct), "owner change {pct} %\n{out}");
    assert!(out.contains("/ring"), "the ring URL is printed:\n{out}");
    // The demo keeps its logs for people; the test cleans up after a pass.
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix("logs of every process: "))
        .unwrap_or_else(|| panic!("no log directory:\n{out}"));
    assert!(dir.contains("ringkit-demo-"), "{dir}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn offline_demo_still_tells_the_story_in_one_process() {
    let (ok, out, err) = run_bounded(&["demo", "--offline", "--series=5000"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("in one process (no network)"), "{out}");
    assert!(
        out.contains("every moved series went to the newcomer: yes"),
        "{out}"
    );
}
