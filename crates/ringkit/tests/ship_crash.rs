//! `ringkit ship` killed with SIGKILL at random moments of its uploads, then run again, in a
//! bounded loop: the bucket must end with every block complete exactly once, and at no point
//! may a block look complete (have its `meta.json`) without all of its files in full. A block
//! once complete is never uploaded again (its `meta.json` keeps its inode and mtime).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringkit_testkit::port;
use ringkit_testkit::proc::Guard;

const TENANTS: [&str; 2] = ["team-a", "team-b"];
const BLOCKS_PER_TENANT: usize = 4;

/// Data files of a block and their sizes: big enough that an upload takes a while.
const FILES: [(&str, usize); 4] = [
    ("index", 3 << 20),
    ("chunks/000001", 4 << 20),
    ("chunks/000002", 2 << 20),
    ("tombstones", 9),
];

/// A small xorshift generator seeded from the clock (the moments of the kills vary from run
/// to run; the seed is printed to replay one).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ulid_for(tenant: usize, block: usize) -> String {
    // 26 Crockford base32 characters; distinct per (tenant, block).
    format!("01JEKZ3D00000000000000{tenant}{block}ZZ")
}

fn write_blocks(tsdb: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (ti, tenant) in TENANTS.iter().enumerate() {
        for b in 0..BLOCKS_PER_TENANT {
            let ulid = ulid_for(ti, b);
            let dir = tsdb.join(tenant).join(&ulid);
            std::fs::create_dir_all(dir.join("chunks")).unwrap();
            for (fi, (name, size)) in FILES.iter().enumerate() {
                let seed = (ti * 31 + b * 7 + fi) as u8;
                let bytes: Vec<u8> = (0..*size)
                    .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
                    .collect();
                std::fs::write(dir.join(name), bytes).unwrap();
            }
            let meta = serde_json::json!({
                "ulid": ulid, "minTime": b as i64 * 7_200_000,
                "maxTime": (b as i64 + 1) * 7_200_000, "version": 1,
            });
            std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
            out.push((tenant.to_string(), ulid));
        }
    }
    out
}

fn ship_cmd(tsdb: &Path, bucket: &Path, log: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ringkit"));
    c.arg("ship")
        .arg(format!("--blocks-storage.tsdb.dir={}", tsdb.display()))
        .arg("--blocks-storage.backend=filesystem")
        .arg(format!(
            "--blocks-storage.filesystem.dir={}",
            bucket.display()
        ))
        .arg("--blocks-storage.tsdb.ship-concurrency=2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    c
}

/// (inode, mtime) of a file: changes when the file is written again.
fn identity(p: &Path) -> (u64, SystemTime) {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(p).unwrap();
    (m.ino(), m.modified().unwrap())
}

/// Checks the bucket: every block with a `meta.json` has all its files, byte for byte;
/// returns the `meta.json` identities of the complete blocks.
fn check_bucket(
    tsdb: &Path,
    bucket: &Path,
    blocks: &[(String, String)],
) -> BTreeMap<(String, String), (u64, SystemTime)> {
    let mut complete = BTreeMap::new();
    for (tenant, ulid) in blocks {
        let dir: PathBuf = bucket.join(tenant).join(ulid);
        let meta = dir.join("meta.json");
        if !meta.exists() {
            continue;
        }
        for (name, _) in FILES {
            let local = std::fs::read(tsdb.join(tenant).join(ulid).join(name)).unwrap();
            let remote = std::fs::read(dir.join(name))
                .unwrap_or_else(|e| panic!("{tenant}/{ulid} has meta.json but not {name}: {e}"));
            assert!(
                local == remote,
                "{tenant}/{ulid}/{name} differs from the local file ({} vs {} bytes)",
                remote.len(),
                local.len()
            );
        }
        let uploaded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        assert_eq!(uploaded["ulid"], ulid.as_str());
        complete.insert((tenant.clone(), ulid.clone()), identity(&meta));
    }
    complete
}

#[test]
fn sigkill_during_uploads_never_leaves_a_partial_block_complete_nor_uploads_one_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let tsdb = tmp.path().join("tsdb");
    let bucket = tmp.path().join("bucket");
    let log = tmp.path().join("ship.log");
    let blocks = write_blocks(&tsdb);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("kill-moment seed {seed}");
    let mut rng = Rng(seed);

    let mut seen: BTreeMap<(String, String), (u64, SystemTime)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut kills = 0;
    for round in 0..12 {
        if seen.len() == blocks.len() || Instant::now() > deadline {
            break;
        }
        let mut child = Guard::spawn(&mut ship_cmd(&tsdb, &bucket, &log)).unwrap();
        let delay = Duration::from_millis(rng.next() % 400);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.signal("-KILL");
            kills += 1;
        }
        let status = child.wait().unwrap();
        let now = check_bucket(&tsdb, &bucket, &blocks);
        eprintln!(
            "round {round}: stopped after {delay:?} ({status}); {} of {} blocks complete",
            now.len(),
            blocks.len()
        );
        for (block, id) in &seen {
            assert_eq!(
                now.get(block),
                Some(id),
                "{block:?} was complete and was written again (round {round})"
            );
        }
        seen = now;
    }
    assert!(
        kills > 0,
        "no run was killed mid-way: the test proved nothing"
    );

    // A last run, not killed, finishes the job.
    let status = ship_cmd(&tsdb, &bucket, &log).status().unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "final ship failed: {log_text}");
    let done = check_bucket(&tsdb, &bucket, &blocks);
    assert_eq!(done.len(), blocks.len(), "every block complete: {log_text}");
    for (block, id) in &seen {
        assert_eq!(done.get(block), Some(id), "{block:?} uploaded twice");
    }
    // Every tenant's marker lists all its blocks, and nothing else is in the bucket but
    // the blocks' files (and object_store's staging files of killed uploads, `name#N`, which
    // readers skip).
    for (ti, tenant) in TENANTS.iter().enumerate() {
        let marker: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tsdb.join(tenant).join("mimir.shipper.json")).unwrap(),
        )
        .unwrap();
        let listed: Vec<&String> = marker["shipped"].as_object().unwrap().keys().collect();
        let want: Vec<String> = (0..BLOCKS_PER_TENANT).map(|b| ulid_for(ti, b)).collect();
        assert_eq!(listed, want.iter().collect::<Vec<_>>());
        let mut names: Vec<String> = std::fs::read_dir(bucket.join(tenant))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, want);
    }
    // A run after everything is shipped uploads nothing.
    let out = common::ringkit(
        &[
            "ship".to_owned(),
            format!("--blocks-storage.tsdb.dir={}", tsdb.display()),
            format!("--blocks-storage.filesystem.dir={}", bucket.display()),
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("shipped: 0 uploaded, 0 adopted, 8 already shipped"),
        "{stdout}"
    );
}

#[test]
fn ship_to_an_unreachable_s3_endpoint_fails_and_counts_every_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let tsdb = tmp.path().join("tsdb");
    let dir = tsdb.join("t").join(ulid_for(0, 0));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index"), b"x").unwrap();
    let meta =
        serde_json::json!({"ulid": ulid_for(0, 0), "minTime": 0, "maxTime": 1, "version": 1});
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    let port = port::free();
    let out = common::ringkit(
        &[
            "ship".to_owned(),
            format!("--blocks-storage.tsdb.dir={}", tsdb.display()),
            "--blocks-storage.backend=s3".to_owned(),
            format!("--blocks-storage.s3.endpoint=127.0.0.1:{port}"),
            "--blocks-storage.s3.bucket-name=blocks".to_owned(),
            "--blocks-storage.s3.access-key-id=ak".to_owned(),
            "--blocks-storage.s3.secret-access-key=sk".to_owned(),
            "--blocks-storage.s3.insecure=true".to_owned(),
            "--ship.attempts=2".to_owned(),
            "--ship.backoff=10ms".to_owned(),
        ],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // The s3 backend is an opt-in cargo feature (`--features s3`; a workspace build has it
    // through ringkit-ship's defaults). Without it the command names the feature.
    if stderr.contains("not compiled into this build")
        || stdout.contains("not compiled into this build")
    {
        assert!(
            format!("{stdout}{stderr}").contains("--features s3"),
            "{stdout}{stderr}"
        );
        return;
    }
    assert!(
        stdout.contains("not shipped: 1 block(s) could not be uploaded")
            && stdout.contains("attempts 2, failed attempts 2"),
        "{stdout}"
    );
    assert!(!tsdb.join("t").join("mimir.shipper.json").exists());
}
