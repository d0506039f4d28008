#!/usr/bin/env python3
"""Writes small valid seed inputs for the fuzzers: make_seeds.py OUT_DIR.

OUT_DIR/safetensors/ gets well-formed SafeTensors files of every dtype; OUT_DIR/idx/ gets IDX files
of every element type, plain and gzip-compressed. The malformed corpus in tests/data/malformed is
added as seeds by run_fuzzers.sh.
"""
import gzip
import json
import os
import struct
import sys

out = sys.argv[1]
os.makedirs(os.path.join(out, "safetensors"), exist_ok=True)
os.makedirs(os.path.join(out, "idx"), exist_ok=True)

sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
for i, (dtype, size) in enumerate(sizes.items()):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for j, shape in enumerate([[2, 3], [], [0]]):
        count = 1
        for d in shape:
            count *= d
        payload = bytes((7 * k + i + j) % 256 for k in range(count * size))
        header[f"t{j}"] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(out, "safetensors", f"{dtype}.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)

types = {0x08: ("B", 1), 0x09: ("b", 1), 0x0B: ("h", 2), 0x0C: ("i", 4), 0x0D: ("f", 4), 0x0E: ("d", 8)}
for code, (fmt, size) in types.items():
    dims = [2, 3]
    body = struct.pack(">BBBB", 0, 0, code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    body += b"".join(struct.pack(">" + fmt, (k * 3) % 100) for k in range(6))
    with open(os.path.join(out, "idx", f"type{code:02x}.idx"), "wb") as f:
        f.write(body)
    with open(os.path.join(out, "idx", f"type{code:02x}.idx.gz"), "wb") as f:
        f.write(gzip.compress(body, mtime=0))
