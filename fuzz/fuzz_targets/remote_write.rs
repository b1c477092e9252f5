//! Any bytes as a Prometheus remote-write body (snappy block + protobuf WriteRequest):
//! decoding, then validating every series, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkit_ingest::decode::{DecodeLimits, decode_write_request};
use ringkit_ingest::validate::{Limits, validate_series};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut req) = decode_write_request(data, &DecodeLimits::default()) {
        let limits = Limits::default();
        for s in &mut req.timeseries {
            let _ = validate_series(&limits, 1_800_000_000_000, s);
        }
    }
});
