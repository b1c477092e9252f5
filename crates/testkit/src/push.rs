//! Remote-write bodies for tests (and the ringkit examples) that push to a running node.

use ringkit_ingest::decode::encode_snappy;
use ringkit_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};

/// A snappy-compressed remote-write request with one sample now: series
/// `{__name__=metric, i=i}`, value `i`. Distinct `i` make distinct series.
pub fn one_sample(metric: &str, i: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    encode_snappy(&WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label::new("__name__", metric),
                Label::new("i", i.to_string()),
            ],
            samples: vec![Sample {
                value: i as f64,
                timestamp: now,
            }],
            ..Default::default()
        }],
        metadata: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_body_decodes_to_one_series_with_one_sample() {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&one_sample("m", 7))
            .unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 1);
        let ts = &req.timeseries[0];
        assert_eq!(
            ts.labels,
            vec![Label::new("__name__", "m"), Label::new("i", "7")]
        );
        assert_eq!(ts.samples[0].value, 7.0);
    }
}
