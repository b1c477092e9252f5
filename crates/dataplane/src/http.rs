//! The distributor's Prometheus endpoints.
//!
//! - `POST /api/v1/push`: remote write 1.0: a snappy block of a protobuf `WriteRequest`.
//!   `Content-Encoding` must be `snappy` when given (a missing header is tolerated: the body
//!   is decoded as snappy anyway, as Mimir does). 200 on success; 4xx with a plain-text
//!   reason for anything the sender got wrong; 503 only when ingesters lost the quorum.
//! - `POST /api/v1/read`: remote read, response type SAMPLES: a snappy block of a protobuf
//!   `ReadResponse`.
//!
//! The tenant is `X-Scope-OrgID`, or the configured default tenant when the header is absent
//! (Debian's Prometheus 2.42 cannot add headers to remote write).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ringkit_ingest::decode::{decode_read_request, decompress, encode_snappy};

use crate::distributor::{Distributor, DistributorError};
use crate::tenant;

/// The router serving the two endpoints; merge it into a node's router.
pub fn router(distributor: Arc<Distributor>) -> Router {
    let limit = distributor.config().decode_limits.max_compressed_size;
    Router::new()
        .route("/api/v1/push", post(push))
        .route("/api/v1/read", post(read))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(distributor)
}

/// An answer that is not a success: status and plain-text reason.
type Failure = (StatusCode, String);

fn failure(e: &DistributorError) -> Failure {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status.is_server_error() {
        tracing::warn!(error = %e, "request failed");
    }
    (status, format!("{e}\n"))
}

/// What both endpoints check before decoding: the body encoding (only snappy, 415
/// otherwise) and the tenant.
fn tenant_of(d: &Distributor, headers: &HeaderMap) -> Result<String, Failure> {
    if let Some(v) = headers.get(header::CONTENT_ENCODING)
        && !v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("snappy"))
    {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Encoding {:?}: remote write and read bodies must be snappy-compressed\n",
                String::from_utf8_lossy(v.as_bytes())
            ),
        ));
    }
    let header = match headers.get(tenant::HTTP_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("{} is not valid text\n", tenant::HTTP_HEADER),
            )
        })?),
        None => None,
    };
    tenant::resolve(header, &d.config().default_tenant)
        .map_err(|e| failure(&DistributorError::Tenant(e)))
}

async fn push(State(d): State<Arc<Distributor>>, headers: HeaderMap, body: Bytes) -> Response {
    let tenant = match tenant_of(&d, &headers) {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    // Instance limits before any decoding work (Mimir: 503, retry later).
    let _inflight = match d.limiter().start_push(body.len()) {
        Ok(g) => g,
        Err(e) => return failure(&e.into()).into_response(),
    };
    let raw = match decompress(&body, &d.config().decode_limits) {
        Ok(r) => r,
        Err(e) => return failure(&e.into()).into_response(),
    };
    drop(body);
    match d.push_raw(&tenant, &raw).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => failure(&e).into_response(),
    }
}

async fn read(State(d): State<Arc<Distributor>>, headers: HeaderMap, body: Bytes) -> Response {
    let tenant = match tenant_of(&d, &headers) {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    let req = match decode_read_request(&body, &d.config().decode_limits) {
        Ok(r) => r,
        Err(e) => return failure(&e.into()).into_response(),
    };
    match d.read(&tenant, req).await {
        Ok(resp) => (
            [
                (header::CONTENT_TYPE, "application/x-protobuf"),
                (header::CONTENT_ENCODING, "snappy"),
            ],
            encode_snappy(&resp),
        )
            .into_response(),
        Err(e) => failure(&e).into_response(),
    }
}
