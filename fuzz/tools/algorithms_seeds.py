#!/usr/bin/env python3
"""Writes the seed inputs of the heavy fuzz targets' ingest and FHE bodies into
fuzz/seeds/ (the SQL seeds are the test suites' queries, extracted once).

Run from the repository root: `python3 fuzz/tools/algorithms_seeds.py`. Needs polars
(for the Parquet seeds; the notebooks' requirements install it). The first byte of an
ingest seed is its declaration (`pdx_algorithms::fuzzing::ingest_csv`): bits 0-1 the
schema (0 Adult, 1 PUMS with ids, 2 enterprise), bits 2-3 the delimiter (, ; tab |).
The first byte of an FHE seed chooses the body (`pdx_algorithms::fuzzing::fhe_request`).
"""

import datetime
import io
import json
import os
import struct

import polars as pl

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
DATA = os.path.join(ROOT, "..", "shared", "data")
ADULT, PUMS, ENTERPRISE = 0, 1, 2
COMMA, SEMICOLON, TAB, PIPE = 0, 1, 2, 3


def write(target, name, data):
    folder = os.path.join(SEEDS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def declaration(schema, delimiter=COMMA):
    return bytes([schema | (delimiter << 2)])


def head(path, lines):
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(lines))


ENTERPRISE_CSV = """credit_code,district,industry,kwh_12m,registered,listed,score
91440300MA5F00001X,福田区,software,1200000,2015-03-01,true,0.5
91440300MA5F00002X,南山区,smelter,4987654321,2001-12-31,0,
91440300MA5F00003X,罗湖区,制造业,,1990-01-01,,1e3
"91440300MA5F00004X","盐田区, 港区","retail",  17000.0 ,2030-12-31,FALSE,-2.25
"""


def csv_seeds():
    adult = head(os.path.join(DATA, "adult", "adult.csv"), 25)
    pums = head(os.path.join(DATA, "pums", "PUMS_pid.csv"), 25)
    write("ingest_csv", "adult", declaration(ADULT, SEMICOLON) + adult)
    write("ingest_csv", "adult_wrong_delimiter", declaration(ADULT, COMMA) + adult)
    write("ingest_csv", "pums", declaration(PUMS) + pums)
    write("ingest_csv", "pums_as_tabs", declaration(PUMS, TAB) + pums.replace(b",", b"\t"))
    write("ingest_csv", "enterprise_utf8", declaration(ENTERPRISE) + ENTERPRISE_CSV.encode())
    write("ingest_csv", "enterprise_gbk", declaration(ENTERPRISE) + ENTERPRISE_CSV.encode("gbk"))
    write("ingest_csv", "enterprise_bom_pipes",
          declaration(ENTERPRISE, PIPE) + b"\xef\xbb\xbf" + ENTERPRISE_CSV.replace(",", "|").encode())
    bad = ("credit_code,district,industry,kwh_12m,registered,listed,score\n"
           "91440300MA5F00001X,Futian,software,17000.5,2015-02-30,maybe,NaN\n"
           "91440300MA5F00002X,Futian\n"
           ",Luohu,mining,9223372036854775808,1989-12-31,1,inf\n")
    write("ingest_csv", "enterprise_bad_cells", declaration(ENTERPRISE) + bad.encode())
    write("ingest_csv", "no_header_match", declaration(PUMS) + pums.split(b"\n", 1)[1])
    write("ingest_csv", "header_only", declaration(ADULT, SEMICOLON) + adult.split(b"\n", 1)[0] + b"\n")
    write("ingest_csv", "gbk_truncated", declaration(ENTERPRISE) + ENTERPRISE_CSV.encode("gbk")[:-3] + b"\x81")
    write("ingest_csv", "quoted_newlines",
          declaration(ENTERPRISE) + ('credit_code,district,industry,kwh_12m,registered,listed,score\n'
                                     '"A\nB","x""y",software,1,2020-01-01,1,"1.5"\n').encode())


def parquet(frame, compression="uncompressed"):
    out = io.BytesIO()
    frame.write_parquet(out, compression=compression)
    return out.getvalue()


def parquet_seeds():
    adult = pl.read_csv(os.path.join(DATA, "adult", "adult.csv"), separator=";", n_rows=20)
    pums = pl.read_csv(os.path.join(DATA, "pums", "PUMS_pid.csv"), n_rows=20)
    pums = pums.with_columns(
        pl.col("sex").cast(pl.Boolean), pl.col("married").cast(pl.Boolean), pl.col("race").cast(pl.String)
    )
    enterprise = pl.DataFrame({
        "credit_code": ["91440300MA5F00001X", "91440300MA5F00002X", "91440300MA5F00003X"],
        "district": ["福田区", "南山区", "罗湖区"],
        "industry": ["software", None, "制造业"],
        "kwh_12m": pl.Series([1200000, None, 4987654321], dtype=pl.Int64),
        "registered": [datetime.date(2015, 3, 1), datetime.date(2001, 12, 31), datetime.date(1990, 1, 1)],
        "listed": [True, None, False],
        "score": [0.5, None, -2.25],
    })
    write("ingest_parquet", "adult", declaration(ADULT) + parquet(adult))
    write("ingest_parquet", "adult_zstd", declaration(ADULT) + parquet(adult, "zstd"))
    write("ingest_parquet", "adult_snappy", declaration(ADULT) + parquet(adult, "snappy"))
    write("ingest_parquet", "pums", declaration(PUMS) + parquet(pums))
    write("ingest_parquet", "pums_narrow_ints",
          declaration(PUMS) + parquet(pums.with_columns(pl.col("age").cast(pl.Int32), pl.col("income").cast(pl.Float32))))
    write("ingest_parquet", "enterprise", declaration(ENTERPRISE) + parquet(enterprise))
    write("ingest_parquet", "enterprise_categorical",
          declaration(ENTERPRISE) + parquet(enterprise.with_columns(pl.col("district").cast(pl.Categorical))))
    write("ingest_parquet", "enterprise_wrong_types",
          declaration(ENTERPRISE) + parquet(enterprise.with_columns(pl.col("kwh_12m").cast(pl.String))))
    write("ingest_parquet", "enterprise_missing_column", declaration(ENTERPRISE) + parquet(enterprise.drop("score")))
    write("ingest_parquet", "pums_empty", declaration(PUMS) + parquet(pums.head(0)))
    write("ingest_parquet", "not_parquet", declaration(ADULT) + b"PAR1 this is not a parquet file PAR1")


def tfhe_header(name):
    """The header of a TFHE-rs safe serialisation naming `name` (tfhe-safe-serialize 0.1)."""
    def string(s):
        return struct.pack("<Q", len(s)) + s.encode()
    return string("0.5") + struct.pack("<I", 0) + string("0.1") + string(name)


OPENING = {
    "authorisation": {
        "subject_org": "org-subject", "bank_org": "org-bank", "template_id": "fhet_fuzz",
        "valid_from_ms": 1_700_000_000_000 - 86_400_000, "valid_until_ms": 1_700_000_000_000 + 86_400_000,
        "purpose": "credit check",
    },
    "signature": "ab" * 64,
    "nonce": "17" * 32,
}

TEMPLATES = {
    "template_quantile": {"key_column": "code", "value": {"rule": "quantile", "column": "kwh", "buckets": 4},
                          "output": {"kind": "uint", "bits": 2}, "key_width": "u16", "aggregate": "sum"},
    "template_threshold": {"key_column": "code", "value": {"rule": "threshold", "column": "kwh", "op": "ge", "value": 5000},
                           "output": {"kind": "bool"}, "aggregate": "max"},
    "template_bucket": {"key_column": "code", "value": {"rule": "bucket", "column": "kwh", "edges": [1000, 5000.5, 9000]},
                        "output": {"kind": "uint", "bits": 2}, "aggregate": "mean", "bucket_bits": 2},
    "template_in_set": {"key_column": "code", "value": {"rule": "in_set", "column": "grade", "values": ["A", "B"]},
                        "output": {"kind": "bool"}},
    "template_rank": {"key_column": "code", "value": {"rule": "rank", "column": "grade", "order": ["A", "B", "C", "D"]},
                      "output": {"kind": "uint", "bits": 2}, "key_width": "u64", "bucket_bits": 10},
    "template_integer_count": {"key_column": "code", "value": {"rule": "integer", "column": "listed"},
                               "output": {"kind": "uint", "bits": 8}, "aggregate": "count"},
    "template_quantile_at_least": {"key_column": "code", "value": {"rule": "quantile", "column": "kwh", "buckets": 16, "at_least": 15},
                                   "output": {"kind": "bool"}, "aggregate": "min"},
    "template_repeated_key": {"key_column": "code", "value": {"rule": "integer", "column": "kwh"}, "output": {"kind": "uint", "bits": 8}},
    "template_quasi_identifier": {"key_column": "code", "value": {"rule": "integer", "column": "district"}, "output": {"kind": "uint", "bits": 3}},
    "template_dropped_key": {"key_column": "secret", "value": {"rule": "integer", "column": "kwh"}, "output": {"kind": "bool"}},
    "template_too_wide": {"key_column": "code", "value": {"rule": "integer", "column": "kwh"}, "output": {"kind": "uint", "bits": 9}},
}


def fhe_seeds():
    ciphertext = tfhe_header("high_level_api::CompressedFheUint")
    # 0: a raw ciphertext at a width (next byte): a real header, then no body.
    write("fhe_request", "ciphertext_header_u32", bytes([0, 1]) + ciphertext + bytes(64))
    write("fhe_request", "ciphertext_client_key", bytes([0, 0]) + tfhe_header("high_level_api::ClientKey") + bytes(16))
    # 1: a genuine ciphertext (which width), read at a width, then edits.
    for genuine in range(3):
        for asked in range(3):
            write("fhe_request", f"genuine_{16 << genuine}_as_{16 << asked}", bytes([1, genuine, asked]))
    write("fhe_request", "genuine_u32_edited", bytes([1, 1, 1, 0, 0x20, 0x00, 0xff, 2, 0x40, 0x00, 0]))
    # 2: a raw server key.
    write("fhe_request", "server_key_header", bytes([2]) + tfhe_header("high_level_api::CompressedServerKey") + bytes(256))
    write("fhe_request", "server_key_is_client_key", bytes([2]) + tfhe_header("high_level_api::ClientKey") + bytes(32))
    # 3: templates; 4: a raw opening; 5: the genuine opening, then edits.
    for name, spec in TEMPLATES.items():
        write("fhe_request", name, bytes([3]) + json.dumps(spec, ensure_ascii=False).encode())
    write("fhe_request", "opening_unrelated", bytes([4]) + json.dumps(OPENING).encode())
    write("fhe_request", "opening_genuine", bytes([5]))
    write("fhe_request", "opening_edited", bytes([5, 0, 0x30, 0x00, 0x31, 1, 0x02, 0x00, 0x20]))


if __name__ == "__main__":
    csv_seeds()
    parquet_seeds()
    fhe_seeds()
