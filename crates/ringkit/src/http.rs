//! The node's HTTP surface: `/ring` (HTML or JSON, with Forget), `/ready`, `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use ringkit_kv::{CasDecision, Client};
use ringkit_lifecycle::{Lifecycler, RingDesc, RingWatcher};
use ringkit_ring::Operation;

/// What the handlers share.
pub(crate) struct AppState {
    pub(crate) watcher: Arc<RingWatcher>,
    pub(crate) lifecycler: Option<Arc<Lifecycler>>,
    pub(crate) kv: Arc<dyn Client<RingDesc>>,
    pub(crate) ring_key: String,
    pub(crate) registry: Registry,
}

/// The router of a node.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ring", get(ring_page).post(ring_forget))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match &state.lifecycler {
        Some(l) => match l.check_ready(Instant::now()).await {
            Ok(()) => (StatusCode::OK, "ready\n").into_response(),
            Err(e) => {
                (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response()
            }
        },
        None => (StatusCode::OK, "ready\n").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One row of the ring page, in dskit's JSON field names.
#[derive(serde::Serialize)]
struct Shard {
    id: String,
    state: String,
    address: String,
    timestamp: i64,
    registered_timestamp: i64,
    read_only: bool,
    read_only_updated_timestamp: i64,
    zone: String,
    tokens: usize,
    ownership_percent: f64,
    healthy: bool,
}

fn shards(state: &AppState) -> Vec<Shard> {
    let ring = state.watcher.snapshot();
    let now = SystemTime::now();
    ring.instances()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let idx = i as u32;
            let healthy = ring.is_healthy(idx, Operation::REPORTING, now);
            Shard {
                id: d.id.clone(),
                state: if healthy {
                    d.known_state()
                        .map_or_else(|| d.state.to_string(), |s| s.to_string())
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
                healthy,
            }
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn ring_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let rows = shards(&state);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return axum::Json(serde_json::json!({ "shards": rows, "now": now })).into_response();
    }
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ring status</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .unhealthy{color:#b00;font-weight:bold}</style></head><body><h1>Ring status</h1>",
    );
    let _ = write!(
        html,
        "<p>{} instances. Ownership is each instance's share of its zone's ring.</p>\
         <table><tr><th>Instance ID</th><th>Zone</th><th>State</th><th>Address</th>\
         <th>Last heartbeat</th><th>Tokens</th><th>Ownership</th><th>Actions</th></tr>",
        rows.len()
    );
    for r in &rows {
        let class = if r.healthy {
            ""
        } else {
            " class=\"unhealthy\""
        };
        let _ = write!(
            html,
            "<tr><td>{id}</td><td>{zone}</td><td{class}>{state}</td><td>{addr}</td>\
             <td>{age}s ago</td><td>{tokens}</td><td>{own:.3}%</td><td>\
             <form method=\"post\" action=\"/ring\" onsubmit=\"return confirm('Forget {id}?')\">\
             <input type=\"hidden\" name=\"forget\" value=\"{id}\">\
             <button type=\"submit\">Forget</button></form></td></tr>",
            id = escape(&r.id),
            zone = escape(&r.zone),
            state = escape(&r.state),
            addr = escape(&r.address),
            age = now - r.timestamp,
            tokens = r.tokens,
            own = r.ownership_percent,
        );
    }
    html.push_str("</table></body></html>");
    Html(html).into_response()
}

#[derive(serde::Deserialize)]
struct ForgetForm {
    forget: String,
}

async fn ring_forget(
    State(state): State<Arc<AppState>>,
    axum::Form(form): axum::Form<ForgetForm>,
) -> Response {
    let id = form.forget;
    let result = state
        .kv
        .cas(&state.ring_key, &mut |current: Option<RingDesc>| {
            let mut desc = current.map(|v| v.0).unwrap_or_default();
            if desc.remove_instance(&id).is_some() {
                CasDecision::Write(RingDesc(desc))
            } else {
                CasDecision::Unchanged
            }
        })
        .await;
    match result {
        Ok(()) => Redirect::to("/ring").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error forgetting instance {id}: {e}\n"),
        )
            .into_response(),
    }
}
