//! Golden test against chunks written by real Prometheus: `testdata/promtool-block` is a block
//! that Debian's `promtool` 2.42 made with `promtool tsdb create-blocks-from openmetrics` from
//! `input.om` (three series: a counter, a gauge, and a series of odd gaps and special values).
//! Our decoder must read exactly the input's samples out of its chunks, and our encoder must
//! rebuild every chunk byte for byte.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ringkit_tsdb::{XorChunk, decode_xor};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/promtool-block")
}

/// The chunks of a Prometheus segment file, read the simple way (header, then per chunk:
/// uvarint length, encoding byte, data, 4-byte CRC).
fn segment_chunks(file: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&file[..4], &[0x85, 0xbd, 0x40, 0xdd], "segment magic");
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < file.len() {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = file[pos];
            pos += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let enc = file[pos];
        pos += 1;
        out.push((enc, file[pos..pos + len].to_vec()));
        pos += len + 4;
    }
    out
}

/// The samples of `input.om` by series text, timestamps in ms, values as f64.
fn input_samples() -> BTreeMap<String, Vec<(i64, f64)>> {
    let text = std::fs::read_to_string(testdata().join("input.om")).unwrap();
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.rsplitn(3, ' ');
        let ts = parts.next().unwrap();
        let value = parts.next().unwrap();
        let series = parts.next().unwrap();
        let (secs, ms) = ts.split_once('.').unwrap();
        let t = secs.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap();
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other.parse().unwrap(),
        };
        out.entry(series.to_string()).or_default().push((t, v));
    }
    out
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

#[test]
fn prometheus_chunks_decode_to_the_input_and_reencode_byte_for_byte() {
    let block = testdata().join("01M956MN3WX0QF9DW7XZZ0A3PX");
    let file = std::fs::read(block.join("chunks/000001")).unwrap();
    let chunks = segment_chunks(&file);
    assert_eq!(chunks.len(), 8, "meta.json says numChunks 8");

    let mut decoded_all = Vec::new();
    for (enc, data) in &chunks {
        assert_eq!(*enc, 1, "XOR encoding");
        let mut it = decode_xor(data).unwrap();
        let samples: Vec<(i64, f64)> = it.by_ref().collect();
        assert!(it.err().is_none());
        assert_eq!(samples.len(), usize::from(it.num_samples()));

        let mut again = XorChunk::new();
        for &(t, v) in &samples {
            again.append(t, v);
        }
        assert_eq!(
            again.bytes(),
            &data[..],
            "re-encoded chunk differs from Prometheus'"
        );
        decoded_all.extend(samples);
    }

    // Every input sample comes back exactly once (chunks are per series, in series order of
    // the index; here we only check the multiset of samples per time).
    let input = input_samples();
    let mut want: Vec<(i64, f64)> = input.values().flatten().copied().collect();
    assert_eq!(want.len(), 800);
    assert_eq!(decoded_all.len(), want.len());
    want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.to_bits().cmp(&b.1.to_bits())));
    decoded_all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.to_bits().cmp(&b.1.to_bits())));
    for (w, g) in want.iter().zip(&decoded_all) {
        assert_eq!(w.0, g.0);
        assert!(
            same_value(w.1, g.1),
            "at t={} want {} got {}",
            w.0,
            w.1,
            g.1
        );
    }
}
