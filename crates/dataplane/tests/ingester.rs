//! The ingester's gRPC service on a real socket with a real WAL: push, query, restart, and
//! Prometheus' answers for refused samples.

mod common;

use common::{now_ms, series, start_ingester};
use ringkit_dataplane::client::{IngesterPool, PoolConfig, with_tenant};
use ringkit_dataplane::encoded::RawWriteRequest;
use ringkit_dataplane::proto::QueryRequest;
use ringkit_ingest::prompb::{LabelMatcher, MatcherType, TimeSeries, WriteRequest};
use tonic::Code;

fn write(series: Vec<TimeSeries>) -> RawWriteRequest {
    RawWriteRequest::from(&WriteRequest {
        timeseries: series,
        metadata: Vec::new(),
    })
}

fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: MatcherType::Eq as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn all_of(name: &str) -> QueryRequest {
    QueryRequest {
        start_timestamp_ms: i64::MIN,
        end_timestamp_ms: i64::MAX,
        matchers: vec![eq("__name__", name)],
    }
}

const UP: &[(&str, &str)] = &[("__name__", "up"), ("job", "node")];

#[tokio::test]
async fn pushed_samples_are_read_back_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let ing = start_ingester(dir.path()).await;
    let mut c = IngesterPool::new(PoolConfig::default())
        .client(&ing.addr)
        .unwrap();
    let t = now_ms();
    let resp = c
        .push(with_tenant(write(vec![series(UP, &[(1.0, t), (2.0, t + 1)])]), "t1").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.appended, resp.duplicates), (2, 0));

    let got = c
        .query(with_tenant(all_of("up"), "t1").unwrap())
        .await
        .unwrap()
        .into_inner()
        .timeseries;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, series(UP, &[]).labels);
    let stamps: Vec<(i64, f64)> = got[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(stamps, [(t, 1.0), (t + 1, 2.0)]);

    let other = c
        .query(with_tenant(all_of("up"), "t2").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert!(other.timeseries.is_empty(), "tenants are isolated");

    // Inclusive time range.
    let mut q = all_of("up");
    q.start_timestamp_ms = t + 1;
    q.end_timestamp_ms = t + 1;
    let got = c
        .query(with_tenant(q, "t1").unwrap())
        .await
        .unwrap()
        .into_inner()
        .timeseries;
    assert_eq!(got[0].samples.len(), 1);
    ing.stop().await;
}

#[tokio::test]
async fn refused_samples_get_prometheus_answers_as_invalid_argument_and_keep_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ing = start_ingester(dir.path()).await;
    let mut c = IngesterPool::new(PoolConfig::default())
        .client(&ing.addr)
        .unwrap();
    let t = now_ms();
    let push = |s: Vec<TimeSeries>| with_tenant(write(s), "t").unwrap();
    c.push(push(vec![series(UP, &[(1.0, t)])])).await.unwrap();

    // Exact duplicate: accepted, not stored twice (Prometheus: 204).
    let dup = c
        .push(push(vec![series(UP, &[(1.0, t)])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((dup.appended, dup.duplicates), (0, 1));

    let cases: [(f64, i64, &str); 3] = [
        (2.0, t, "duplicate sample for timestamp"),
        (3.0, t - 60_000, "out of order sample"),
        (4.0, t - 86_400_000, "out of bounds"),
    ];
    for (value, ts, want) in cases {
        let err = c
            .push(push(vec![series(UP, &[(value, ts)])]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{want}: {err:?}");
        assert!(err.message().starts_with(want), "{want}: {}", err.message());
        assert!(err.message().contains("job=\"node\""), "names the series");
    }

    // A refused sample does not undo the other series of its request.
    let other: &[(&str, &str)] = &[("__name__", "other")];
    let err = c
        .push(push(vec![
            series(UP, &[(9.0, t - 1)]),
            series(other, &[(7.0, t)]),
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let got = c
        .query(with_tenant(all_of("other"), "t").unwrap())
        .await
        .unwrap()
        .into_inner()
        .timeseries;
    assert_eq!(got[0].samples[0].value, 7.0);
    let up = c
        .query(with_tenant(all_of("up"), "t").unwrap())
        .await
        .unwrap()
        .into_inner()
        .timeseries;
    assert_eq!(up[0].samples.len(), 1, "nothing refused was stored");
    ing.stop().await;
}

#[tokio::test]
async fn bad_input_is_invalid_argument_never_internal() {
    let dir = tempfile::tempdir().unwrap();
    let ing = start_ingester(dir.path()).await;
    let mut c = IngesterPool::new(PoolConfig::default())
        .client(&ing.addr)
        .unwrap();
    let t = now_ms();

    let no_tenant = c
        .push(tonic::Request::new(write(vec![series(UP, &[(1.0, t)])])))
        .await
        .unwrap_err();
    assert_eq!(no_tenant.code(), Code::InvalidArgument);
    assert!(no_tenant.message().contains("no org id"), "{no_tenant:?}");

    let nameless = c
        .push(with_tenant(write(vec![series(&[("job", "x")], &[(1.0, t)])]), "t").unwrap())
        .await
        .unwrap_err();
    assert_eq!(nameless.code(), Code::InvalidArgument);
    assert!(nameless.message().contains("without a metric name"));

    let mut q = all_of("up");
    q.matchers.push(LabelMatcher {
        r#type: MatcherType::Re as i32,
        name: "job".into(),
        value: "(".into(),
    });
    let bad_regex = c.query(with_tenant(q, "t").unwrap()).await.unwrap_err();
    assert_eq!(bad_regex.code(), Code::InvalidArgument, "{bad_regex:?}");
    ing.stop().await;
}

#[tokio::test]
async fn a_restarted_ingester_replays_its_wal_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_ms();
    let acknowledged = {
        let ing = start_ingester(dir.path()).await;
        let mut c = IngesterPool::new(PoolConfig::default())
            .client(&ing.addr)
            .unwrap();
        for i in 0..20 {
            let s = series(
                &[("__name__", "up"), ("n", &i.to_string())],
                &[(i as f64, t + i)],
            );
            c.push(with_tenant(write(vec![s]), "t").unwrap())
                .await
                .unwrap();
        }
        let all = c
            .query(with_tenant(all_of("up"), "t").unwrap())
            .await
            .unwrap()
            .into_inner()
            .timeseries;
        ing.stop().await;
        all
    };
    assert_eq!(acknowledged.len(), 20);

    let ing = start_ingester(dir.path()).await;
    let mut c = IngesterPool::new(PoolConfig::default())
        .client(&ing.addr)
        .unwrap();
    let replayed = c
        .query(with_tenant(all_of("up"), "t").unwrap())
        .await
        .unwrap()
        .into_inner()
        .timeseries;
    assert_eq!(common::bits(&replayed), common::bits(&acknowledged));
    // The replayed head keeps Prometheus' rules: the old samples are now duplicates.
    let again = c
        .push(
            with_tenant(
                write(vec![series(
                    &[("__name__", "up"), ("n", "3")],
                    &[(9.0, t + 3)],
                )]),
                "t",
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        again
            .message()
            .starts_with("duplicate sample for timestamp")
    );
    ing.stop().await;
}
