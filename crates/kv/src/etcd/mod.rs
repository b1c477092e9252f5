//! The etcd v3 store.
//!
//! # Why our own gRPC client
//!
//! The `etcd-client` crate needs `protoc` at build time. This module instead speaks etcd's
//! gRPC API through tonic, with a proto of our own (`proto/etcd.proto`) that declares only
//! the messages and fields we use, with etcd's field numbers, compiled by `protox` in
//! `build.rs`. So the build needs no system tools, and the surface we depend on is a page
//! long: `KV.Range`, `KV.DeleteRange`, `KV.Txn`, `Watch.Watch` and `Auth.Authenticate`.
//!
//! # How the contract maps onto etcd
//!
//! - Values are stored as the codec's bytes, nothing else (as dskit does), so dskit and
//!   ringkit processes can share keys. etcd keeps no codec id: a wrong codec shows as
//!   [`Error::Decode`].
//! - CAS reads the key's `mod_revision` and writes with a transaction that compares it
//!   (0 for an absent key) before the put; a failed comparison is a conflict.
//! - A watch reads the current values first (delivering what it has not delivered yet),
//!   then opens a watch stream from the read's revision + 1. On any stream error it backs
//!   off (100 ms doubling to 5 s, reset once a stream is established) and starts again with
//!   a read, so it survives etcd restarts and compactions and never skips the latest value.
//! - With a username, the client calls `Authenticate` and sends the token in the `token`
//!   metadata of every request, re-authenticating once when etcd says the token is invalid.

mod config;
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
mod pb {
    tonic::include_proto!("etcdserverpb");
}

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub use config::EtcdConfig;

use crate::cas::{Backoff, CasStore, Stored, run_cas};
use crate::client::{CasFn, Client, ClientOptions, Value, WatchKeyFn, WatchPrefixFn};
use crate::codec::{Codec, ValueCodec};
use crate::error::Error;

use pb::auth_client::AuthClient;
use pb::kv_client::KvClient;
use pb::watch_client::WatchClient;

const STORE: &str = "etcd";
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(100);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Adds the auth token (if any) to every request.
#[derive(Clone, Default)]
struct TokenInterceptor {
    token: Arc<RwLock<Option<AsciiMetadataValue>>>,
}

impl TokenInterceptor {
    fn get(&self) -> Option<AsciiMetadataValue> {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set(&self, token: Option<AsciiMetadataValue>) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }
}

impl Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = self.get() {
            req.metadata_mut().insert("token", t);
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, TokenInterceptor>;

/// A connection to etcd, shared by the typed [`EtcdClient`]s made from it (clones share
/// the connection).
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient<Svc>,
    watch: WatchClient<Svc>,
    auth: AuthClient<Channel>,
    token: TokenInterceptor,
    /// Username and password, when authentication is on.
    credentials: Option<Arc<(String, String)>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("auth", &self.credentials.is_some())
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

fn store_err(op: &'static str, e: impl Into<crate::error::BoxError>) -> Error {
    Error::Store {
        store: STORE,
        op,
        source: e.into(),
    }
}

/// The `[key, range_end)` pair that selects every key starting with `prefix`.
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.as_bytes().to_vec(), end);
        }
    }
    // Empty prefix (or all 0xff): every key; etcd spells that key = range_end = "\0".
    (vec![0], vec![0])
}

impl EtcdStore {
    /// Prepares a connection to the configured endpoints. Dialling is lazy, so this
    /// succeeds while etcd is down and requests fail (and are retried) until it is up. Call
    /// it inside a Tokio runtime.
    pub fn new(config: &EtcdConfig) -> Result<Self, Error> {
        config.validate()?;
        let mut endpoints = Vec::new();
        for url in config.urls() {
            let ep = Endpoint::from_shared(url.clone())
                .map_err(|e| Error::Config(format!("etcd: bad endpoint {url:?}: {e}")))?
                .connect_timeout(config.dial_timeout)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(config.dial_timeout * 2)
                .keep_alive_while_idle(true);
            endpoints.push(tls::apply(ep, config)?);
        }
        let channel = if endpoints.len() == 1 {
            endpoints[0].connect_lazy()
        } else {
            Channel::balance_list(endpoints.into_iter())
        };
        let token = TokenInterceptor::default();
        let credentials = (!config.username.is_empty())
            .then(|| Arc::new((config.username.clone(), config.password.clone())));
        Ok(EtcdStore {
            kv: KvClient::with_interceptor(channel.clone(), token.clone()),
            watch: WatchClient::with_interceptor(channel.clone(), token.clone()),
            auth: AuthClient::new(channel),
            token,
            credentials,
            request_timeout: config.request_timeout,
        })
    }

    /// A typed client over this connection.
    pub fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> EtcdClient<V> {
        EtcdClient {
            store: self.clone(),
            codec: ValueCodec::new(codec, options.max_value_size),
            max_cas_attempts: options.max_cas_attempts,
        }
    }

    async fn authenticate(&self, op: &'static str) -> Result<(), Error> {
        let Some(creds) = &self.credentials else {
            return Ok(());
        };
        if self.token.get().is_some() {
            return Ok(());
        }
        let req = pb::AuthenticateRequest {
            name: creds.0.clone(),
            password: creds.1.clone(),
        };
        let mut auth = self.auth.clone();
        let resp = tokio::time::timeout(self.request_timeout, auth.authenticate(req))
            .await
            .map_err(|_| store_err(op, "authenticate timed out"))?
            .map_err(|s| store_err(op, s))?;
        let token = AsciiMetadataValue::try_from(resp.into_inner().token)
            .map_err(|e| store_err(op, format!("etcd returned an unusable auth token: {e}")))?;
        self.token.set(Some(token));
        Ok(())
    }

    /// Runs one unary call with the timeout and authentication handling.
    async fn unary<T, Fut>(
        &self,
        op: &'static str,
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut reauthenticated = false;
        loop {
            self.authenticate(op).await?;
            match tokio::time::timeout(self.request_timeout, call()).await {
                Err(_) => {
                    return Err(store_err(
                        op,
                        format!("no answer within {:?}", self.request_timeout),
                    ));
                }
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(s))
                    if s.code() == Code::Unauthenticated
                        && self.credentials.is_some()
                        && !reauthenticated =>
                {
                    // Tokens expire (etcd's simple tokens after 5 minutes): get a new one.
                    self.token.set(None);
                    reauthenticated = true;
                }
                Ok(Err(s)) => return Err(store_err(op, s)),
            }
        }
    }

    async fn range(
        &self,
        op: &'static str,
        key: Vec<u8>,
        range_end: Vec<u8>,
        keys_only: bool,
    ) -> Result<pb::RangeResponse, Error> {
        let req = pb::RangeRequest {
            key,
            range_end,
            keys_only,
            ..Default::default()
        };
        self.unary(op, || {
            let mut kv = self.kv.clone();
            let req = req.clone();
            async move { kv.range(req).await }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let req = pb::DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        self.unary("delete", || {
            let mut kv = self.kv.clone();
            let req = req.clone();
            async move { kv.delete_range(req).await }
        })
        .await
        .map(|_| ())
    }

    /// Delivers current values under `[key, range_end)` and then every change, as
    /// `(key, Some(bytes))` or `(key, None)` for a deletion of a key delivered before.
    async fn watch_raw(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        cancel: &CancellationToken,
        f: &mut (dyn FnMut(String, Option<Vec<u8>>) -> bool + Send),
    ) {
        let mut backoff = Backoff::new(WATCH_BACKOFF_MIN, WATCH_BACKOFF_MAX);
        // mod_revision of the value last delivered per key.
        let mut delivered: HashMap<String, i64> = HashMap::new();
        loop {
            // 1. Read what is there now, so nothing written while we were away is lost.
            let snapshot = tokio::select! {
                r = self.range("watch", key.clone(), range_end.clone(), false) => r,
                _ = cancel.cancelled() => return,
            };
            let resp = match snapshot {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "etcd watch: read failed, retrying");
                    if !backoff.sleep_or_cancel(cancel).await {
                        return;
                    }
                    continue;
                }
            };
            let revision = resp.header.map_or(0, |h| h.revision);
            let mut kvs = resp.kvs;
            kvs.sort_by_key(|kv| kv.mod_revision);
            let present: HashSet<&[u8]> = kvs.iter().map(|kv| kv.key.as_slice()).collect();
            let gone: Vec<String> = delivered
                .keys()
                .filter(|k| !present.contains(k.as_bytes()))
                .cloned()
                .collect();
            for k in gone {
                delivered.remove(&k);
                if !f(k, None) {
                    return;
                }
            }
            for kv in kvs {
                let Ok(k) = String::from_utf8(kv.key) else {
                    continue;
                };
                if delivered.get(&k) != Some(&kv.mod_revision) {
                    delivered.insert(k.clone(), kv.mod_revision);
                    if !f(k, Some(kv.value)) {
                        return;
                    }
                }
            }

            // 2. Follow changes after that read.
            let create = pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: key.clone(),
                        range_end: range_end.clone(),
                        start_revision: revision + 1,
                        ..Default::default()
                    },
                )),
            };
            // Keep the request side open: some servers end a watch when it closes.
            let requests =
                tokio_stream::StreamExt::chain(tokio_stream::once(create), tokio_stream::pending());
            let mut client = self.watch.clone();
            let opened = tokio::select! {
                r = client.watch(requests) => r,
                _ = cancel.cancelled() => return,
            };
            let mut stream = match opened {
                Ok(s) => s.into_inner(),
                Err(s) => {
                    tracing::warn!(error = %s, "etcd watch: could not open stream, retrying");
                    if s.code() == Code::Unauthenticated {
                        self.token.set(None);
                    }
                    if !backoff.sleep_or_cancel(cancel).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = cancel.cancelled() => return,
                };
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        tracing::warn!("etcd watch: stream ended, reconnecting");
                        break;
                    }
                    Err(s) => {
                        tracing::warn!(error = %s, "etcd watch: stream failed, reconnecting");
                        if s.code() == Code::Unauthenticated {
                            self.token.set(None);
                        }
                        break;
                    }
                };
                if resp.created {
                    backoff.reset();
                }
                if resp.canceled {
                    tracing::warn!(
                        reason = %resp.cancel_reason,
                        compact_revision = resp.compact_revision,
                        "etcd watch: cancelled by the server, re-reading"
                    );
                    break;
                }
                for ev in resp.events {
                    let Some(kv) = ev.kv else { continue };
                    let Ok(k) = String::from_utf8(kv.key) else {
                        continue;
                    };
                    if ev.r#type == pb::event::EventType::Delete as i32 {
                        if delivered.remove(&k).is_some() && !f(k, None) {
                            return;
                        }
                    } else if delivered.get(&k).is_none_or(|r| *r < kv.mod_revision) {
                        delivered.insert(k.clone(), kv.mod_revision);
                        if !f(k, Some(kv.value)) {
                            return;
                        }
                    }
                }
            }
            if !backoff.sleep_or_cancel(cancel).await {
                return;
            }
        }
    }
}

#[async_trait]
impl CasStore for EtcdStore {
    async fn read(&self, key: &str) -> Result<Option<Stored>, Error> {
        let resp = self
            .range("cas", key.as_bytes().to_vec(), Vec::new(), false)
            .await?;
        Ok(resp.kvs.into_iter().next().map(|kv| Stored {
            bytes: kv.value,
            codec_id: None,
            version: kv.mod_revision,
        }))
    }

    async fn write_if(
        &self,
        key: &str,
        seen: i64,
        bytes: Vec<u8>,
        _codec_id: &str,
    ) -> Result<bool, Error> {
        let req = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: pb::compare::CompareResult::Equal as i32,
                target: pb::compare::CompareTarget::Mod as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(pb::compare::TargetUnion::ModRevision(seen)),
                ..Default::default()
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: bytes,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        };
        let resp = self
            .unary("cas", || {
                let mut kv = self.kv.clone();
                let req = req.clone();
                async move { kv.txn(req).await }
            })
            .await?;
        Ok(resp.succeeded)
    }
}

/// A typed client of an [`EtcdStore`].
pub struct EtcdClient<V> {
    store: EtcdStore,
    codec: ValueCodec<V>,
    max_cas_attempts: u32,
}

impl<V: 'static> std::fmt::Debug for EtcdClient<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("store", &self.store)
            .field("codec", &self.codec.id())
            .finish()
    }
}

impl<V: Value> EtcdClient<V> {
    fn decode_for_watch(&self, key: &str, bytes: &[u8]) -> Option<V> {
        match self.codec.decode(key, bytes, None) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(key, error = %e, "etcd watch: skipping value that does not decode");
                None
            }
        }
    }
}

#[async_trait]
impl<V: Value> Client<V> for EtcdClient<V> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let (key, end) = prefix_range(prefix);
        let resp = self.store.range("list", key, end, true).await?;
        let mut keys: Vec<String> = resp
            .kvs
            .into_iter()
            .filter_map(|kv| String::from_utf8(kv.key).ok())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        let resp = self
            .store
            .range("get", key.as_bytes().to_vec(), Vec::new(), false)
            .await?;
        resp.kvs
            .into_iter()
            .next()
            .map(|kv| self.codec.decode(key, &kv.value, None))
            .transpose()
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.store.delete(key).await
    }

    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        run_cas(&self.store, &self.codec, key, self.max_cas_attempts, f).await
    }

    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        let mut g = |k: String, bytes: Option<Vec<u8>>| match bytes {
            None => f(None),
            Some(b) => match self.decode_for_watch(&k, &b) {
                Some(v) => f(Some(v)),
                None => true,
            },
        };
        self.store
            .watch_raw(key.as_bytes().to_vec(), Vec::new(), cancel, &mut g)
            .await
    }

    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    ) {
        let (key, end) = prefix_range(prefix);
        let mut g = |k: String, bytes: Option<Vec<u8>>| match bytes {
            None => true,
            Some(b) => match self.decode_for_watch(&k, &b) {
                Some(v) => f(&k, v),
                None => true,
            },
        };
        self.store.watch_raw(key, end, cancel, &mut g).await
    }
}

#[cfg(feature = "tls")]
mod tls {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

    use super::EtcdConfig;
    use crate::error::Error;

    fn read(what: &str, path: &str) -> Result<Vec<u8>, Error> {
        std::fs::read(path)
            .map_err(|e| Error::Config(format!("etcd: cannot read {what} {path:?}: {e}")))
    }

    pub(super) fn apply(ep: Endpoint, config: &EtcdConfig) -> Result<Endpoint, Error> {
        if !config.tls_enabled {
            return Ok(ep);
        }
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &config.tls_ca_path {
            tls = tls.ca_certificate(Certificate::from_pem(read("CA", ca)?));
        }
        if let (Some(cert), Some(key)) = (&config.tls_cert_path, &config.tls_key_path) {
            tls = tls.identity(Identity::from_pem(
                read("certificate", cert)?,
                read("key", key)?,
            ));
        }
        if let Some(name) = &config.tls_server_name {
            tls = tls.domain_name(name.clone());
        }
        ep.tls_config(tls)
            .map_err(|e| Error::Config(format!("etcd: bad TLS configuration: {e}")))
    }
}

#[cfg(not(feature = "tls"))]
mod tls {
    use tonic::transport::Endpoint;

    use super::EtcdConfig;
    use crate::error::Error;

    /// Without the `tls` feature, `validate` has already refused `tls_enabled`.
    pub(super) fn apply(ep: Endpoint, _config: &EtcdConfig) -> Result<Endpoint, Error> {
        Ok(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_covers_exactly_the_prefix() {
        assert_eq!(prefix_range("ab"), (b"ab".to_vec(), b"ac".to_vec()));
        assert_eq!(prefix_range(""), (vec![0], vec![0]));
        assert_eq!(
            prefix_range("a\u{7f}"),
            (b"a\x7f".to_vec(), b"a\x80".to_vec())
        );
    }
}

#[cfg(all(test, feature = "testsuite"))]
mod auth_tests {
    use super::*;
    use crate::client::CasDecision;
    use crate::codec::StringCodec;
    use crate::testsuite::{EtcdTarget, etcd_target};

    fn string_client(endpoint: &str, user: &str, password: &str) -> EtcdClient<String> {
        let mut config = EtcdConfig::with_endpoints([endpoint]);
        config.username = user.into();
        config.password = password.into();
        EtcdStore::new(&config)
            .unwrap()
            .client(Arc::new(StringCodec), ClientOptions::default())
    }

    async fn enable_auth(endpoint: &str, password: &str) {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .unwrap()
            .connect_lazy();
        let mut auth = AuthClient::new(channel);
        auth.user_add(pb::AuthUserAddRequest {
            name: "root".into(),
            password: password.into(),
        })
        .await
        .unwrap();
        auth.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: "root".into(),
            role: "root".into(),
        })
        .await
        .unwrap();
        auth.auth_enable(pb::AuthEnableRequest {}).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn username_and_password_authenticate_and_expired_tokens_are_renewed() {
        let EtcdTarget::Owned(server) = etcd_target(false) else {
            return;
        };
        let endpoint = server.endpoint();
        enable_auth(&endpoint, "s3cret").await;

        let anonymous = string_client(&endpoint, "", "");
        assert!(matches!(anonymous.get("k").await, Err(Error::Store { .. })));
        let wrong = string_client(&endpoint, "root", "nope");
        assert!(matches!(wrong.get("k").await, Err(Error::Store { .. })));

        let root = string_client(&endpoint, "root", "s3cret");
        root.cas("k", &mut |_| CasDecision::Write("v".into()))
            .await
            .unwrap();
        assert_eq!(root.get("k").await.unwrap().as_deref(), Some("v"));

        // A token etcd no longer accepts (as after expiry) is replaced transparently.
        root.store
            .token
            .set(Some(AsciiMetadataValue::from_static("expired.token")));
        assert_eq!(root.get("k").await.unwrap().as_deref(), Some("v"));

        // Watches carry the token too.
        let cancel = CancellationToken::new();
        let mut seen = None;
        root.watch_key("k", &cancel, &mut |v| {
            seen = v;
            false
        })
        .await;
        assert_eq!(seen.as_deref(), Some("v"));
    }
}
