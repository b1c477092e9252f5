//! A sharded key-value HTTP service: every instance joins one gossip ring, and any
//! instance takes `PUT /kv/{key}` and `GET /kv/{key}`, storing each key on its 3 replicas
//! and answering once 2 of them did (quorum), so one instance may be down.
//!
//! ```text
//! cargo run -p ringkit-member --example kv_service -- --id a --http 127.0.0.1:8001 --gossip 127.0.0.1:7001
//! cargo run -p ringkit-member --example kv_service -- --id b --http 127.0.0.1:8002 --gossip 127.0.0.1:7002 --join 127.0.0.1:7001
//! cargo run -p ringkit-member --example kv_service -- --id c --http 127.0.0.1:8003 --gossip 127.0.0.1:7003 --join 127.0.0.1:7001
//! curl -X PUT --data hello 127.0.0.1:8001/kv/greeting; curl 127.0.0.1:8003/kv/greeting
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use ringkit_member::ring::quorum::QuorumConfig;
use ringkit_member::{GetBuffer, Member, Operation, RingSnapshot, RingView, Store, hash_key};

#[derive(Parser)]
struct Args {
    /// Instance id, unique in the ring.
    #[arg(long)]
    id: String,
    /// HTTP address to serve on (also the address peers reach this instance at).
    #[arg(long)]
    http: SocketAddr,
    /// Gossip address to listen on.
    #[arg(long)]
    gossip: SocketAddr,
    /// Gossip address of an instance already running (none: start a new ring).
    #[arg(long)]
    join: Vec<String>,
}

/// Most keys one instance keeps; a write beyond it is refused with 507.
const MAX_KEYS: usize = 100_000;
/// Largest value accepted.
const MAX_VALUE: usize = 64 * 1024;

/// A value with the time it was written at: when replicas disagree, the newest wins.
type Versioned = (u64, String);

#[derive(Clone)]
struct App {
    ring: RingView,
    http: reqwest::Client,
    /// This instance's share of the keys (std Mutex: never held across an await).
    local: Arc<Mutex<HashMap<String, Versioned>>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init(); // shows gossip and heartbeat errors
    let args = Args::parse();
    let store = Store::gossip(args.gossip, args.join);
    let member = Member::builder(store, &args.id, args.http.to_string())
        .tokens(128)
        .local_testing()
        .join()
        .await?;
    let app = App {
        ring: member.view(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?,
        local: Arc::default(),
    };
    let router = Router::new()
        .route("/kv/{key}", get(read).put(write))
        .route("/replica/{key}", get(read_replica).put(write_replica))
        .route("/ring", get(ring))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    println!("{} serving on {}", args.id, args.http);
    axum::serve(listener, router)
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
        .await?;
    member.leave().await?;
    Ok(())
}

/// The replicas of `key` for `op`, as (id, address) pairs, in a set that
/// `do_until_quorum` can call.
fn replicas(
    ring: &RingSnapshot,
    key: &str,
    op: Operation,
) -> Result<ringkit_member::ring::ReplicationSet, StatusCode> {
    let mut buf = GetBuffer::new();
    let set = ring.get(hash_key(key), op, SystemTime::now(), &mut buf);
    set.map(|s| s.to_replication_set())
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

async fn write(State(app): State<App>, Path(key): Path<String>, body: String) -> StatusCode {
    if body.len() > MAX_VALUE {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let set = match replicas(&app.ring.snapshot(), &key, Operation::WRITE) {
        Ok(set) => set,
        Err(status) => return status,
    };
    let version = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let calls = set.do_until_quorum(
        QuorumConfig::default(),
        |replica| {
            let url = format!("http://{}/replica/{key}", replica.addr);
            let request = app
                .http
                .put(url)
                .header("x-version", version)
                .body(body.clone());
            async move {
                match request.send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("{}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
        |()| {},
    );
    match calls.await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn read(State(app): State<App>, Path(key): Path<String>) -> Result<String, StatusCode> {
    let set = replicas(&app.ring.snapshot(), &key, Operation::READ)?;
    let answers = set.do_until_quorum(
        QuorumConfig::default(),
        |replica| {
            let url = format!("http://{}/replica/{key}", replica.addr);
            let request = app.http.get(url);
            async move {
                let r = request.send().await.map_err(|e| e.to_string())?;
                match r.status() {
                    StatusCode::NOT_FOUND => Ok(None),
                    s if s.is_success() => r
                        .json::<Versioned>()
                        .await
                        .map(Some)
                        .map_err(|e| e.to_string()),
                    s => Err(s.to_string()),
                }
            }
        },
        |_| {},
    );
    let answers = answers.await.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let newest = answers
        .into_iter()
        .flatten()
        .max_by_key(|(version, _)| *version);
    newest.map(|(_, value)| value).ok_or(StatusCode::NOT_FOUND)
}

async fn write_replica(
    State(app): State<App>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let version = headers
        .get("x-version")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let Some(version) = version else {
        return StatusCode::BAD_REQUEST;
    };
    let mut local = app.local.lock().unwrap();
    if local.len() >= MAX_KEYS && !local.contains_key(&key) {
        return StatusCode::INSUFFICIENT_STORAGE;
    }
    let entry = local.entry(key).or_insert((0, String::new()));
    if version >= entry.0 {
        *entry = (version, body);
    }
    StatusCode::NO_CONTENT
}

async fn read_replica(
    State(app): State<App>,
    Path(key): Path<String>,
) -> Result<Json<Versioned>, StatusCode> {
    let local = app.local.lock().unwrap();
    local
        .get(&key)
        .cloned()
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

/// The ring as this instance sees it: `[[id, state], ...]`.
async fn ring(State(app): State<App>) -> Json<Vec<(String, String)>> {
    let ring = app.ring.snapshot();
    Json(
        ring.instances()
            .iter()
            .map(|i| (i.id.clone(), format!("{:?}", i.state())))
            .collect(),
    )
}
