//! The remote-read client the `demo` and `loadgen` commands share: one query, sent to
//! `/api/v1/read` as Prometheus sends it, its answer decoded within bounds.

use prost::Message as _;
use ringkit_ingest::decode::{DecodeLimits, decompress, encode_snappy};
use ringkit_ingest::prompb::{Query, ReadRequest, ReadResponse, TimeSeries};

/// Remote-reads `query` for `tenant` from `url` and returns the series of its one result.
/// A non-2xx answer is an error showing its body; the answer is decompressed within
/// `limits`.
pub(crate) async fn read(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    query: Query,
    limits: &DecodeLimits,
) -> anyhow::Result<Vec<TimeSeries>> {
    let req = ReadRequest {
        queries: vec![query],
        accepted_response_types: Vec::new(),
    };
    let resp = http
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .header("X-Scope-OrgID", tenant)
        .body(encode_snappy(&req))
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "remote read of {tenant} answered {status}: {}",
        String::from_utf8_lossy(&bytes).trim()
    );
    let raw = decompress(&bytes, limits).map_err(|e| anyhow::anyhow!("remote read answer: {e}"))?;
    let mut resp = ReadResponse::decode(&raw[..])?;
    anyhow::ensure!(resp.results.len() == 1, "expected one query result");
    Ok(resp.results.remove(0).timeseries)
}
