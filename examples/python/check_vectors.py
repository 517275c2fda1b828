#!/usr/bin/env python3
"""Checks Custos's conformance vectors (docs/spec/vectors.json) from the specification alone.

This is a second, independent implementation of the formats of docs/spec: SHA-256 from hashlib,
Ed25519 from PyNaCl (libsodium) plus the strict rules of docs/spec/signatures.md written out
here, and a small protobuf encoder and decoder driven by the field tables of the specification.
It recomputes every vector's bytes, hashes and signatures and checks every verdict.

    python3 check_vectors.py docs/spec/vectors.json              # prints "N passed, 0 failed"
    python3 check_vectors.py --self-test docs/spec/vectors.json  # one bit flipped per vector

Exit status 0 only when every vector passes (or, with --self-test, when every mutant fails).
Requires Python 3.11 and PyNaCl (pinned in examples/python/requirements.txt).
"""

import copy
import hashlib
import json
import re
import sys

import nacl.bindings
import nacl.exceptions
import nacl.signing


class Refused(Exception):
    """The input is refused by a rule of the specification."""


def H(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def unhex(s: str) -> bytes:
    return bytes.fromhex(s)


def u32be(n: int) -> bytes:
    return n.to_bytes(4, "big")


def u64be(n: int) -> bytes:
    return n.to_bytes(8, "big")


def i64be(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=True)


# --------------------------------------------------------------------------------------------
# Ed25519 with the strict rules of signatures.md

P = 2**255 - 19
ELL = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_decompress(b: bytes):
    """RFC 8032 5.1.3 decoding, with y read as 255 bits and reduced mod p. None if not a point."""
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little") & ((1 << 255) - 1)
    sign = b[31] >> 7
    y %= P
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    if (v * x * x - u) % P != 0:
        if (v * x * x + u) % P != 0:
            return None
        x = (x * SQRT_M1) % P
    if x == 0 and sign:
        # The encoding of x = 0 with the sign bit set is read as x = 0 (as curve25519-dalek does).
        return (0, y, 1, 0)
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, (x * y) % P)


def point_add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    d = z1 * 2 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def is_identity(p) -> bool:
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


def small_order(p) -> bool:
    """Whether [8]p is the identity."""
    q = p
    for _ in range(3):
        q = point_add(q, q)
    return is_identity(q)


def check_key(key: bytes) -> None:
    """The key rules of signatures.md: 32 bytes, a curve point, not of small order."""
    if len(key) != 32:
        raise Refused(f"public key: expected 32 bytes, got {len(key)}")
    point = point_decompress(key)
    if point is None:
        raise Refused("public key: not a point on Ed25519")
    if small_order(point):
        raise Refused("public key: small-order point")


def verify(key: bytes, message: bytes, signature: bytes) -> None:
    """The strict verification rule of signatures.md; raises Refused."""
    check_key(key)
    if len(signature) != 64:
        raise Refused(f"signature: expected 64 bytes, got {len(signature)}")
    if int.from_bytes(signature[32:], "little") >= ELL:
        raise Refused("signature: S is not canonical (S >= l)")
    r = point_decompress(signature[:32])
    if r is None or small_order(r):
        raise Refused("signature: R is not a point of large order")
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        raise Refused("signature does not verify") from None


def public_key(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def sign(seed: bytes, message: bytes) -> bytes:
    return nacl.signing.SigningKey(seed).sign(message).signature


CTX_TRANSACTION = b"custos/transaction/v2"
CTX_READ = b"custos/signed-read/v2"
CTX_COMMIT = b"custos/commit/v1"
TX_ID_DOMAIN = b"custos/tx-id/v2"

# --------------------------------------------------------------------------------------------
# Protobuf: the field tables of the specification, a canonical encoder and a decoder

# (name, number, type, repeated, oneof) ; type: a scalar name or a message name
S = {
    "TransactionBody": [
        ("version", 1, "uint32"), ("chain_id", 2, "string"), ("nonce", 3, "uint64"),
        ("author", 4, "bytes"),
        ("register_party", 10, "RegisterParty", "oneof"),
        ("register_record", 11, "RegisterRecord", "oneof"),
        ("grant_consent", 12, "GrantConsent", "oneof"),
        ("revoke_consent", 13, "RevokeConsent", "oneof"),
        ("register_delegate", 14, "RegisterDelegate", "oneof"),
        ("request_access", 15, "RequestAccess", "oneof"),
        ("confirm_release", 16, "ConfirmRelease", "oneof"),
        ("erase_record", 17, "EraseRecord", "oneof"),
        ("governance", 18, "Governance", "oneof"),
        ("report_refusal", 19, "ReportRefusal", "oneof"),
    ],
    "RegisterParty": [("party", 1, "bytes"), ("role", 2, "enum"), ("encryption_key", 3, "bytes"),
                      ("organisation", 4, "string")],
    "RegisterRecord": [("record_id", 1, "bytes"), ("owner", 2, "bytes"), ("category", 3, "string"),
                       ("ciphertext_digest", 4, "bytes"), ("attribute_commitment", 5, "bytes")],
    "GrantConsent": [("consent", 1, "Consent")],
    "Consent": [("patient", 1, "bytes"), ("grantee", 2, "bytes"), ("scope", 3, "Scope"),
                ("purposes", 4, "string", "repeated"), ("modes", 5, "enum", "repeated"),
                ("not_before_ms", 6, "int64"), ("expires_ms", 7, "int64")],
    "Scope": [("record_ids", 1, "bytes", "repeated"), ("categories", 2, "string", "repeated"),
              ("all_records", 3, "bool")],
    "RevokeConsent": [("consent_id", 1, "bytes")],
    "RegisterDelegate": [("delegate", 1, "bytes"), ("expires_ms", 2, "int64"), ("revoke", 3, "bool")],
    "RequestAccess": [("record_id", 1, "bytes"), ("purpose", 2, "string"), ("mode", 3, "enum"),
                      ("justification_digest", 4, "bytes"), ("query", 5, "bytes")],
    "ConfirmRelease": [("request_id", 1, "bytes"), ("release_digest", 2, "bytes")],
    "EraseRecord": [("record_id", 1, "bytes"), ("legal_grounds", 2, "bool")],
    "ReportRefusal": [("request_id", 1, "bytes"), ("requester", 2, "bytes"), ("reason", 3, "enum"),
                      ("evidence_digest", 4, "bytes")],
    "Governance": [
        ("set_parameters", 1, "SetParameters", "oneof"),
        ("add_validator", 2, "AddValidator", "oneof"),
        ("remove_validator", 3, "RemoveValidator", "oneof"),
        ("set_member", 4, "SetMember", "oneof"),
        ("register_verifying_key", 5, "RegisterVerifyingKey", "oneof"),
    ],
    "SetParameters": [("parameters", 1, "Parameters")],
    "Parameters": [("min_cohort_size", 1, "uint32"), ("break_glass_enabled", 2, "bool")],
    "AddValidator": [("public_key", 1, "bytes"), ("power", 2, "uint64"), ("address", 3, "string"),
                     ("effective_height", 4, "uint64")],
    "RemoveValidator": [("public_key", 1, "bytes"), ("effective_height", 2, "uint64")],
    "SetMember": [("party", 1, "bytes"), ("member", 2, "bool")],
    "RegisterVerifyingKey": [("circuit", 1, "string"), ("key_hash", 2, "bytes")],
    "SignedTransaction": [("body", 1, "bytes"), ("author", 2, "bytes"), ("signature", 3, "bytes"),
                          ("cosignatures", 4, "CoSignature", "repeated")],
    "CoSignature": [("signer", 1, "bytes"), ("signature", 2, "bytes")],
    "SignedRead": [("body", 1, "bytes"), ("author", 2, "bytes"), ("signature", 3, "bytes")],
    "ReadBody": [("version", 1, "uint32"), ("chain_id", 2, "string"), ("method", 3, "string"),
                 ("issued_at_ms", 4, "int64"), ("query", 5, "bytes"), ("nonce", 6, "bytes"),
                 ("author", 7, "bytes")],
    "AccessLogQuery": [("patient", 1, "bytes"), ("page_size", 12, "uint32")],
    "LedgerEntry": [("version", 1, "uint32"), ("height", 2, "uint64"),
                    ("transaction", 10, "SignedTransaction", "oneof"),
                    ("decision", 11, "AccessDecision", "oneof")],
    "AccessDecision": [
        ("request_id", 1, "bytes"), ("requester", 2, "bytes"), ("record_id", 3, "bytes"),
        ("patient", 4, "bytes"), ("purpose", 5, "string"), ("mode", 6, "enum"),
        ("granted", 7, "bool"), ("reason", 8, "enum"), ("consent_id", 9, "bytes"),
        ("break_glass", 10, "bool"), ("height", 11, "uint64"), ("time_ms", 12, "int64"),
        ("cohort", 13, "Cohort"),
    ],
    "Cohort": [("root", 1, "bytes"), ("size", 2, "uint64")],
    "AggregateScope": [("custodian", 1, "bytes"), ("category", 2, "string"), ("text", 3, "string")],
    "AuditBundle": [
        ("version", 1, "uint32"), ("chain_id", 2, "string"), ("exported_at_ms", 3, "int64"),
        ("from_height", 4, "uint64"), ("to_height", 5, "uint64"),
        ("headers", 6, "SignedHeader", "repeated"), ("frontier", 7, "bytes", "repeated"),
        ("blocks", 8, "BundleBlock", "repeated"),
    ],
    "BundleBlock": [("height", 1, "uint64"), ("entries", 2, "bytes", "repeated")],
    "SignedHeader": [("header", 1, "BlockHeader"), ("certificate", 2, "CommitCertificate"),
                     ("validator_set", 3, "ValidatorSet")],
    "BlockHeader": [
        ("version", 1, "uint32"), ("chain_id", 2, "string"), ("height", 3, "uint64"),
        ("time_ms", 4, "int64"), ("prev_hash", 5, "bytes"), ("log_size", 6, "uint64"),
        ("log_root", 7, "bytes"), ("state_root", 8, "bytes"), ("tx_count", 9, "uint32"),
        ("proposer", 10, "bytes"), ("next_validators_hash", 11, "bytes"),
    ],
    "CommitCertificate": [("height", 1, "uint64"), ("round", 2, "uint32"),
                          ("header_hash", 3, "bytes"),
                          ("signatures", 4, "CommitSignature", "repeated")],
    "CommitSignature": [("validator", 1, "bytes"), ("signature", 2, "bytes")],
    "ValidatorSet": [("validators", 1, "Validator", "repeated")],
    "Validator": [("public_key", 1, "bytes"), ("voting_power", 2, "uint64"), ("address", 3, "string")],
}
VARINT = {"uint32", "uint64", "int64", "bool", "enum"}


def fields_of(message: str):
    for f in S[message]:
        name, number, typ = f[:3]
        label = f[3] if len(f) > 3 else ""
        yield name, number, typ, label


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def scalar_value(typ: str, value):
    if typ == "bytes":
        return unhex(value)
    if typ == "string":
        return value.encode()
    if typ == "bool":
        return 1 if value else 0
    return int(value)


def encode(message: str, obj: dict) -> bytes:
    """The canonical encoding of conventions.md, rule 2."""
    out = bytearray()
    for name, number, typ, label in fields_of(message):
        value = obj.get(name)
        if value is None:
            continue
        if typ in S:
            if label == "repeated":
                for item in value:
                    inner = encode(typ, item)
                    out += tag(number, 2) + varint(len(inner)) + inner
            else:
                inner = encode(typ, value)
                out += tag(number, 2) + varint(len(inner)) + inner
        elif label == "repeated":
            if typ in VARINT:
                if value:
                    packed = b"".join(varint(scalar_value(typ, v)) for v in value)
                    out += tag(number, 2) + varint(len(packed)) + packed
            else:
                for item in value:
                    raw = scalar_value(typ, item)
                    out += tag(number, 2) + varint(len(raw)) + raw
        else:
            raw = scalar_value(typ, value)
            if typ in VARINT:
                if raw or label == "oneof":
                    out += tag(number, 0) + varint(raw)
            elif raw or label == "oneof":
                out += tag(number, 2) + varint(len(raw)) + raw
    return bytes(out)


def read_varint(data: bytes, i: int):
    n, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise Refused("protobuf: truncated or overlong varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def decode(message: str, data: bytes) -> dict:
    """Decodes `data` as `message`; unknown fields are skipped. Bytes stay bytes."""
    table = {number: (name, typ, label) for name, number, typ, label in fields_of(message)}
    out: dict = {}
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            length, i = read_varint(data, i)
            if i + length > len(data):
                raise Refused("protobuf: truncated field")
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise Refused(f"protobuf: wire type {wire}")
        if number not in table:
            continue
        name, typ, label = table[number]
        if typ in S:
            if wire != 2:
                raise Refused(f"protobuf: {message}.{name} is a message")
            value = decode(typ, value)
        elif typ in VARINT:
            if wire == 2 and label == "repeated":
                items, j = [], 0
                while j < len(value):
                    v, j = read_varint(value, j)
                    items.append(v)
                out.setdefault(name, []).extend(items)
                continue
            if wire != 0:
                raise Refused(f"protobuf: {message}.{name} is a varint")
            if typ == "int64" and value >= 1 << 63:
                value -= 1 << 64
        elif typ == "string":
            try:
                value = value.decode()
            except UnicodeDecodeError:
                raise Refused(f"protobuf: {message}.{name} is not UTF-8") from None
        if label == "repeated":
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


# --------------------------------------------------------------------------------------------
# Identifiers and envelopes (transactions.md, reads.md)

CHAIN_RE = re.compile(r"[a-z0-9-]{1,64}")
CATEGORY_RE = re.compile(r"[a-z0-9_-]{1,32}")


def check_transaction(env: dict) -> bytes:
    """'Checking a transaction', steps 1 to 4; returns the tx id."""
    body, author = unhex(env["body"]), unhex(env["author"])
    if not 1 <= len(body) <= 65536:
        raise Refused(f"body: {len(body)} bytes")
    cosigs = env.get("cosignatures") or []
    if len(cosigs) > 64:
        raise Refused("cosignatures: more than 64")
    verify(author, CTX_TRANSACTION + body, unhex(env["signature"]))
    seen = {author}
    for c in cosigs:
        signer = unhex(c["signer"])
        verify(signer, CTX_TRANSACTION + body, unhex(c["signature"]))
        if signer in seen:
            raise Refused("cosignatures: a signer appears twice")
        seen.add(signer)
    fields = decode("TransactionBody", body)
    if fields.get("version", 0) != 2:
        raise Refused(f"body.version: expected 2, got {fields.get('version', 0)}")
    if fields.get("author", b"") != author:
        raise Refused("body.author: not the envelope's author")
    if not CHAIN_RE.fullmatch(fields.get("chain_id", "")):
        raise Refused("body.chain_id")
    kinds = [k for k, _, _, label in fields_of("TransactionBody") if label == "oneof" and k in fields]
    if len(kinds) != 1:
        raise Refused("body.kind: required")
    return H(TX_ID_DOMAIN, body)


def check_read(env: dict) -> dict:
    """'Checking a signed read', steps 1 to 3 (no clock: freshness is the server's)."""
    body, author = unhex(env["body"]), unhex(env["author"])
    if len(body) > 16384:
        raise Refused("body: too large")
    verify(author, CTX_READ + body, unhex(env["signature"]))
    fields = decode("ReadBody", body)
    if fields.get("version", 0) != 2:
        raise Refused("body.version")
    if fields.get("author", b"") != author:
        raise Refused("body.author: not the envelope's author")
    if len(fields.get("nonce", b"")) != 16:
        raise Refused("body.nonce: expected 16 bytes")
    if not CHAIN_RE.fullmatch(fields.get("chain_id", "")):
        raise Refused("body.chain_id")
    return fields


GRANTS = {1, 2, 3}


def check_entry(entry: bytes) -> dict:
    """A version-2 LedgerEntry (log.md): transaction checks or decision consistency."""
    if len(entry) > 131072:
        raise Refused("entry: too large")
    fields = decode("LedgerEntry", entry)
    if fields.get("version", 0) != 2:
        raise Refused(f"entry.version: expected 2, got {fields.get('version', 0)}")
    if "transaction" in fields:
        tx = fields["transaction"]
        check_transaction({
            "body": tx.get("body", b"").hex(),
            "author": tx.get("author", b"").hex(),
            "signature": tx.get("signature", b"").hex(),
            "cosignatures": [{"signer": c.get("signer", b"").hex(),
                              "signature": c.get("signature", b"").hex()}
                             for c in tx.get("cosignatures", [])],
        })
    elif "decision" in fields:
        d = fields["decision"]
        reason = d.get("reason", 0)
        if reason == 0 or (reason in GRANTS) != d.get("granted", 0):
            raise Refused("decision.granted: contradicts the reason")
        needs_cohort = d.get("mode", 0) == 3 and reason in (1, 21)
        if ("cohort" in d) != needs_cohort:
            raise Refused("decision.cohort")
    else:
        raise Refused("entry.kind: required")
    return fields


# --------------------------------------------------------------------------------------------
# RFC 6962 / 9162 (log.md)

def leaf(data: bytes) -> bytes:
    return H(b"\x00", data)


def node(left: bytes, right: bytes) -> bytes:
    return H(b"\x01", left, right)


def mth(leaf_hashes: list) -> bytes:
    n = len(leaf_hashes)
    if n == 0:
        return H(b"")
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def verify_inclusion(leaf_hash: bytes, index: int, size: int, path: list, root: bytes) -> None:
    if index >= size:
        raise Refused("index out of range")
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    if len(path) != inner + border:
        raise Refused(f"path length: expected {inner + border}, got {len(path)}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Refused("root mismatch")


def verify_consistency(size1, size2, root1, root2, path) -> None:
    if size1 > size2 or size1 == 0:
        raise Refused("sizes")
    if size1 == size2:
        if path or root1 != root2:
            raise Refused("equal sizes need an empty path and equal roots")
        return
    shift = (size1 & -size1).bit_length() - 1
    fork = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = bin((size1 - 1) >> fork).count("1")
    power_of_two = size1 & (size1 - 1) == 0
    expected = fork - shift + border + (0 if power_of_two else 1)
    if len(path) != expected:
        raise Refused(f"path length: expected {expected}, got {len(path)}")
    if power_of_two:
        seed, rest = root1, path
    else:
        seed, rest = path[0], path[1:]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = seed
    for c in rest:
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise Refused("root mismatch")


class Frontier:
    """The compact range of log.md: (width, root) per complete subtree, widest first."""

    def __init__(self, size: int, roots: list, root: bytes):
        if len(roots) != bin(size).count("1"):
            raise Refused(f"frontier: {len(roots)} roots for size {size}")
        widths = [1 << lvl for lvl in range(63, -1, -1) if size >> lvl & 1]
        self.nodes = list(zip(widths, roots))
        self.size = size
        if size and self.root() != root:
            raise Refused("frontier: does not fold to the certified root")

    def push(self, leaf_hash: bytes) -> None:
        w, h = 1, leaf_hash
        while self.nodes and self.nodes[-1][0] == w:
            _, left = self.nodes.pop()
            w, h = 2 * w, node(left, h)
        self.nodes.append((w, h))
        self.size += 1

    def root(self) -> bytes:
        acc = None
        for _, piece in reversed(self.nodes):
            acc = piece if acc is None else node(piece, acc)
        return H(b"") if acc is None else acc


# --------------------------------------------------------------------------------------------
# Headers, validator sets, certificates (blocks.md)

def header_bytes(h: dict) -> bytes:
    chain = h["chain_id"].encode()

    def b(name):
        v = h.get(name, b"")
        return unhex(v) if isinstance(v, str) else v

    for name in ("prev_hash", "log_root", "state_root", "proposer", "next_validators_hash"):
        if len(b(name)) != 32:
            raise Refused(f"header.{name}: expected 32 bytes")
    return (b"custos/header/v1" + u32be(len(chain)) + chain + u64be(h.get("height", 0))
            + i64be(h.get("time_ms", 0)) + b("prev_hash") + u64be(h.get("log_size", 0))
            + b("log_root") + b("state_root") + u32be(h.get("tx_count", 0)) + b("proposer")
            + b("next_validators_hash"))


def valset(validators: list) -> tuple:
    """Sorted (key, power) pairs, its hash bytes and its hash; refuses malformed sets."""
    pairs = sorted((bytes(k), int(p)) for k, p in validators)
    if not 1 <= len(pairs) <= 256:
        raise Refused("validator set: 1 to 256 validators")
    for i, (k, p) in enumerate(pairs):
        check_key(k)
        if p == 0 or (i and pairs[i - 1][0] == k):
            raise Refused("validator set: zero power or duplicate key")
    if sum(p for _, p in pairs) >= 1 << 64:
        raise Refused("validator set: total power overflows")
    data = b"custos/valset/v1" + b"".join(k + u64be(p) for k, p in pairs)
    return pairs, data, H(data)


def commit_bytes(chain_id: str, height: int, rnd: int, header_hash: bytes) -> bytes:
    chain = chain_id.encode()
    return CTX_COMMIT + u32be(len(chain)) + chain + u64be(height) + u32be(rnd) + header_hash


def check_certificate(header: dict, cert: dict, pairs: list) -> bytes:
    """'What a verifier checks'; returns the header hash."""
    hh = H(header_bytes(header))
    if cert.get("height", 0) != header.get("height", 0):
        raise Refused("certificate: height")
    if cert.get("header_hash", b"") != hh:
        raise Refused("certificate: header hash")
    sigs = cert.get("signatures", [])
    if len(sigs) > 256:
        raise Refused("certificate: too many signatures")
    power = dict(pairs)
    message = commit_bytes(header["chain_id"], header.get("height", 0), cert.get("round", 0), hh)
    seen, signed = set(), 0
    for s in sigs:
        k = s.get("validator", b"")
        if k not in power:
            raise Refused("certificate: signer is not a validator")
        if k in seen:
            raise Refused("certificate: signed twice")
        seen.add(k)
        verify(k, message, s.get("signature", b""))
        signed += power[k]
    if 3 * signed <= 2 * sum(power.values()):
        raise Refused("certificate: not more than 2/3 of the voting power")
    return hh


def hexed(obj):
    """A decoded message with its bytes as hex strings (to share code with JSON inputs)."""
    if isinstance(obj, dict):
        return {k: hexed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [hexed(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def header_from_json(h: dict) -> dict:
    return {k: (unhex(v) if k in ("prev_hash", "log_root", "state_root", "proposer",
                                  "next_validators_hash") else v) for k, v in h.items()}


def cert_from_json(c: dict) -> dict:
    return {
        "height": c["height"], "round": c["round"], "header_hash": unhex(c["header_hash"]),
        "signatures": [{"validator": unhex(s["validator"]), "signature": unhex(s["signature"])}
                       for s in c["signatures"]],
    }


# --------------------------------------------------------------------------------------------
# Audit bundle (audit-bundle.md)

def genesis_set(genesis: dict) -> list:
    check_genesis(genesis)
    return valset([(unhex(v["public_key"]), v["power"]) for v in genesis["validators"]])[0]


def check_genesis(g: dict) -> None:
    if not CHAIN_RE.fullmatch(g.get("chain_id", "")):
        raise Refused("genesis: chain_id")
    vals, parties = g.get("validators", []), g.get("parties", [])
    if not vals or len(vals) > 1024 or len(parties) > 1024:
        raise Refused("genesis: validators or parties")
    keys = set()
    for v in vals:
        k = unhex(v["public_key"])
        check_key(k)
        if v["power"] <= 0 or k in keys:
            raise Refused("genesis: validator power or duplicate")
        keys.add(k)
    keys = set()
    for p in parties:
        k = unhex(p["public_key"])
        check_key(k)
        if k in keys or (p.get("member") and p["role"] == "patient"):
            raise Refused("genesis: duplicate party or patient member")
        if len(unhex(p["encryption_key"])) != 32:
            raise Refused("genesis: encryption_key")
        keys.add(k)


def verify_bundle(genesis: dict, data: bytes) -> dict:
    b = decode("AuditBundle", data)
    if b.get("version", 0) != 2:
        raise Refused(f"bundle version {b.get('version', 0)} is not supported")
    if b.get("chain_id", "") != genesis["chain_id"]:
        raise Refused("bundle: chain")
    frm, to = b.get("from_height", 0), b.get("to_height", 0)
    headers = b.get("headers", [])
    if not 1 <= frm <= to or len(headers) != to:
        raise Refused("bundle: range")
    expected = valset(genesis_set(genesis))[2]
    current, prev, prev_size, checked = None, bytes(32), 0, []
    for height, sh in enumerate(headers, start=1):
        h, cert = sh.get("header"), sh.get("certificate")
        if h is None or cert is None:
            raise Refused(f"header {height}: missing header or certificate")
        if h.get("version", 0) != 1 or h.get("height", 0) != height:
            raise Refused(f"header {height}: version or height")
        if not 1 <= len(h.get("chain_id", "")) <= 64:
            raise Refused(f"header {height}: chain_id")
        check_key(h.get("proposer", b""))
        if "validator_set" in sh:
            current = [(v.get("public_key", b""), v.get("voting_power", 0))
                       for v in sh["validator_set"].get("validators", [])]
        if current is None:
            raise Refused(f"header {height}: no validator set")
        pairs, _, set_hash = valset(current)
        if set_hash != expected:
            raise Refused(f"header {height}: signed by a set the previous header did not name")
        if h.get("prev_hash", b"") != prev:
            raise Refused(f"header {height}: does not link")
        if h.get("log_size", 0) < prev_size:
            raise Refused(f"header {height}: the log shrinks")
        if h.get("chain_id", "") != genesis["chain_id"]:
            raise Refused(f"header {height}: chain")
        prev = check_certificate(h, cert, pairs)
        prev_size = h.get("log_size", 0)
        expected = h.get("next_validators_hash", b"")
        checked.append((h, prev))
    if frm == 1:
        size, root = 0, H(b"")
    else:
        before = checked[frm - 2][0]
        size, root = before.get("log_size", 0), before.get("log_root", b"")
    roots = b.get("frontier", [])
    if any(len(r) != 32 for r in roots):
        raise Refused("frontier: a root is not 32 bytes")
    frontier = Frontier(size, roots, root)
    first_index = size
    blocks = b.get("blocks", [])
    if len(blocks) != to - frm + 1:
        raise Refused("bundle: block count")
    entries = decisions = 0
    for block, height in zip(blocks, range(frm, to + 1)):
        if block.get("height", 0) != height:
            raise Refused(f"block {height}: out of place")
        h = checked[height - 1][0]
        for e in block.get("entries", []):
            frontier.push(leaf(e))
        if frontier.size != h.get("log_size", 0):
            raise Refused(f"block {height}: an entry was removed or added")
        if frontier.root() != h.get("log_root", b""):
            raise Refused(f"block {height}: an entry was changed or reordered")
        txs = 0
        for e in block.get("entries", []):
            fields = check_entry(e)
            if fields.get("height", 0) != height:
                raise Refused(f"block {height}: an entry names another block")
            txs += "transaction" in fields
            decisions += "decision" in fields
            entries += 1
        if txs != h.get("tx_count", 0):
            raise Refused(f"block {height}: tx_count")
    return {"entries": entries, "first_index": first_index, "decisions": decisions,
            "tip_hash": checked[-1][1].hex()}


# --------------------------------------------------------------------------------------------
# Queries (queries.md)

def encode_predicate(clauses: list) -> bytes:
    out = bytearray([1])
    for slot in range(8):
        if slot < len(clauses):
            c = clauses[slot]
            index, op, values = c["index"], c["op"], c["values"]
        else:
            index, op, values = 0, 0, []
        if op in (5, 6):
            s = sorted(set(values))
            constants = (s + [s[0]] * 4)[:4]
        else:
            constants = (list(values[:1]) + [0, 0, 0, 0])[:4]
        out += bytes([index, op]) + b"".join(u32be(v) for v in constants)
    return bytes(out)


def decode_predicate(data: bytes) -> list:
    if len(data) != 145 or data[0] != 1:
        raise Refused("predicate: expected 145 bytes starting with version 1")
    clauses = []
    for slot in range(8):
        chunk = data[1 + 18 * slot:1 + 18 * (slot + 1)]
        index, op = chunk[0], chunk[1]
        constants = [int.from_bytes(chunk[2 + 4 * i:6 + 4 * i], "big") for i in range(4)]
        if op > 6:
            raise Refused("predicate: unknown op code")
        if op == 0:
            continue
        if index >= 8:
            raise Refused("predicate: attribute index")
        clauses.append({"index": index, "op": op,
                        "values": constants if op in (5, 6) else constants[:1]})
    if encode_predicate(clauses) != data:
        raise Refused("predicate: not the canonical encoding")
    return clauses


QUERY_TOKEN = re.compile(
    r"\s*(?:(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>[0-9.\-][0-9.]*)"
    r"|'(?P<q1>[^']*)'|\"(?P<q2>[^\"]*)\"|(?P<op>>=|<=|!=|<>|==|=|<|>)|(?P<p>[*()]))")


def lex_query(text: str) -> list:
    toks, i = [], 0
    while i < len(text):
        if text[i] in " \t\r\n\f":
            i += 1
            continue
        m = QUERY_TOKEN.match(text, i)
        if not m or m.end() == i:
            raise Refused(f"query: unexpected character at {i}")
        if m.group("num") is not None:
            try:
                float(m.group("num"))
            except ValueError:
                raise Refused("query: not a number") from None
            toks.append(("num", m.group("num")))
        elif m.group("word") is not None:
            toks.append(("word", m.group("word")))
        elif m.group("q1") is not None or m.group("q2") is not None:
            toks.append(("quoted", m.group("q1") if m.group("q1") is not None else m.group("q2")))
        elif m.group("op") is not None:
            toks.append(("op", m.group("op")))
        else:
            toks.append(("p", m.group("p")))
        i = m.end()
    return toks


def parse_query(text: str) -> None:
    """The EBNF of queries.md; raises Refused."""
    if not text.strip() or len(text.encode()) > 1024:
        raise Refused("query: size")
    toks, pos = lex_query(text), 0

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def keyword(kw):
        nonlocal pos
        if peek()[0] == "word" and peek()[1].lower() == kw:
            pos += 1
            return True
        return False

    def eat(kind, value=None):
        nonlocal pos
        if peek()[0] == kind and (value is None or peek()[1] == value):
            pos += 1
            return True
        return False

    if keyword("count"):
        if eat("p", "("):
            if not (eat("p", "*") and eat("p", ")")):
                raise Refused("query: COUNT(*)")
    elif keyword("sum") or keyword("mean") or keyword("avg"):
        paren = eat("p", "(")
        if not eat("word"):
            raise Refused("query: an attribute name")
        if paren and not eat("p", ")"):
            raise Refused("query: )")
    else:
        raise Refused("query: COUNT, SUM or MEAN")
    clauses = 0
    if keyword("where"):
        while True:
            if not eat("word") or not eat("op"):
                raise Refused("query: a clause")
            if not (eat("num") or eat("word") or eat("quoted")):
                raise Refused("query: a literal")
            clauses += 1
            if not keyword("and"):
                break
    if pos != len(toks):
        raise Refused("query: trailing tokens")
    if clauses > 8:
        raise Refused("query: too many clauses")


def float_text(v: float) -> str:
    """The shortest round-trip decimal of ids.md ('14.0', '1e16', '1e-5')."""
    text = repr(float(v))
    if "e" in text:
        mantissa, exponent = text.split("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        text = f"{mantissa}e{int(exponent)}"
    return text


# --------------------------------------------------------------------------------------------
# The checks, one per kind (vectors.md)

def expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def same(got: bytes, want_hex: str, what: str) -> None:
    if got.hex() != want_hex:
        raise AssertionError(f"{what}: computed {got.hex()}, vector says {want_hex}")


def k_signature(v, doc):
    i, o = v["inputs"], v["outputs"]
    message = i["context"].encode() + unhex(i["payload"])
    same(message, o["message"], "message")
    if "seed" in i:
        same(public_key(unhex(i["seed"])), i["public_key"], "public key")
        same(sign(unhex(i["seed"]), message), i["signature"], "signature")
    verify(unhex(i["public_key"]), message, unhex(i["signature"]))


def k_transaction(v, doc):
    i, o = v["inputs"], v["outputs"]
    body = encode("TransactionBody", i["fields"])
    same(body, o["body"], "body")
    seed = unhex(i["seed"])
    same(public_key(seed), o["author"], "author")
    same(H(TX_ID_DOMAIN, body), o["tx_id"], "tx id")
    env = o["envelope"]
    same(sign(seed, CTX_TRANSACTION + body), env["signature"], "author signature")
    expect(len(i["cosigner_seeds"]) == len(env["cosignatures"]), "co-signature count")
    for s, c in zip(i["cosigner_seeds"], env["cosignatures"]):
        same(public_key(unhex(s)), c["signer"], "co-signer")
        same(sign(unhex(s), CTX_TRANSACTION + body), c["signature"], "co-signature")
    same(encode("SignedTransaction", env), o["envelope_bytes"], "envelope bytes")
    same(check_transaction(env), o["tx_id"], "tx id of the checked envelope")


def k_transaction_envelope(v, doc):
    check_transaction(v["inputs"]["envelope"])


def k_distinct_ids(v, doc):
    a, b = (next(x for x in doc["vectors"] if x["name"] == n) for n in v["inputs"]["vectors"])
    fa, fb = dict(a["inputs"]["fields"]), dict(b["inputs"]["fields"])
    expect(fa.pop("author") != fb.pop("author"), "the two vectors have two authors")
    expect(fa == fb, "the two vectors have the same other fields")
    ids = [H(TX_ID_DOMAIN, encode("TransactionBody", x["inputs"]["fields"])).hex() for x in (a, b)]
    expect(ids == v["outputs"]["tx_ids"], "tx ids")
    if ids[0] == ids[1]:
        raise Refused("two authors produced one id")


def k_signed_read(v, doc):
    i, o = v["inputs"], v["outputs"]
    env = i["envelope"]
    body = unhex(env["body"])
    same(CTX_READ + body, o["message"], "signed message")
    same(encode("SignedRead", env), o["envelope_bytes"], "envelope bytes")
    if v["expect"] == "valid":
        same(encode("ReadBody", i["fields"]), env["body"], "body")
        same(encode("AccessLogQuery", i["query_fields"]), i["fields"]["query"], "query")
    if "seed" in i:
        same(public_key(unhex(i["seed"])), env["author"], "author")
        same(sign(unhex(i["seed"]), CTX_READ + body), env["signature"], "signature")
    check_read(env)


def k_cohort_id(v, doc):
    i, o = v["inputs"], v["outputs"]
    if not CATEGORY_RE.fullmatch(i["category"]):
        raise Refused("category")
    data = b"custos/cohort/v1" + unhex(i["custodian"]) + i["category"].encode()
    same(data, o["bytes"], "preimage")
    same(H(data), o["cohort_id"], "cohort id")


def k_cohort_root(v, doc):
    ids = [unhex(x) for x in v["inputs"]["record_ids"]]
    expect(all(a < b for a, b in zip(ids, ids[1:])), "ids strictly ascending")
    same(mth([leaf(x) for x in ids]), v["outputs"]["root"], "cohort root")
    expect(v["outputs"]["size"] == len(ids), "size")


def k_digest(v, doc):
    i, o = v["inputs"], v["outputs"]
    data = b""
    for part in i["parts"]:
        if "text" in part:
            data += part["text"].encode()
        elif "hex" in part:
            data += unhex(part["hex"])
        else:
            data += H(unhex(part["sha256_of_hex"]))
    if "aggregate" in i:
        value = "none" if i["value"] is None else float_text(i["value"])
        released = f"{i['aggregate']};count={i['count']};value={value}"
        expect(i["parts"][-1]["text"] == released, f"released text {released!r}")
    same(data, o["bytes"], "preimage")
    same(H(data), o["digest"], "digest")


def k_party_id(v, doc):
    same(public_key(unhex(v["inputs"]["seed"])), v["outputs"]["party_id"], "party id")


def k_ledger_entry(v, doc):
    entry = encode("LedgerEntry", v["inputs"]["fields"])
    same(entry, v["outputs"]["entry"], "entry bytes")
    same(leaf(entry), v["outputs"]["leaf_hash"], "leaf hash")
    check_entry(entry)


def k_ledger_entry_bytes(v, doc):
    check_entry(unhex(v["inputs"]["entry"]))


def k_merkle_root(v, doc):
    same(mth([leaf(unhex(x)) for x in v["inputs"]["leaves"]]), v["outputs"]["root"], "root")


def k_inclusion(v, doc):
    i = v["inputs"]
    verify_inclusion(leaf(unhex(i["leaf"])), i["leaf_index"], i["tree_size"],
                     [unhex(p) for p in i["path"]], unhex(i["root"]))


def k_consistency(v, doc):
    i = v["inputs"]
    verify_consistency(i["size1"], i["size2"], unhex(i["root1"]), unhex(i["root2"]),
                       [unhex(p) for p in i["path"]])


def k_frontier(v, doc):
    i, o = v["inputs"], v["outputs"]
    f = Frontier(i["size"], [unhex(r) for r in i["frontier"]], unhex(i["root"]))
    for data in i["appended"]:
        f.push(leaf(unhex(data)))
    expect(f.size == o["size"], "size")
    same(f.root(), o["root"], "root")


def k_header(v, doc):
    data = header_bytes(header_from_json(v["inputs"]["fields"]))
    same(data, v["outputs"]["bytes"], "header bytes")
    same(H(data), v["outputs"]["header_hash"], "header hash")


def k_validator_set(v, doc):
    _, data, digest = valset([(unhex(x["public_key"]), x["power"]) for x in v["inputs"]["validators"]])
    same(data, v["outputs"]["bytes"], "bytes")
    same(digest, v["outputs"]["hash"], "hash")


def k_commit_message(v, doc):
    i, o = v["inputs"], v["outputs"]
    data = commit_bytes(i["chain_id"], i["height"], i["round"], unhex(i["header_hash"]))
    same(data, o["bytes"], "commit bytes")
    seed = unhex(i["seed"])
    same(public_key(seed), o["public_key"], "public key")
    same(sign(seed, data), o["signature"], "signature")
    verify(public_key(seed), data, unhex(o["signature"]))


def k_certificate(v, doc):
    i = v["inputs"]
    header = header_from_json(i["header"])
    same(H(header_bytes(header)), v["outputs"]["header_hash"], "header hash")
    if i["validators"] is None:
        raise Refused("no validator set")
    pairs = valset([(unhex(x["public_key"]), x["power"]) for x in i["validators"]])[0]
    cert = cert_from_json(i["certificate"])
    if "commit_bytes" in v["outputs"]:
        same(commit_bytes(header["chain_id"], header["height"], cert["round"],
                          H(header_bytes(header))), v["outputs"]["commit_bytes"], "commit bytes")
    check_certificate(header, cert, pairs)


def k_state_root(v, doc):
    leaves = []
    for item in v["inputs"]["items"]:
        k, val = unhex(item["key"]), unhex(item["value"])
        leaves.append(leaf(H(u32be(len(k)), k, val)))
    same(mth(leaves), v["outputs"]["root"], "state root")


def k_audit_bundle(v, doc):
    got = verify_bundle(v["inputs"]["genesis"], unhex(v["inputs"]["bundle"]))
    expect(got == v["outputs"], f"verified bundle: computed {got}, vector says {v['outputs']}")


def k_genesis(v, doc):
    g = v["inputs"]["file"]
    pairs = genesis_set(g)
    same(valset(pairs)[2], v["outputs"]["validator_set_hash"], "validator-set hash")


def k_key_file(v, doc):
    f = v["inputs"]["file"]
    if f.get("kind") != "custos-party-key":
        raise Refused(f"kind {f.get('kind')}")
    if f.get("version") != 1:
        raise Refused(f"key file version {f.get('version')} is not supported")
    seed = unhex(f["secret_key"])
    if public_key(seed).hex() != f["public_key"]:
        raise Refused("public_key does not match secret_key")
    enc = nacl.bindings.crypto_scalarmult_base(unhex(f["encryption_secret_key"]))
    if enc.hex() != f["encryption_public_key"]:
        raise Refused("encryption_public_key does not match encryption_secret_key")


def k_predicate(v, doc):
    data = encode_predicate(v["inputs"]["clauses"])
    same(data, v["outputs"]["bytes"], "predicate bytes")
    same(H(data), v["outputs"]["digest"], "predicate digest")
    decode_predicate(data)


def k_predicate_bytes(v, doc):
    decode_predicate(unhex(v["inputs"]["bytes"]))


def k_aggregate_scope(v, doc):
    i, o = v["inputs"], v["outputs"]
    if not CATEGORY_RE.fullmatch(i["category"]) or not 1 <= len(i["text"].encode()) <= 4096:
        raise Refused("scope: category or text")
    check_key(unhex(i["custodian"]))
    data = encode("AggregateScope", i)
    same(data, o["bytes"], "scope bytes")
    expect(len(data) <= 4224, "scope size")
    same(H(b"custos/cohort/v1", unhex(i["custodian"]), i["category"].encode()), o["cohort_id"],
         "cohort id")


def k_aggregate_query(v, doc):
    parse_query(v["inputs"]["text"])


KINDS = {
    "signature": k_signature,
    "transaction": k_transaction,
    "transaction-envelope": k_transaction_envelope,
    "distinct-ids": k_distinct_ids,
    "signed-read": k_signed_read,
    "cohort-id": k_cohort_id,
    "cohort-root": k_cohort_root,
    "digest": k_digest,
    "party-id": k_party_id,
    "ledger-entry": k_ledger_entry,
    "ledger-entry-bytes": k_ledger_entry_bytes,
    "merkle-root": k_merkle_root,
    "inclusion-proof": k_inclusion,
    "consistency-proof": k_consistency,
    "frontier": k_frontier,
    "header": k_header,
    "validator-set": k_validator_set,
    "commit-message": k_commit_message,
    "certificate": k_certificate,
    "state-root": k_state_root,
    "audit-bundle": k_audit_bundle,
    "genesis": k_genesis,
    "key-file": k_key_file,
    "predicate": k_predicate,
    "predicate-bytes": k_predicate_bytes,
    "aggregate-scope": k_aggregate_scope,
    "aggregate-query": k_aggregate_query,
}


def check(v: dict, doc: dict):
    """None when the vector passes, otherwise why it fails."""
    check_fn = KINDS.get(v.get("kind"))
    if check_fn is None:
        return f"unknown kind {v.get('kind')!r}"
    try:
        check_fn(v, doc)
        verdict = "valid"
        reason = None
    except Refused as e:
        verdict, reason = "invalid", str(e)
    except AssertionError as e:
        return str(e)
    except (KeyError, ValueError, TypeError, IndexError, StopIteration) as e:
        return f"malformed vector: {type(e).__name__}: {e}"
    if verdict != v.get("expect"):
        return f"expected {v.get('expect')}, the specification says {verdict}" + (
            f" ({reason})" if reason else "")
    return None


HEX = re.compile(r"(?:[0-9a-f]{2})+")


def mutate(v: dict):
    """A copy of `v` with one bit flipped in its first hex field (outputs first), or in the
    first character of its first text field; None if it has neither."""
    m = copy.deepcopy(v)

    def walk(obj, want_hex):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, value in items:
            if isinstance(value, str) and (HEX.fullmatch(value) if want_hex else value):
                digit = int(value[-1], 16) ^ 1 if want_hex else None
                obj[key] = (value[:-1] + format(digit, "x")) if want_hex else (
                    chr(ord(value[0]) ^ 1) + value[1:])
                return True
            if isinstance(value, (dict, list)) and walk(value, want_hex):
                return True
        return False

    for want_hex in (True, False):
        for part in ("outputs", "inputs"):
            if walk(m[part], want_hex):
                return m
    return None


def main(argv: list) -> int:
    self_test = "--self-test" in argv
    paths = [a for a in argv if not a.startswith("--")]
    path = paths[0] if paths else "docs/spec/vectors.json"
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("format") != "custos-conformance-vectors" or doc.get("version") != 2:
        print(f"{path}: not a version-2 custos conformance vector file", file=sys.stderr)
        return 2
    vectors = doc["vectors"]
    if not self_test:
        failed = 0
        for v in vectors:
            why = check(v, doc)
            if why is not None:
                failed += 1
                print(f"FAIL {v.get('name')}: {why}")
        for party in doc.get("parties", []):
            seed = H(b"custos/conformance/" + party["name"].encode())
            if seed.hex() != party["seed"] or public_key(seed).hex() != party["public_key"]:
                failed += 1
                print(f"FAIL party {party['name']}: seed or public key")
        if doc.get("count") != len(vectors):
            failed += 1
            print(f"FAIL count: the file says {doc.get('count')}, it holds {len(vectors)}")
        print(f"{len(vectors) - failed} passed, {failed} failed")
        return 0 if failed == 0 else 1
    # Self-test: every valid vector with one bit flipped must fail. (A negative vector is
    # refused either way, so flipping one of its bits proves nothing and is not tried.)
    survived = 0
    mutants = 0
    for v in vectors:
        if v["expect"] != "valid":
            continue
        m = mutate(v)
        if m is None:
            continue
        mutants += 1
        if check(m, doc) is None:
            survived += 1
            print(f"SURVIVED {v['name']}: a one-bit change went unnoticed")
    print(f"{mutants - survived} mutants failed as they must, {survived} survived")
    return 0 if survived == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
