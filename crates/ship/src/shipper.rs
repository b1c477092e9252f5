//! The shipper: finds finished blocks not yet shipped, uploads them (data files first,
//! `meta.json` last), records them, and does so again every ship interval.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use object_store::buffered::BufWriter;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use crate::block::{LocalBlock, META_FILE, list_blocks};
use crate::error::ShipError;
use crate::marker::ShippedMarker;
use crate::metrics::ShipperMetrics;

/// How the shipper works; [`ShipperConfig::new`] gives Mimir's defaults.
#[derive(Clone, Debug)]
pub struct ShipperConfig {
    /// `-blocks-storage.tsdb.dir`: one directory per tenant, blocks inside.
    pub tsdb_dir: PathBuf,
    /// `-blocks-storage.tsdb.ship-interval` (Mimir: 1m); zero disables the periodic sync.
    pub interval: Duration,
    /// `-blocks-storage.tsdb.ship-concurrency` (Mimir: 10): tenants shipped at once.
    pub concurrency: usize,
    /// Attempts per block in one sync before it is left to the next sync.
    pub attempts: u32,
    /// Wait after the first failed attempt; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Bytes buffered per uploaded file (larger files go up as multipart uploads of parts
    /// this size): the memory bound of one upload.
    pub part_size: usize,
    /// `thanos.source` written into the uploaded `meta.json` (Mimir: `ingester`).
    pub source: String,
}

impl ShipperConfig {
    /// Mimir's defaults for the blocks under `tsdb_dir`.
    pub fn new(tsdb_dir: impl Into<PathBuf>) -> ShipperConfig {
        ShipperConfig {
            tsdb_dir: tsdb_dir.into(),
            interval: Duration::from_secs(60),
            concurrency: 10,
            attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            part_size: 8 << 20,
            source: "ingester".to_owned(),
        }
    }
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks uploaded by this sync, as `(tenant, block)`.
    pub uploaded: Vec<(String, Ulid)>,
    /// Blocks found complete in the bucket (a crash after their `meta.json` upload) and
    /// recorded without uploading them again.
    pub adopted: Vec<(String, Ulid)>,
    /// Blocks already recorded as shipped.
    pub already_shipped: usize,
    /// Blocks left for the next sync after every attempt failed.
    pub failed: usize,
    /// Block directories whose `meta.json` is unreadable (skipped).
    pub invalid: usize,
}

impl SyncReport {
    fn absorb(&mut self, o: SyncReport) {
        self.uploaded.extend(o.uploaded);
        self.adopted.extend(o.adopted);
        self.already_shipped += o.already_shipped;
        self.failed += o.failed;
        self.invalid += o.invalid;
    }
}

/// Uploads the finished blocks of every tenant under a TSDB directory to a bucket.
#[derive(Debug)]
pub struct Shipper {
    bucket: Arc<dyn ObjectStore>,
    cfg: ShipperConfig,
    metrics: ShipperMetrics,
    /// Tenant -> blocks complete in the bucket that still exist locally (rebuilt by each
    /// sync from the local blocks, so bounded by them).
    shipped: Mutex<HashMap<String, BTreeSet<Ulid>>>,
    /// One sync at a time.
    sync_lock: tokio::sync::Mutex<()>,
}

fn now_secs() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

/// Bucket path `<tenant>/<ulid>/<rel>` (`rel` may hold `/`).
fn object_path(tenant: &str, ulid: Ulid, rel: &str) -> ObjectPath {
    let parts = [PathPart::from(tenant), PathPart::from(ulid.to_string())]
        .into_iter()
        .chain(rel.split('/').map(PathPart::from));
    ObjectPath::from_iter(parts)
}

impl Shipper {
    /// A shipper of the blocks under `cfg.tsdb_dir` to `bucket`.
    pub fn new(bucket: Arc<dyn ObjectStore>, cfg: ShipperConfig, metrics: ShipperMetrics) -> Self {
        Shipper {
            bucket,
            cfg,
            metrics,
            shipped: Mutex::new(HashMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The metrics this shipper updates.
    pub fn metrics(&self) -> &ShipperMetrics {
        &self.metrics
    }

    /// Whether `block` of `tenant` is complete in the bucket, so local retention may delete
    /// it. Answers from the last sync, or from the tenant's marker file before any sync.
    pub fn is_shipped(&self, tenant: &str, block: Ulid) -> bool {
        let mut shipped = self.shipped.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = shipped.get(tenant) {
            return set.contains(&block);
        }
        let dir = self.cfg.tsdb_dir.join(tenant);
        let set: BTreeSet<Ulid> = match ShippedMarker::read(&dir) {
            Ok(Some(m)) => m.shipped.into_keys().collect(),
            _ => return false,
        };
        let found = set.contains(&block);
        shipped.insert(tenant.to_owned(), set);
        found
    }

    /// Runs a sync now, then one every interval, until `cancel` fires. Errors are logged
    /// and counted; failed blocks are retried by the next sync.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if self.cfg.interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                r = self.sync() => match r {
                    Ok(report) if !report.uploaded.is_empty() || !report.adopted.is_empty() => {
                        tracing::info!(
                            uploaded = report.uploaded.len(),
                            adopted = report.adopted.len(),
                            "shipper sync done"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "shipper sync failed"),
                },
                () = cancel.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(self.cfg.interval) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Ships every tenant's finished blocks that are not in the bucket yet.
    pub async fn sync(&self) -> Result<SyncReport, ShipError> {
        let _one = self.sync_lock.lock().await;
        let result = self.sync_all().await;
        self.metrics.dir_syncs.inc();
        let failed = match &result {
            Ok(r) => r.failed > 0,
            Err(_) => true,
        };
        if failed {
            self.metrics.dir_sync_failures.inc();
        }
        result
    }

    async fn sync_all(&self) -> Result<SyncReport, ShipError> {
        let tenants = self.tenants()?;
        let mut report = SyncReport::default();
        let mut last_err = None;
        let mut oldest_unshipped: Option<u64> = None;
        let mut results = futures::stream::iter(tenants)
            .map(|t| async move {
                let r = self.sync_tenant(&t).await;
                (t, r)
            })
            .buffer_unordered(self.cfg.concurrency.max(1));
        while let Some((tenant, r)) = results.next().await {
            match r {
                Ok((rep, oldest)) => {
                    report.absorb(rep);
                    oldest_unshipped = match (oldest_unshipped, oldest) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Err(e) => {
                    tracing::warn!(tenant, error = %e, "shipping a tenant's blocks failed");
                    report.failed += 1;
                    last_err = Some(e.to_string());
                }
            }
        }
        self.metrics
            .oldest_unshipped
            .set(oldest_unshipped.map_or(0.0, |ms| ms as f64 / 1000.0));
        if report.failed > 0 {
            return Err(ShipError::UploadsFailed {
                failed: report.failed,
                last: last_err.unwrap_or_else(|| "see the log".into()),
            });
        }
        Ok(report)
    }

    /// Tenant directories under the TSDB directory (sorted).
    fn tenants(&self) -> Result<Vec<String>, ShipError> {
        let dir = &self.cfg.tsdb_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ShipError::io(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ShipError::io(dir, e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Some(name) = entry.file_name().to_str()
                && !name.starts_with('.')
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Ships one tenant's blocks; returns the report and the ULID time (ms) of the oldest
    /// block left unshipped.
    async fn sync_tenant(&self, tenant: &str) -> Result<(SyncReport, Option<u64>), ShipError> {
        let dir = self.cfg.tsdb_dir.join(tenant);
        let (blocks, invalid) = list_blocks(&dir)?;
        let mut report = SyncReport {
            invalid: invalid.len(),
            ..SyncReport::default()
        };
        for e in &invalid {
            tracing::warn!(tenant, error = %e, "skipping a block directory");
        }
        if blocks.is_empty() && !dir.join(crate::marker::MARKER_FILE).exists() {
            return Ok((report, None));
        }
        let previous = match ShippedMarker::read(&dir) {
            Ok(m) => m.unwrap_or_else(ShippedMarker::new),
            Err(e) => {
                // The bucket check below re-finds what was shipped; nothing is uploaded twice.
                tracing::warn!(tenant, error = %e, "unreadable shipper marker, rebuilding it");
                ShippedMarker::new()
            }
        };
        // Only blocks still on disk are kept: the marker stays bounded by the local blocks.
        let mut marker = ShippedMarker::new();
        let mut oldest = None;
        for block in &blocks {
            let id = block.meta.ulid;
            if let Some(&at) = previous.shipped.get(&id) {
                marker.shipped.insert(id, at);
                report.already_shipped += 1;
                continue;
            }
            match self.ship_block(tenant, block).await {
                Ok(uploaded) => {
                    marker.shipped.insert(id, now_secs());
                    // Record at once: a crash later in this sync re-checks nothing shipped.
                    marker.write(&dir)?;
                    if uploaded {
                        report.uploaded.push((tenant.to_owned(), id));
                    } else {
                        report.adopted.push((tenant.to_owned(), id));
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant, block = %id, error = %e, "block not shipped; retried next sync");
                    report.failed += 1;
                    let t = id.timestamp_ms();
                    oldest = Some(oldest.map_or(t, |o: u64| o.min(t)));
                }
            }
        }
        if marker != previous {
            marker.write(&dir)?;
        }
        let set = marker.shipped.into_keys().collect();
        self.shipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned(), set);
        Ok((report, oldest))
    }

    /// Ships one block with retries: `Ok(true)` uploaded, `Ok(false)` already complete in
    /// the bucket. Each attempt first asks the bucket for the block's `meta.json`, so an
    /// attempt whose answer was lost after the upload completed is not repeated.
    async fn ship_block(&self, tenant: &str, block: &LocalBlock) -> Result<bool, ShipError> {
        let id = block.meta.ulid;
        let mut backoff = self.cfg.initial_backoff;
        let attempts = self.cfg.attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = match self.bucket.head(&object_path(tenant, id, META_FILE)).await {
                Ok(_) => {
                    tracing::info!(tenant, block = %id, "block already complete in the bucket; recorded as shipped");
                    return Ok(false);
                }
                Err(object_store::Error::NotFound { .. }) => {
                    self.metrics.uploads.inc();
                    self.upload_block(tenant, block).await
                }
                Err(e) => {
                    self.metrics.uploads.inc();
                    Err(e.into())
                }
            };
            match result {
                Ok(()) => {
                    self.metrics.last_success.set(now_secs());
                    tracing::info!(tenant, block = %id, "uploaded block");
                    return Ok(true);
                }
                Err(e) => {
                    self.metrics.upload_failures.inc();
                    if attempt >= attempts {
                        return Err(e);
                    }
                    tracing::debug!(tenant, block = %id, attempt, error = %e, "block upload failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.cfg.max_backoff);
                    attempt += 1;
                }
            }
        }
    }

    /// Uploads the data files, then `meta.json` with Thanos' section added.
    async fn upload_block(&self, tenant: &str, block: &LocalBlock) -> Result<(), ShipError> {
        let id = block.meta.ulid;
        let files = block.data_files()?;
        for (rel, _) in &files {
            self.upload_file(&block.dir.join(rel), object_path(tenant, id, rel))
                .await?;
        }
        let meta = self.bucket_meta(block, &files);
        let bytes = serde_json::to_vec_pretty(&meta).expect("JSON values serialize");
        self.bucket
            .put(&object_path(tenant, id, META_FILE), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Streams one file into the bucket (whole object or nothing: a failed multipart upload
    /// is aborted).
    async fn upload_file(&self, local: &Path, to: ObjectPath) -> Result<(), ShipError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| ShipError::io(local, e))?;
        let mut w = BufWriter::with_capacity(Arc::clone(&self.bucket), to, self.cfg.part_size)
            .with_max_concurrency(2);
        let copied = async {
            tokio::io::copy(&mut file, &mut w).await?;
            w.shutdown().await
        }
        .await;
        if let Err(e) = copied {
            let _ = w.abort().await;
            return Err(ShipError::io(local, e));
        }
        Ok(())
    }

    /// The `meta.json` uploaded: the local one plus the `thanos` section Mimir's and Thanos'
    /// readers use (source, resolution 0, no external labels, the files and their sizes).
    fn bucket_meta(&self, block: &LocalBlock, files: &[(String, u64)]) -> serde_json::Value {
        let mut meta = block.meta.raw.clone();
        let segments: Vec<String> = files
            .iter()
            .filter_map(|(rel, _)| rel.strip_prefix("chunks/").map(str::to_owned))
            .collect();
        let mut listed: Vec<serde_json::Value> = files
            .iter()
            .map(|(rel, size)| serde_json::json!({"rel_path": rel, "size_bytes": size}))
            .collect();
        listed.push(serde_json::json!({"rel_path": META_FILE}));
        let thanos = serde_json::json!({
            "labels": {},
            "downsample": {"resolution": 0},
            "source": self.cfg.source,
            "segment_files": segments,
            "files": listed,
        });
        if let Some(obj) = meta.as_object_mut() {
            obj.insert("thanos".to_owned(), thanos);
        }
        meta
    }
}
