//! Join addresses as dskit takes them (`spec/memberlist.md` §2.11): `host:port`,
//! `host` (port 7946), `[name/]host:port`, `dns+host:port` (every A/AAAA record).

use std::net::SocketAddr;

/// memberlist's default port.
pub const DEFAULT_PORT: u16 = 7946;

/// Splits one join entry into `host:port` text for the system resolver, or an error
/// text for forms we do not resolve.
pub fn normalize_member(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if let Some(rest) = entry.strip_prefix("dns+") {
        if !has_port(rest) {
            return Err(format!("{entry:?}: dns+ addresses need a port"));
        }
        return Ok(rest.to_owned());
    }
    if entry.starts_with("dnssrv+") || entry.starts_with("dnssrvnoa+") {
        return Err(format!(
            "{entry:?}: DNS SRV discovery is not supported; list host:port addresses or use dns+host:port"
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

fn has_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once("]:").is_some();
    }
    s.matches(':').count() == 1
}

/// Resolves every entry; entries that fail are logged and skipped. Duplicates removed.
pub async fn resolve_members(entries: &[String]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for e in entries {
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
    }

    #[tokio::test]
    async fn resolves_names_and_skips_bad_entries() {
        let got = resolve_members(&[
            "localhost:7001".to_owned(),
            "dns+127.0.0.1:7002".to_owned(),
            "dnssrv+x".to_owned(),
        ])
        .await;
        assert!(got.contains(&"127.0.0.1:7002".parse().unwrap()), "{got:?}");
        assert!(got.iter().any(|a| a.port() == 7001), "{got:?}");
    }
}
