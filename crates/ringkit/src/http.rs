//! The node's HTTP surface: `/ring` (HTML or JSON, with Forget), `/ready`, `/metrics`.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use ringkit_kv::{CasDecision, Client};
use ringkit_lifecycle::{Lifecycler, RingDesc, RingWatcher};

use crate::ring_page;

/// What the handlers share.
pub(crate) struct AppState {
    pub(crate) watcher: Arc<RingWatcher>,
    pub(crate) lifecycler: Option<Arc<Lifecycler>>,
    pub(crate) kv: Arc<dyn Client<RingDesc>>,
    pub(crate) ring_key: String,
    pub(crate) registry: Registry,
    /// The gossip node, with `--kv.store=memberlist`.
    pub(crate) memberlist: Option<ringkit_memberlist::runtime::Memberlist>,
}

/// The router of a node.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ring", get(ring_page).post(ring_forget))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/memberlist", get(memberlist_page))
        .with_state(state)
}

#[derive(serde::Deserialize, Default)]
struct MemberlistQuery {
    #[serde(rename = "downloadKey")]
    download_key: Option<String>,
}

async fn memberlist_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<MemberlistQuery>,
) -> Response {
    let Some(node) = &state.memberlist else {
        return (
            StatusCode::NOT_FOUND,
            "this node does not use memberlist (--kv.store=memberlist)\n",
        )
            .into_response();
    };
    if let Some(key) = q.download_key {
        let version = node
            .kv()
            .describe()
            .into_iter()
            .find(|k| k.key == key)
            .map_or(0, |k| k.version);
        return match node.kv().encoded(&key) {
            Some((_, bytes)) => {
                let file: String = format!("{version}-{key}")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                (
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                        (
                            header::CONTENT_DISPOSITION,
                            format!("attachment; filename=\"{file}\""),
                        ),
                    ],
                    bytes,
                )
                    .into_response()
            }
            None => (StatusCode::NOT_FOUND, format!("no key {key:?}\n")).into_response(),
        };
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        axum::Json(crate::memberlist_page::json(node)).into_response()
    } else {
        Html(crate::memberlist_page::html(node)).into_response()
    }
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

#[derive(serde::Deserialize, Default)]
struct RingQuery {
    sort: Option<String>,
    order: Option<String>,
    forget: Option<String>,
}

async fn ring_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<RingQuery>,
) -> Response {
    if let Some(id) = q.forget {
        return Html(ring_page::confirm_forget(&id)).into_response();
    }
    let ring = state.watcher.snapshot();
    let now_time = SystemTime::now();
    let now = now_time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut rows = ring_page::rows(&ring, now_time);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return axum::Json(serde_json::json!({ "shards": rows, "now": now })).into_response();
    }
    let sort = ring_page::SortKey::parse(q.sort.as_deref().unwrap_or("id"));
    let descending = q.order.as_deref() == Some("desc");
    ring_page::sort_rows(&mut rows, sort, descending);
    Html(ring_page::render(
        &ring,
        &rows,
        now,
        sort,
        descending,
        &state.ring_key,
    ))
    .into_response()
}

/// How long a Forget waits for the ring watcher to see the removal, so the page the
/// browser is redirected to already shows the result.
const FORGET_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits (at most `limit`) until the watcher's snapshot no longer lists `id`.
async fn wait_until_gone(watcher: &RingWatcher, id: &str, limit: std::time::Duration) {
    let mut updates = watcher.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    while watcher.snapshot().has_instance(id) {
        match tokio::time::timeout_at(deadline, updates.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the watcher is gone: show whatever the page has.
            _ => return,
        }
    }
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
        Ok(()) => {
            wait_until_gone(&state.watcher, &id, FORGET_SETTLE).await;
            Redirect::to("/ring").into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error forgetting instance {id}: {e}\n"),
        )
            .into_response(),
    }
}
