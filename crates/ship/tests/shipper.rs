//! The shipper against real buckets: a local-filesystem bucket (layout, bytes, marker,
//! completion of a partial upload, adoption of a block whose marker update was lost) and an
//! S3 endpoint on a closed 127.0.0.1 port (failures counted, nothing recorded).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload};
use prometheus_client::registry::Registry;
use ringkit_ship::{
    BucketConfig, MARKER_FILE, RequestRetry, Shipper, ShipperConfig, ShipperMetrics, Ulid,
    open_bucket,
};

const A: &str = "01JEKZ3D0000000000000000A1";
const B: &str = "01JEKZ3D0000000000000000B2";

/// Writes a block directory `<tsdb>/<tenant>/<ulid>/` with distinct contents per file.
fn write_block(tsdb: &Path, tenant: &str, ulid: &str, min_time: i64, size: usize) {
    let dir = tsdb.join(tenant).join(ulid);
    std::fs::create_dir_all(dir.join("chunks")).unwrap();
    let fill = |seed: u8| -> Vec<u8> {
        (0..size)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    std::fs::write(dir.join("index"), fill(1)).unwrap();
    std::fs::write(dir.join("chunks/000001"), fill(2)).unwrap();
    std::fs::write(dir.join("chunks/000002"), fill(3)).unwrap();
    std::fs::write(dir.join("tombstones"), [0x01, 0x30, 0xBA, 0x4F, 1]).unwrap();
    let meta = serde_json::json!({
        "ulid": ulid, "minTime": min_time, "maxTime": min_time + 7_200_000, "version": 1,
        "stats": {"numSamples": 10, "numSeries": 1, "numChunks": 1},
        "compaction": {"level": 1, "sources": [ulid]},
    });
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

fn shipper(bucket: Arc<dyn ObjectStore>, tsdb: &Path) -> (Shipper, ShipperMetrics) {
    let metrics = ShipperMetrics::register(&mut Registry::default());
    let mut cfg = ShipperConfig::new(tsdb);
    cfg.initial_backoff = Duration::from_millis(10);
    // Small parts so the larger files really go up as multipart uploads.
    cfg.part_size = 64 << 10;
    (Shipper::new(bucket, cfg, metrics.clone()), metrics)
}

fn fs_bucket(dir: &Path) -> Arc<dyn ObjectStore> {
    open_bucket(
        &BucketConfig::Filesystem {
            dir: dir.to_owned(),
        },
        &RequestRetry::default(),
    )
    .unwrap()
}

async fn get(bucket: &Arc<dyn ObjectStore>, path: &str) -> Vec<u8> {
    bucket
        .get(&ObjectPath::from(path))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn listing(bucket: &Arc<dyn ObjectStore>) -> Vec<String> {
    use futures::TryStreamExt as _;
    let mut v: Vec<String> = bucket
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

fn ulid(s: &str) -> Ulid {
    Ulid::from_string(s).unwrap()
}

#[tokio::test]
async fn blocks_go_up_in_mimirs_layout_with_meta_last_and_are_recorded_once() {
    let tsdb = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_block(tsdb.path(), "tenant-1", A, 0, 300_000);
    write_block(tsdb.path(), "tenant-2", B, 7_200_000, 1_000);
    let bucket = fs_bucket(root.path());
    let (s, metrics) = shipper(Arc::clone(&bucket), tsdb.path());
    assert!(!s.is_shipped("tenant-1", ulid(A)));

    let report = s.sync().await.unwrap();
    let mut uploaded = report.uploaded.clone();
    uploaded.sort();
    assert_eq!(
        uploaded,
        [
            ("tenant-1".to_owned(), ulid(A)),
            ("tenant-2".to_owned(), ulid(B))
        ]
    );
    assert_eq!(metrics.uploads(), 2);
    assert_eq!(metrics.upload_failures(), 0);

    let mut want = Vec::new();
    for (t, u) in [("tenant-1", A), ("tenant-2", B)] {
        for f in [
            "chunks/000001",
            "chunks/000002",
            "index",
            "meta.json",
            "tombstones",
        ] {
            want.push(format!("{t}/{u}/{f}"));
        }
    }
    assert_eq!(listing(&bucket).await, want);
    for f in ["chunks/000001", "chunks/000002", "index", "tombstones"] {
        let local = std::fs::read(tsdb.path().join("tenant-1").join(A).join(f)).unwrap();
        assert_eq!(
            get(&bucket, &format!("tenant-1/{A}/{f}")).await,
            local,
            "{f}"
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&get(&bucket, &format!("tenant-1/{A}/meta.json")).await).unwrap();
    assert_eq!(meta["ulid"], A);
    assert_eq!(meta["stats"]["numSamples"], 10);
    assert_eq!(meta["thanos"]["source"], "ingester");
    assert_eq!(meta["thanos"]["downsample"]["resolution"], 0);
    assert_eq!(
        meta["thanos"]["segment_files"],
        serde_json::json!(["000001", "000002"])
    );
    assert_eq!(meta["thanos"]["files"][2]["rel_path"], "index");
    assert_eq!(meta["thanos"]["files"][2]["size_bytes"], 300_000);

    // The marker is Mimir's file; a new shipper (a restart) trusts it and uploads nothing.
    let marker: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tsdb.path().join("tenant-1").join(MARKER_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(marker["version"], 1);
    assert!(marker["shipped"][A].as_f64().unwrap() > 1.6e9);
    assert!(s.is_shipped("tenant-1", ulid(A)));
    assert!(!s.is_shipped("tenant-1", ulid(B)));
    let (again, metrics2) = shipper(Arc::clone(&bucket), tsdb.path());
    assert!(
        again.is_shipped("tenant-2", ulid(B)),
        "read from the marker"
    );
    let report = again.sync().await.unwrap();
    assert_eq!(report.already_shipped, 2);
    assert!(report.uploaded.is_empty() && report.adopted.is_empty());
    assert_eq!(metrics2.uploads(), 0);
}

#[tokio::test]
async fn a_partial_upload_is_redone_and_a_complete_unrecorded_block_is_adopted() {
    let tsdb = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_block(tsdb.path(), "t", A, 0, 5_000);
    write_block(tsdb.path(), "t", B, 7_200_000, 5_000);
    let bucket = fs_bucket(root.path());
    // A: a crash after part of the data: a truncated index, no meta.json.
    bucket
        .put(
            &ObjectPath::from(format!("t/{A}/index")),
            PutPayload::from_static(b"trunc"),
        )
        .await
        .unwrap();
    // B: a crash after meta.json went up but before the marker was written.
    let (first, _) = shipper(Arc::clone(&bucket), tsdb.path());
    first.sync().await.unwrap();
    let b_meta = ObjectPath::from(format!("t/{B}/meta.json"));
    let before = bucket.head(&b_meta).await.unwrap();
    std::fs::remove_file(tsdb.path().join("t").join(MARKER_FILE)).unwrap();
    bucket
        .delete(&ObjectPath::from(format!("t/{A}/meta.json")))
        .await
        .unwrap();
    bucket
        .put(
            &ObjectPath::from(format!("t/{A}/index")),
            PutPayload::from_static(b"trunc"),
        )
        .await
        .unwrap();

    let (s, metrics) = shipper(Arc::clone(&bucket), tsdb.path());
    let report = s.sync().await.unwrap();
    assert_eq!(report.uploaded, [("t".to_owned(), ulid(A))]);
    assert_eq!(report.adopted, [("t".to_owned(), ulid(B))]);
    assert_eq!(metrics.uploads(), 1, "B is not uploaded again");
    let local = std::fs::read(tsdb.path().join("t").join(A).join("index")).unwrap();
    assert_eq!(get(&bucket, &format!("t/{A}/index")).await, local);
    let after = bucket.head(&b_meta).await.unwrap();
    assert_eq!(before.last_modified, after.last_modified);
    assert_eq!(before.e_tag, after.e_tag);
    assert!(s.is_shipped("t", ulid(A)) && s.is_shipped("t", ulid(B)));
}

#[tokio::test]
async fn a_block_deleted_locally_leaves_the_marker_and_unfinished_dirs_are_not_shipped() {
    let tsdb = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_block(tsdb.path(), "t", A, 0, 100);
    // Being written by the head: no meta.json yet.
    std::fs::create_dir_all(tsdb.path().join("t").join(B).join("chunks")).unwrap();
    let bucket = fs_bucket(root.path());
    let (s, _) = shipper(Arc::clone(&bucket), tsdb.path());
    assert_eq!(s.sync().await.unwrap().uploaded.len(), 1);
    assert!(!listing(&bucket).await.iter().any(|p| p.contains(B)));
    std::fs::remove_dir_all(tsdb.path().join("t").join(A)).unwrap();
    s.sync().await.unwrap();
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tsdb.path().join("t").join(MARKER_FILE)).unwrap())
            .unwrap();
    assert_eq!(marker["shipped"], serde_json::json!({}));
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn an_unreachable_s3_endpoint_counts_each_failed_attempt_and_records_nothing() {
    let tsdb = tempfile::tempdir().unwrap();
    write_block(tsdb.path(), "t", A, 0, 100);
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bucket = open_bucket(
        &BucketConfig::S3 {
            endpoint: format!("127.0.0.1:{port}"),
            bucket_name: "blocks".into(),
            region: String::new(),
            access_key_id: "ak".into(),
            secret_access_key: "sk".into(),
            insecure: true,
        },
        &RequestRetry {
            max_retries: 1,
            timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
    )
    .unwrap();
    let (s, metrics) = shipper(bucket, tsdb.path());
    let err = s.sync().await.unwrap_err();
    assert!(err.to_string().contains("1 block(s)"), "{err}");
    assert_eq!(metrics.uploads(), 3, "three attempts");
    assert_eq!(metrics.upload_failures(), 3);
    assert!(!s.is_shipped("t", ulid(A)));
    assert!(!tsdb.path().join("t").join(MARKER_FILE).exists());
    // The next sync tries again (and fails again).
    assert!(s.sync().await.is_err());
    assert_eq!(metrics.upload_failures(), 6);
}

#[tokio::test]
async fn the_periodic_sync_ships_blocks_as_they_appear_and_stops_when_cancelled() {
    let tsdb = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let bucket = fs_bucket(root.path());
    let mut registry = Registry::default();
    let metrics = ShipperMetrics::register(&mut registry);
    let mut cfg = ShipperConfig::new(tsdb.path());
    cfg.interval = Duration::from_millis(20);
    let s = Arc::new(Shipper::new(Arc::clone(&bucket), cfg, metrics.clone()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&s).run(cancel.clone()));
    write_block(tsdb.path(), "t", A, 0, 100);
    // Bounded wait (count and time) for the loop to pick the block up.
    for _ in 0..500 {
        if s.is_shipped("t", ulid(A)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.is_shipped("t", ulid(A)));
    cancel.cancel();
    task.await.unwrap();
    assert!(
        bucket
            .head(&ObjectPath::from(format!("t/{A}/meta.json")))
            .await
            .is_ok()
    );

    // The registry exposes Mimir's names.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for name in [
        "cortex_ingester_shipper_dir_syncs_total",
        "cortex_ingester_shipper_dir_sync_failures_total 0",
        "cortex_ingester_shipper_uploads_total 1",
        "cortex_ingester_shipper_upload_failures_total 0",
        "cortex_ingester_shipper_last_successful_upload_timestamp_seconds",
        "cortex_ingester_oldest_unshipped_block_timestamp_seconds 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}
