#!/usr/bin/env python3
"""Writes the corpus of malformed SafeTensors files and expected.tsv beside it.

Each line of expected.tsv is `FILE<TAB>SUBSTRING`: the reader must reject FILE with an error whose
message contains SUBSTRING. Run from anywhere; files are written next to this script. The corpus
doubles as seed input for the libFuzzer target.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
cases = []


def raw(name, data, expected):
    with open(os.path.join(HERE, name + ".safetensors"), "wb") as f:
        f.write(data)
    cases.append((name + ".safetensors", expected))


def file_from_header(header_text, data=b""):
    if isinstance(header_text, str):
        header_text = header_text.encode()
    return struct.pack("<Q", len(header_text)) + header_text + data


def make(name, header, data, expected):
    raw(name, file_from_header(json.dumps(header), data), expected)


def f32(n):
    return struct.pack("<%df" % n, *[0.25 * (i + 1) for i in range(n)])


ok = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

raw("empty", b"", "too short for the 8-byte header length")
raw("five_bytes", b"\x05\x00\x00\x00\x00", "too short for the 8-byte header length")
raw("header_over_limit", struct.pack("<Q", 100_000_001) + b"{}", "exceeds the limit of 100000000")
raw("header_past_eof", struct.pack("<Q", 64) + b'{"a":1}', "runs past the end of the file")
raw("header_length_zero", struct.pack("<Q", 0) + f32(2), "header is empty")
raw("header_not_json", file_from_header("this is not json"), "header is not valid JSON")
raw("header_invalid_utf8", file_from_header(b'{"a\xff\xfe": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}'),
    "ill-formed UTF-8")
raw("header_nul_padding", file_from_header(b'{}\x00\x00\x00\x00\x00\x00'), "header contains a NUL byte at offset 10")
raw("header_is_array", file_from_header("[1, 2, 3]"), "header is not a JSON object")
make("unknown_dtype", {"w": {"dtype": "F8", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0", "unknown dtype 'F8'")
make("dtype_not_string", {"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}}, f32(2), "dtype of 'w' must be a string")
make("shape_negative", {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, f32(2),
     "shape of 'w' must list non-negative integers")
make("shape_fractional", {"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}}, f32(2),
     "shape of 'w' must list non-negative integers")
make("shape_not_array", {"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, f32(2),
     "shape of 'w' must be an array")
make("offsets_three", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}, f32(2),
     "data_offsets of 'w' must be two non-negative integers")
make("offsets_reversed", {"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, f32(2),
     "data_offsets of 'w' are reversed")
make("size_mismatch", {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f32(2),
     "'w' needs 12 bytes for F32 shape [3] but its data_offsets span 8")
make("shape_overflow", {"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}, f32(2),
     "overflows 64 bits")
make("offsets_huge", {"w": {"dtype": "U8", "shape": [2], "data_offsets": [18446744073709551613, 18446744073709551615]}},
     f32(2), "run past the end of the data section")
make("past_data_end", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, f32(2),
     "run past the end of the data section")
make("overlap", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32(3), "'a' and 'b' overlap")
make("gap", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, f32(3), "gap of 4 unused bytes before 'b'")
make("trailing_bytes", {"w": ok}, f32(3), "4 trailing bytes after the last tensor")
make("metadata_not_object", {"__metadata__": ["format", "pt"], "w": ok}, f32(2), "__metadata__ must be an object")
make("metadata_number_value", {"__metadata__": {"format": "pt", "epoch": 3}, "w": ok}, f32(2),
     "__metadata__ must map strings to strings, but 'epoch' holds a number")
make("entry_not_object", {"w": [0, 8]}, f32(2), "entry 'w' must be an object")
make("missing_offsets", {"w": {"dtype": "F32", "shape": [2]}}, f32(2), "entry 'w' lacks data_offsets")
make("unknown_field", {"w": dict(ok, stride=[1])}, f32(2), "entry 'w' has unknown field 'stride'")
raw("duplicate_name", file_from_header(
    '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
    '"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', f32(2)), "names 'w' twice")
make("empty_name", {"": ok}, f32(2), "a tensor has an empty name")
raw("nested_deeply", file_from_header('{"w": {"dtype": "F32", "shape": ' + "[" * 50000 + "]" * 50000 + "}}"),
    "nested more deeply than a SafeTensors header can be")

with open(os.path.join(HERE, "expected.tsv"), "w") as f:
    for name, expected in cases:
        f.write(f"{name}\t{expected}\n")
print(f"wrote {len(cases)} malformed files")
