//! `ringkit demo` end to end: real child processes on 127.0.0.1 gossiping the ring, remote
//! write, a fourth ingester, a kill -9 mid-write, remote read. Bounded: the demo is killed
//! by pid if it runs longer than two minutes.

mod common;

use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Runs `ringkit ARGS` (killed by pid after `LIMIT`); returns exit success, stdout, stderr.
fn run_bounded(args: &[&str]) -> (bool, String, String) {
    let out = common::ringkit(args, LIMIT);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
