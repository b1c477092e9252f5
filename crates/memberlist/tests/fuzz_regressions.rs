//! Hostile inputs: cases found by the fuzz targets in `fuzz/` plus the resource
//! attacks the decoders are designed against. Each must fail cleanly (or ask for
//! more input) without panicking or allocating from a length prefix.

use ringkit_memberlist::wire::compress::{self, CompressError, CompressionAlgo};
use ringkit_memberlist::wire::frame::FrameError;
use ringkit_memberlist::wire::message::{Compound, Compressed, Message, PushPull};
use ringkit_memberlist::wire::packet::{Limits, decode_packet_with};
use ringkit_memberlist::wire::stream::decode_stream_with;
use ringkit_memberlist::wire::{
    DecodeError, Dialect, Packet, StreamMessage, decode_packet, decode_stream, encode_packet,
    encode_stream,
};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).unwrap()
}

#[test]
fn compression_bomb_stops_at_the_limit() {
    let p = Packet::plain(Message::Compressed(Compressed {
        algo: CompressionAlgo::Lzw,
        inner: Box::new(Message::User(vec![0; 2_000_000].into())),
    }));
    let bytes = encode_packet(&p).unwrap();
    assert!(bytes.len() < 50_000);
    // 2 MB of zeros from a few KB: beyond the LZW ratio, refused by default.
    assert!(matches!(
        decode_packet(&bytes),
        Err(DecodeError::Compress(CompressError::Implausible { .. }))
    ));
    // With the ratio lifted, the absolute limit still holds, and a large enough one passes.
    let limits = Limits {
        max_decompressed: 500_000,
        max_lzw_ratio: 1_000_000,
        ..Limits::default()
    };
    assert_eq!(
        decode_packet_with(&bytes, &limits),
        Err(DecodeError::Compress(CompressError::TooLarge {
            limit: 500_000
        }))
    );
    let roomy = Limits {
        max_lzw_ratio: 1_000_000,
        ..Limits::default()
    };
    assert_eq!(decode_packet_with(&bytes, &roomy).unwrap(), p);
}

#[test]
fn decompressed_budget_is_shared_by_all_layers_of_a_packet() {
    let part = Message::Compressed(Compressed {
        algo: CompressionAlgo::Snappy,
        inner: Box::new(Message::User(vec![1; 600_000].into())),
    });
    let p = Packet::plain(Message::Compound(Compound {
        parts: vec![part.clone(), part],
        truncated: 0,
    }));
    let bytes = encode_packet(&p).unwrap();
    let limits = Limits {
        max_decompressed: 1_000_000,
        ..Limits::default()
    };
    assert!(matches!(
        decode_packet_with(&bytes, &limits),
        Err(DecodeError::Compress(CompressError::TooLarge { .. }))
    ));
}

#[test]
fn nested_wrappers_beyond_the_depth_limit_are_refused() {
    let mut m = Message::User(b"x".to_vec().into());
    for _ in 0..12 {
        m = Message::Compressed(Compressed {
            algo: CompressionAlgo::Lzw,
            inner: Box::new(m),
        });
    }
    let bytes = encode_packet(&Packet::plain(m)).unwrap();
    assert_eq!(decode_packet(&bytes), Err(DecodeError::TooDeep(8)));
    let mut compound = vec![0x08];
    for _ in 0..12 {
        let mut outer = vec![0x07, 0x01];
        outer.extend_from_slice(&(compound.len() as u16).to_be_bytes());
        outer.extend_from_slice(&compound);
        compound = outer;
    }
    assert_eq!(decode_packet(&compound), Err(DecodeError::TooDeep(8)));
}

#[test]
fn snappy_header_claiming_gigabytes_does_not_allocate() {
    // Varint length 0xffffffff followed by nothing.
    let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        compress::decompress(CompressionAlgo::Snappy, &bomb, 1 << 20),
        Err(CompressError::Implausible { input: 5, .. })
    ));
}

#[test]
fn huge_counts_in_stream_headers_mean_read_more() {
    // pushPull {Nodes: 1048576, UserStateLen: 0} and nothing else.
    let pp = unhex("06 82 a54e6f646573 ce00100000 ac5573657253746174654c656e 00");
    assert_eq!(decode_stream(&pp), Ok(None));
    // pushPull with Nodes above the limit is refused outright.
    let too_many = unhex("06 81 a54e6f646573 ce00100001");
    assert_eq!(
        decode_stream(&too_many),
        Err(DecodeError::BadNodeCount(1_048_577))
    );
    // user {UserMsgLen: 2^62}: refused at once instead of waiting for the bytes.
    let user = unhex("08 81 aa557365724d73674c656e cf4000000000000000");
    assert_eq!(
        decode_stream(&user),
        Err(DecodeError::PayloadTooLarge {
            len: 1 << 62,
            limit: 40 << 20,
            message: "user"
        })
    );
    let state = unhex("06 81 ac5573657253746174654c656e d2 7fffffff");
    assert!(matches!(
        decode_stream(&state),
        Err(DecodeError::PayloadTooLarge {
            message: "pushPull",
            ..
        })
    ));
    let negative = unhex("08 81 aa557365724d73674c656e ff");
    assert_eq!(
        decode_stream(&negative),
        Err(DecodeError::NegativeLength(-1, "user"))
    );
}

#[test]
fn truncation_inside_a_compressed_stream_is_an_error_not_incomplete() {
    let inner = StreamMessage {
        label: None,
        message: Message::PushPull(PushPull {
            join: true,
            nodes: vec![],
            user_state: vec![9; 50],
        }),
    };
    let mut plain = encode_stream(&inner, Dialect::V2).unwrap();
    plain.truncate(plain.len() - 10);
    let buf = compress::compress(CompressionAlgo::Lzw, &plain);
    let mut bytes = vec![0x09];
    ringkit_memberlist::wire::message::encode_compress_body(&mut bytes, CompressionAlgo::Lzw, &buf);
    assert_eq!(
        decode_stream(&bytes),
        Err(DecodeError::TruncatedInner("compressed stream message"))
    );
}

#[test]
fn misplaced_and_unsupported_types_are_named() {
    // CRC header inside a compound.
    assert_eq!(
        decode_packet(&unhex("07 01 0005 0c00000000")),
        Err(DecodeError::MisplacedCrc)
    );
    // Encrypted stream.
    assert_eq!(
        decode_stream(&unhex("0a 00000010")),
        Err(DecodeError::Encrypted)
    );
    // push/pull in a packet, compound on a stream.
    assert!(matches!(
        decode_packet(&[0x06, 0x80]),
        Err(DecodeError::UnknownType { ty: 6, .. })
    ));
    assert!(matches!(
        decode_stream(&[0x07, 0x00]),
        Err(DecodeError::UnknownType { ty: 7, .. })
    ));
    assert_eq!(
        decode_packet(&[0xf4, 0x00, 0x02]),
        Err(DecodeError::Frame(FrameError::EmptyLabel))
    );
    assert_eq!(decode_packet(&[]), Err(DecodeError::Empty));
}

#[test]
fn stream_decode_respects_limits() {
    let m = StreamMessage {
        label: None,
        message: Message::Compressed(Compressed {
            algo: CompressionAlgo::Lzw,
            inner: Box::new(Message::User(vec![0; 100_000].into())),
        }),
    };
    let bytes = encode_stream(&m, Dialect::Legacy).unwrap();
    let limits = Limits {
        max_decompressed: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        decode_stream_with(&bytes, &limits),
        Err(DecodeError::Compress(CompressError::TooLarge {
            limit: 1000
        }))
    ));
}

/// Found by `gossip_kv_receive`: a key repeated, first with invalid UTF-8, then empty.
/// prost rejects the pair (it checks every occurrence); the in-place reader must not
/// accept it either, and the store rejects the message.
#[test]
fn a_repeated_key_with_invalid_utf8_is_rejected_like_prost_does() {
    use ringkit_memberlist::wire::kv::{KeyValuePair, KeyValuePairRef};
    let data = unhex(
        "0a240a080a120800f4fff5e6120819ff0828ff0800f7d720011202190008200112021900000000\
         0a00",
    );
    assert!(KeyValuePair::decode_bytes(&data).is_err());
    if let Some(r) = KeyValuePairRef::parse(&data) {
        assert_eq!(r.to_owned_pair(), None);
    }
    let mut state = ringkit_memberlist::kv::KvState::new(Default::default());
    assert!(
        state
            .receive_message(data, std::time::SystemTime::UNIX_EPOCH)
            .is_err()
    );
}
