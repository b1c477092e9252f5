#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from the captures in
crates/memberlist/testdata into fuzz/corpus/<target>/ (not committed)."""
import hashlib, json, os, pathlib, struct

root = pathlib.Path(__file__).resolve().parent
testdata = root.parent / "crates" / "memberlist" / "testdata"
corpus = root / "corpus"

def put(target, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)

for f in sorted(testdata.glob("*.jsonl")):
    for line in f.read_text().splitlines():
        v = json.loads(line)
        for key in ("client_bytes_hex", "server_bytes_hex", "payload_hex"):
            b = bytes.fromhex(v.get(key, ""))
            if not b:
                continue
            if b[0] == 1 and key == "client_bytes_hex":
                put("dskit_tcp_frame", b)
                n = b[1]
                pkt = b[2 + n:-16]
                put("packet_decode", pkt)
                put("msgpack_value", pkt[1:])
                # dskit user payloads: KeyValuePair after a CRC header + 0x08.
                if pkt[:1] == b"\x0c" and pkt[5:6] == b"\x08":
                    put("kv_pair", pkt[6:])
            elif b[0] == 2 and key == "client_bytes_hex":
                put("dskit_tcp_frame", b)
                put("stream_decode", b[1:])
            elif key == "payload_hex":
                put("packet_decode", b)
            else:
                put("stream_decode", b)
                put("msgpack_value", b[1:])
