//! Ingest storage's partition ring on a node (Mimir `-ingest-storage.enabled`): the
//! `-ingester.partition-ring.*` flags, the partition instance lifecycler of an ingester,
//! the partition ring page at `/ingester/partition-ring` (dskit's
//! `PartitionRingPageHandler`, with its state-change action), Mimir's
//! `/ingester/prepare-partition-downscale`, and dskit's partition ring metrics.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use ringkit_kv::Client;
use ringkit_lifecycle::lifecycler::Clock;
use ringkit_lifecycle::partition_lifecycler::{
    change_partition_state, set_partition_state_change_lock,
};
use ringkit_lifecycle::{
    PartitionInstanceLifecycler, PartitionLifecyclerError, PartitionRingValue,
    PartitionRingWatcher, ReconcileKind,
};
use ringkit_ring::partition::{PartitionRing, PartitionRingError, PartitionState};

use crate::duration::parse_duration;
use crate::ring_page::{escape, rfc3339};

/// Mimir's partition ring key and name (`ingester-partitions`).
pub(crate) const DEFAULT_KEY: &str = "ingester-partitions";

/// Flags of ingest storage's partition ring, named like Mimir's.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PartitionArgs {
    /// Run the partition ring (Mimir's ingest storage): an ingester owns the partition
    /// numbered like its instance ID (`ingester-zone-a-7` owns 7), every node serves
    /// `/ingester/partition-ring` and the partition ring metrics.
    #[arg(long = "ingest-storage.enabled", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) ingest_storage_enabled: bool,
    /// Store of the partition ring. ringkit keeps it in the node's one store
    /// (`--kv.store`); empty or the same name is accepted, another one is an error.
    #[arg(long = "ingester.partition-ring.store", default_value = "")]
    pub(crate) partition_store: String,
    /// Prefix of the partition ring key (Mimir's default `collectors/`; its jsonnet
    /// sets it empty).
    #[arg(long = "ingester.partition-ring.prefix", default_value = "collectors/")]
    pub(crate) partition_prefix: String,
    /// Key of the partition ring after the prefix (ringkit's flag: Mimir and Tempo use
    /// `ingester-partitions`, Loki `ingester-partitions-key`).
    #[arg(long = "ingester.partition-ring.key", default_value = DEFAULT_KEY)]
    pub(crate) partition_key: String,
    /// Owners to wait for before a PENDING partition goes ACTIVE.
    #[arg(
        long = "ingester.partition-ring.min-partition-owners-count",
        default_value_t = 1
    )]
    pub(crate) partition_min_owners_count: usize,
    /// How long each of those owners must have been registered.
    #[arg(long = "ingester.partition-ring.min-partition-owners-duration", default_value = "10s", value_parser = parse_duration)]
    pub(crate) partition_min_owners_duration: Duration,
    /// INACTIVE partitions with no owners are deleted this long after going INACTIVE
    /// (0: never).
    #[arg(long = "ingester.partition-ring.delete-inactive-partition-after", default_value = "13h", value_parser = parse_duration)]
    pub(crate) partition_delete_inactive_after: Duration,
    /// How often the partition lifecycler reconciles (dskit's fixed 5s; ringkit's flag,
    /// for tests and demos).
    #[arg(long = "ingester.partition-ring.lifecycler-polling-interval", default_value = "5s", value_parser = parse_duration)]
    pub(crate) partition_polling_interval: Duration,
}

impl PartitionArgs {
    /// Checks the flags against the node's store.
    pub(crate) fn validate(&self, node_store: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.partition_store.is_empty() || self.partition_store == node_store,
            "--ingester.partition-ring.store={} differs from --kv.store={node_store}: \
             ringkit keeps the partition ring in the node's store",
            self.partition_store
        );
        Ok(())
    }
}

/// The lifecycler config of ingester `instance_id` (its partition: the ID's trailing
/// number, as Mimir derives it).
pub(crate) fn lifecycler_config(
    args: &PartitionArgs,
    instance_id: &str,
) -> anyhow::Result<ringkit_lifecycle::PartitionLifecyclerConfig> {
    let id = ringkit_lifecycle::partition_id_from_instance_id(instance_id).ok_or_else(|| {
        anyhow::anyhow!(
            "ingest storage needs an instance ID ending in -<number> (the partition it \
             owns), got {instance_id:?}"
        )
    })?;
    let mut cfg = ringkit_lifecycle::PartitionLifecyclerConfig::new(instance_id, id);
    cfg.wait_owners_count_on_pending = args.partition_min_owners_count;
    cfg.wait_owners_duration_on_pending = args.partition_min_owners_duration;
    cfg.delete_inactive_partition_after = args.partition_delete_inactive_after;
    cfg.polling_interval = args.partition_polling_interval;
    Ok(cfg)
}

/// What the partition routes share.
pub(crate) struct PartitionRoutes {
    pub(crate) watcher: Arc<PartitionRingWatcher>,
    pub(crate) kv: Arc<dyn Client<PartitionRingValue>>,
    pub(crate) key: String,
    pub(crate) lifecycler: Option<Arc<PartitionInstanceLifecycler>>,
    /// True while the partition lifecycler runs (Mimir answers 503 outside Running).
    pub(crate) running: AtomicBool,
    pub(crate) clock: Clock,
}

/// The partition routes: the ring page and the partition downscale endpoint.
pub(crate) fn router(state: Arc<PartitionRoutes>) -> Router {
    Router::new()
        .route(
            "/ingester/partition-ring",
            get(page).post(change).fallback(unsupported),
        )
        .route("/ingester/prepare-partition-downscale", any(downscale))
        .with_state(state)
}

/// One partition as dskit's page JSON shows it.
#[derive(Debug, serde::Serialize)]
struct PartitionRow {
    id: i32,
    corrupted: bool,
    /// The enum number, as Go's JSON writes it.
    state: i32,
    state_timestamp: String,
    /// dskit #799: while true, the state does not change.
    state_change_locked: bool,
    owner_ids: Vec<String>,
    tokens: Vec<u32>,
    #[serde(skip)]
    ownership_percent: f64,
}

/// Go's RFC 3339 form of a Unix second (`time.Unix(ts, 0)` in UTC).
fn go_time(ts: i64) -> String {
    if ts == 0 {
        "1970-01-01T00:00:00Z".to_owned()
    } else {
        rfc3339(ts)
    }
}

/// Rows sorted by partition ID, with a corrupt row for every partition some owner names
/// but the ring lacks (dskit's page does the same).
fn rows(ring: &PartitionRing) -> Vec<PartitionRow> {
    let desc = ring.desc();
    let owned = desc.count_tokens();
    let owners = desc.owners_by_partition();
    let mut out: Vec<PartitionRow> = desc
        .partitions
        .iter()
        .map(|(id, p)| PartitionRow {
            id: *id,
            corrupted: false,
            state: p.state,
            state_timestamp: go_time(p.state_timestamp),
            state_change_locked: p.state_change_locked,
            owner_ids: owners.get(id).cloned().unwrap_or_default(),
            tokens: p.tokens.clone(),
            ownership_percent: owned.get(id).copied().unwrap_or(0) as f64 / f64::from(u32::MAX)
                * 100.0,
        })
        .collect();
    let missing: BTreeSet<i32> = owners
        .keys()
        .filter(|id| !desc.partitions.contains_key(id))
        .copied()
        .collect();
    for id in missing {
        out.push(PartitionRow {
            id,
            corrupted: true,
            state: PartitionState::PartitionUnknown as i32,
            state_timestamp: "0001-01-01T00:00:00Z".to_owned(),
            state_change_locked: false,
            owner_ids: owners.get(&id).cloned().unwrap_or_default(),
            tokens: Vec::new(),
            ownership_percent: 0.0,
        });
    }
    out.sort_by_key(|r| r.id);
    out
}

/// The state a page button moves a partition to (dskit offers these three).
fn ui_target(state: i32) -> Option<PartitionState> {
    match PartitionState::try_from(state).ok()? {
        PartitionState::PartitionPending => Some(PartitionState::PartitionActive),
        PartitionState::PartitionActive => Some(PartitionState::PartitionInactive),
        PartitionState::PartitionInactive => Some(PartitionState::PartitionActive),
        _ => None,
    }
}

fn render(rows: &[PartitionRow], show_tokens: bool, key: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Partitions Ring Status</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}\
         td,th{{padding:4px 8px;text-align:left;vertical-align:top}}</style></head><body>\
         <h1>Partitions Ring Status</h1><p>Key <code>{}</code>. \
         <a href=\"?tokens={}\">{}</a></p>\
         <table><thead><tr><th>Partition ID</th><th>State</th><th>State updated at</th>\
         <th>Owners</th><th>Tokens</th><th>Ownership</th><th>Actions</th></tr></thead><tbody>",
        escape(key),
        !show_tokens,
        if show_tokens {
            "Hide Tokens"
        } else {
            "Show Tokens"
        },
    );
    for r in rows {
        let colour = if r.corrupted {
            " style=\"background-color:#FFDEDE\""
        } else if r.id % 2 == 0 {
            " style=\"background-color:#BEBEBE\""
        } else {
            ""
        };
        let state = if r.corrupted {
            "Corrupt".to_owned()
        } else {
            let name = PartitionState::try_from(r.state)
                .map_or_else(|_| format!("Unknown({})", r.state), |s| s.to_string());
            if r.state_change_locked {
                format!("{name} (locked)")
            } else {
                name
            }
        };
        let updated = if r.corrupted {
            "N/A".to_owned()
        } else {
            r.state_timestamp.replace('T', " ").replace('Z', " UTC")
        };
        let owners: Vec<String> = r.owner_ids.iter().map(|o| escape(o)).collect();
        let _ = write!(
            h,
            "<tr{colour}><td>{}</td><td>{state}</td><td>{updated}</td><td>{}</td><td>{}</td>\
             <td>{:.3}%</td><td>",
            r.id,
            owners.join("<br>"),
            r.tokens.len(),
            r.ownership_percent,
        );
        if let (false, Some(to)) = (r.corrupted, ui_target(r.state)) {
            // A locked partition's buttons are disabled, as on dskit's page.
            let disabled = if r.state_change_locked {
                " disabled"
            } else {
                ""
            };
            for (action, label) in [
                ("change_state", "Change state to"),
                ("change_state_and_lock", "Change state and lock to"),
            ] {
                let _ = write!(
                    h,
                    "<form method=\"POST\" onsubmit=\"return confirm('{label} {to} for partition {id}?')\">\
                     <input type=\"hidden\" name=\"csrf_token\" value=\"$__CSRF_TOKEN_PLACEHOLDER__\">\
                     <input type=\"hidden\" name=\"partition_id\" value=\"{id}\">\
                     <input type=\"hidden\" name=\"partition_state\" value=\"{full}\">\
                     <input type=\"hidden\" name=\"action\" value=\"{action}\">\
                     <button type=\"submit\"{disabled}>{label} {to}</button></form>",
                    id = r.id,
                    full = to.as_str_name(),
                );
            }
        }
        if !r.corrupted {
            let (locked, label) = if r.state_change_locked {
                (false, "Unlock state change")
            } else {
                (true, "Lock state change")
            };
            let _ = write!(
                h,
                "<form method=\"POST\" onsubmit=\"return confirm('{label} of partition {id}?')\">\
                 <input type=\"hidden\" name=\"csrf_token\" value=\"$__CSRF_TOKEN_PLACEHOLDER__\">\
                 <input type=\"hidden\" name=\"partition_id\" value=\"{id}\">\
                 <input type=\"hidden\" name=\"locked\" value=\"{locked}\">\
                 <input type=\"hidden\" name=\"action\" value=\"state_change_lock\">\
                 <button type=\"submit\">{label}</button></form>",
                id = r.id,
            );
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</tbody></table>");
    if show_tokens {
        for r in rows.iter().filter(|r| !r.tokens.is_empty()) {
            let tokens: Vec<String> = r.tokens.iter().map(u32::to_string).collect();
            let _ = write!(
                h,
                "<h2>Partition {}</h2><p>Tokens: {}</p>",
                r.id,
                tokens.join(", ")
            );
        }
    }
    h.push_str("</body></html>");
    h
}

#[derive(serde::Deserialize, Default)]
struct PageQuery {
    tokens: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct ChangeForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    partition_id: String,
    #[serde(default)]
    partition_state: String,
    /// `state_change_lock`'s new value (`true`/`false`, as Go's `strconv.ParseBool`).
    #[serde(default)]
    locked: String,
}

/// Longest wait after a state change for the watcher to show it, so the page the browser
/// is sent back to already has the new state.
const CHANGE_SETTLE: Duration = Duration::from_secs(3);

async fn wait_for_state(watcher: &PartitionRingWatcher, id: i32, to: PartitionState) {
    wait_for(watcher, |ring| {
        ring.partition(id).map(|p| p.state) == Some(to as i32)
    })
    .await;
}

/// Waits (at most [`CHANGE_SETTLE`]) until the watcher's ring satisfies `done`.
async fn wait_for(watcher: &PartitionRingWatcher, done: impl Fn(&PartitionRing) -> bool) {
    let mut updates = watcher.subscribe();
    let deadline = tokio::time::Instant::now() + CHANGE_SETTLE;
    while !done(&watcher.ring()) {
        match tokio::time::timeout_at(deadline, updates.changed()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

async fn page(
    State(st): State<Arc<PartitionRoutes>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let ring = st.watcher.ring();
    let rows = rows(&ring);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return axum::Json(serde_json::json!({ "partitions": rows })).into_response();
    }
    let show_tokens = q.tokens.as_deref() == Some("true");
    Html(render(&rows, show_tokens, &st.key)).into_response()
}

/// The page's form (dskit's fields and actions): `change_state`, `change_state_and_lock`
/// (the change, then the lock, as dskit does, not atomically) and `state_change_lock`;
/// any other action only redirects back, as dskit's handler does.
async fn change(
    State(st): State<Arc<PartitionRoutes>>,
    axum::Form(form): axum::Form<ChangeForm>,
) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, msg).into_response();
    let action = form.action.as_str();
    if matches!(
        action,
        "change_state" | "change_state_and_lock" | "state_change_lock"
    ) {
        let Ok(id) = form.partition_id.parse::<i32>() else {
            return bad(format!("invalid partition ID: {:?}\n", form.partition_id));
        };
        if action == "state_change_lock" {
            let Some(locked) = go_parse_bool(&form.locked) else {
                return bad(format!("invalid locked value: {:?}\n", form.locked));
            };
            if let Err(e) =
                set_partition_state_change_lock(&*st.kv, &st.key, id, locked, &st.clock).await
            {
                return bad(format!("failed to lock partition state change: {e}\n"));
            }
            wait_for(&st.watcher, |ring| {
                ring.desc()
                    .partitions
                    .get(&id)
                    .is_none_or(|p| p.state_change_locked == locked)
            })
            .await;
        } else {
            let Some(to) = PartitionState::from_str_name(&form.partition_state) else {
                return bad("invalid partition state\n".to_owned());
            };
            if let Err(e) = change_partition_state(&*st.kv, &st.key, id, to, &st.clock).await {
                return bad(format!("failed to change partition state: {e}\n"));
            }
            if action == "change_state_and_lock"
                && let Err(e) =
                    set_partition_state_change_lock(&*st.kv, &st.key, id, true, &st.clock).await
            {
                return bad(format!("failed to lock partition state change: {e}\n"));
            }
            wait_for_state(&st.watcher, id, to).await;
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, "#")]).into_response()
}

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True and their false forms.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

async fn unsupported() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, "Unsupported HTTP method\n").into_response()
}

/// Mimir's `/ingester/prepare-partition-downscale`: POST makes the owned partition
/// INACTIVE (409 while it is PENDING), DELETE makes an INACTIVE one ACTIVE again; every
/// method answers `{"timestamp": <INACTIVE since, Unix s, or 0>}`.
async fn downscale(State(st): State<Arc<PartitionRoutes>>, method: Method) -> Response {
    let Some(l) = &st.lifecycler else {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "this node owns no partition (not an ingester with ingest storage)\n",
        )
            .into_response();
    };
    if !st.running.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let failed = |e: PartitionLifecyclerError| {
        tracing::error!(error = %e, "prepare-partition-downscale");
        (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
    };
    match method {
        Method::POST => match l.get_partition_state().await {
            Ok((PartitionState::PartitionPending, _)) => {
                return (
                    StatusCode::CONFLICT,
                    "the partition is PENDING: it cannot be prepared for downscale\n",
                )
                    .into_response();
            }
            Ok((PartitionState::PartitionInactive, _)) => {}
            Ok(_) => {
                if let Err(e) = l
                    .change_partition_state(PartitionState::PartitionInactive)
                    .await
                {
                    return failed(e);
                }
            }
            Err(e) => return failed(e),
        },
        Method::DELETE => match l.get_partition_state().await {
            Ok((PartitionState::PartitionInactive, _)) => {
                if let Err(e) = l
                    .change_partition_state(PartitionState::PartitionActive)
                    .await
                {
                    return failed(e);
                }
            }
            Ok(_) => {}
            Err(e) => return failed(e),
        },
        _ => {}
    }
    match l.get_partition_state().await {
        Ok((state, since)) => {
            let timestamp = if state == PartitionState::PartitionInactive {
                since
            } else {
                0
            };
            axum::Json(serde_json::json!({ "timestamp": timestamp })).into_response()
        }
        Err(PartitionLifecyclerError::Rule(PartitionRingError::PartitionDoesNotExist)) => {
            axum::Json(serde_json::json!({ "timestamp": 0 })).into_response()
        }
        Err(e) => failed(e),
    }
}

/// dskit's partition ring metrics, computed at scrape time: `partition_ring_partitions`
/// (watcher) and, on an ingester, the lifecycler's reconcile counters.
#[derive(Debug)]
pub(crate) struct PartitionRingMetrics {
    name: String,
    watcher: Arc<PartitionRingWatcher>,
    lifecycler: Option<Arc<PartitionInstanceLifecycler>>,
    prefixes: Vec<String>,
}

impl PartitionRingMetrics {
    pub(crate) fn new(
        name: &str,
        watcher: Arc<PartitionRingWatcher>,
        lifecycler: Option<Arc<PartitionInstanceLifecycler>>,
        prefix: &str,
    ) -> PartitionRingMetrics {
        let mut prefixes = vec![String::new()];
        if !prefix.is_empty() {
            prefixes.push(prefix.to_owned());
        }
        PartitionRingMetrics {
            name: name.to_owned(),
            watcher,
            lifecycler,
            prefixes,
        }
    }
}

impl Collector for PartitionRingMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.watcher.ring().count_partitions_by_state();
        let reconciles = self.lifecycler.as_ref().map(|l| l.reconciles());
        let name = self.name.as_str();
        for prefix in &self.prefixes {
            let family = format!("{prefix}partition_ring_partitions");
            let mut m = encoder.encode_descriptor(
                &family,
                "Number of partitions by state in the partitions ring.",
                None,
                MetricType::Gauge,
            )?;
            for (state, n) in &counts {
                let labels = [("name", name), ("state", state.clean_name())];
                ConstGauge::new(*n as i64).encode(m.encode_family(&labels)?)?;
            }
            if let Some(r) = reconciles {
                // prometheus-client appends `_total` to counter names.
                for (family, help, values) in [
                    (
                        "partition_ring_lifecycler_reconciles",
                        "Total number of reconciliations started.",
                        r.total,
                    ),
                    (
                        "partition_ring_lifecycler_reconciles_failed",
                        "Total number of reconciliations failed.",
                        r.failed,
                    ),
                ] {
                    let family = format!("{prefix}{family}");
                    let mut m =
                        encoder.encode_descriptor(&family, help, None, MetricType::Counter)?;
                    for (kind, v) in ReconcileKind::ALL.iter().zip(values) {
                        let labels = [("name", name), ("type", kind.label())];
                        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Unix seconds of the wall clock (the page's state changes).
pub(crate) fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkit_ring::partition::{OwnerState, PartitionRingDesc};

    fn ring() -> PartitionRing {
        let mut d = PartitionRingDesc::new();
        d.add_partition(0, PartitionState::PartitionActive, 1_700_000_000)
            .unwrap();
        d.add_partition(1, PartitionState::PartitionPending, 0)
            .unwrap();
        d.add_partition(2, PartitionState::PartitionInactive, 1_700_000_060)
            .unwrap();
        d.add_or_update_owner("ingester-zone-a-0", OwnerState::OwnerActive, 0, 1);
        d.add_or_update_owner("ingester-zone-b-0", OwnerState::OwnerActive, 0, 1);
        d.add_or_update_owner("<ingester-5>", OwnerState::OwnerActive, 5, 1);
        PartitionRing::new(d)
    }

    #[test]
    fn rows_are_sorted_with_a_corrupt_row_for_an_owned_missing_partition() {
        let r = rows(&ring());
        assert_eq!(r.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 2, 5]);
        assert_eq!(r[0].owner_ids, ["ingester-zone-a-0", "ingester-zone-b-0"]);
        assert_eq!(r[0].state_timestamp, "2023-11-14T22:13:20Z");
        assert_eq!(r[1].state_timestamp, "1970-01-01T00:00:00Z");
        assert_eq!(r[0].tokens.len(), 512);
        assert!(r[3].corrupted && r[3].tokens.is_empty() && r[3].state == 0);
        let total: f64 = r.iter().map(|r| r.ownership_percent).sum();
        assert!((total - 100.0).abs() < 1e-6, "{total}");
        let json = serde_json::to_value(&r[2]).unwrap();
        assert_eq!(json["state"], 3);
        assert_eq!(json["corrupted"], false);
        assert_eq!(json["state_timestamp"], "2023-11-14T22:14:20Z");
    }

    #[test]
    fn page_offers_dskits_actions_and_escapes_owner_ids() {
        let html = render(&rows(&ring()), false, "collectors/ingester-partitions");
        assert!(html.contains("Partitions Ring Status"));
        assert!(
            html.contains("value=\"PartitionInactive\""),
            "active → inactive"
        );
        assert_eq!(
            html.matches("value=\"PartitionActive\"").count(),
            4,
            "pending and inactive → active, each with and without the lock"
        );
        assert!(html.contains("value=\"change_state_and_lock\""));
        assert!(html.contains("Lock state change") && !html.contains(" disabled>"));
        let mut locked = ring().desc().clone();
        locked.update_partition_state_change_lock(0, true, 5);
        let html = render(&rows(&PartitionRing::new(locked)), false, "k");
        assert!(html.contains("(locked)") && html.contains("Unlock state change"));
        assert!(
            html.contains(" disabled>"),
            "a locked partition's change buttons"
        );
        assert_eq!(go_parse_bool("T"), Some(true));
        assert_eq!(go_parse_bool("0"), Some(false));
        assert_eq!(go_parse_bool("yes"), None);
        assert!(html.contains("&lt;ingester-5&gt;") && !html.contains("<ingester-5>"));
        assert!(html.contains("Corrupt") && html.contains("N/A"));
        assert!(html.contains("2023-11-14 22:13:20 UTC"));
        assert!(!html.contains("Tokens: "));
        assert!(render(&rows(&ring()), true, "k").contains("Tokens: "));
    }

    #[test]
    fn store_flag_must_name_the_nodes_store() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            p: PartitionArgs,
        }
        let a = A::try_parse_from(["x", "--ingest-storage.enabled"])
            .unwrap()
            .p;
        assert!(a.ingest_storage_enabled);
        assert_eq!(a.partition_min_owners_count, 1);
        assert_eq!(a.partition_min_owners_duration, Duration::from_secs(10));
        assert_eq!(
            a.partition_delete_inactive_after,
            Duration::from_secs(13 * 3600)
        );
        assert!(a.validate("memberlist").is_ok());
        let b = A::try_parse_from(["x", "--ingester.partition-ring.store=etcd"])
            .unwrap()
            .p;
        assert!(b.validate("etcd").is_ok());
        assert!(b.validate("memberlist").is_err());
        let cfg = lifecycler_config(&a, "ingester-zone-b-7").unwrap();
        assert_eq!(
            (cfg.partition_id, cfg.instance_id.as_str()),
            (7, "ingester-zone-b-7")
        );
        assert!(lifecycler_config(&a, "ingester").is_err());
    }
}
