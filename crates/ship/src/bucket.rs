//! Opening the bucket blocks go to: the backends Mimir's `-blocks-storage.backend` offers,
//! through the object_store crate. Cloud backends are cargo features (`s3`, `gcs`,
//! `azure`, on by default) because each brings an HTTP client with TLS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::error::ShipError;

/// Where blocks are stored, with the settings of Mimir's `-blocks-storage.*` flags.
#[derive(Clone, Debug)]
pub enum BucketConfig {
    /// A local directory (single node, tests): `-blocks-storage.filesystem.dir`.
    Filesystem {
        /// Root of the bucket; created when missing.
        dir: PathBuf,
    },
    /// Amazon S3 or an S3-compatible store (MinIO...).
    S3 {
        /// `host[:port]` (Mimir's form) or a full URL; empty: AWS for the region.
        endpoint: String,
        /// Bucket name.
        bucket_name: String,
        /// Region; empty: `us-east-1`.
        region: String,
        /// Access key; empty: the environment / instance credentials.
        access_key_id: String,
        /// Secret key.
        secret_access_key: String,
        /// Plain HTTP instead of HTTPS to the endpoint.
        insecure: bool,
    },
    /// Google Cloud Storage.
    Gcs {
        /// Bucket name.
        bucket_name: String,
        /// Service account key JSON (the content, as Mimir's flag); empty: the environment.
        service_account: String,
    },
    /// Azure Blob Storage.
    Azure {
        /// Storage account.
        account_name: String,
        /// Account key.
        account_key: String,
        /// Container.
        container_name: String,
        /// Endpoint suffix; empty: `blob.core.windows.net`.
        endpoint_suffix: String,
    },
}

/// Retries of single requests inside object_store's cloud clients (the shipper retries
/// whole blocks on top of this).
#[derive(Clone, Debug)]
pub struct RequestRetry {
    /// Retries of one request (0: none).
    pub max_retries: usize,
    /// Give up on a request after this long, retries included.
    pub timeout: Duration,
    /// First backoff; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl Default for RequestRetry {
    fn default() -> Self {
        RequestRetry {
            max_retries: 3,
            timeout: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn retry_config(r: &RequestRetry) -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: r.initial_backoff,
            max_backoff: r.max_backoff,
            base: 2.0,
        },
        max_retries: r.max_retries,
        retry_timeout: r.timeout,
    }
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120))
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn required(value: &str, flag: &str) -> Result<(), ShipError> {
    if value.is_empty() {
        return Err(ShipError::Config(format!("{flag} must be set")));
    }
    Ok(())
}

/// Opens the configured bucket. Nothing is contacted yet: a cloud bucket that is down shows
/// up as failed uploads, retried.
pub fn open_bucket(
    cfg: &BucketConfig,
    retry: &RequestRetry,
) -> Result<Arc<dyn ObjectStore>, ShipError> {
    #[cfg(not(any(feature = "s3", feature = "gcs", feature = "azure")))]
    let _ = retry;
    match cfg {
        BucketConfig::Filesystem { dir } => {
            std::fs::create_dir_all(dir).map_err(|e| ShipError::io(dir, e))?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(dir)?))
        }
        #[cfg(feature = "s3")]
        BucketConfig::S3 {
            endpoint,
            bucket_name,
            region,
            access_key_id,
            secret_access_key,
            insecure,
        } => {
            required(bucket_name, "-blocks-storage.s3.bucket-name")?;
            let region = if region.is_empty() {
                "us-east-1"
            } else {
                region
            };
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket_name)
                .with_region(region)
                .with_allow_http(*insecure)
                .with_retry(retry_config(retry))
                .with_client_options(client_options());
            if !endpoint.is_empty() {
                let url = if endpoint.contains("://") {
                    endpoint.clone()
                } else {
                    let scheme = if *insecure { "http" } else { "https" };
                    format!("{scheme}://{endpoint}")
                };
                // A custom endpoint (MinIO, Ceph...) is addressed path-style.
                b = b
                    .with_endpoint(url)
                    .with_virtual_hosted_style_request(false);
            }
            if !access_key_id.is_empty() {
                b = b
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
            }
            Ok(Arc::new(b.build()?))
        }
        #[cfg(feature = "gcs")]
        BucketConfig::Gcs {
            bucket_name,
            service_account,
        } => {
            required(bucket_name, "-blocks-storage.gcs.bucket-name")?;
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket_name)
                .with_retry(retry_config(retry))
                .with_client_options(client_options());
            if !service_account.is_empty() {
                b = b.with_service_account_key(service_account);
            }
            Ok(Arc::new(b.build()?))
        }
        #[cfg(feature = "azure")]
        BucketConfig::Azure {
            account_name,
            account_key,
            container_name,
            endpoint_suffix,
        } => {
            required(account_name, "-blocks-storage.azure.account-name")?;
            required(container_name, "-blocks-storage.azure.container-name")?;
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(account_name)
                .with_container_name(container_name)
                .with_retry(retry_config(retry))
                .with_client_options(client_options());
            if !account_key.is_empty() {
                b = b.with_access_key(account_key);
            }
            if !endpoint_suffix.is_empty() && endpoint_suffix != "blob.core.windows.net" {
                b = b.with_endpoint(format!("https://{account_name}.{endpoint_suffix}"));
            }
            Ok(Arc::new(b.build()?))
        }
        #[allow(unreachable_patterns)]
        other => Err(not_compiled_in(backend_name(other))),
    }
}

/// The error for a cloud backend this build left out: it names the cargo feature that
/// brings it in, since the `ringkit` binary ships without any by default.
#[cfg_attr(
    all(feature = "s3", feature = "gcs", feature = "azure"),
    allow(dead_code)
)]
fn not_compiled_in(backend: &str) -> ShipError {
    ShipError::Config(format!(
        "blocks storage backend {backend} is not compiled into this build: \
         rebuild with the cargo feature {backend} (e.g. `cargo build --release -p ringkit --features {backend}`)"
    ))
}

/// The `-blocks-storage.backend` value of a configuration.
pub(crate) fn backend_name(cfg: &BucketConfig) -> &'static str {
    match cfg {
        BucketConfig::Filesystem { .. } => "filesystem",
        BucketConfig::S3 { .. } => "s3",
        BucketConfig::Gcs { .. } => "gcs",
        BucketConfig::Azure { .. } => "azure",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_backend_left_out_of_the_build_names_the_feature_that_brings_it() {
        let e = super::not_compiled_in("gcs").to_string();
        assert!(e.contains("backend gcs is not compiled"), "{e}");
        assert!(e.contains("--features gcs"), "{e}");
    }
}
