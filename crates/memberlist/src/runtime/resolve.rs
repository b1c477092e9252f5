//! Join addresses as dskit takes them (`spec/memberlist.md` §2.11): `host:port`,
//! `host` (port 7946), `[name/]host:port`, `dns+host:port` (every A/AAAA record),
//! `dnssrv+_service._proto.name` (the SRV records, then each target's A/AAAA records, at
//! the SRV port) and `dnssrvnoa+_service._proto.name` (the SRV targets taken as host
//! names, resolved by the system resolver as a plain `host:port` would be). Names are
//! resolved again on every join, so a changed DNS answer is seen by the next (re)join.

use std::net::SocketAddr;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

/// memberlist's default port.
pub(crate) const DEFAULT_PORT: u16 = 7946;

/// Most addresses one SRV entry may contribute (the rest is dropped with a warning).
pub(crate) const MAX_SRV_ADDRESSES: usize = 1024;

/// Splits one join entry into `host:port` text for the system resolver, or an error
/// text for forms it does not resolve (`dnssrv+`, `dnssrvnoa+`: see [`resolve_members`]).
pub(crate) fn normalize_member(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if let Some(rest) = entry.strip_prefix("dns+") {
        if !has_port(rest) {
            return Err(format!("{entry:?}: dns+ addresses need a port"));
        }
        return Ok(rest.to_owned());
    }
    if srv_name(entry).is_some() {
        return Err(format!(
            "{entry:?}: an SRV name is resolved over DNS, not as host:port"
        ));
    }
    // memberlist accepts an optional `name/` prefix before the address.
    let addr = entry.rsplit_once('/').map_or(entry, |(_, a)| a);
    if addr.is_empty() {
        return Err("empty join address".to_owned());
    }
    Ok(if has_port(addr) {
        addr.to_owned()
    } else if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]:{DEFAULT_PORT}")
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    })
}

/// For `dnssrv+NAME` / `dnssrvnoa+NAME`: the SRV name and whether the targets' A/AAAA
/// records are looked up over DNS (`dnssrv+`) or left to the system resolver.
fn srv_name(entry: &str) -> Option<(&str, bool)> {
    if let Some(name) = entry.strip_prefix("dnssrv+") {
        Some((name, true))
    } else {
        entry.strip_prefix("dnssrvnoa+").map(|name| (name, false))
    }
}

fn has_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once("]:").is_some();
    }
    s.matches(':').count() == 1
}

/// A resolver asking `servers` (UDP, TCP for truncated answers), or the system's
/// configured servers when empty; no cache, so every join asks again.
fn dns_resolver(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("reading the system DNS config: {e}"))?
    } else {
        let mut cfg = ResolverConfig::from_name_servers(Vec::new());
        for s in servers {
            let mut ns = NameServerConfig::udp_and_tcp(s.ip());
            ns.connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = s.port();
                    c
                })
                .collect();
            cfg.add_name_server(ns);
        }
        Resolver::builder_with_config(cfg, TokioRuntimeProvider::default())
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.cache_size = 0;
    builder
        .build()
        .map_err(|e| format!("building the DNS resolver: {e}"))
}

/// The addresses behind one SRV entry.
async fn resolve_srv(
    entry: &str,
    name: &str,
    a_lookup: bool,
    servers: &[SocketAddr],
    out: &mut Vec<SocketAddr>,
) -> Result<(), String> {
    let resolver = dns_resolver(servers)?;
    let srv = resolver
        .srv_lookup(name)
        .await
        .map_err(|e| format!("SRV lookup of {name:?}: {e}"))?;
    let mut added = 0usize;
    for rec in srv.answers() {
        let RData::SRV(rec) = &rec.data else {
            continue;
        };
        let port = rec.port;
        let target = rec.target.to_utf8();
        let addrs: Vec<SocketAddr> = if a_lookup {
            match resolver.lookup_ip(rec.target.clone()).await {
                Ok(ips) => ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
                Err(e) => {
                    tracing::warn!(entry, target, error = %e, "cannot resolve SRV target");
                    continue;
                }
            }
        } else {
            let host = target.trim_end_matches('.');
            match tokio::net::lookup_host((host, port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    tracing::warn!(entry, target, error = %e, "cannot resolve SRV target");
                    continue;
                }
            }
        };
        for a in addrs {
            if added == MAX_SRV_ADDRESSES {
                tracing::warn!(
                    entry,
                    limit = MAX_SRV_ADDRESSES,
                    "SRV answer has more addresses than the limit; the rest are dropped"
                );
                return Ok(());
            }
            if !out.contains(&a) {
                out.push(a);
                added += 1;
            }
        }
    }
    Ok(())
}

/// Resolves every entry; entries that fail are logged and skipped. Duplicates removed.
/// `dns_servers` answer SRV entries (empty: the system's DNS servers).
pub(crate) async fn resolve_members(
    entries: &[String],
    dns_servers: &[SocketAddr],
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for e in entries {
        if let Some((name, a_lookup)) = srv_name(e.trim()) {
            if let Err(msg) = resolve_srv(e, name, a_lookup, dns_servers, &mut out).await {
                tracing::warn!(entry = %e, "cannot resolve join address: {msg}");
            }
            continue;
        }
        let host = match normalize_member(e) {
            Ok(h) => h,
            Err(msg) => {
                tracing::warn!("{msg}");
                continue;
            }
        };
        match tokio::net::lookup_host(&host).await {
            Ok(addrs) => {
                for a in addrs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(address = %host, error = %err, "cannot resolve join address")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_entries_normalise_like_memberlist() {
        assert_eq!(normalize_member("10.0.0.1:7000").unwrap(), "10.0.0.1:7000");
        assert_eq!(normalize_member("10.0.0.1").unwrap(), "10.0.0.1:7946");
        assert_eq!(normalize_member("node-a/10.0.0.1:1").unwrap(), "10.0.0.1:1");
        assert_eq!(
            normalize_member("dns+gossip.svc:7946").unwrap(),
            "gossip.svc:7946"
        );
        assert_eq!(normalize_member("[::1]:5").unwrap(), "[::1]:5");
        assert_eq!(normalize_member("::1").unwrap(), "[::1]:7946");
        assert!(normalize_member("dns+gossip.svc").is_err());
        assert!(
            normalize_member("dnssrv+_tcp.gossip")
                .unwrap_err()
                .contains("SRV")
        );
        assert_eq!(srv_name("dnssrv+_g._tcp.x"), Some(("_g._tcp.x", true)));
        assert_eq!(srv_name("dnssrvnoa+_g._tcp.x"), Some(("_g._tcp.x", false)));
        assert_eq!(srv_name("dns+x:1"), None);
    }

    #[tokio::test]
    async fn resolves_names_and_skips_bad_entries() {
        let got = resolve_members(
            &[
                "localhost:7001".to_owned(),
                "dns+127.0.0.1:7002".to_owned(),
                "dns+no-port".to_owned(),
            ],
            &[],
        )
        .await;
        assert!(got.contains(&"127.0.0.1:7002".parse().unwrap()), "{got:?}");
        assert!(got.iter().any(|a| a.port() == 7001), "{got:?}");
    }
}
