//! The `partitionRingDesc` KV codec (spec/partition-ring.md §1).
//!
//! A value is the snappy block (not framed) of the protobuf of [`PartitionRingDesc`], as
//! for `ringDesc`. The protobuf is written the way Go's gogo marshaler writes it, so the
//! bytes are identical to dskit's for the same content: maps in ascending key order (Go's
//! order is random, so any order is one dskit could produce), and every map entry carries
//! its key and its value even when they are zero values (prost alone would leave those
//! out, e.g. the `08 00` key of partition 0). Inside an entry, fields follow field-number
//! order with zero values omitted, which prost already does.
//!
//! Decoding accepts any field order, packed and unpacked tokens, and drops unknown fields
//! (as a dskit 6cdb4f7b node does). `PartitionDesc.id` is not back-filled from the key.

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::codec::{CodecError, DEFAULT_MAX_DECODED_SIZE};
use crate::model::PartitionRingDesc;

/// Codec id under which dskit stores the partition ring descriptor.
pub const PARTITION_RING_DESC_CODEC_ID: &str = "partitionRingDesc";

/// Protobuf of `desc`, byte for byte as dskit's gogo marshaler writes it (with maps in
/// ascending key order).
pub fn encode_protobuf(desc: &PartitionRingDesc) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoded_len(desc));
    for (id, p) in &desc.partitions {
        // Key: field 1 varint; int32 is sign-extended to 64 bits, as Go does.
        let key = i64::from(*id) as u64;
        let value_len = p.encoded_len();
        let entry_len =
            1 + encoded_len_varint(key) + 1 + encoded_len_varint(value_len as u64) + value_len;
        encode_key(1, WireType::LengthDelimited, &mut buf);
        encode_varint(entry_len as u64, &mut buf);
        encode_key(1, WireType::Varint, &mut buf);
        encode_varint(key, &mut buf);
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(value_len as u64, &mut buf);
        p.encode_raw(&mut buf);
    }
    for (id, o) in &desc.owners {
        let value_len = o.encoded_len();
        let entry_len = 1
            + encoded_len_varint(id.len() as u64)
            + id.len()
            + 1
            + encoded_len_varint(value_len as u64)
            + value_len;
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(entry_len as u64, &mut buf);
        encode_key(1, WireType::LengthDelimited, &mut buf);
        encode_varint(id.len() as u64, &mut buf);
        buf.extend_from_slice(id.as_bytes());
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(value_len as u64, &mut buf);
        o.encode_raw(&mut buf);
    }
    buf
}

/// Length of [`encode_protobuf`]'s output.
pub fn encoded_len(desc: &PartitionRingDesc) -> usize {
    let entry = |inner: usize| 1 + encoded_len_varint(inner as u64) + inner;
    let partitions: usize = desc
        .partitions
        .iter()
        .map(|(id, p)| {
            let v = p.encoded_len();
            entry(
                1 + encoded_len_varint(i64::from(*id) as u64)
                    + 1
                    + encoded_len_varint(v as u64)
                    + v,
            )
        })
        .sum();
    let owners: usize = desc
        .owners
        .iter()
        .map(|(id, o)| {
            let v = o.encoded_len();
            entry(
                1 + encoded_len_varint(id.len() as u64)
                    + id.len()
                    + 1
                    + encoded_len_varint(v as u64)
                    + v,
            )
        })
        .sum();
    partitions + owners
}

/// Encodes a descriptor as dskit's `partitionRingDesc` codec: snappy block of the
/// protobuf.
pub fn encode(desc: &PartitionRingDesc) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&encode_protobuf(desc))
        .expect("snappy block compression of an in-memory buffer cannot fail")
}

/// Decodes a `partitionRingDesc` value with the default size limit (64 MiB decompressed).
pub fn decode(bytes: &[u8]) -> Result<PartitionRingDesc, CodecError> {
    decode_with_limit(bytes, DEFAULT_MAX_DECODED_SIZE)
}

/// Decodes a `partitionRingDesc` value, refusing values that decompress to more than
/// `limit` bytes (or far more than their own size: the shared bounded decoder of
/// `ringkit_decompress`, as for `ringDesc`).
pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<PartitionRingDesc, CodecError> {
    let proto = ringkit_decompress::snappy(bytes, &ringkit_decompress::Limits::snappy(limit))?;
    decode_protobuf(&proto)
}

/// Decodes an uncompressed `ring.PartitionRingDesc` protobuf.
pub fn decode_protobuf(proto: &[u8]) -> Result<PartitionRingDesc, CodecError> {
    Ok(PartitionRingDesc::decode(proto)?)
}

/// JSON form as Go's `encoding/json` writes dskit's types: `partitions` (keys as decimal
/// strings) and `owners`, camelCase field names, states as numbers, zero fields omitted.
/// For tools and status pages; the KV stores use the protobuf codec.
pub mod json {
    use crate::codec::CodecError;
    use crate::model::PartitionRingDesc;

    /// Pretty JSON of a descriptor.
    pub fn encode(desc: &PartitionRingDesc) -> String {
        serde_json::to_string_pretty(desc).expect("PartitionRingDesc always serializes")
    }

    /// Parses the JSON form (missing fields are zero values).
    pub fn decode(text: &str) -> Result<PartitionRingDesc, CodecError> {
        Ok(serde_json::from_str(text)?)
    }
}
