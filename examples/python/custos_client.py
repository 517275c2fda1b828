#!/usr/bin/env python3
"""A Custos client written from proto/ and docs/spec/ alone: no Custos code is imported.

It plays a patient, the patient's hospital and an insurer against a running consortium:

1. the patient (a fresh Ed25519 key) registers itself;
2. the hospital registers a record of the patient's;
3. the patient grants the insurer a consent for payment (HPAYMT), raw access;
4. the insurer requests access and reads the decision;
5. the insurer fetches that decision from the audit API with a signed read;
6. the client verifies, per the spec, the decision's RFC 6962 inclusion proof under the header of
   its block, that header's hash, and its commit certificate against the validator set named in
   the genesis file, trusting no node.

Usage (stubs are generated from proto/ at run time with grpcio-tools):

    python3 custos_client.py --endpoint 127.0.0.1:7420 --devnet-dir DIR

where DIR holds `genesis.json`, `hospital.key` and `insurer.key` as `custos devnet` writes them.
The last line printed is `verified: ...` and the exit status is 0 only if every check passed.
"""

import argparse
import hashlib
import importlib
import json
import os
import secrets
import struct
import sys
import tempfile
import time

import grpc
import nacl.exceptions
import nacl.public
import nacl.signing

# Signing contexts and hash domains (docs/spec/signatures.md).
TX_CONTEXT = b"custos/transaction/v2"
READ_CONTEXT = b"custos/signed-read/v2"
TX_ID_DOMAIN = b"custos/tx-id/v2"
COMMIT_CONTEXT = b"custos/commit/v1"
HEADER_DOMAIN = b"custos/header/v1"
VALSET_DOMAIN = b"custos/valset/v1"
FORMAT_VERSION = 2
QUERY_ACCESS_LOG = "/custos.audit.v1.AuditService/QueryAccessLog"


class VerificationError(Exception):
    """A check of the spec failed: the answer cannot be trusted."""


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def generate_stubs(proto_root):
    """Compiles every .proto under proto_root into a temporary folder and puts it on sys.path."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="custos-stubs-")
    files = []
    for folder, _, names in os.walk(proto_root):
        for name in names:
            if name.endswith(".proto"):
                files.append(os.path.relpath(os.path.join(folder, name), proto_root))
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + sorted(files)
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {proto_root} (exit {code})")
    sys.path.insert(0, out)


def load(module):
    return importlib.import_module(module)


class Party:
    """An Ed25519 identity and an X25519 encryption key."""

    def __init__(self, signing_key, encryption_key):
        self.signing = signing_key
        self.encryption = encryption_key
        self.public = bytes(signing_key.verify_key)

    @classmethod
    def generate(cls):
        return cls(nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate())

    @classmethod
    def from_key_file(cls, path):
        """A `custos-party-key` file, version 1 (docs/spec/files.md)."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("kind") != "custos-party-key" or data.get("version") != 1:
            raise SystemExit(f"{path}: not a version 1 custos-party-key file")
        party = cls(
            nacl.signing.SigningKey(bytes.fromhex(data["secret_key"])),
            nacl.public.PrivateKey(bytes.fromhex(data["encryption_secret_key"])),
        )
        if party.public.hex() != data["public_key"]:
            raise SystemExit(f"{path}: public_key does not match secret_key")
        return party

    def sign(self, context, payload):
        return self.signing.sign(context + payload).signature


class Consortium:
    def __init__(self, endpoint, chain_id):
        self.chain_id = chain_id
        channel = grpc.insecure_channel(endpoint)
        self.ledger_pb = load("custos.ledger.v1.ledger_pb2")
        self.tx_pb = load("custos.ledger.v1.transaction_pb2")
        self.envelope_pb = load("custos.ledger.v1.envelope_pb2")
        self.consent_pb = load("custos.consent.v1.consent_pb2")
        self.access_pb = load("custos.access.v1.access_pb2")
        self.audit_pb = load("custos.audit.v1.audit_pb2")
        self.ledger = load("custos.ledger.v1.ledger_pb2_grpc").LedgerServiceStub(channel)
        self.access = load("custos.access.v1.access_pb2_grpc").AccessServiceStub(channel)
        self.audit = load("custos.audit.v1.audit_pb2_grpc").AuditServiceStub(channel)

    def signed_transaction(self, author, **kind):
        """A transaction body (version 2, naming its author) at the author's next nonce, signed."""
        nonce = self.ledger.GetNonce(self.ledger_pb.GetNonceRequest(author=author.public)).next_nonce
        body = self.tx_pb.TransactionBody(
            version=FORMAT_VERSION,
            chain_id=self.chain_id,
            nonce=nonce,
            author=author.public,
            **kind,
        ).SerializeToString()
        tx = self.envelope_pb.SignedTransaction(
            body=body, author=author.public, signature=author.sign(TX_CONTEXT, body)
        )
        return tx, sha256(TX_ID_DOMAIN, body)

    def submit(self, author, what, **kind):
        tx, tx_id = self.signed_transaction(author, **kind)
        answer = self.ledger.Submit(self.ledger_pb.SubmitRequest(transaction=tx, wait=True))
        if answer.status != self.ledger_pb.TX_STATUS_FINALIZED:
            raise SystemExit(f"{what}: not finalized ({answer.reason})")
        if answer.tx_id != tx_id:
            raise VerificationError(f"{what}: the node named tx {answer.tx_id.hex()}, the spec gives {tx_id.hex()}")
        print(f"{what}: finalized at height {answer.height}, tx {tx_id.hex()[:16]}")
        return tx_id

    def signed_read(self, author, method, query):
        body = self.envelope_pb.ReadBody(
            version=FORMAT_VERSION,
            chain_id=self.chain_id,
            method=method,
            issued_at_ms=int(time.time() * 1000),
            query=query.SerializeToString(),
            nonce=secrets.token_bytes(16),
            author=author.public,
        ).SerializeToString()
        return self.envelope_pb.SignedRead(
            body=body, author=author.public, signature=author.sign(READ_CONTEXT, body)
        )


# --- Verification, per docs/spec/ -----------------------------------------------------------


def header_hash(h):
    """SHA-256 of the canonical header encoding (docs/spec/blocks.md), not of the protobuf."""
    if h.version != 1:
        raise VerificationError(f"header version {h.version}")
    chain = h.chain_id.encode()
    for name in ("prev_hash", "log_root", "state_root", "proposer", "next_validators_hash"):
        if len(getattr(h, name)) != 32:
            raise VerificationError(f"header.{name} is not 32 bytes")
    return sha256(
        HEADER_DOMAIN,
        struct.pack(">I", len(chain)),
        chain,
        struct.pack(">Qq", h.height, h.time_ms),
        h.prev_hash,
        struct.pack(">Q", h.log_size),
        h.log_root,
        h.state_root,
        struct.pack(">I", h.tx_count),
        h.proposer,
        h.next_validators_hash,
    )


def validator_set_hash(validators):
    """`custos/valset/v1` then each (key, big-endian u64 power), in key order."""
    return sha256(VALSET_DOMAIN, *[key + struct.pack(">Q", power) for key, power in sorted(validators)])


def commit_message(chain_id, height, round_, header_hash_):
    chain = chain_id.encode()
    return COMMIT_CONTEXT + struct.pack(">I", len(chain)) + chain + struct.pack(">QI", height, round_) + header_hash_


def verify_certificate(signed, genesis_chain, trusted):
    """The header's certificate carries signatures of more than 2/3 of the trusted set's power."""
    header, cert = signed.header, signed.certificate
    if header.chain_id != genesis_chain:
        raise VerificationError(f"header is for chain {header.chain_id}")
    served = [(v.public_key, v.voting_power) for v in signed.validator_set.validators]
    if validator_set_hash(served) != validator_set_hash(trusted):
        raise VerificationError("the served validator set is not the genesis set")
    digest = header_hash(header)
    if cert.height != header.height or cert.header_hash != digest:
        raise VerificationError("the certificate is for another header")
    power = dict(trusted)
    total = sum(power.values())
    message = commit_message(header.chain_id, header.height, cert.round, digest)
    seen, signed_power = set(), 0
    for s in cert.signatures:
        key = bytes(s.validator)
        if key not in power:
            raise VerificationError(f"signer {key.hex()[:8]} is not a validator")
        if key in seen:
            raise VerificationError(f"{key.hex()[:8]} signed twice")
        seen.add(key)
        try:
            nacl.signing.VerifyKey(key).verify(message, bytes(s.signature))
        except nacl.exceptions.BadSignatureError as e:
            raise VerificationError(f"signature of {key.hex()[:8]} does not verify") from e
        signed_power += power[key]
    if 3 * signed_power <= 2 * total:
        raise VerificationError(f"signers hold {signed_power} of {total} voting power")
    return len(seen), len(trusted)


def leaf_hash(entry):
    return sha256(b"\x00", entry)


def node_hash(left, right):
    return sha256(b"\x01", left, right)


def root_from_inclusion(index, size, leaf, path):
    """RFC 6962 / RFC 9162 section 2.1.3.2: the root an audit path implies."""
    if index >= size:
        raise VerificationError("leaf index beyond tree size")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion path too short")
    return r


def verify_proven(c, proven, genesis_chain, trusted):
    header = proven.header.header
    proof = proven.proof
    if proof.tree_size != header.log_size or proof.leaf_index != proven.index:
        raise VerificationError("the proof is not for this entry under this header")
    root = root_from_inclusion(proof.leaf_index, proof.tree_size, leaf_hash(proven.entry), list(proof.path))
    if root != header.log_root:
        raise VerificationError("the inclusion proof does not reach the header's log root")
    return verify_certificate(proven.header, genesis_chain, trusted)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="host:port of a node's gRPC")
    parser.add_argument("--devnet-dir", required=True, help="folder with genesis.json and key files")
    parser.add_argument("--proto", default=os.path.join(os.path.dirname(__file__), "..", "..", "proto"))
    args = parser.parse_args()
    generate_stubs(os.path.abspath(args.proto))
    with open(os.path.join(args.devnet_dir, "genesis.json"), encoding="utf-8") as f:
        genesis = json.load(f)
    trusted = [(bytes.fromhex(v["public_key"]), v["power"]) for v in genesis["validators"]]
    hospital = Party.from_key_file(os.path.join(args.devnet_dir, "hospital.key"))
    insurer = Party.from_key_file(os.path.join(args.devnet_dir, "insurer.key"))
    patient = Party.generate()
    c = Consortium(args.endpoint, genesis["chain_id"])
    cp, ap, lp = c.consent_pb, c.access_pb, c.ledger_pb

    c.submit(
        patient,
        "patient registered",
        register_party=cp.RegisterParty(
            party=patient.public,
            role=cp.ROLE_PATIENT,
            encryption_key=bytes(patient.encryption.public_key),
        ),
    )
    record_id = secrets.token_bytes(32)
    c.submit(
        hospital,
        "record registered",
        register_record=cp.RegisterRecord(
            record_id=record_id,
            owner=patient.public,
            category="lab",
            ciphertext_digest=secrets.token_bytes(32),
        ),
    )
    c.submit(
        patient,
        "consent granted",
        grant_consent=cp.GrantConsent(
            consent=cp.Consent(
                patient=patient.public,
                grantee=insurer.public,
                scope=cp.Scope(all_records=True),
                purposes=["HPAYMT"],
                modes=[cp.ACCESS_MODE_RAW],
            )
        ),
    )
    tx, request_id = c.signed_transaction(
        insurer,
        request_access=ap.RequestAccess(record_id=record_id, purpose="HPAYMT", mode=cp.ACCESS_MODE_RAW),
    )
    answer = c.access.RequestAccess(tx)
    decision = answer.decision
    if decision.request_id != request_id:
        raise VerificationError("the decision is for another request id")
    if decision.requester != insurer.public:
        raise VerificationError("the decision names another requester")
    print(f"decision: granted={decision.granted} reason={ap.DecisionReason.Name(decision.reason)}")

    query = c.audit_pb.AccessLogQuery(requester=insurer.public, record_id=record_id)
    page = c.audit.QueryAccessLog(c.signed_read(insurer, QUERY_ACCESS_LOG, query))
    found = [e for e in page.entries if e.decision.request_id == request_id]
    if len(found) != 1:
        raise VerificationError(f"the audit API returned {len(found)} entries for the request")
    entry = found[0]
    logged = c.tx_pb.LedgerEntry.FromString(entry.proven.entry)
    if logged.version != FORMAT_VERSION or logged.WhichOneof("kind") != "decision":
        raise VerificationError("the proven entry is not a version 2 decision")
    if logged.decision != entry.decision or logged.decision != decision:
        raise VerificationError("the proven entry is not the decision served")
    signers, validators = verify_proven(c, entry.proven, genesis["chain_id"], trusted)
    header = entry.proven.header.header
    print(
        f"verified: decision {request_id.hex()[:16]} granted={decision.granted} at height {header.height}, "
        f"log index {entry.proven.index} of {header.log_size}, certified by {signers} of {validators} validators"
    )


if __name__ == "__main__":
    try:
        main()
    except VerificationError as e:
        print(f"VERIFICATION FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except grpc.RpcError as e:
        print(f"the node refused: {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(2)
