//! The address a node puts in the ring and in gossip when it is not told one, found from
//! network interface names as Mimir does (`-ingester.ring.instance-interface-names`,
//! dskit's interface-address rules), so a pod can listen on `0.0.0.0` and still be
//! dialled at its own IP.
//!
//! The rules, after dskit's netutil:
//! - the default interface list is every interface holding a private address (RFC 1918
//!   or `fc00::/7`), or `eth0, en0` when none does;
//! - interfaces are tried in the order named; on each, loopback addresses are never
//!   taken and a routable address beats a link-local one; IPv6 addresses are considered
//!   only with `-ingester.ring.instance-enable-ipv6` (then preferred over IPv4);
//! - the first interface that yields a routable address (an IPv6 one when IPv6 is
//!   enabled) wins; otherwise the best address seen (maybe link-local) is taken, and
//!   with none at all the node stops with an error naming the interfaces.
//!
//! The selection is a pure function of an interface list so tests can feed it one.

use std::net::IpAddr;

/// Interfaces dskit falls back to when no interface has a private address.
const FALLBACK_INTERFACES: &[&str] = &["eth0", "en0"];

/// One address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfaceAddr {
    /// Interface name (`eth0`).
    pub(crate) name: String,
    /// One of its addresses.
    pub(crate) ip: IpAddr,
}

/// Why no address could be chosen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DetectError {
    /// Listing the machine's interfaces failed.
    #[error("listing network interfaces: {0}")]
    List(#[from] std::io::Error),
    /// None of the named interfaces has an address other than loopback.
    #[error(
        "no usable address on network interfaces {names:?} (loopback addresses are never \
         used); name an interface that has one with --ingester.ring.instance-interface-names, \
         or give the address"
    )]
    NoAddress {
        /// The interfaces looked at.
        names: Vec<String>,
    },
}

/// The machine's interface addresses, in the system's order.
pub(crate) fn system_interfaces() -> Result<Vec<IfaceAddr>, DetectError> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| IfaceAddr {
            ip: i.ip(),
            name: i.name,
        })
        .collect())
}

/// Go's `IP.IsPrivate`: 10/8, 172.16/12, 192.168/16, fc00::/7.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => v6.is_unique_local(),
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// Mimir's default `-ingester.ring.instance-interface-names`: the interfaces that hold a
/// private address (each named once, in the system's order), else `eth0, en0`.
pub(crate) fn default_interface_names(all: &[IfaceAddr]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for a in all.iter().filter(|a| is_private(a.ip)) {
        if !names.contains(&a.name) {
            names.push(a.name.clone());
        }
    }
    if names.is_empty() {
        FALLBACK_INTERFACES
            .iter()
            .map(|n| (*n).to_owned())
            .collect()
    } else {
        names
    }
}

/// The better of two candidates of one family: the first one seen, unless a later one is
/// routable where the first is link-local.
fn better(current: Option<IpAddr>, new: IpAddr) -> Option<IpAddr> {
    match current {
        Some(c) if is_link_local(c) && !is_link_local(new) => Some(new),
        Some(c) => Some(c),
        None => Some(new),
    }
}

/// The best address among `ips` (dskit's ranking): loopback and unspecified never;
/// routable before link-local; IPv6 only when `inet6`, and then before IPv4 of the same
/// quality.
fn best_of(ips: impl IntoIterator<Item = IpAddr>, inet6: bool) -> Option<IpAddr> {
    let (mut v4, mut v6) = (None, None);
    for ip in ips {
        if ip.is_loopback() || ip.is_unspecified() {
            continue;
        }
        match ip {
            IpAddr::V4(_) => v4 = better(v4, ip),
            IpAddr::V6(_) if inet6 => v6 = better(v6, ip),
            IpAddr::V6(_) => {}
        }
    }
    match (v4, v6) {
        (Some(a), Some(b)) => {
            if is_link_local(a) && !is_link_local(b) {
                Some(b)
            } else if is_link_local(b) && !is_link_local(a) {
                Some(a)
            } else if inet6 {
                Some(b)
            } else {
                Some(a)
            }
        }
        (Some(a), None) => Some(a),
        (None, b) => b,
    }
}

/// dskit's `GetFirstAddressOf`: the address of the first of `names` (all interfaces when
/// empty) that has a usable one, by the rules in the module documentation.
pub(crate) fn first_address_of(
    names: &[String],
    all: &[IfaceAddr],
    inet6: bool,
) -> Result<IpAddr, DetectError> {
    let names: Vec<String> = if names.is_empty() {
        let mut every: Vec<String> = Vec::new();
        for a in all {
            if !every.contains(&a.name) {
                every.push(a.name.clone());
            }
        }
        every
    } else {
        names.to_vec()
    };
    let mut chosen: Option<IpAddr> = None;
    for name in &names {
        let ips = all.iter().filter(|a| &a.name == name).map(|a| a.ip);
        if let Some(ip) = best_of(ips, inet6) {
            // The newer candidate first: of two of equal quality, it wins (as dskit).
            chosen = best_of([ip].into_iter().chain(chosen), inet6);
        }
        match chosen {
            Some(ip) if !is_link_local(ip) && (!inet6 || ip.is_ipv6()) => return Ok(ip),
            _ => {}
        }
    }
    match chosen {
        Some(ip) => {
            if is_link_local(ip) {
                tracing::warn!(%ip, "advertising a link-local address");
            }
            Ok(ip)
        }
        None => Err(DetectError::NoAddress { names }),
    }
}

/// The address to advertise for this machine: from `names` (Mimir's default list when
/// empty) on the real interfaces.
pub(crate) fn detect(names: &[String], inet6: bool) -> Result<IpAddr, DetectError> {
    let all = system_interfaces()?;
    let names = if names.is_empty() {
        default_interface_names(&all)
    } else {
        names.to_vec()
    };
    first_address_of(&names, &all, inet6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str) -> IfaceAddr {
        IfaceAddr {
            name: name.to_owned(),
            ip: ip.parse().unwrap(),
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    fn pick(n: &[&str], all: &[IfaceAddr], inet6: bool) -> String {
        first_address_of(&names(n), all, inet6).unwrap().to_string()
    }

    /// A pod's interfaces: loopback, the pod network, a link-local-only tunnel.
    fn pod() -> Vec<IfaceAddr> {
        vec![
            iface("lo", "127.0.0.1"),
            iface("lo", "::1"),
            iface("tun0", "169.254.3.4"),
            iface("eth0", "fe80::1"),
            iface("eth0", "10.1.2.3"),
            iface("eth0", "fd00::7"),
            iface("eth1", "192.0.2.9"),
        ]
    }

    #[test]
    fn the_first_named_interface_with_a_routable_ipv4_wins() {
        assert_eq!(pick(&["eth0", "en0"], &pod(), false), "10.1.2.3");
        assert_eq!(pick(&["en0", "eth1", "eth0"], &pod(), false), "192.0.2.9");
        // Missing interfaces are skipped.
        assert_eq!(pick(&["wlan9", "eth1"], &pod(), false), "192.0.2.9");
    }

    #[test]
    fn loopback_is_never_taken_even_when_named() {
        let err = first_address_of(&names(&["lo"]), &pod(), false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"lo\"") && text.contains("loopback"),
            "{text}"
        );
        assert!(first_address_of(&names(&["lo"]), &pod(), true).is_err());
        assert!(first_address_of(&names(&["en0"]), &pod(), false).is_err());
    }

    #[test]
    fn routable_beats_link_local_and_link_local_is_a_last_resort() {
        // tun0 has only a link-local address: a later interface with a routable one wins.
        assert_eq!(pick(&["tun0", "eth0"], &pod(), false), "10.1.2.3");
        // Alone, the link-local address is used rather than nothing.
        assert_eq!(pick(&["tun0"], &pod(), false), "169.254.3.4");
        // On one interface, a routable address listed after a link-local one wins.
        let all = vec![iface("eth0", "169.254.0.5"), iface("eth0", "10.0.0.5")];
        assert_eq!(pick(&["eth0"], &all, false), "10.0.0.5");
    }

    #[test]
    fn ipv6_only_when_enabled_and_then_preferred() {
        let v6_only = vec![iface("eth0", "fd00::7"), iface("eth0", "fe80::1")];
        assert!(first_address_of(&names(&["eth0"]), &v6_only, false).is_err());
        assert_eq!(pick(&["eth0"], &v6_only, true), "fd00::7");
        assert_eq!(pick(&["eth0"], &pod(), true), "fd00::7");
        // With IPv6 on, an IPv4-only interface does not end the search...
        let all = vec![iface("eth1", "10.0.0.1"), iface("eth0", "fd00::9")];
        assert_eq!(pick(&["eth1", "eth0"], &all, true), "fd00::9");
        // ...but is taken when no interface has IPv6.
        assert_eq!(pick(&["eth1"], &all, true), "10.0.0.1");
    }

    #[test]
    fn no_names_means_every_interface() {
        assert_eq!(pick(&[], &pod(), false), "10.1.2.3");
    }

    #[test]
    fn default_names_are_the_interfaces_with_a_private_address() {
        assert_eq!(default_interface_names(&pod()), ["eth0"]);
        let public = vec![iface("lo", "127.0.0.1"), iface("ens3", "192.0.2.2")];
        assert_eq!(default_interface_names(&public), ["eth0", "en0"]);
        let two = vec![
            iface("ens4", "172.16.0.1"),
            iface("ens3", "192.168.1.1"),
            iface("ens4", "172.16.0.2"),
        ];
        assert_eq!(default_interface_names(&two), ["ens4", "ens3"]);
    }

    #[test]
    fn the_machine_has_a_loopback_interface_listed() {
        let all = system_interfaces().unwrap();
        assert!(all.iter().any(|a| a.ip.is_loopback()), "{all:?}");
    }
}
