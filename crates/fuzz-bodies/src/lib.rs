//! The checks of ringkit's fuzz targets, one function per target, each taking the raw
//! input. `fuzz/fuzz_targets/*.rs` hand them to libFuzzer (nightly features, run by
//! hand: fuzz/README.md); `tests/stable_fuzz.rs` runs every one of them on stable Rust
//! over the seed corpus and bounded deterministic mutations of it, so CI compiles and
//! exercises each target on every run. A failed check panics, as libFuzzer expects.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_ingest::decode::{
    DecodeLimits, decode_write_request, decode_write_request_raw, encode_snappy,
};
use ringkit_ingest::validate::{
    Limits, ValidSeries, validate_request, validate_series, validate_view,
};
use ringkit_ingest::view::WriteRequestView;
use ringkit_lifecycle::RingDescCodec;
use ringkit_memberlist::kv::{KvConfig, KvState, MergeOps};
use ringkit_memberlist::wire::dskit_tcp::{self, Connection};
use ringkit_memberlist::wire::kv::{self, KeyValuePair, KeyValuePairRef};
use ringkit_memberlist::wire::msgpack::{Reader, Value};
use ringkit_memberlist::wire::{
    Dialect, Message, decode_packet, decode_stream, encode_packet, encode_stream,
};
use ringkit_ring::codec;
use ringkit_ring::model::{Desc, InstanceState};

/// A target: its name (as in fuzz/Cargo.toml) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 7] = [
    ("msgpack_value", msgpack_value),
    ("packet_decode", packet_decode),
    ("dskit_tcp_frame", dskit_tcp_frame),
    ("stream_decode", stream_decode),
    ("kv_pair", kv_pair),
    ("gossip_kv_receive", gossip_kv_receive),
    ("remote_write", remote_write),
];

/// Any bytes: decoding a msgpack value must not panic, and a decoded value must survive
/// encode -> decode unchanged (compared through its encoding, so NaN floats compare
/// equal); the skipping path agrees with the value decoder on where a value ends.
pub fn msgpack_value(data: &[u8]) {
    if let Ok((v, used)) = Value::decode(data) {
        assert!(used <= data.len());
        let mut once = Vec::new();
        v.encode(&mut once);
        let (again, used) = Value::decode(&once).expect("own encoding decodes");
        assert_eq!(used, once.len());
        let mut twice = Vec::new();
        again.encode(&mut twice);
        assert_eq!(once, twice);
    }
    let mut r = Reader::new(data);
    if r.skip_value().is_ok()
        && let Ok((_, used)) = Value::decode(data)
    {
        assert_eq!(used, r.position());
    }
}

/// Any bytes as a memberlist packet: no panic, and a decoded packet that we can
/// re-encode must decode to itself.
pub fn packet_decode(data: &[u8]) {
    let Ok(p) = decode_packet(data) else { return };
    let mut lossy = false;
    p.message.walk(&mut |m| {
        if let Message::Compound(c) = m {
            lossy |= c.truncated > 0;
        }
    });
    if lossy {
        return;
    }
    if let Ok(bytes) = encode_packet(&p) {
        assert_eq!(decode_packet(&bytes).expect("own encoding decodes"), p);
    }
}

/// Any bytes as a whole dskit TCP connection: classify, split, check MD5, then decode
/// the packet or the stream messages inside; a valid packet frame re-encodes to the
/// same bytes.
pub fn dskit_tcp_frame(data: &[u8]) {
    if let Ok(f) = dskit_tcp::decode_packet_frame_unchecked(data) {
        let _ = decode_packet(f.packet);
        if let (true, Ok(from)) = (f.digest_ok, std::str::from_utf8(f.from)) {
            assert_eq!(
                dskit_tcp::encode_packet_frame(from, f.packet).unwrap(),
                data
            );
        }
    }
    if let Ok(Connection::Stream(mut rest)) = dskit_tcp::decode_connection(data) {
        while let Ok(Some((_, used))) = decode_stream(rest) {
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
}

/// Any bytes as a memberlist stream: a complete message re-encodes in both dialects to
/// bytes that decode to the same message; every prefix of a complete message is
/// "incomplete".
pub fn stream_decode(data: &[u8]) {
    let Ok(Some((m, used))) = decode_stream(data) else {
        return;
    };
    assert!(used <= data.len());
    for dialect in [Dialect::Legacy, Dialect::V2] {
        if let Ok(bytes) = encode_stream(&m, dialect) {
            let (back, n) = decode_stream(&bytes)
                .expect("own encoding decodes")
                .expect("own encoding is complete");
            assert_eq!(n, bytes.len());
            assert_eq!(back, m);
        }
    }
    if used <= 4096 {
        for cut in 0..used {
            assert!(
                !matches!(decode_stream(&data[..cut]), Ok(Some(_))),
                "prefix {cut} complete"
            );
        }
    }
}

/// Any bytes as a dskit KeyValuePair and as push/pull user state: decoded pairs
/// re-encode to bytes that decode to the same pairs.
pub fn kv_pair(data: &[u8]) {
    if let Ok(p) = KeyValuePair::decode_bytes(data) {
        assert_eq!(KeyValuePair::decode_bytes(&p.encode_bytes()).unwrap(), p);
    }
    let pairs: Vec<KeyValuePair> = kv::decode_user_state(data).map_while(Result::ok).collect();
    let again = kv::encode_user_state(&pairs);
    let back: Vec<KeyValuePair> = kv::decode_user_state(&again)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, pairs);
}

fn store() -> KvState {
    let mut s = KvState::new(KvConfig::default());
    s.register(Arc::new(MergeOps::new(Arc::new(RingDescCodec))));
    s
}

/// `value` as the ring key's value.
fn ring_pair(value: Vec<u8>) -> KeyValuePair {
    KeyValuePair {
        key: "collectors/ring".into(),
        value,
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    }
}

/// A store's full state merges into a fresh store without rejections.
fn assert_state_remerges(s: &KvState, now: SystemTime) {
    let (_, rejected) = store().receive_state(&s.local_state(), now);
    assert_eq!(rejected, 0, "our own state must merge cleanly");
}

/// A store holding a small ring, so heartbeats can take the fast path.
fn seeded(now: SystemTime) -> KvState {
    let mut d = Desc::new();
    for (i, zone) in ["a", "b", "c"].into_iter().enumerate() {
        let tokens = (0..8u32).map(|t| t * 1000 + i as u32).collect();
        d.add_instance(
            &format!("ing-{i}"),
            "10.0.0.1:9095",
            zone,
            tokens,
            InstanceState::Active,
            100,
            100,
        );
    }
    let mut s = store();
    s.receive_message(ring_pair(codec::encode(&d)).encode_bytes(), now)
        .expect("the seed ring merges");
    s
}

/// Any bytes as a gossip broadcast and as push/pull state, into a store holding a ring:
/// the store stays usable (its full state re-merges into a fresh store without
/// rejections); the in-place pair reader agrees with prost.
pub fn gossip_kv_receive(data: &[u8]) {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Some((r, canonical)) = KeyValuePairRef::parse_checked(data) {
        assert_eq!(
            r.to_owned_pair().ok_or(()),
            KeyValuePair::decode_bytes(data).map_err(drop)
        );
        assert_eq!(canonical, r.encode() == data);
    }
    let mut hot = seeded(now);
    let _ = hot.receive_message(data.to_vec(), now);
    let _ = hot.receive_message(ring_pair(data.to_vec()).encode_bytes(), now);
    assert_state_remerges(&hot, now);
    let mut s = store();
    if let Ok(pair) = KeyValuePair::decode_bytes(data) {
        let _ = s.receive(pair, now);
    }
    let _ = s.receive(ring_pair(data.to_vec()), now);
    let _ = s.receive_state(data, now);
    assert_state_remerges(&s, now);
}

/// Any bytes as a Prometheus remote-write body: decoding, then validating every series,
/// never panics.
pub fn remote_write(data: &[u8]) {
    if let Ok(mut req) = decode_write_request(data, &DecodeLimits::default()) {
        let limits = Limits::default();
        for s in &mut req.timeseries {
            let _ = validate_series(&limits, 1_800_000_000_000, s);
        }
    }
    // The in-place reader accepts what prost accepts, with the same values and the same
    // validation answers, on the decompressed body and on the input taken as one.
    let raw = ringkit_ingest::decode::decompress(data, &DecodeLimits::default());
    for bytes in [raw.as_deref().unwrap_or_default(), data] {
        let owned = decode_write_request_raw(bytes);
        let view = WriteRequestView::decode(bytes);
        assert_eq!(owned.is_ok(), view.is_ok(), "{owned:?} vs {view:?}");
        let (Ok(mut owned), Ok(view)) = (owned, view) else {
            continue;
        };
        // Through the snappy encoding of both, so NaN values compare by bits.
        assert_eq!(encode_snappy(&view.to_owned()), encode_snappy(&owned));
        let limits = Limits::default();
        let want = validate_request(&limits, 1_800_000_000_000, &mut owned);
        let mut valid = ValidSeries::default();
        let got = validate_view(&limits, 1_800_000_000_000, &view, &mut valid);
        assert_eq!(got, want);
        assert_eq!(valid.series.len(), owned.timeseries.len());
        for (e, ts) in valid.series.iter().zip(&owned.timeseries) {
            let labels: Vec<_> = valid.labels_of(e).iter().map(|l| l.to_label()).collect();
            assert_eq!(labels, ts.labels);
        }
    }
}
