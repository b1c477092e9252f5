//! Mimir's scale-down endpoints on an ingester, the ones the rollout-operator calls:
//!
//! - `/ingester/prepare-instance-ring-downscale`: GET answers `{"timestamp":T}`, the Unix
//!   second the entry became read-only (0 when it is not); POST makes the entry read-only
//!   (again: the timestamp stays) and DELETE clears it, both answering like GET. A read-only
//!   instance gets no new series and leaves every new shuffle shard.
//! - `/ingester/prepare-shutdown`: GET answers `set` or `unset`; POST writes a marker file
//!   in the WAL directory and makes the next shutdown unregister from the ring; DELETE
//!   removes the marker and restores the configured behaviour. Both answer 204. The marker
//!   survives a crash: a node that starts with it present is prepared again.
//!
//! Both answer 503 while the ingester is starting or stopping (as Mimir's do outside the
//! Running state).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ringkit_lifecycle::Lifecycler;

/// Mimir's marker file name, in the ingester's data directory.
pub(crate) const MARKER_FILE: &str = "shutdown-requested.txt";

/// What the two endpoints share with the node.
pub(crate) struct Prepare {
    lifecycler: Arc<Lifecycler>,
    marker: PathBuf,
    /// The configured unregister-on-shutdown, restored by DELETE prepare-shutdown.
    configured_unregister: bool,
    /// True between "joined the ring" and "shutting down" (Mimir's Running state).
    running: AtomicBool,
    /// `cortex_ingester_prepare_shutdown_requested`: 1 while prepared for shutdown.
    requested: Gauge,
    /// With ingest storage: the partition lifecycler, which prepare-shutdown tells not
    /// to recreate the partition and to remove the owner on shutdown (as Mimir does).
    partition: std::sync::OnceLock<Arc<ringkit_lifecycle::PartitionInstanceLifecycler>>,
}

impl Prepare {
    /// Registers the gauge; a marker left by an earlier run prepares this one at once.
    pub(crate) fn new(
        lifecycler: Arc<Lifecycler>,
        data_dir: &Path,
        registry: &mut Registry,
    ) -> Arc<Prepare> {
        let requested = Gauge::default();
        registry.register(
            "cortex_ingester_prepare_shutdown_requested",
            "1 if the ingester has been requested to prepare for shutdown via endpoint or marker file",
            requested.clone(),
        );
        let p = Arc::new(Prepare {
            configured_unregister: lifecycler.unregister_on_shutdown(),
            lifecycler,
            marker: data_dir.join(MARKER_FILE),
            running: AtomicBool::new(false),
            requested,
            partition: std::sync::OnceLock::new(),
        });
        if p.marker.exists() {
            tracing::info!(path = %p.marker.display(), "prepare-shutdown marker found at start-up");
            p.prepared(true);
        }
        p
    }

    /// Marks the ingester running (serving) or not; the endpoints answer 503 when not.
    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    fn prepared(&self, on: bool) {
        self.lifecycler
            .set_unregister_on_shutdown(on || self.configured_unregister);
        if let Some(p) = self.partition.get() {
            p.set_create_partition_on_startup(!on);
            p.set_remove_owner_on_shutdown(on);
        }
        self.requested.set(i64::from(on));
    }

    /// Makes prepare-shutdown also prepare the partition lifecycler (ingest storage),
    /// taking over the current state (a marker found at start-up included).
    pub(crate) fn set_partition_lifecycler(
        &self,
        lifecycler: Arc<ringkit_lifecycle::PartitionInstanceLifecycler>,
    ) {
        if self.partition.set(lifecycler).is_ok() {
            self.prepared(self.requested.get() == 1);
        }
    }

    /// At the end of a clean shutdown: the marker has done its job (Mimir removes it too).
    pub(crate) fn remove_marker(&self) {
        if let Err(e) = std::fs::remove_file(&self.marker)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.marker.display(), error = %e, "removing the prepare-shutdown marker");
        }
    }

    /// The two routes.
    pub(crate) fn router(self: &Arc<Prepare>) -> Router {
        Router::new()
            .route("/ingester/prepare-instance-ring-downscale", any(downscale))
            .route("/ingester/prepare-shutdown", any(shutdown))
            .with_state(Arc::clone(self))
    }
}

async fn downscale(State(p): State<Arc<Prepare>>, method: Method) -> Response {
    if !p.running.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let change = match method {
        Method::POST => Some(true),
        Method::DELETE => Some(false),
        _ => None,
    };
    if let Some(read_only) = change {
        if let Err(e) = p.lifecycler.set_read_only(read_only).await {
            tracing::error!(error = %e, read_only, "changing the ring entry's read-only mode");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
        tracing::info!(read_only, "changed the ring entry's read-only mode");
    }
    let (read_only, since) = p.lifecycler.read_only();
    let timestamp = if read_only { since } else { 0 };
    axum::Json(serde_json::json!({ "timestamp": timestamp })).into_response()
}

async fn shutdown(State(p): State<Arc<Prepare>>, method: Method) -> Response {
    if !p.running.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let failed = |what: &str, e: std::io::Error| {
        tracing::error!(path = %p.marker.display(), error = %e, "{what} the prepare-shutdown marker");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    };
    match method {
        Method::GET => match p.marker.try_exists() {
            Ok(true) => "set\n".into_response(),
            Ok(false) => "unset\n".into_response(),
            Err(e) => failed("checking", e),
        },
        Method::POST => {
            // Only the file's presence matters; it holds the Unix second it was made.
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Err(e) = write_synced(&p.marker, format!("{stamp}\n").as_bytes()) {
                return failed("creating", e);
            }
            p.prepared(true);
            tracing::info!(path = %p.marker.display(), "created the prepare-shutdown marker");
            StatusCode::NO_CONTENT.into_response()
        }
        Method::DELETE => {
            if let Err(e) = std::fs::remove_file(&p.marker)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return failed("removing", e);
            }
            p.prepared(false);
            tracing::info!(path = %p.marker.display(), "removed the prepare-shutdown marker");
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Writes the marker durably: it must still be there if the machine restarts.
fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
