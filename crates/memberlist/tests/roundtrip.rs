//! Property tests: anything we encode, in either dialect, decodes back to the same
//! value; and decoding arbitrary bytes never panics.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use ringkit_memberlist::wire::compress::CompressionAlgo;
use ringkit_memberlist::wire::dskit_tcp::{self, Connection};
use ringkit_memberlist::wire::kv::{self, KeyValuePair};
use ringkit_memberlist::wire::message::{
    Ack, Alive, Compound, Compressed, Dead, ErrResp, IndirectPing, Nack, NodeState, Ping,
    PushNodeState, PushPull, Suspect,
};
use ringkit_memberlist::wire::msgpack::Value;
use ringkit_memberlist::wire::{
    Dialect, Message, Packet, StreamMessage, decode_packet, decode_stream, encode_packet,
    encode_stream,
};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// Lengths around the fixstr/str16 boundary and above 255 matter most.
fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![bytes(40), vec(any::<u8>(), 250..300)]
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::Legacy), Just(Dialect::V2)]
}

fn algo() -> impl Strategy<Value = CompressionAlgo> {
    prop_oneof![Just(CompressionAlgo::Lzw), Just(CompressionAlgo::Snappy)]
}

fn label() -> impl Strategy<Value = Option<Vec<u8>>> {
    option::of(vec(any::<u8>(), 1..255))
}

fn leaf() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), name(), bytes(17), any::<u16>(), name()).prop_map(
            |(seq_no, node, source_addr, source_port, source_node)| Message::Ping(Ping {
                seq_no,
                node,
                source_addr,
                source_port,
                source_node,
            })
        ),
        (
            (any::<u32>(), bytes(17), any::<u16>(), name()),
            (any::<bool>(), bytes(17), any::<u16>(), name())
        )
            .prop_map(
                |((seq_no, target, port, node), (nack, source_addr, source_port, source_node))| {
                    Message::IndirectPing(IndirectPing {
                        seq_no,
                        target,
                        port,
                        node,
                        nack,
                        source_addr,
                        source_port,
                        source_node,
                    })
                }
            ),
        (any::<u32>(), option::of(bytes(40)))
            .prop_map(|(seq_no, payload)| Message::Ack(Ack { seq_no, payload })),
        any::<u32>().prop_map(|seq_no| Message::Nack(Nack { seq_no })),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| {
            Message::Suspect(Suspect {
                incarnation,
                node,
                from,
            })
        }),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| {
            Message::Dead(Dead {
                incarnation,
                node,
                from,
            })
        }),
        (
            any::<u32>(),
            name(),
            bytes(17),
            any::<u16>(),
            option::of(bytes(512)),
            bytes(7)
        )
            .prop_map(|(incarnation, node, addr, port, meta, vsn)| {
                Message::Alive(Alive {
                    incarnation,
                    node,
                    addr,
                    port,
                    meta,
                    vsn,
                })
            }),
        bytes(300).prop_map(|b| Message::User(b.into())),
    ]
}

fn packet_message() -> impl Strategy<Value = Message> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|parts| Message::Compound(Compound {
                parts,
                truncated: 0,
            })),
            (algo(), inner).prop_map(|(algo, m)| Message::Compressed(Compressed {
                algo,
                inner: Box::new(m),
            })),
        ]
    })
}

fn node_state() -> impl Strategy<Value = PushNodeState> {
    (
        (name(), bytes(17), any::<u16>(), option::of(bytes(64))),
        (any::<u32>(), any::<i64>(), bytes(7)),
    )
        .prop_map(
            |((name, addr, port, meta), (incarnation, state, vsn))| PushNodeState {
                name,
                addr,
                port,
                meta,
                incarnation,
                state: NodeState::from_wire(state.rem_euclid(6) - 1),
                vsn,
            },
        )
}

fn stream_message() -> impl Strategy<Value = Message> {
    let plain = prop_oneof![
        (any::<bool>(), vec(node_state(), 0..20), bytes(2000)).prop_map(
            |(join, nodes, user_state)| Message::PushPull(PushPull {
                join,
                nodes,
                user_state,
            })
        ),
        bytes(300).prop_map(|b| Message::User(b.into())),
        bytes(300).prop_map(|error| Message::Error(ErrResp { error })),
        (any::<u32>(), name()).prop_map(|(seq_no, node)| Message::Ping(Ping {
            seq_no,
            node,
            ..Default::default()
        })),
        (any::<u32>(), option::of(bytes(10)))
            .prop_map(|(seq_no, payload)| Message::Ack(Ack { seq_no, payload })),
    ];
    (plain, option::of(algo())).prop_map(|(m, algo)| match algo {
        Some(algo) => Message::Compressed(Compressed {
            algo,
            inner: Box::new(m),
        }),
        None => m,
    })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::Uint),
        (i64::MIN..0).prop_map(Value::Int),
        bytes(300).prop_map(Value::Raw),
        bytes(300).prop_map(Value::Bin),
        (any::<i8>(), bytes(20)).prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..20).prop_map(Value::Array),
            vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

fn kv_pair() -> impl Strategy<Value = KeyValuePair> {
    (
        ".{0,20}",
        bytes(200),
        "[a-zA-Z]{0,12}",
        any::<bool>(),
        any::<i64>(),
    )
        .prop_map(
            |(key, value, codec, deleted, update_time_millis)| KeyValuePair {
                key,
                value,
                codec,
                deleted,
                update_time_millis,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn packets_round_trip(message in packet_message(), label in label(), crc in any::<bool>()) {
        let p = Packet { label, crc, message };
        let bytes = encode_packet(&p).unwrap();
        prop_assert_eq!(decode_packet(&bytes).unwrap(), p);
    }

    #[test]
    fn stream_messages_round_trip_in_both_dialects(
        message in stream_message(),
        label in label(),
        dialect in dialect(),
    ) {
        let m = StreamMessage { label, message };
        let bytes = encode_stream(&m, dialect).unwrap();
        prop_assert_eq!(decode_stream(&bytes).unwrap(), Some((m, bytes.len())));
    }

    #[test]
    fn stream_prefixes_are_incomplete_not_errors(message in stream_message(), cut in any::<prop::sample::Index>()) {
        let m = StreamMessage { label: None, message };
        let bytes = encode_stream(&m, Dialect::V2).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert_eq!(decode_stream(&bytes[..cut]).unwrap(), None);
    }

    #[test]
    fn msgpack_values_round_trip(v in value()) {
        let mut out = Vec::new();
        v.encode(&mut out);
        let (back, used) = Value::decode(&out).unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(back, v);
    }

    #[test]
    fn user_state_round_trips(pairs in vec(kv_pair(), 0..8)) {
        let state = kv::encode_user_state(&pairs);
        let back: Vec<_> = kv::decode_user_state(&state).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, pairs);
    }

    #[test]
    fn dskit_packet_frames_round_trip(from in "[0-9.:]{0,40}", packet in bytes(500)) {
        let bytes = dskit_tcp::encode_packet_frame(&from, &packet).unwrap();
        let Connection::Packet(f) = dskit_tcp::decode_connection(&bytes).unwrap() else {
            panic!("not a packet");
        };
        prop_assert_eq!(f.from, from.as_bytes());
        prop_assert_eq!(f.packet, &packet[..]);
    }

    #[test]
    fn decoders_never_panic_on_noise(data in bytes(600)) {
        let _ = decode_packet(&data);
        let _ = decode_stream(&data);
        let _ = Value::decode(&data);
        let _ = dskit_tcp::decode_connection(&data);
        let _ = kv::decode_user_state(&data).count();
    }
}
