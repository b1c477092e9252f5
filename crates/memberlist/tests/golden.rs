//! The golden vectors of `spec/memberlist.md` §1.14 (produced by go-msgpack v2.1.5 and
//! the Go standard library): each one must decode to the expected message and
//! re-encode to exactly the same bytes in the `V2` dialect.

use ringkit_memberlist::wire::compress::{self, CompressionAlgo, MAX_DECOMPRESSED};
use ringkit_memberlist::wire::dskit_tcp::{self, Connection};
use ringkit_memberlist::wire::kv::{self, KeyValuePair};
use ringkit_memberlist::wire::message::{
    Ack, Alive, Compound, Compressed, DSKIT_VSN, Dead, ErrResp, IndirectPing, Nack, NodeState,
    Ping, PushNodeState, PushPull, Suspect,
};
use ringkit_memberlist::wire::node_meta::{NodeRole, encode_node_meta};
use ringkit_memberlist::wire::{
    Dialect, Message, Packet, StreamMessage, decode_packet, decode_stream, encode_packet,
    encode_stream,
};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).unwrap()
}

const A_ADDR: [u8; 4] = [10, 0, 0, 1];
const B_ADDR: [u8; 4] = [10, 0, 0, 2];

fn ping7() -> Message {
    Message::Ping(Ping {
        seq_no: 7,
        node: b"b".to_vec(),
        source_addr: A_ADDR.to_vec(),
        source_port: 7946,
        source_node: b"a".to_vec(),
    })
}

fn ack7() -> Message {
    Message::Ack(Ack {
        seq_no: 7,
        payload: None,
    })
}

fn alive_a(addr: Vec<u8>, meta: Option<Vec<u8>>) -> Message {
    Message::Alive(Alive {
        incarnation: 1,
        node: b"a".to_vec(),
        addr,
        port: 7946,
        meta,
        vsn: DSKIT_VSN.to_vec(),
    })
}

/// Decodes `hex` as a packet, checks it against `want`, and re-encodes it.
fn packet_golden(hex: &str, want: &Packet) {
    let bytes = unhex(hex);
    let got = decode_packet(&bytes).unwrap();
    assert_eq!(&got, want);
    assert_eq!(encode_packet(want).unwrap(), bytes, "re-encoding {hex}");
}

fn plain(hex: &str, m: Message) {
    packet_golden(hex, &Packet::plain(m));
}

#[test]
fn golden_ping_with_source() {
    plain(
        "00 85 a44e6f6465 a162 a55365714e6f 07 aa536f7572636541646472 a40a000001 \
         aa536f757263654e6f6465 a161 aa536f75726365506f7274 cd1f0a",
        ping7(),
    );
}

#[test]
fn golden_ping_without_source() {
    plain(
        "00 82 a44e6f6465 a162 a55365714e6f cd012c",
        Message::Ping(Ping {
            seq_no: 300,
            node: b"b".to_vec(),
            ..Default::default()
        }),
    );
}

#[test]
fn golden_indirect_ping() {
    plain(
        "01 88 a44e61636b c3 a44e6f6465 a162 a4506f7274 cd1f0a a55365714e6f 09 \
         aa536f7572636541646472 a40a000001 aa536f757263654e6f6465 a161 \
         aa536f75726365506f7274 cd1f0a a6546172676574 a40a000002",
        Message::IndirectPing(IndirectPing {
            seq_no: 9,
            target: B_ADDR.to_vec(),
            port: 7946,
            node: b"b".to_vec(),
            nack: true,
            source_addr: A_ADDR.to_vec(),
            source_port: 7946,
            source_node: b"a".to_vec(),
        }),
    );
}

#[test]
fn golden_ack_nack_and_err() {
    plain("02 82 a75061796c6f6164 c0 a55365714e6f 07", ack7());
    plain("0b 81 a55365714e6f 09", Message::Nack(Nack { seq_no: 9 }));
    // errResp only travels on streams.
    let bytes = unhex("0d 81 a54572726f72 a178");
    let want = StreamMessage {
        label: None,
        message: Message::Error(ErrResp {
            error: b"x".to_vec(),
        }),
    };
    assert_eq!(
        decode_stream(&bytes).unwrap(),
        Some((want.clone(), bytes.len()))
    );
    assert_eq!(encode_stream(&want, Dialect::V2).unwrap(), bytes);
}

#[test]
fn golden_suspect_and_dead() {
    plain(
        "03 83 a446726f6d a161 ab496e6361726e6174696f6e 03 a44e6f6465 a162",
        Message::Suspect(Suspect {
            incarnation: 3,
            node: b"b".to_vec(),
            from: b"a".to_vec(),
        }),
    );
    let dead = Dead {
        incarnation: 3,
        node: b"a".to_vec(),
        from: b"a".to_vec(),
    };
    assert!(dead.is_leave());
    plain(
        "05 83 a446726f6d a161 ab496e6361726e6174696f6e 03 a44e6f6465 a161",
        Message::Dead(dead),
    );
}

#[test]
fn golden_alive_four_and_sixteen_byte_addr_and_meta() {
    let tail = "ab496e6361726e6174696f6e 01 a44d657461 c0 a44e6f6465 a161 a4506f7274 cd1f0a \
                a356736e a6010502000000";
    plain(
        &format!("04 86 a441646472 a40a000001 {tail}"),
        alive_a(A_ADDR.to_vec(), None),
    );
    let mapped = unhex("00000000000000000000ffff0a000001");
    plain(
        &format!("04 86 a441646472 b000000000000000000000ffff0a000001 {tail}"),
        alive_a(mapped, None),
    );
    plain(
        "04 86 a441646472 a40a000001 ab496e6361726e6174696f6e 01 a44d657461 a401020161 \
         a44e6f6465 a161 a4506f7274 cd1f0a a356736e a6010502000000",
        alive_a(
            A_ADDR.to_vec(),
            Some(encode_node_meta(NodeRole::Bridge, b"a").unwrap()),
        ),
    );
}

#[test]
fn golden_compound_of_ping_and_user() {
    let ping = "0085a44e6f6465a162a55365714e6f07aa536f7572636541646472a40a000001\
                aa536f757263654e6f6465a161aa536f75726365506f7274cd1f0a";
    assert_eq!(unhex(ping).len(), 0x3b);
    plain(
        &format!("07 02 003b 0004 {ping} 08 58595a"),
        Message::Compound(Compound {
            parts: vec![ping7(), Message::User(b"XYZ".to_vec().into())],
            truncated: 0,
        }),
    );
}

#[test]
fn golden_lzw_compress_wrapper() {
    let lzw = unhex("0011a029c386cd9b8105df0404");
    assert_eq!(
        compress::compress(CompressionAlgo::Lzw, b"\x08hellohello"),
        lzw
    );
    assert_eq!(
        compress::decompress(CompressionAlgo::Lzw, &lzw, MAX_DECOMPRESSED).unwrap(),
        b"\x08hellohello"
    );
    plain(
        "09 82 a4416c676f 00 a3427566 ad 0011a029c386cd9b8105df0404",
        Message::Compressed(Compressed {
            algo: CompressionAlgo::Lzw,
            inner: Box::new(Message::User(b"hellohello".to_vec().into())),
        }),
    );
}

#[test]
fn golden_crc_over_compressed_compound() {
    // §1.14 gives `0c e216f7be 09 82 …`: CRC-32/IEEE of the LZW-compressed
    // compound(ping, user "XYZ") above, the shape of a Go gossip packet.
    let want = Packet {
        label: None,
        crc: true,
        message: Message::Compressed(Compressed {
            algo: CompressionAlgo::Lzw,
            inner: Box::new(Message::Compound(Compound {
                parts: vec![ping7(), Message::User(b"XYZ".to_vec().into())],
                truncated: 0,
            })),
        }),
    };
    let bytes = encode_packet(&want).unwrap();
    assert_eq!(&bytes[..7], &unhex("0c e216f7be 09 82")[..]);
    assert_eq!(&bytes[1..5], &crc32fast::hash(&bytes[5..]).to_be_bytes());
    assert_eq!(decode_packet(&bytes).unwrap(), want);
    let mut corrupt = bytes.clone();
    *corrupt.last_mut().unwrap() ^= 0x40;
    assert!(decode_packet(&corrupt).is_err());
}

#[test]
fn golden_label_and_ack() {
    packet_golden(
        "f4 04 70726f64 02 82 a75061796c6f6164 c0 a55365714e6f 07",
        &Packet {
            label: Some(b"prod".to_vec()),
            crc: false,
            message: ack7(),
        },
    );
}

#[test]
fn golden_dskit_tcp_packet() {
    let bytes = unhex(
        "01 0d 31302e302e302e323a37393436 0282a75061796c6f6164c0a55365714e6f07 \
         a85586e4ef18ac715aa6c0a180350ac8",
    );
    let Connection::Packet(f) = dskit_tcp::decode_connection(&bytes).unwrap() else {
        panic!("not a packet connection");
    };
    assert_eq!(f.from, b"10.0.0.2:7946");
    assert_eq!(decode_packet(f.packet).unwrap(), Packet::plain(ack7()));
    let ack = encode_packet(&Packet::plain(ack7())).unwrap();
    assert_eq!(
        dskit_tcp::encode_packet_frame("10.0.0.2:7946", &ack).unwrap(),
        bytes
    );
}

fn kv_pair() -> KeyValuePair {
    KeyValuePair {
        key: "collectors/ring".into(),
        value: vec![0],
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 1_700_000_000_000,
    }
}

#[test]
fn golden_key_value_pair() {
    let bytes =
        unhex("0a0f 636f6c6c6563746f72732f72696e67 1201 00 1a08 72696e6744657363 28 80d095ffbc31");
    assert_eq!(KeyValuePair::decode_bytes(&bytes).unwrap(), kv_pair());
    assert_eq!(kv_pair().encode_bytes(), bytes);
}

#[test]
fn golden_push_pull_join() {
    let bytes = unhex(
        "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656e29\
         87a441646472a40a000001ab496e6361726e6174696f6e01a44d657461c0a44e616d65a161\
         a4506f7274cd1f0aa55374617465 00 a356736ea6010502000000\
         00000025 0a0f636f6c6c6563746f72732f72696e671201001a0872696e67446573632880d095ffbc31",
    );
    let want = StreamMessage {
        label: None,
        message: Message::PushPull(PushPull {
            join: true,
            nodes: vec![PushNodeState {
                name: b"a".to_vec(),
                addr: A_ADDR.to_vec(),
                port: 7946,
                meta: None,
                incarnation: 1,
                state: NodeState::Alive,
                vsn: DSKIT_VSN.to_vec(),
            }],
            user_state: kv::encode_user_state([&kv_pair()]),
        }),
    };
    assert_eq!(
        decode_stream(&bytes).unwrap(),
        Some((want.clone(), bytes.len()))
    );
    // Every count is below 128, so both dialects agree here.
    assert_eq!(encode_stream(&want, Dialect::V2).unwrap(), bytes);
    assert_eq!(encode_stream(&want, Dialect::Legacy).unwrap(), bytes);
    let Message::PushPull(pp) = &want.message else {
        unreachable!()
    };
    let pairs: Vec<_> = kv::decode_user_state(&pp.user_state)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pairs, vec![kv_pair()]);
}

#[test]
fn golden_stream_user_message() {
    let bytes = unhex("08 81 aa557365724d73674c656e 03 58595a");
    let want = StreamMessage {
        label: None,
        message: Message::User(b"XYZ".to_vec().into()),
    };
    assert_eq!(
        decode_stream(&bytes).unwrap(),
        Some((want.clone(), bytes.len()))
    );
    assert_eq!(encode_stream(&want, Dialect::V2).unwrap(), bytes);
}

#[test]
fn go_int_fields_follow_the_dialect_above_127() {
    // §1.3: UserStateLen 200 is `d1 00 c8` in go-msgpack v2, `cc c8` in the old codec.
    let pp = StreamMessage {
        label: None,
        message: Message::PushPull(PushPull {
            join: false,
            nodes: vec![],
            user_state: vec![0; 200],
        }),
    };
    let v2 = encode_stream(&pp, Dialect::V2).unwrap();
    let legacy = encode_stream(&pp, Dialect::Legacy).unwrap();
    let key = b"UserStateLen";
    let at = |b: &[u8]| b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(&v2[at(&v2)..at(&v2) + 3], &[0xd1, 0x00, 0xc8]);
    assert_eq!(&legacy[at(&legacy)..at(&legacy) + 2], &[0xcc, 0xc8]);
    for b in [&v2, &legacy] {
        assert_eq!(decode_stream(b).unwrap().unwrap().0, pp);
    }
}

#[test]
fn partial_stream_input_asks_for_more() {
    let full = encode_stream(
        &StreamMessage {
            label: Some(b"prod".to_vec()),
            message: Message::Compressed(Compressed {
                algo: CompressionAlgo::Lzw,
                inner: Box::new(Message::PushPull(PushPull {
                    join: true,
                    nodes: vec![],
                    user_state: vec![7; 1000],
                })),
            }),
        },
        Dialect::V2,
    )
    .unwrap();
    for cut in 0..full.len() {
        assert_eq!(decode_stream(&full[..cut]).unwrap(), None, "cut at {cut}");
    }
    let mut more = full.clone();
    more.extend_from_slice(b"next");
    let (_, used) = decode_stream(&more).unwrap().unwrap();
    assert_eq!(used, full.len());
}

#[test]
fn dskit_tcp_packet_with_label_covers_the_label_in_the_md5() {
    let packet = Packet {
        label: Some(b"prod".to_vec()),
        crc: false,
        message: ack7(),
    };
    let inner = encode_packet(&packet).unwrap();
    let bytes = dskit_tcp::encode_packet_frame("10.0.0.2:7946", &inner).unwrap();
    assert_eq!(&bytes[15..21], &unhex("f4 04 70726f64")[..]);
    let Connection::Packet(f) = dskit_tcp::decode_connection(&bytes).unwrap() else {
        panic!("not a packet connection");
    };
    assert_eq!(decode_packet(f.packet).unwrap(), packet);
    // A label on a dskit stream follows the 0x02 marker directly.
    let mut stream = vec![dskit_tcp::STREAM_MARKER];
    let ping = StreamMessage {
        label: Some(b"prod".to_vec()),
        message: Message::Ping(Ping {
            seq_no: 1,
            node: b"b".to_vec(),
            ..Default::default()
        }),
    };
    stream.extend(encode_stream(&ping, Dialect::V2).unwrap());
    let Connection::Stream(rest) = dskit_tcp::decode_connection(&stream).unwrap() else {
        panic!("not a stream connection");
    };
    assert_eq!(decode_stream(rest).unwrap(), Some((ping, rest.len())));
}
