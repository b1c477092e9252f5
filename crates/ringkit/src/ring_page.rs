//! The `/ring` status page: server-rendered HTML (no external assets, no JavaScript
//! needed) and its JSON twin.
//!
//! What operators need at a glance: who is in the ring, in which state, how fresh each
//! heartbeat is (red when unhealthy), and how the keyspace is split (token imbalance is
//! visible in the ring picture and the ownership bars, mimir#505). Forget is offered for
//! unhealthy instances and asks for confirmation on its own page, so it works without
//! JavaScript.

use std::fmt::Write as _;
use std::time::SystemTime;

use ringkit_ring::{Operation, RingSnapshot};

/// One instance as the page and its JSON show it (dskit's JSON field names, plus ringkit's
/// ownership figures).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) state: String,
    pub(crate) address: String,
    pub(crate) timestamp: i64,
    pub(crate) registered_timestamp: i64,
    pub(crate) read_only: bool,
    pub(crate) read_only_updated_timestamp: i64,
    pub(crate) zone: String,
    pub(crate) tokens: usize,
    /// Share of the instance's zone ring, in percent (dskit's ownership column).
    pub(crate) ownership_percent: f64,
    /// Share of the whole keyspace for which it is the first owner, in percent.
    pub(crate) primary_ownership_percent: f64,
    pub(crate) healthy: bool,
}

/// Rows for every instance of `ring`, sorted by id.
pub(crate) fn rows(ring: &RingSnapshot, now: SystemTime) -> Vec<Row> {
    ring.instances()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let idx = i as u32;
            let healthy = ring.is_healthy(idx, Operation::REPORTING, now);
            let state = d
                .known_state()
                .map_or_else(|| format!("UNKNOWN({})", d.state), |s| s.to_string());
            Row {
                id: d.id.clone(),
                state: if healthy {
                    state
                } else {
                    "UNHEALTHY".to_owned()
                },
                address: d.addr.clone(),
                timestamp: d.timestamp,
                registered_timestamp: d.registered_timestamp,
                read_only: d.read_only,
                read_only_updated_timestamp: d.read_only_updated_timestamp,
                zone: d.zone.clone(),
                tokens: d.tokens.len(),
                ownership_percent: 100.0 * ring.ownership_in_zone(idx),
                primary_ownership_percent: 100.0 * ring.ownership(idx),
                healthy,
            }
        })
        .collect()
}

/// Column the table is sorted by (`?sort=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortKey {
    Id,
    Zone,
    State,
    Heartbeat,
    Tokens,
    Ownership,
}

impl SortKey {
    pub(crate) fn parse(s: &str) -> SortKey {
        match s {
            "zone" => SortKey::Zone,
            "state" => SortKey::State,
            "heartbeat" => SortKey::Heartbeat,
            "tokens" => SortKey::Tokens,
            "ownership" => SortKey::Ownership,
            _ => SortKey::Id,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Zone => "zone",
            SortKey::State => "state",
            SortKey::Heartbeat => "heartbeat",
            SortKey::Tokens => "tokens",
            SortKey::Ownership => "ownership",
        }
    }
}

pub(crate) fn sort_rows(rows: &mut [Row], key: SortKey, descending: bool) {
    rows.sort_by(|a, b| {
        let ord = match key {
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Zone => a.zone.cmp(&b.zone).then(a.id.cmp(&b.id)),
            SortKey::State => a.state.cmp(&b.state).then(a.id.cmp(&b.id)),
            SortKey::Heartbeat => b.timestamp.cmp(&a.timestamp).then(a.id.cmp(&b.id)),
            SortKey::Tokens => a.tokens.cmp(&b.tokens).then(a.id.cmp(&b.id)),
            SortKey::Ownership => a
                .ownership_percent
                .total_cmp(&b.ownership_percent)
                .then(a.id.cmp(&b.id)),
        };
        if descending { ord.reverse() } else { ord }
    });
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A stable, distinct colour per instance index. Reds are skipped: on this page red means
/// "unhealthy".
fn colour(i: usize) -> String {
    // Golden-angle hue steps keep neighbours apart; the 60 degrees of hue around red are
    // squeezed out by mapping onto the remaining 300.
    let step = (210.0 + i as f64 * 137.508) % 360.0;
    let hue = 30.0 + step * 300.0 / 360.0;
    format!("hsl({hue:.0},60%,46%)")
}

/// "2s", "1m", "1m30s": a duration as an operator wrote it in a flag.
fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, _) if d.subsec_millis() > 0 => format!("{}ms", d.as_millis()),
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// One line on token balance (mimir#505): each instance's ownership against a fair share
/// of its zone ring; `None` when fewer than two instances own tokens.
fn balance(ring: &RingSnapshot) -> Option<String> {
    let mut ratios: Vec<(f64, &str)> = Vec::new();
    for (i, d) in ring.instances().iter().enumerate() {
        if d.tokens.is_empty() {
            continue;
        }
        let peers = ring.instances_with_tokens_in_zone_count(&d.zone);
        ratios.push((
            ring.ownership_in_zone(i as u32) * peers as f64,
            d.id.as_str(),
        ));
    }
    if ratios.len() < 2 {
        return None;
    }
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
    Some(format!(
        "<p class=\"sub\" id=\"balance\">Balance against a fair share of each zone ring: \
         largest {} at {:.2}&times;, smallest {} at {:.2}&times;</p>",
        escape(hi.1),
        hi.0,
        escape(lo.1),
        lo.0
    ))
}

fn age(now: i64, ts: i64) -> String {
    // `ts` comes from a peer: any i64.
    let secs = now.saturating_sub(ts);
    if secs < 0 {
        return format!("in {}s (clock skew)", secs.saturating_neg());
    }
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

pub(crate) fn rfc3339(ts: i64) -> String {
    if ts <= 0 {
        return String::new();
    }
    // Civil date from Unix seconds (UTC), without a date library.
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// SVG picture of the ring: the outer circle is the whole ring (first owner of each token
/// range), inner circles are the zone rings; each range is coloured by its owner.
fn ring_svg(ring: &RingSnapshot) -> String {
    const SIZE: f64 = 360.0;
    let c = SIZE / 2.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE}\" height=\"{SIZE}\" \
         viewBox=\"0 0 {SIZE} {SIZE}\" role=\"img\" aria-label=\"token ownership ring\">"
    );
    let mut circles: Vec<(f64, &[u32], &[u32])> =
        vec![(c - 14.0, ring.tokens(), ring.token_owners())];
    let zones = ring.zones_count();
    if zones > 1 {
        let step = 90.0 / zones as f64;
        for z in 0..zones {
            let (t, o) = ring.zone_tokens(z);
            circles.push((c - 40.0 - step * z as f64, t, o));
        }
    }
    let width = if zones > 1 {
        (90.0 / zones as f64 - 4.0).max(4.0)
    } else {
        24.0
    };
    for (n, (radius, tokens, owners)) in circles.iter().enumerate() {
        let stroke = if n == 0 { 20.0 } else { width };
        if tokens.is_empty() {
            let _ = write!(
                svg,
                "<circle cx=\"{c}\" cy=\"{c}\" r=\"{radius}\" fill=\"none\" stroke=\"#ddd\" stroke-width=\"{stroke}\"/>"
            );
            continue;
        }
        // Merge consecutive ranges with the same owner into one arc.
        let len = tokens.len();
        let mut k = 0;
        while k < len {
            let owner = owners[k];
            let start_prev = if k == 0 {
                tokens[len - 1]
            } else {
                tokens[k - 1]
            };
            let mut end = k;
            while end + 1 < len && owners[end + 1] == owner {
                end += 1;
            }
            let from = f64::from(start_prev) / 4_294_967_296.0;
            let to = f64::from(tokens[end]) / 4_294_967_296.0;
            let span = if len == 1 {
                1.0
            } else {
                (to - from).rem_euclid(1.0)
            };
            let _ = write!(
                svg,
                "{}",
                arc(c, *radius, from, span, stroke, &colour(owner as usize))
            );
            k = end + 1;
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{c}\" y=\"{c}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#333\">{} tokens</text></svg>",
        ring.tokens().len()
    );
    svg
}

fn arc(c: f64, r: f64, from: f64, span: f64, stroke: f64, colour: &str) -> String {
    if span >= 0.999_999 {
        return format!(
            "<circle cx=\"{c}\" cy=\"{c}\" r=\"{r}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{stroke}\"/>"
        );
    }
    let angle = |f: f64| (f * 360.0 - 90.0).to_radians();
    let (a0, a1) = (angle(from), angle(from + span));
    let (x0, y0) = (c + r * a0.cos(), c + r * a0.sin());
    let (x1, y1) = (c + r * a1.cos(), c + r * a1.sin());
    let large = u8::from(span > 0.5);
    format!(
        "<path d=\"M{x0:.2},{y0:.2} A{r},{r} 0 {large} 1 {x1:.2},{y1:.2}\" fill=\"none\" \
         stroke=\"{colour}\" stroke-width=\"{stroke}\"/>"
    )
}

fn bar(percent: f64, colour: &str) -> String {
    format!(
        "<div class=\"bar\"><div style=\"width:{:.2}%;background:{colour}\"></div></div>",
        percent.clamp(0.0, 100.0)
    )
}

/// The whole HTML page.
pub(crate) fn render(
    ring: &RingSnapshot,
    rows: &[Row],
    now: i64,
    sort: SortKey,
    descending: bool,
    ring_key: &str,
) -> String {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Ring status</title><style>\
         body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
         h1{margin:0 0 .3em}.sub{color:#555;margin:0 0 1em;max-width:70em}\
         .cap{max-width:360px;font-size:13px}h3{margin:.2em 0 .5em}\
         #balance{font-size:13px;margin-top:.5em;max-width:32em}table+.sub{margin-top:.8em}\
         table{border-collapse:collapse;font-size:14px}\
         th,td{border-bottom:1px solid #ddd;padding:5px 9px;text-align:left;white-space:nowrap}\
         th a{color:#222;text-decoration:none}th a:hover{text-decoration:underline}\
         .num{text-align:right;font-variant-numeric:tabular-nums}\
         .bad{color:#c00;font-weight:bold}.ok{color:#171}\
         .bar{width:140px;height:10px;background:#eee;display:inline-block;vertical-align:middle}\
         .bar div{height:10px}.sw{display:inline-block;width:10px;height:10px;margin-right:6px}\
         .top{display:flex;gap:2.5em;align-items:flex-start;flex-wrap:wrap;margin-bottom:1.2em}\
         button{background:#c00;color:#fff;border:0;padding:3px 10px;border-radius:3px;cursor:pointer}\
         </style></head><body>",
    );
    // Counted as dskit's ring_members metric counts: an instance with a stale heartbeat
    // is "unhealthy", not counted in its state (the rows already say which).
    let count = |state: &str| rows.iter().filter(|r| r.state == state).count();
    let unhealthy = rows.iter().filter(|r| !r.healthy).count();
    let (active, joining, pending, leaving) = (
        count("ACTIVE"),
        count("JOINING"),
        count("PENDING"),
        count("LEAVING"),
    );
    let zones = ring.zones_count();
    let _ = write!(
        h,
        "<h1>Ring status</h1><p class=\"sub\">key <code>{}</code> &middot; {} instance{} \
         ({active} ACTIVE, {joining} JOINING, {pending} PENDING, {leaving} LEAVING, \
         <span class=\"{}\">{unhealthy} unhealthy</span>) &middot; {zones} zone{} &middot; RF {}{} \
         &middot; unhealthy after {} without a heartbeat</p>",
        escape(ring_key),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if unhealthy > 0 { "bad" } else { "ok" },
        if zones == 1 { "" } else { "s" },
        ring.replication_factor(),
        if ring.config().zone_awareness_enabled {
            ", zone-aware"
        } else {
            ""
        },
        human_duration(ring.config().heartbeat_timeout),
    );

    h.push_str("<div class=\"top\"><div>");
    h.push_str(&ring_svg(ring));
    let zone_names: Vec<String> = ring
        .zones()
        .iter()
        .map(|z| {
            if z.is_empty() {
                "(no zone)".to_owned()
            } else {
                escape(z)
            }
        })
        .collect();
    let _ = write!(
        h,
        "<p class=\"sub cap\">Each arc is a token range, coloured by the instance that owns it \
         (its first replica). Outer circle: whole ring{}.</p></div><div>",
        if zone_names.len() > 1 {
            format!(
                "; inner circles, outside in: zones {}",
                zone_names.join(", ")
            )
        } else {
            String::new()
        }
    );
    h.push_str("<h3>Ownership per instance (legend)</h3><table id=\"legend\">");
    for (i, d) in ring.instances().iter().enumerate() {
        let own = 100.0 * ring.ownership_in_zone(i as u32);
        let flag = if rows.iter().any(|r| r.id == d.id && !r.healthy) {
            "<span class=\"bad\">UNHEALTHY</span>"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td><span class=\"sw\" style=\"background:{col}\"></span>{id}</td>\
             <td>{bar}</td><td class=\"num\">{own:.3}%</td><td>{flag}</td></tr>",
            col = colour(i),
            id = escape(&d.id),
            bar = bar(own, &colour(i)),
        );
    }
    h.push_str("</table>");
    if let Some(balance) = balance(ring) {
        h.push_str(&balance);
    }
    if ring.zones_count() > 0 {
        h.push_str("<h3>First-owner share per zone</h3><table>");
        for (z, name) in ring.zones().iter().enumerate() {
            let share = 100.0 * ring.zone_ownership(z);
            let label = if name.is_empty() { "(no zone)" } else { name };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{share:.3}%</td></tr>",
                escape(label),
                bar(share, "#4a7bd0"),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</div></div>");

    let header = |h: &mut String, key: SortKey, label: &str, num: bool| {
        let next_desc = sort == key && !descending;
        let arrow = if sort == key {
            if descending { " &#9660;" } else { " &#9650;" }
        } else {
            ""
        };
        let _ = write!(
            h,
            "<th{}><a href=\"?sort={}&amp;order={}\">{label}{arrow}</a></th>",
            if num { " class=\"num\"" } else { "" },
            key.name(),
            if next_desc { "desc" } else { "asc" },
        );
    };
    h.push_str("<table id=\"instances\"><thead><tr>");
    header(&mut h, SortKey::Id, "Instance ID", false);
    header(&mut h, SortKey::Zone, "Zone", false);
    header(&mut h, SortKey::State, "State", false);
    h.push_str("<th>Address</th>");
    header(&mut h, SortKey::Heartbeat, "Last heartbeat", false);
    h.push_str("<th>Registered at</th>");
    header(&mut h, SortKey::Tokens, "Tokens", true);
    header(&mut h, SortKey::Ownership, "Ownership", true);
    h.push_str("<th class=\"num\">First owner</th><th>Actions</th></tr></thead><tbody>");
    for r in rows {
        let cls = if r.healthy { "" } else { " class=\"bad\"" };
        let action = if r.healthy {
            String::new()
        } else {
            format!(
                "<form method=\"get\" action=\"\"><input type=\"hidden\" name=\"forget\" value=\"{}\">\
                 <button type=\"submit\">Forget</button></form>",
                escape(&r.id)
            )
        };
        let _ = write!(
            h,
            "<tr data-instance=\"{id}\"><td>{id}</td><td>{zone}</td><td{cls}>{state}</td><td>{addr}</td>\
             <td{cls}>{age}</td><td>{reg}</td><td class=\"num\">{tokens}</td>\
             <td class=\"num\" data-col=\"ownership\">{own:.3}%</td>\
             <td class=\"num\">{prim:.3}%</td><td>{action}</td></tr>",
            id = escape(&r.id),
            zone = escape(&r.zone),
            state = escape(&r.state),
            addr = escape(&r.address),
            age = age(now, r.timestamp),
            reg = rfc3339(r.registered_timestamp),
            tokens = r.tokens,
            own = r.ownership_percent,
            prim = r.primary_ownership_percent,
        );
    }
    h.push_str(
        "</tbody></table><p class=\"sub\">Ownership: share of the instance's zone ring (dskit's figure). \
         First owner: share of the whole keyspace whose first replica it holds. \
         JSON: request this page with <code>Accept: application/json</code>.</p></body></html>",
    );
    h
}

/// The confirmation page of Forget (a second POST, so no JavaScript is needed).
pub(crate) fn confirm_forget(id: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Forget {id}?</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em}}\
         button{{background:#c00;color:#fff;border:0;padding:6px 14px;border-radius:3px}}</style></head>\
         <body><h1>Forget instance {id}?</h1><p>It will be removed from the ring. If it is still \
         alive it re-registers on its next heartbeat.</p>\
         <form method=\"post\" action=\"/ring\"><input type=\"hidden\" name=\"forget\" value=\"{id}\">\
         <button type=\"submit\" id=\"confirm-forget\">Forget {id}</button> <a href=\"/ring\">Cancel</a>\
         </form></body></html>",
        id = escape(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkit_ring::snapshot::unix_seconds;

    #[test]
    fn heartbeat_ages_of_extreme_wire_timestamps_do_not_overflow() {
        for ts in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            for now in [0, 1_800_000_000, i64::MAX] {
                assert!(!age(now, ts).is_empty());
            }
        }
        assert_eq!(age(10, 10), "0s ago");
        assert!(age(0, i64::MAX).starts_with("in 9223372036854775807s"));
    }
    use ringkit_ring::{Desc, InstanceState, RingConfig};

    fn ring() -> RingSnapshot {
        let mut d = Desc::new();
        d.add_instance(
            "a-1",
            "10.0.0.1:9095",
            "a",
            vec![100, 3_000_000_000],
            InstanceState::Active,
            1_700_000_000,
            1000,
        );
        d.add_instance(
            "b-1",
            "10.0.0.2:9095",
            "b",
            vec![2_000_000_000],
            InstanceState::Active,
            1_700_000_000,
            1000,
        );
        d.add_instance(
            "c-<x>",
            "10.0.0.3:9095",
            "c",
            vec![],
            InstanceState::Pending,
            0,
            500,
        );
        RingSnapshot::new(d, RingConfig::default()).expect("valid ring config")
    }

    #[test]
    fn rows_mark_stale_instances_unhealthy() {
        let r = rows(&ring(), unix_seconds(1030));
        assert_eq!(r.len(), 3);
        assert!(r[0].healthy);
        assert_eq!(r[2].state, "UNHEALTHY");
        let total: f64 = r.iter().map(|x| x.primary_ownership_percent).sum();
        assert!((total - 100.0).abs() < 1e-9);
    }

    #[test]
    fn page_escapes_ids_and_offers_forget_only_for_unhealthy() {
        let ring = ring();
        let r = rows(&ring, unix_seconds(1030));
        let html = render(&ring, &r, 1030, SortKey::Id, false, "collectors/ring");
        assert!(html.contains("c-&lt;x&gt;"));
        assert!(!html.contains("c-<x>"));
        assert_eq!(html.matches("name=\"forget\"").count(), 1);
        assert!(html.contains("<svg"));
        // Zone b has one instance: its zone ring is one full circle in its colour.
        assert!(
            html.contains("<circle cx=\"180\" cy=\"180\" r=\"110\""),
            "{html}"
        );
        assert!(
            html.contains("2023-11-14T22:13:20Z"),
            "registered_at rendered"
        );
    }

    #[test]
    fn header_counts_a_stale_instance_as_unhealthy_only_and_shows_the_balance() {
        let ring = ring();
        let r = rows(&ring, unix_seconds(1030));
        let html = render(&ring, &r, 1030, SortKey::Id, false, "collectors/ring");
        assert!(
            html.contains("(2 ACTIVE, 0 JOINING, 0 PENDING, 0 LEAVING, <span class=\"bad\">1 unhealthy</span>)"),
            "{html}"
        );
        assert!(
            html.contains("unhealthy after 1m without a heartbeat"),
            "{html}"
        );
        // One instance per zone: each owns its whole zone ring, a fair share.
        assert!(html.contains("at 1.00&times;, smallest"), "{html}");
        assert_eq!(human_duration(std::time::Duration::from_secs(90)), "1m30s");
        assert_eq!(
            human_duration(std::time::Duration::from_millis(300)),
            "300ms"
        );
    }

    #[test]
    fn sorting_by_ownership_descending_puts_the_biggest_first() {
        let ring = ring();
        let mut r = rows(&ring, unix_seconds(1030));
        sort_rows(&mut r, SortKey::Ownership, true);
        assert!(r[0].ownership_percent >= r[1].ownership_percent);
        assert_eq!(r[2].id, "c-<x>");
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "");
        assert_eq!(rfc3339(86_400), "1970-01-02T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
