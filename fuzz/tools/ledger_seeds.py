#!/usr/bin/env python3
"""Writes the seed inputs of the ledger's fuzz targets into fuzz/seeds/.

Run from anywhere: `python3 fuzz/tools/ledger_seeds.py`. Needs the `cryptography`
package (Ed25519). The keys are the fixture's (`pdx_ledger::fuzzing`): the Go reference
key PeterNeumann as the log, and seed 0x42 * 32 as the witness. Ed25519 is
deterministic, so every signature here is the one the fixture's signer writes.
Structured seeds (first byte odd) are decisions for the targets' input readers: see
`ledger/src/fuzzing.rs`.
"""

import base64
import hashlib
import os
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seeds")

LOG_NAME = "PeterNeumann"
LOG_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
WITNESS_NAME = "witness.example/w1"
WITNESS_SEED = bytes([0x42] * 32)

GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"


class Signer:
    def __init__(self, name, seed):
        self.name = name
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def key_id(self, key_type):
        digest = hashlib.sha256(self.name.encode() + b"\n" + bytes([key_type]) + self.public)
        return digest.digest()[:4]

    def vkey(self, key_type):
        raw = bytes([key_type]) + self.public
        return f"{self.name}+{self.key_id(key_type).hex()}+{base64.b64encode(raw).decode()}"

    def sign(self, body):
        sig = self.key.sign(body.encode())
        line = base64.b64encode(self.key_id(1) + sig).decode()
        return f"{body}\n— {self.name} {line}\n"

    def cosign(self, body, timestamp):
        message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
        sig = self.key.sign(message)
        payload = self.key_id(4) + struct.pack(">Q", timestamp) + sig
        return f"— {self.name} {base64.b64encode(payload).decode()}\n"


def checkpoint(origin, size, root, extensions=()):
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return body + "".join(f"{e}\n" for e in extensions)


def write(target, name, data):
    folder = os.path.join(SEEDS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def u64(value):
    return struct.pack("<Q", value)


def main():
    log = Signer(LOG_NAME, LOG_SEED)
    witness = Signer(WITNESS_NAME, WITNESS_SEED)
    assert log.sign(GO_TEXT) == GO_TEXT + "\n" + PETER_SIG, "the Go known answer"

    raw, structured = b"\x00", b"\x01"
    body = checkpoint(LOG_NAME, 5, bytes([7] * 32))
    cosigned = log.sign(body) + witness.cosign(body, 1_700_000_000) + log.cosign(body, 1_700_000_100)
    extended = checkpoint("example.com/log", 20852163, bytes(range(32)), ["ext one", "— ext two"])

    # checkpoint_note: raw texts, then decisions (index, lines: signer, timestamp; edits).
    write("checkpoint_note", "go_note", raw + (GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode())
    write("checkpoint_note", "cosigned_checkpoint", raw + cosigned.encode())
    write("checkpoint_note", "checkpoint_with_extensions", raw + log.sign(extended).encode())
    write("checkpoint_note", "checkpoint_body", raw + extended.encode())
    write("checkpoint_note", "vkey_log", raw + log.vkey(1).encode())
    write("checkpoint_note", "vkey_witness_cosigner", raw + witness.vkey(4).encode())
    write("checkpoint_note", "structured_two_cosignatures",
          structured + bytes([3, 2, 0]) + u64(1_700_000_000) + bytes([1]) + u64(42))
    write("checkpoint_note", "structured_edited",
          structured + bytes([6, 1, 0]) + u64(7) + bytes([0, 0x30, 0x00, 0x41, 1, 0x10, 0x00, 0x0a]))

    # cosignature: raw "key\nnote", then decisions (key, base, lines, edits).
    write("cosignature", "raw_unknown_root",
          (witness.vkey(4) + "\n" + log.sign(checkpoint(LOG_NAME, 3, bytes([9] * 32)))
           + witness.cosign(checkpoint(LOG_NAME, 3, bytes([9] * 32)), 1_700_000_000)).encode())
    write("cosignature", "raw_go_note", (log.vkey(1) + "\n" + GO_TEXT + "\n" + PETER_SIG).encode())
    write("cosignature", "structured_witness", structured + bytes([0, 0, 1, 0]) + u64(1_700_000_000))
    write("cosignature", "structured_two_lines",
          structured + bytes([0, 0, 2, 0]) + u64(100) + bytes([0]) + u64(200))
    write("cosignature", "structured_log_cosigner", structured + bytes([2, 0, 1, 1]) + u64(5))
    write("cosignature", "structured_fork", structured + bytes([0, 1, 1, 0]) + u64(5))
    write("cosignature", "structured_unknown_size", structured + bytes([0, 2, 4, 1, 0]) + u64(5))
    write("cosignature", "structured_plain_key", structured + bytes([1, 0, 1, 0]) + u64(5))
    write("cosignature", "structured_no_line", structured + bytes([0, 0, 0]))
    write("cosignature", "structured_edited",
          structured + bytes([0, 0, 1, 0]) + u64(9) + bytes([2, 0x20, 0x00, 0, 1, 0x05, 0x00, 0x2b]))

    # receipt: decisions (size, seq, field changes, edits), then raw JSON. No raw seed
    # carries a checkpoint the log key signed: the target takes any receipt that verifies
    # to be about the fixture's own log.
    for size, seq in [(7, 3), (1, 0), (7, 6), (4, 2), (5, 4)]:
        write("receipt", f"genuine_{size}_{seq}", structured + bytes([size - 1, seq, 0]))
    write("receipt", "proof_popped", structured + bytes([6, 3, 1, 7, 0]))
    write("receipt", "other_entry", structured + bytes([6, 3, 1, 9, 2]))
    write("receipt", "other_checkpoint_and_size", structured + bytes([6, 3, 2, 8, 4, 6, 5]))
    write("receipt", "payload_and_hash", structured + bytes([5, 1, 2, 4, 2, 5, 1, 0]))
    write("receipt", "edited_json", structured + bytes([3, 1, 0, 0, 0x40, 0x00, 0x30]))
    fake = (
        '{"format":"pdx-ledger-receipt/v1","entry":{"seq":0,"timestamp_ms":1700000000000,'
        '"kind":"release","actor":{"org":"org-fuzz","key_id":"key-1"},"payload":"{}",'
        '"payload_hash":"' + "00" * 32 + '","prev_hash":"' + "00" * 32 + '",'
        '"entry_hash":"' + "11" * 32 + '"},"tree_size":1,"inclusion_proof":[],'
        '"checkpoint":' + json_string(GO_TEXT + "\n" + PETER_SIG) + "}"
    )
    write("receipt", "raw_unrelated_hashes", raw + fake.encode())

    # merkle_proofs: op (even inclusion, odd consistency), two positions, hash and proof
    # choices (0 genuine, 1 another tree hash or an edit, 2 a flipped bit, 3 raw).
    inclusion, consistency = b"\x00", b"\x01"
    for size, index in [(20, 5), (37, 36), (1, 0), (32, 31), (5, 9)]:
        write("merkle_proofs", f"inclusion_{size}_{index}", inclusion + bytes([size, index, 0, 0, 0]))
    write("merkle_proofs", "inclusion_replaced_hash", inclusion + bytes([20, 5, 0, 0, 1, 2, 3, 7]))
    write("merkle_proofs", "inclusion_flipped_leaf", inclusion + bytes([13, 12, 2, 0x55, 0, 0]))
    write("merkle_proofs", "inclusion_huge_size",
          inclusion + bytes([0xc0]) + u64(2**63 + 5) + bytes([5, 3]) + bytes(32) + bytes([3]) + bytes(32)
          + bytes([3, 3]) + bytes(range(96)))
    for size1, size2 in [(7, 20), (8, 37), (1, 37), (20, 20), (0, 5), (16, 17), (36, 37)]:
        write("merkle_proofs", f"consistency_{size1}_{size2}", consistency + bytes([size1, size2, 0, 0, 0]))
    write("merkle_proofs", "consistency_flipped_root", consistency + bytes([13, 29, 2, 0x11, 0, 0]))
    write("merkle_proofs", "consistency_dropped_hash", consistency + bytes([6, 30, 0, 0, 1, 0]))
    write("merkle_proofs", "consistency_reversed", consistency + bytes([30, 6, 0, 0, 0]))


def json_string(text):
    import json
    return json.dumps(text, ensure_ascii=False)


if __name__ == "__main__":
    main()
