//! The distributor over HTTP in front of three real in-process ingester gRPC servers
//! (RF 3): quorum, error classes, tenant rules and the merge of replicas on read.

mod common;

use std::sync::Arc;

use common::{Running, now_ms, ring_of, series, start_ingester};
use prost::Message;
use ringkit_dataplane::distributor::{Distributor, DistributorConfig};
use ringkit_ingest::decode::{DecodeLimits, decompress, encode_snappy};
use ringkit_ingest::prompb::{
    LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, ResponseType, TimeSeries,
    WriteRequest,
};
use tempfile::TempDir;

struct Setup {
    _dirs: Vec<TempDir>,
    ingesters: Vec<Running>,
    url: String,
    http: reqwest::Client,
}

async fn setup(cfg: DistributorConfig) -> Setup {
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut ingesters = Vec::new();
    for d in &dirs {
        ingesters.push(start_ingester(d.path()).await);
    }
    let addrs: Vec<&str> = ingesters.iter().map(|i| i.addr.as_str()).collect();
    let distributor = Arc::new(Distributor::new(cfg, ring_of(&addrs)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = ringkit_dataplane::http::router(distributor);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Setup {
        _dirs: dirs,
        ingesters,
        url,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    async fn push(&self, series: Vec<TimeSeries>, tenant: Option<&str>) -> (u16, String) {
        let body = encode_snappy(&WriteRequest {
            timeseries: series,
            metadata: Vec::new(),
        });
        let mut req = self
            .http
            .post(format!("{}/api/v1/push", self.url))
            .header("Content-Encoding", "snappy")
            .body(body);
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn read(&self, req: ReadRequest) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .post(format!("{}/api/v1/read", self.url))
            .header("Content-Encoding", "snappy")
            .body(encode_snappy(&req))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
    }

    async fn read_all(&self, name: &str) -> Result<Vec<TimeSeries>, (u16, String)> {
        let (status, body) = self.read(query(name)).await;
        if status != 200 {
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        let raw = decompress(&body, &DecodeLimits::default()).unwrap();
        let mut resp = ReadResponse::decode(&raw[..]).unwrap();
        Ok(resp.results.remove(0).timeseries)
    }
}

fn query(name: &str) -> ReadRequest {
    ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: i64::MAX,
            matchers: vec![LabelMatcher {
                r#type: MatcherType::Eq as i32,
                name: "__name__".into(),
                value: name.into(),
            }],
            hints: None,
        }],
        accepted_response_types: Vec::new(),
    }
}

fn many(name: &str, n: usize, t: i64) -> Vec<TimeSeries> {
    (0..n)
        .map(|i| {
            series(
                &[("__name__", name), ("i", &i.to_string())],
                &[(i as f64, t)],
            )
        })
        .collect()
}

#[tokio::test]
async fn every_series_reaches_its_three_replicas_and_reads_back_once() {
    let s = setup(DistributorConfig::default()).await;
    let t = now_ms();
    assert_eq!(s.push(many("m", 50, t), None).await, (200, String::new()));
    // The answer comes once a quorum (2 of 3) took each series; the third replica's call may
    // still be running (a first push to a tenant also creates its WAL), so wait for it, bounded.
    for ing in &s.ingesters {
        for _ in 0..250 {
            if ing.head.store().series_count("anonymous") == 50 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(ing.head.store().series_count("anonymous"), 50, "RF 3 of 3");
    }
    let got = s.read_all("m").await.unwrap();
    assert_eq!(got.len(), 50, "replicas merged into one series each");
    assert!(got.iter().all(|ts| ts.samples.len() == 1));
    assert!(got.windows(2).all(|w| w[0].labels < w[1].labels), "sorted");
}

#[tokio::test]
async fn one_ingester_down_keeps_quorum_two_down_is_a_5xx() {
    let mut s = setup(DistributorConfig::default()).await;
    let t = now_ms();
    s.ingesters.pop().unwrap().stop().await;
    assert_eq!(s.push(many("m", 20, t), None).await.0, 200);
    assert_eq!(s.read_all("m").await.unwrap().len(), 20);

    s.ingesters.pop().unwrap().stop().await;
    let (status, text) = s.push(many("m", 20, t + 1), None).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("failed pushing to ingesters"), "{text}");
    let (status, text) = s.read_all("m").await.unwrap_err();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("could not answer"), "{text}");
}

#[tokio::test]
async fn a_quorum_of_refusals_is_a_4xx_with_the_ingesters_reason() {
    let s = setup(DistributorConfig::default()).await;
    let t = now_ms();
    let up: &[(&str, &str)] = &[("__name__", "up")];
    assert_eq!(s.push(vec![series(up, &[(1.0, t)])], None).await.0, 200);
    let (status, text) = s.push(vec![series(up, &[(2.0, t)])], None).await;
    assert_eq!(status, 400);
    assert!(text.starts_with("duplicate sample for timestamp"), "{text}");
    let (status, text) = s.push(vec![series(up, &[(2.0, t - 10)])], None).await;
    assert_eq!(status, 400);
    assert!(text.starts_with("out of order sample"), "{text}");
}

#[tokio::test]
async fn tenants_come_from_the_header_or_the_default() {
    let s = setup(DistributorConfig {
        default_tenant: String::new(),
        ..DistributorConfig::default()
    })
    .await;
    let t = now_ms();
    let (status, text) = s.push(many("m", 1, t), None).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("X-Scope-OrgID"), "{text}");
    assert_eq!(s.push(many("m", 1, t), Some("team-a")).await.0, 200);
    // Ingester 0 may be the replica still taking the write after the quorum answer.
    for _ in 0..250 {
        if !s.ingesters[0].head.store().tenants().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(s.ingesters[0].head.store().tenants(), ["team-a"]);
}

#[tokio::test]
async fn read_refuses_what_it_cannot_serve_with_a_4xx() {
    let s = setup(DistributorConfig::default()).await;
    let mut streamed = query("m");
    streamed.accepted_response_types = vec![ResponseType::StreamedXorChunks as i32];
    let (status, body) = s.read(streamed).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("SAMPLES"));

    let mut bad = query("m");
    bad.queries[0].matchers[0].r#type = MatcherType::Re as i32;
    bad.queries[0].matchers[0].value = "(".into();
    let (status, body) = s.read(bad).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    let (status, _) = s.read(query("m")).await;
    assert_eq!(status, 200, "an empty answer is still an answer");
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_refused_with_413_or_400() {
    let s = setup(DistributorConfig {
        decode_limits: DecodeLimits {
            max_compressed_size: 2000,
            max_decompressed_size: 4000,
        },
        ..DistributorConfig::default()
    })
    .await;
    let t = now_ms();
    // Incompressible label values keep the snappy body above 2000 bytes.
    let noise: Vec<TimeSeries> = (0..300)
        .map(|i| {
            let v = format!("{:x}", (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            series(
                &[("__name__", "big"), ("v", &v), ("i", &i.to_string())],
                &[(1.0, t)],
            )
        })
        .collect();
    let (status, text) = s.push(noise, None).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("length limit exceeded"), "{text}");
    // Small on the wire but announcing more than the decompressed limit.
    let zeros = vec![series(
        &[("__name__", "z"), ("pad", &"0".repeat(5000))],
        &[(1.0, t)],
    )];
    let (status, text) = s.push(zeros, None).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.starts_with("decompressed message larger than max"),
        "{text}"
    );
}

/// `--target=all`: the distributor calls its own process' ingester directly. The local
/// ingester's ring address has nothing listening, so only the direct call can deliver; before
/// the slot is filled (the ingester still replaying), its share goes to gRPC and fails, and
/// the other two replicas still make the quorum.
#[tokio::test]
async fn the_local_ingester_is_called_without_grpc_once_it_serves() {
    use ringkit_dataplane::distributor::LocalIngester;
    use ringkit_dataplane::ingester::{IngesterService, load};
    use ringkit_ingest::validate::Limits;
    use std::sync::OnceLock;

    // The answer comes at quorum (2 of 3); the third call may still run, so counts are
    // awaited, bounded.
    async fn series_count(head: &ringkit_ingest::head::Head, want: usize) -> usize {
        for _ in 0..250 {
            if head.store().series_count("tenant-a") == want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        head.store().series_count("tenant-a")
    }

    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let remote = [
        start_ingester(dirs[0].path()).await,
        start_ingester(dirs[1].path()).await,
    ];
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (local_head, _) = load(&common::config(dirs[2].path())).await.unwrap();
    let slot = Arc::new(OnceLock::new());
    let addrs = [remote[0].addr.as_str(), remote[1].addr.as_str(), &closed];
    let distributor = Distributor::new(DistributorConfig::default(), ring_of(&addrs))
        .with_local_ingester(LocalIngester {
            addr: closed.clone(),
            service: Arc::clone(&slot),
        });
    let t = now_ms();
    let push = |series: Vec<TimeSeries>| {
        distributor.push(
            "tenant-a",
            WriteRequest {
                timeseries: series,
                metadata: Vec::new(),
            },
        )
    };
    // Not serving yet: gRPC to a closed port fails, quorum from the other two.
    push(many("early", 30, t))
        .await
        .expect("quorum of the remote two");
    assert_eq!(local_head.store().series_count("tenant-a"), 0);
    // Serving: every series whose replicas include the local instance lands in its head.
    let _ = slot.set(IngesterService::new(
        Arc::clone(&local_head),
        Limits::default(),
    ));
    push(many("late", 30, t + 1))
        .await
        .expect("all three replicas");
    assert_eq!(
        series_count(&local_head, 30).await,
        30,
        "RF 3 of 3 instances: the local ingester holds every series"
    );
    for r in &remote {
        assert_eq!(series_count(&r.head, 60).await, 60);
    }
}
