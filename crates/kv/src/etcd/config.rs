//! Configuration of the etcd store (dskit's `etcd.*` options).

use std::time::Duration;

use crate::error::Error;

/// How to reach etcd. `Default` holds dskit's defaults; each field names its dskit flag and
/// YAML key.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Endpoints, `host:port` or `http(s)://host:port` (`--etcd.endpoints`, YAML
    /// `endpoints`; default none, required). Several endpoints are load-balanced.
    pub endpoints: Vec<String>,
    /// Bound on establishing a connection (`--etcd.dial-timeout`, YAML `dial_timeout`;
    /// default 10 s). Also sets the keep-alive timeout to twice this value, as dskit does,
    /// so a dead server is noticed and the connection re-dialled.
    pub dial_timeout: Duration,
    /// Bound on one unary request (ringkit only; default 10 s). Keeps a hung server from
    /// blocking a CAS forever; the CAS loop then retries.
    pub request_timeout: Duration,
    /// Use TLS (`--etcd.tls-enabled`, YAML `tls_enabled`; default false). Needs the crate's
    /// `tls` feature.
    pub tls_enabled: bool,
    /// Client certificate, PEM (`--etcd.tls-cert-path`, YAML `tls_cert_path`).
    pub tls_cert_path: Option<String>,
    /// Client key, PEM (`--etcd.tls-key-path`, YAML `tls_key_path`).
    pub tls_key_path: Option<String>,
    /// CA bundle used to verify the server, PEM (`--etcd.tls-ca-path`, YAML `tls_ca_path`).
    pub tls_ca_path: Option<String>,
    /// Name expected in the server certificate (`--etcd.tls-server-name`, YAML
    /// `tls_server_name`; default: the endpoint host).
    pub tls_server_name: Option<String>,
    /// Skip server verification (`--etcd.tls-insecure-skip-verify`). Not supported:
    /// [`EtcdConfig::validate`] rejects it rather than silently verifying anyway.
    pub tls_insecure_skip_verify: bool,
    /// User for etcd authentication (`--etcd.username`, YAML `username`; default empty =
    /// no authentication).
    pub username: String,
    /// Password (`--etcd.password`, YAML `password`). Never printed by `Debug`.
    pub password: String,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("dial_timeout", &self.dial_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("tls_enabled", &self.tls_enabled)
            .field("tls_cert_path", &self.tls_cert_path)
            .field("tls_key_path", &self.tls_key_path)
            .field("tls_ca_path", &self.tls_ca_path)
            .field("tls_server_name", &self.tls_server_name)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: Vec::new(),
            // dskit: etcd.dial-timeout 10s.
            dial_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            tls_enabled: false,
            tls_cert_path: None,
            tls_key_path: None,
            tls_ca_path: None,
            tls_server_name: None,
            tls_insecure_skip_verify: false,
            username: String::new(),
            password: String::new(),
        }
    }
}

impl EtcdConfig {
    /// A config for the given endpoints, other fields at their defaults.
    pub fn with_endpoints<I: IntoIterator<Item = S>, S: Into<String>>(endpoints: I) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks the config without contacting etcd.
    pub fn validate(&self) -> Result<(), Error> {
        if self.endpoints.is_empty() {
            return Err(Error::Config("etcd: no endpoints configured".into()));
        }
        if self.dial_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(Error::Config("etcd: timeouts must be positive".into()));
        }
        if self.tls_insecure_skip_verify {
            return Err(Error::Config(
                "etcd: tls-insecure-skip-verify is not supported; give tls-ca-path instead".into(),
            ));
        }
        if self.tls_cert_path.is_some() != self.tls_key_path.is_some() {
            return Err(Error::Config(
                "etcd: tls-cert-path and tls-key-path must be given together".into(),
            ));
        }
        if !self.password.is_empty() && self.username.is_empty() {
            return Err(Error::Config(
                "etcd: password given without username".into(),
            ));
        }
        if self.tls_enabled && !cfg!(feature = "tls") {
            return Err(Error::Config(
                "etcd: TLS requested but ringkit-kv was built without its `tls` feature".into(),
            ));
        }
        Ok(())
    }

    /// Endpoint URLs with the scheme filled in.
    pub(crate) fn urls(&self) -> Vec<String> {
        let scheme = if self.tls_enabled { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("{scheme}://{e}")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dskits_and_endpoints_are_required() {
        let c = EtcdConfig::default();
        assert_eq!(c.dial_timeout, Duration::from_secs(10));
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let c = EtcdConfig::with_endpoints(["127.0.0.1:2379"]);
        c.validate().unwrap();
        assert_eq!(c.urls(), ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let mut c = EtcdConfig::with_endpoints(["127.0.0.1:2379"]);
        c.username = "root".into();
        c.password = "hunter2".into();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
