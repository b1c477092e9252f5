//! kill -9 while blocks are being written leaves only complete blocks: a child process (this
//! test binary, re-run on its ignored `crash_child_writes_blocks` test) writes blocks in a
//! loop and is killed by pid at varying moments; afterwards every `<ULID>` directory opens and
//! holds exactly the data written, and the only other leftovers are `*.tmp-for-creation`
//! directories, which `remove_tmp_dirs` clears.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringkit_tsdb::{
    Block, BlockSeries, Label, XorChunk, block::TMP_SUFFIX, labels_from_pairs, remove_tmp_dirs,
    write_block,
};

const CHILD_ENV: &str = "RINGKIT_TSDB_CRASH_DIR";
const START: i64 = 1_700_002_800_000;
const END: i64 = START + 7_200_000;

fn model() -> BTreeMap<Vec<Label>, Vec<(i64, f64)>> {
    (0..300)
        .map(|i: i64| {
            let labels =
                labels_from_pairs([("__name__", "crash_test".to_string()), ("i", i.to_string())]);
            let samples = (0..480)
                .map(|k| (START + k * 15_000, (k * i) as f64 / 7.0))
                .collect();
            (labels, samples)
        })
        .collect()
}

fn series() -> Vec<BlockSeries> {
    model()
        .into_iter()
        .map(|(labels, samples)| BlockSeries {
            labels,
            chunks: samples
                .chunks(120)
                .map(|part| {
                    let mut c = XorChunk::new();
                    for &(t, v) in part {
                        c.append(t, v);
                    }
                    c
                })
                .collect(),
        })
        .collect()
}

/// Run only as the child of the test below: writes blocks until killed (at most 500).
#[test]
#[ignore = "child process of kill9_during_write_block_leaves_only_complete_blocks"]
fn crash_child_writes_blocks() {
    let dir = std::env::var(CHILD_ENV).expect("run by the crash test");
    // Built once, so nearly all of the child's time is spent inside `write_block`.
    let series = series();
    for _ in 0..500 {
        write_block(Path::new(&dir), START, END, series.clone()).unwrap();
    }
}

fn complete_blocks(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(TMP_SUFFIX))
        .collect()
}

#[test]
fn kill9_during_write_block_leaves_only_complete_blocks() {
    let want = model();
    let exe = std::env::current_exe().unwrap();
    let mut checked = 0;
    for round in 0u64..6 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_writes_blocks",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Bounded wait for a first complete block, then kill at a moment that varies per
        // round, so some kills land in the middle of a write.
        let deadline = Instant::now() + Duration::from_secs(120);
        while complete_blocks(dir.path()).is_empty() && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(3 + round * 37));
        child.kill().unwrap(); // SIGKILL, by pid
        child.wait().unwrap();

        for path in complete_blocks(dir.path()) {
            let block = Block::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(block.meta().stats.num_samples, 300 * 480);
            let got: BTreeMap<_, _> = block
                .query(&[], i64::MIN, i64::MAX)
                .unwrap()
                .into_iter()
                .map(|s| (s.labels, s.samples))
                .collect();
            assert!(got == want, "{} holds other data", path.display());
            checked += 1;
        }
        let partial = remove_tmp_dirs(dir.path()).unwrap();
        eprintln!(
            "round {round}: {} complete blocks, {partial} partial",
            complete_blocks(dir.path()).len()
        );
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, complete_blocks(dir.path()).len());
    }
    assert!(checked > 0, "the child never finished a block");
}
