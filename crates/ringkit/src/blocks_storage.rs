//! Mimir's `-blocks-storage.*` flags: which bucket finished TSDB blocks are shipped to, and
//! how often; plus `ringkit ship`, which ships a TSDB directory's blocks once (an operator
//! tool, and the process the crash tests kill mid-upload).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use ringkit_ship::{BucketConfig, RequestRetry, Shipper, ShipperConfig, ShipperMetrics};

use crate::duration::parse_duration;

/// Object storage of the blocks (flag names and defaults as Mimir's).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BlocksStorageArgs {
    /// Backend: filesystem, s3, gcs or azure. `ringkit ship` takes filesystem when it is
    /// not given; a `ringkit node` ingester ships its blocks only when it is given (so a
    /// node never writes a bucket nobody asked for).
    #[arg(long = "blocks-storage.backend",
          value_parser = ["filesystem", "s3", "gcs", "azure"])]
    pub(crate) backend: Option<String>,
    /// Filesystem backend: the bucket's root directory.
    #[arg(long = "blocks-storage.filesystem.dir", default_value = "blocks")]
    pub(crate) filesystem_dir: PathBuf,
    /// S3: endpoint `host[:port]` (empty: AWS for the region).
    #[arg(long = "blocks-storage.s3.endpoint", default_value = "")]
    pub(crate) s3_endpoint: String,
    /// S3: bucket name.
    #[arg(long = "blocks-storage.s3.bucket-name", default_value = "")]
    pub(crate) s3_bucket_name: String,
    /// S3: region (empty: us-east-1).
    #[arg(long = "blocks-storage.s3.region", default_value = "")]
    pub(crate) s3_region: String,
    /// S3: access key id (empty: environment or instance credentials).
    #[arg(long = "blocks-storage.s3.access-key-id", default_value = "")]
    pub(crate) s3_access_key_id: String,
    /// S3: secret access key.
    #[arg(
        long = "blocks-storage.s3.secret-access-key",
        default_value = "",
        hide_default_value = true
    )]
    pub(crate) s3_secret_access_key: String,
    /// S3: plain HTTP to the endpoint.
    #[arg(long = "blocks-storage.s3.insecure", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) s3_insecure: bool,
    /// GCS: bucket name.
    #[arg(long = "blocks-storage.gcs.bucket-name", default_value = "")]
    pub(crate) gcs_bucket_name: String,
    /// GCS: service account key JSON (empty: the environment's credentials).
    #[arg(
        long = "blocks-storage.gcs.service-account",
        default_value = "",
        hide_default_value = true
    )]
    pub(crate) gcs_service_account: String,
    /// Azure: storage account name.
    #[arg(long = "blocks-storage.azure.account-name", default_value = "")]
    pub(crate) azure_account_name: String,
    /// Azure: storage account key.
    #[arg(
        long = "blocks-storage.azure.account-key",
        default_value = "",
        hide_default_value = true
    )]
    pub(crate) azure_account_key: String,
    /// Azure: container name.
    #[arg(long = "blocks-storage.azure.container-name", default_value = "")]
    pub(crate) azure_container_name: String,
    /// Azure: endpoint suffix (empty: blob.core.windows.net).
    #[arg(long = "blocks-storage.azure.endpoint-suffix", default_value = "")]
    pub(crate) azure_endpoint_suffix: String,
    /// How often finished blocks are shipped (0: never).
    #[arg(long = "blocks-storage.tsdb.ship-interval", default_value = "1m", value_parser = parse_duration)]
    pub(crate) ship_interval: Duration,
    /// Tenants shipped at once.
    #[arg(long = "blocks-storage.tsdb.ship-concurrency", default_value_t = ShipperConfig::new("").concurrency)]
    pub(crate) ship_concurrency: usize,
}

impl BlocksStorageArgs {
    /// The backend's name (filesystem when none was given, as Mimir's default).
    pub(crate) fn backend_name(&self) -> &str {
        self.backend.as_deref().unwrap_or("filesystem")
    }

    /// The bucket the flags describe.
    pub(crate) fn bucket_config(&self) -> BucketConfig {
        match self.backend_name() {
            "s3" => BucketConfig::S3 {
                endpoint: self.s3_endpoint.clone(),
                bucket_name: self.s3_bucket_name.clone(),
                region: self.s3_region.clone(),
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
                insecure: self.s3_insecure,
            },
            "gcs" => BucketConfig::Gcs {
                bucket_name: self.gcs_bucket_name.clone(),
                service_account: self.gcs_service_account.clone(),
            },
            "azure" => BucketConfig::Azure {
                account_name: self.azure_account_name.clone(),
                account_key: self.azure_account_key.clone(),
                container_name: self.azure_container_name.clone(),
                endpoint_suffix: self.azure_endpoint_suffix.clone(),
            },
            _ => BucketConfig::Filesystem {
                dir: self.filesystem_dir.clone(),
            },
        }
    }

    /// The shipper's config for the blocks under `tsdb_dir` (interval, concurrency).
    pub(crate) fn shipper_config(&self, tsdb_dir: PathBuf) -> ShipperConfig {
        let mut cfg = ShipperConfig::new(tsdb_dir);
        cfg.interval = self.ship_interval;
        cfg.concurrency = self.ship_concurrency;
        cfg
    }

    /// A shipper of the blocks under `tsdb_dir` to the configured bucket, its metrics
    /// registered in `registry`. Run it with `tokio::spawn(shipper.run(cancel))`.
    pub(crate) fn shipper(
        &self,
        tsdb_dir: PathBuf,
        registry: &mut Registry,
    ) -> anyhow::Result<Arc<Shipper>> {
        let bucket = ringkit_ship::open_bucket(&self.bucket_config(), &RequestRetry::default())
            .with_context(|| format!("opening the {} blocks bucket", self.backend_name()))?;
        Ok(Arc::new(Shipper::new(
            bucket,
            self.shipper_config(tsdb_dir),
            ShipperMetrics::register(registry),
        )))
    }
}

/// Flags of `ringkit ship`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ShipArgs {
    /// TSDB directory: one directory per tenant, finished blocks (`<ULID>/`) inside.
    #[arg(long = "blocks-storage.tsdb.dir", default_value = "./tsdb/")]
    pub(crate) tsdb_dir: PathBuf,
    /// Attempts per block before giving up.
    #[arg(long = "ship.attempts", default_value_t = ShipperConfig::new("").attempts)]
    pub(crate) attempts: u32,
    /// Wait after a failed attempt (doubles each time).
    #[arg(long = "ship.backoff", default_value = "1s", value_parser = parse_duration)]
    pub(crate) backoff: Duration,
    #[command(flatten)]
    pub(crate) storage: BlocksStorageArgs,
}

/// `ringkit ship`: one sync of every tenant's finished blocks. Prints a line per block
/// uploaded or adopted and a summary; exit code 1 when a block could not be shipped.
pub(crate) fn main(args: ShipArgs) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringkit ship: {e}");
            return 1;
        }
    };
    match rt.block_on(ship_once(&args)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("ringkit ship: {e:#}");
            1
        }
    }
}

async fn ship_once(args: &ShipArgs) -> anyhow::Result<bool> {
    let bucket = ringkit_ship::open_bucket(&args.storage.bucket_config(), &RequestRetry::default())
        .with_context(|| format!("opening the {} blocks bucket", args.storage.backend_name()))?;
    let mut cfg = ShipperConfig::new(&args.tsdb_dir);
    cfg.concurrency = args.storage.ship_concurrency;
    cfg.attempts = args.attempts;
    cfg.initial_backoff = args.backoff;
    let metrics = ShipperMetrics::register(&mut Registry::default());
    let shipper = Shipper::new(bucket, cfg, metrics.clone());
    let result = shipper.sync().await;
    let ok = result.is_ok();
    match result {
        Ok(r) => {
            for (t, b) in &r.uploaded {
                println!("uploaded {t}/{b}");
            }
            for (t, b) in &r.adopted {
                println!("adopted {t}/{b}");
            }
            println!(
                "shipped: {} uploaded, {} adopted, {} already shipped, {} invalid; attempts {}, failed attempts {}",
                r.uploaded.len(),
                r.adopted.len(),
                r.already_shipped,
                r.invalid,
                metrics.uploads(),
                metrics.upload_failures()
            );
        }
        Err(e) => println!(
            "not shipped: {e}; attempts {}, failed attempts {}",
            metrics.uploads(),
            metrics.upload_failures()
        ),
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        ship: ShipArgs,
    }

    fn parse(args: &[&str]) -> ShipArgs {
        Cli::try_parse_from(std::iter::once("ringkit").chain(args.iter().copied()))
            .unwrap()
            .ship
    }

    #[test]
    fn defaults_are_mimirs() {
        let a = parse(&[]);
        assert_eq!(a.storage.backend_name(), "filesystem");
        assert_eq!(a.storage.ship_interval, Duration::from_secs(60));
        assert_eq!(a.storage.ship_concurrency, 10);
        assert_eq!(a.tsdb_dir, PathBuf::from("./tsdb/"));
        match a.storage.bucket_config() {
            BucketConfig::Filesystem { dir } => assert_eq!(dir, PathBuf::from("blocks")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_backend_takes_its_own_flags() {
        let a = parse(&[
            "--blocks-storage.backend=s3",
            "--blocks-storage.s3.endpoint=minio:9000",
            "--blocks-storage.s3.bucket-name=blocks",
            "--blocks-storage.s3.access-key-id=ak",
            "--blocks-storage.s3.secret-access-key=sk",
            "--blocks-storage.s3.insecure=true",
            "--blocks-storage.tsdb.ship-interval=30s",
        ]);
        assert_eq!(a.storage.ship_interval, Duration::from_secs(30));
        match a.storage.bucket_config() {
            BucketConfig::S3 {
                endpoint,
                bucket_name,
                access_key_id,
                secret_access_key,
                insecure,
                region,
            } => {
                assert_eq!(
                    (endpoint.as_str(), bucket_name.as_str(), region.as_str()),
                    ("minio:9000", "blocks", "")
                );
                assert_eq!(
                    (access_key_id.as_str(), secret_access_key.as_str()),
                    ("ak", "sk")
                );
                assert!(insecure);
            }
            other => panic!("{other:?}"),
        }
        let a = parse(&[
            "--blocks-storage.backend=azure",
            "--blocks-storage.azure.account-name=acct",
            "--blocks-storage.azure.container-name=c",
        ]);
        assert!(matches!(
            a.storage.bucket_config(),
            BucketConfig::Azure { account_name, container_name, .. }
                if account_name == "acct" && container_name == "c"
        ));
        let a = parse(&[
            "--blocks-storage.backend=gcs",
            "--blocks-storage.gcs.bucket-name=g",
        ]);
        assert!(matches!(
            a.storage.bucket_config(),
            BucketConfig::Gcs { bucket_name, .. } if bucket_name == "g"
        ));
        assert!(
            Cli::try_parse_from(["ringkit", "--blocks-storage.backend=swift"]).is_err(),
            "swift is not offered"
        );
    }

    #[test]
    fn a_shipper_opens_on_a_filesystem_bucket_and_registers_mimirs_metrics() {
        let t = tempfile::tempdir().unwrap();
        let bucket = t.path().join("bucket");
        let a = parse(&[&format!(
            "--blocks-storage.filesystem.dir={}",
            bucket.display()
        )]);
        let mut registry = Registry::default();
        let s = a
            .storage
            .shipper(t.path().join("tsdb"), &mut registry)
            .unwrap();
        assert!(bucket.is_dir(), "the bucket root is created");
        assert!(!s.is_shipped("t", ringkit_ship::Ulid::nil()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("cortex_ingester_shipper_uploads_total"),
            "{text}"
        );
    }
}
