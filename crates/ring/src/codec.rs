//! The `ringDesc` KV codec and the JSON form (spec/ring.md §1.1).
//!
//! A ring value in a KV store (memberlist, etcd, Consul) is the **snappy block format**
//! (not the framed stream format) of the protobuf encoding of [`Desc`]. Decoding accepts
//! packed and unpacked repeated tokens (prost does both) and back-fills each instance's `id`
//! from its map key, since older writers omit it.

use prost::Message;

use crate::model::Desc;

/// Codec id under which dskit stores the ring descriptor.
pub const RING_DESC_CODEC_ID: &str = "ringDesc";

/// Largest decompressed descriptor accepted by default (64 MiB). A 5000-instance ring with
/// 512 tokens each is about 13 MiB of protobuf, so this leaves room while refusing bombs.
pub const DEFAULT_MAX_DECODED_SIZE: usize = 64 << 20;

/// Why a value could not be decoded. Decoding never changes any state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not valid snappy block data, or declare more than the limits allow
    /// (absolute, or relative to the value's size: see `ringkit_decompress`).
    #[error("ringDesc: {0}")]
    Decompress(#[from] ringkit_decompress::Error),
    /// The decompressed bytes are not a `ring.Desc` protobuf.
    #[error("ringDesc: invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The JSON form could not be parsed.
    #[error("ringDesc: invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes a descriptor as dskit's `ringDesc` codec does: snappy block of the protobuf.
pub fn encode(desc: &Desc) -> Vec<u8> {
    let proto = desc.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&proto)
        .expect("snappy block compression of an in-memory buffer cannot fail")
}

/// Decodes a `ringDesc` value with the default size limit.
pub fn decode(bytes: &[u8]) -> Result<Desc, CodecError> {
    decode_with_limit(bytes, DEFAULT_MAX_DECODED_SIZE)
}

/// Decodes a `ringDesc` value, refusing values that decompress to more than `limit` bytes
/// or more than their size makes plausible (checked from the snappy header, before any
/// buffer is allocated).
pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<Desc, CodecError> {
    let proto = ringkit_decompress::snappy(bytes, &ringkit_decompress::Limits::snappy(limit))?;
    decode_protobuf(&proto)
}

/// Decodes an uncompressed `ring.Desc` protobuf and back-fills ids.
pub fn decode_protobuf(proto: &[u8]) -> Result<Desc, CodecError> {
    let mut desc = Desc::decode(proto)?;
    desc.backfill_ids();
    Ok(desc)
}

/// JSON form with dskit's field names (`ingesters`, `addr`, `timestamp`, `state`, `tokens`,
/// `zone`, `registered_timestamp`, `id`, ...), zero values omitted like Go's `omitempty`.
pub mod json {
    use super::CodecError;
    use crate::model::Desc;

    /// Pretty JSON of a descriptor.
    pub fn encode(desc: &Desc) -> String {
        serde_json::to_string_pretty(desc).expect("Desc always serializes")
    }

    /// Parses the JSON form; ids are back-filled from map keys.
    pub fn decode(text: &str) -> Result<Desc, CodecError> {
        let mut desc: Desc = serde_json::from_str(text)?;
        desc.backfill_ids();
        Ok(desc)
    }

    pub(crate) fn is_zero_i64(v: &i64) -> bool {
        *v == 0
    }
    pub(crate) fn is_zero_i32(v: &i32) -> bool {
        *v == 0
    }
    pub(crate) fn is_false(v: &bool) -> bool {
        !*v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceDesc, InstanceState};

    const FIXTURE_BIN: &[u8] = include_bytes!("../../../testdata/ring-desc-3x128.snappy-proto.bin");
    const FIXTURE_JSON: &str = include_str!("../../../testdata/ring-desc-3x128.json");

    #[test]
    fn real_dskit_ring_decodes_to_its_json() {
        let from_bin = decode(FIXTURE_BIN).expect("fixture decodes");
        let from_json = json::decode(FIXTURE_JSON).expect("fixture json parses");
        assert_eq!(from_bin, from_json);
        assert_eq!(from_bin.ingesters.len(), 3);
        for (i, zone) in ["zone-a", "zone-b", "zone-c"].iter().enumerate() {
            let d = &from_bin.ingesters[&format!("peer-{i}")];
            assert_eq!(d.zone, *zone);
            assert_eq!(d.tokens.len(), 128);
            assert!(d.tokens.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(d.state(), InstanceState::Active);
            assert_eq!(d.id, format!("peer-{i}"));
        }
        let p0 = &from_bin.ingesters["peer-0"];
        assert_eq!(p0.addr, "127.0.0.1:37946");
        assert_eq!(p0.timestamp, 1_795_545_723);
        assert_eq!(p0.registered_timestamp, 1_795_545_710);
        assert_eq!(p0.tokens[0], 17_503_577);
    }

    /// A ring written by a real Go dskit node in a mixed cluster (see README "Interop with
    /// dskit"): its own instance, one a ringkit node registered, and the LEFT tombstone
    /// that `ringkit ring forget` produced, as dskit re-encoded it.
    const INTEROP_BIN: &[u8] =
        include_bytes!("../../../testdata/ring-desc-dskit-interop.snappy-proto.bin");
    const INTEROP_JSON: &str = include_str!("../../../testdata/ring-desc-dskit-interop.json");

    #[test]
    fn mixed_cluster_ring_from_dskit_decodes_with_its_tombstone() {
        let desc = decode(INTEROP_BIN).expect("fixture decodes");
        assert_eq!(
            desc,
            json::decode(INTEROP_JSON).expect("fixture json parses")
        );
        let ids: Vec<&str> = desc.ingesters.keys().map(String::as_str).collect();
        assert_eq!(ids, ["dskit-1", "ing-1", "ing-2"]);
        let go = &desc.ingesters["dskit-1"];
        assert_eq!((go.zone.as_str(), go.tokens.len()), ("zone-go", 32));
        assert_eq!(go.state(), InstanceState::Active);
        let rust = &desc.ingesters["ing-1"];
        assert_eq!((rust.zone.as_str(), rust.tokens.len()), ("zone-rust", 16));
        assert_eq!(rust.state(), InstanceState::Active);
        let gone = &desc.ingesters["ing-2"];
        assert_eq!(gone.state(), InstanceState::Left);
        assert!(gone.tokens.is_empty());
        assert!(gone.timestamp > 0 && gone.registered_timestamp > 0);
        for d in desc.ingesters.values() {
            assert!(d.tokens.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(decode(&encode(&desc)).unwrap(), desc);
    }

    #[test]
    fn encode_decode_round_trips() {
        let desc = decode(FIXTURE_BIN).unwrap();
        let again = decode(&encode(&desc)).unwrap();
        assert_eq!(desc, again);
        let via_json = json::decode(&json::encode(&desc)).unwrap();
        assert_eq!(desc, via_json);
    }

    #[test]
    fn json_uses_dskit_names_and_omits_zero_values() {
        let mut d = Desc::new();
        d.add_instance(
            "i1",
            "1.2.3.4:9095",
            "z",
            vec![3, 1],
            InstanceState::Active,
            0,
            5,
        );
        let text = json::encode(&d);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let i1 = &v["ingesters"]["i1"];
        assert_eq!(i1["addr"], "1.2.3.4:9095");
        assert_eq!(i1["timestamp"], 5);
        assert_eq!(i1["tokens"], serde_json::json!([1, 3]));
        assert!(
            i1.get("state").is_none(),
            "ACTIVE is the zero value, omitted"
        );
        assert!(i1.get("registered_timestamp").is_none());
        assert!(i1.get("read_only").is_none());
    }

    #[test]
    fn unpacked_tokens_and_missing_id_are_accepted() {
        // Hand-built protobuf: Desc{ingesters: {"x": InstanceDesc{addr:"a", tokens 7,9 unpacked}}}
        let mut inst = vec![0x0a, 0x01, b'a'];
        for t in [7u8, 9] {
            inst.extend([0x30, t]); // field 6, varint (unpacked)
        }
        let mut entry = vec![0x0a, 0x01, b'x', 0x12, inst.len() as u8];
        entry.extend(&inst);
        let mut desc = vec![0x0a, entry.len() as u8];
        desc.extend(&entry);
        let d = decode_protobuf(&desc).unwrap();
        let x: &InstanceDesc = &d.ingesters["x"];
        assert_eq!(x.tokens, vec![7, 9]);
        assert_eq!(x.id, "x");
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\xff\xff\xff\xff\xff",
            b"\x05abc",
            &FIXTURE_BIN[..100],
        ] {
            assert!(decode(bad).is_err());
        }
        let err = decode(b"\x80\x80\x80\x80\x04rest").unwrap_err();
        assert!(
            matches!(&err, CodecError::Decompress(e) if e.is_size()),
            "{err}"
        );
        // Declares 60 MiB in 100 bytes: refused before allocating, as implausible.
        let mut lying = vec![0x80, 0x80, 0x80, 0x1e];
        lying.resize(100, 0);
        let err = decode(&lying).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Decompress(ringkit_decompress::Error::Implausible { size, input: 100 })
                    if size == 60 << 20
            ),
            "{err}"
        );
        // Within the ratio but above an explicit absolute limit.
        assert!(matches!(
            decode_with_limit(FIXTURE_BIN, 100),
            Err(CodecError::Decompress(
                ringkit_decompress::Error::TooLarge { .. }
            ))
        ));
        // Valid snappy of invalid protobuf.
        let junk = snap::raw::Encoder::new().compress_vec(b"\x0a\xff").unwrap();
        assert!(matches!(decode(&junk), Err(CodecError::Protobuf(_))));
    }
}
