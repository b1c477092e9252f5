//! Choosing and building the ring's KV store from flags (`--kv.store=...`), the one place
//! that knows every backend (style.md §7: the kv crate knows none).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use ringkit_kv::{
    Client, ClientLabels, ClientOptions, EtcdConfig, EtcdStore, InstrumentedClient, KvMetrics,
    MemoryStore, MultiClient, MultiConfig, PrefixClient,
};
use ringkit_lifecycle::{RingDesc, RingDescCodec};

use crate::duration::parse_duration;

/// KV store flags, named like dskit's.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KvArgs {
    /// Backend holding the ring: inmemory (this process only), etcd, or multi (two stores
    /// with mirroring, for migrations).
    #[arg(long = "kv.store", default_value = "inmemory", value_parser = ["inmemory", "etcd", "multi"])]
    pub(crate) store: String,
    /// Prefix of every key (the ring key `ring` is stored as `collectors/ring`).
    #[arg(long = "kv.prefix", default_value = "collectors/")]
    pub(crate) prefix: String,
    /// Largest encoded value accepted (bytes).
    #[arg(long = "kv.max-value-size", default_value_t = 1536 * 1024)]
    pub(crate) max_value_size: usize,
    /// CAS attempts before giving up.
    #[arg(long = "etcd.max-retries", default_value_t = 10)]
    pub(crate) max_retries: u32,
    /// etcd endpoints, comma-separated `host:port` or URLs.
    #[arg(long = "etcd.endpoints", value_delimiter = ',')]
    pub(crate) etcd_endpoints: Vec<String>,
    /// etcd dial timeout.
    #[arg(long = "etcd.dial-timeout", default_value = "10s", value_parser = parse_duration)]
    pub(crate) etcd_dial_timeout: Duration,
    /// etcd user name (enables authentication).
    #[arg(long = "etcd.username", default_value = "")]
    pub(crate) etcd_username: String,
    /// etcd password.
    #[arg(
        long = "etcd.password",
        default_value = "",
        env = "RINGKIT_ETCD_PASSWORD"
    )]
    pub(crate) etcd_password: String,
    /// multi: the primary store (inmemory or etcd).
    #[arg(long = "multi.primary", default_value = "")]
    pub(crate) multi_primary: String,
    /// multi: the secondary store (inmemory or etcd).
    #[arg(long = "multi.secondary", default_value = "")]
    pub(crate) multi_secondary: String,
    /// multi: also write every CAS result to the secondary.
    #[arg(long = "multi.mirror-enabled", default_value_t = false)]
    pub(crate) multi_mirror_enabled: bool,
    /// multi: bound on one mirror write.
    #[arg(long = "multi.mirror-timeout", default_value = "2s", value_parser = parse_duration)]
    pub(crate) multi_mirror_timeout: Duration,
}

/// Builds the typed ring client for `args`, instrumented with dskit's KV metrics.
pub(crate) fn build_ring_client(
    args: &KvArgs,
    memory: &MemoryStore,
    registry: &mut Registry,
) -> anyhow::Result<Arc<dyn Client<RingDesc>>> {
    let options = ClientOptions {
        max_value_size: args.max_value_size,
        max_cas_attempts: args.max_retries,
    };
    let raw: Arc<dyn Client<RingDesc>> = match args.store.as_str() {
        "multi" => {
            let primary =
                backend(&args.multi_primary, args, memory, &options).context("--multi.primary")?;
            let secondary = backend(&args.multi_secondary, args, memory, &options)
                .context("--multi.secondary")?;
            let cfg = MultiConfig {
                primary: args.multi_primary.clone(),
                secondary: args.multi_secondary.clone(),
                mirror_enabled: args.multi_mirror_enabled,
                mirror_timeout: args.multi_mirror_timeout,
            };
            Arc::new(MultiClient::new(&cfg, primary, secondary, Some(registry))?)
        }
        other => backend(other, args, memory, &options)?,
    };
    let metrics = KvMetrics::register(registry);
    let instrumented =
        InstrumentedClient::new(raw, metrics, ClientLabels::new("ring", "ring", &args.store));
    Ok(Arc::new(PrefixClient::new(
        instrumented,
        args.prefix.clone(),
    )))
}

fn backend(
    name: &str,
    args: &KvArgs,
    memory: &MemoryStore,
    options: &ClientOptions,
) -> anyhow::Result<Arc<dyn Client<RingDesc>>> {
    match name {
        "inmemory" => Ok(Arc::new(
            memory.client(RingDescCodec::shared(), options.clone()),
        )),
        "etcd" => {
            anyhow::ensure!(
                !args.etcd_endpoints.is_empty(),
                "--etcd.endpoints is required with the etcd store"
            );
            let cfg = EtcdConfig {
                endpoints: args.etcd_endpoints.clone(),
                dial_timeout: args.etcd_dial_timeout,
                username: args.etcd_username.clone(),
                password: args.etcd_password.clone(),
                ..EtcdConfig::default()
            };
            let store = EtcdStore::new(&cfg).context("etcd store")?;
            Ok(Arc::new(
                store.client(RingDescCodec::shared(), options.clone()),
            ))
        }
        other => anyhow::bail!("unknown KV store {other:?} (inmemory or etcd)"),
    }
}
