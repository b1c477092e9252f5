//! `/memberlist`: the gossip node's members and KV keys (`spec/memberlist.md` §2.13),
//! server-rendered, JSON with `Accept: application/json`, and `?downloadKey=KEY` for a
//! key's raw codec bytes (dskit's download link, file named `<version>-<key>`).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use ringkit_memberlist::kv::KeyInfo;
use ringkit_memberlist::runtime::Memberlist;
use ringkit_memberlist::swim::{Member, State};
use ringkit_memberlist::wire::node_meta::NodeMeta;

use crate::ring_page::escape;

/// One member as the page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MemberRow {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) state: &'static str,
    /// memberlist's numeric state (0 alive, 1 suspect, 2 dead, 3 left), as dskit shows.
    pub(crate) state_code: u8,
    pub(crate) incarnation: u32,
    /// Metadata as hex (dskit nodes send none unless zone-aware routing is on).
    pub(crate) meta_hex: String,
    /// Zone from the metadata (dskit's zone-aware routing); empty when none.
    pub(crate) zone: String,
    /// Role from the metadata (`member`, `bridge`); empty without a zone.
    pub(crate) role: String,
    /// Protocol versions `[pmin, pmax, pcur, dmin, dmax, dcur]`.
    pub(crate) vsn: [u8; 6],
}

fn state_name(s: State) -> (&'static str, u8) {
    match s {
        State::Alive => ("alive", 0),
        State::Suspect => ("suspect", 1),
        State::Dead => ("dead", 2),
        State::Left => ("left", 3),
    }
}

pub(crate) fn member_rows(members: &[Member]) -> Vec<MemberRow> {
    let mut rows: Vec<MemberRow> = members
        .iter()
        .map(|m| {
            let (state, state_code) = state_name(m.state);
            let meta = NodeMeta(m.meta.as_deref());
            let zone = String::from_utf8_lossy(meta.zone()).into_owned();
            let role = if zone.is_empty() {
                String::new()
            } else {
                meta.role().to_string()
            };
            MemberRow {
                zone,
                role,
                name: String::from_utf8_lossy(&m.name).into_owned(),
                address: m
                    .socket_addr()
                    .map_or_else(|| format!("{:02x?}", m.addr), |a| a.to_string()),
                state,
                state_code,
                incarnation: m.incarnation,
                meta_hex: m
                    .meta
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                vsn: m.vsn,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// The JSON form.
pub(crate) fn json(node: &Memberlist) -> serde_json::Value {
    serde_json::json!({
        "node": node.name(),
        "address": node.advertise_addr().to_string(),
        "health_score": node.health_score(),
        "zone_aware_routing": node.config().swim.zone_aware_routing.is_some(),
        "members": member_rows(&node.members()),
        "keys": node.kv().describe(),
    })
}

fn age(now_ms: i64, ms: i64) -> String {
    if ms <= 0 {
        return "unknown".into();
    }
    let s = now_ms.saturating_sub(ms).max(0) / 1000;
    format!("{s}s ago")
}

/// The HTML page.
pub(crate) fn html(node: &Memberlist) -> String {
    let members = member_rows(&node.members());
    let keys: Vec<KeyInfo> = node.kv().describe();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let alive = members.iter().filter(|m| m.state_code == 0).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Memberlist status</title><style>\
         body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;font-size:14px;margin-bottom:1.5em}}\
         th,td{{border-bottom:1px solid #ddd;padding:5px 9px;text-align:left;white-space:nowrap}}\
         .num{{text-align:right;font-variant-numeric:tabular-nums}}\
         .bad{{color:#c00;font-weight:bold}}.warn{{color:#b60;font-weight:bold}}.ok{{color:#171}}\
         .sub{{color:#555}}</style></head><body>\
         <h1>Memberlist</h1><p class=\"sub\">Node <b>{name}</b> at {addr}; health score {health} \
         (0 is healthy); {alive} of {total} members alive; zone-aware routing {routing}.</p>",
        name = escape(node.name()),
        addr = node.advertise_addr(),
        health = node.health_score(),
        total = members.len(),
        routing = match &node.config().swim.zone_aware_routing {
            Some(r) => format!(
                "on (zone {}, {})",
                escape(&String::from_utf8_lossy(&r.zone)),
                r.role
            ),
            None => "off".to_owned(),
        },
    );
    out.push_str(
        "<h2>KV store</h2><table id=\"keys\"><thead><tr><th>Key</th><th>Codec</th>\
         <th class=\"num\">Version</th><th>Deleted</th><th>Updated</th>\
         <th class=\"num\">Size (bytes)</th><th></th></tr></thead><tbody>",
    );
    if keys.is_empty() {
        out.push_str("<tr><td colspan=\"7\" class=\"sub\">no keys yet</td></tr>");
    }
    for k in &keys {
        let key = escape(&k.key);
        let link: String = k
            .key
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{key}</td><td>{codec}</td><td class=\"num\">{v}</td><td>{del}</td>\
             <td>{upd}</td><td class=\"num\">{size}</td>\
             <td><a href=\"/memberlist?downloadKey={link}\">download</a></td></tr>",
            codec = escape(&k.codec),
            v = k.version,
            del = if k.deleted { "yes" } else { "" },
            upd = age(now_ms, k.update_time_ms),
            size = k.size,
        );
    }
    out.push_str(
        "</tbody></table><h2>Members</h2><table id=\"members\"><thead><tr><th>Name</th>\
         <th>Address</th><th>State</th><th class=\"num\">Incarnation</th><th>Zone</th>\
         <th>Role</th><th>Meta</th><th>Versions</th></tr></thead><tbody>",
    );
    for m in &members {
        let class = match m.state_code {
            0 => "ok",
            1 => "warn",
            _ => "bad",
        };
        let _ = write!(
            out,
            "<tr><td>{name}</td><td>{addr}</td><td class=\"{class}\">{state} ({code})</td>\
             <td class=\"num\">{inc}</td><td>{zone}</td><td>{role}</td><td>{meta}</td>\
             <td>{vsn:?}</td></tr>",
            zone = escape(&m.zone),
            role = escape(&m.role),
            name = escape(&m.name),
            addr = escape(&m.address),
            state = m.state,
            code = m.state_code,
            inc = m.incarnation,
            meta = if m.meta_hex.is_empty() {
                "—".to_owned()
            } else {
                escape(&m.meta_hex)
            },
            vsn = m.vsn,
        );
    }
    out.push_str(
        "</tbody></table><p class=\"sub\">JSON: request this page with \
         <code>Accept: application/json</code>.</p></body></html>",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sorted_and_states_numbered_like_memberlist() {
        let m = |name: &str, state| Member {
            name: name.as_bytes().into(),
            addr: vec![127, 0, 0, 1].into(),
            port: 7946,
            meta: None,
            vsn: [1, 5, 2, 0, 0, 0],
            incarnation: 3,
            state,
            state_change: std::time::Instant::now(),
        };
        let rows = member_rows(&[m("b", State::Dead), m("a<x>", State::Suspect)]);
        assert_eq!(rows[0].name, "a<x>");
        assert_eq!((rows[0].state, rows[0].state_code), ("suspect", 1));
        assert_eq!((rows[1].state, rows[1].state_code), ("dead", 2));
        assert_eq!(rows[1].address, "127.0.0.1:7946");
        assert_eq!((rows[1].zone.as_str(), rows[1].role.as_str()), ("", ""));
        let mut bridge = m("c", State::Alive);
        bridge.meta = Some(vec![1, 2, 6, b'z', b'o', b'n', b'e', b'-', b'b']);
        let rows = member_rows(&[bridge]);
        assert_eq!(
            (rows[0].zone.as_str(), rows[0].role.as_str()),
            ("zone-b", "bridge")
        );
        assert_eq!(rows[0].meta_hex, "0102067a6f6e652d62");
    }
}
