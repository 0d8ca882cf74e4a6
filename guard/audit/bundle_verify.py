"""Check an audit bundle (``guard audit export --bundle DIR``) with no database: one file, the standard library and
``cryptography`` only, so an auditor can run it as a script::

    python bundle_verify.py DIR --public-key HEX

``HEX`` is the first audit signing key's public key (32 bytes, hex), obtained out of band: never from the bundle.

It is also where the canonical hash forms live (:mod:`guard.audit.chain` re-exports them), so the gateway's writer,
its verifier and this offline verifier cannot drift apart.

What is checked, each problem naming the record (chain, seq, decision id) or admin event it is about:

1. The key chain: starting from the trusted key, every ``audit.signing_key_rotate`` admin event must carry a
   statement signed by the outgoing key naming the incoming one; the key in force at the end must have signed the
   manifest (a key outside that chain, or a retired one, is refused).
2. The manifest's Ed25519 signature over its canonical JSON (everything but ``signature``).
3. The admin events: ``row_hash = sha256(prev_hash || JSON of the event)`` from the genesis hash, count and head as
   the manifest says.
4. Every record: its chain is in the manifest; ``seq`` follows on (from the manifest's first seq); ``prev_hash``
   links to the previous record (the first to the manifest's ``first_prev_hash``); the header hashes to its
   ``row_hash``; the content hashes to its ``content_digest`` or, for an erased record, the whole record hashes to
   the digest the manifest lists for it. Each chain must end at the manifest's head with its row count.
5. The files' digests.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "BUNDLE_FORMAT",
    "CONTENT_FIELDS",
    "EVENTS_FILE",
    "GENESIS_HASH",
    "HEADER_FIELDS",
    "MANIFEST_FILE",
    "OPTIONAL_CONTENT_FIELDS",
    "RECORDS_FILE",
    "ROTATE_ACTION",
    "BundleReport",
    "canonical",
    "content_digest",
    "event_hash",
    "header_hash",
    "main",
    "record_digest",
    "rotation_statement",
    "verify_bundle",
]

BUNDLE_FORMAT = "guard-audit-bundle/1"
ROTATE_ACTION = "audit.signing_key_rotate"
RECORDS_FILE = "records.jsonl"
EVENTS_FILE = "admin_events.jsonl"
MANIFEST_FILE = "manifest.json"
GENESIS_HASH = "0" * 64

HEADER_FIELDS = (
    "chain_id",
    "seq",
    "decision_id",
    "created_at",
    "route",
    "kind",
    "parent_id",
    "outcome",
    "http_status",
    "decision",
    "key_id",
    "tenant",
    "policy_name",
    "policy_version",
    "policy_sha256",
    "content_digest",
)
CONTENT_FIELDS = (
    "input_redacted",
    "output_redacted",
    "findings",
    "scores",
    "latency_ms",
    "subject_hmacs",
    "prompt_hmac",
    "shadow",
    "tokens_in",
    "tokens_out",
    "coverage",
    "engine",
    "model",
    "model_revision",
)
OPTIONAL_CONTENT_FIELDS = ("client_ref",)
"""Content fields added after rows were first sealed: in the digest only when set, so older rows still verify."""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _numbers(value: Any) -> Any:
    """Integral floats as ints: JSONB may hand ``5.0`` back as ``5`` and ``1e+16`` as ``10000000000000000``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    return value


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, integral floats as ints; datetimes as ISO 8601 UTC. NaN is refused."""
    return json.dumps(
        _numbers(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=lambda v: _iso(v) if isinstance(v, datetime) else str(v),
    ).encode("utf-8")


def content_digest(row: Mapping[str, Any]) -> str:
    content = {name: row.get(name) for name in CONTENT_FIELDS}
    content.update({name: row[name] for name in OPTIONAL_CONTENT_FIELDS if row.get(name) is not None})
    return hashlib.sha256(canonical(content)).hexdigest()


def header_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    header = {name: row.get(name) for name in HEADER_FIELDS}
    created_at = row["created_at"]
    header["created_at"] = _iso(datetime.fromisoformat(created_at) if isinstance(created_at, str) else created_at)
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(header)).hexdigest()


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """``sha256(prev_hash || JSON of content)``: an admin event's row hash (sorted keys, no spaces, ``str()`` for
    anything JSON has no form for)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(prev_hash.encode("ascii") + text.encode("utf-8")).hexdigest()


def record_digest(record: Mapping[str, Any]) -> str:
    """sha256 of a whole exported record: what the manifest lists for an erased record (its content digest no
    longer matches its blanked content)."""
    return hashlib.sha256(canonical(dict(record))).hexdigest()


def rotation_statement(old_public_key: str, new_public_key: str) -> bytes:
    """What the outgoing key signs when it hands over to the incoming one."""
    return canonical(
        {
            "purpose": "guard audit signing key rotation",
            "old_public_key": old_public_key,
            "new_public_key": new_public_key,
        }
    )


@dataclass(slots=True)
class BundleReport:
    records: int = 0
    admin_events: int = 0
    key_chain: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _public_key(hex_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


def _signed_by(hex_key: str, signature_b64: Any, message: bytes) -> bool:
    try:
        _public_key(hex_key).verify(base64.b64decode(str(signature_b64), validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name(record: Mapping[str, Any]) -> str:
    return f"record {record.get('decision_id')} (chain {record.get('chain_id')}, seq {record.get('seq')})"


def _check_events(events: list[dict[str, Any]], trusted_key: str, report: BundleReport) -> str:
    """Walk the admin-events chain and the key chain in it; the key in force at the end."""
    expected = GENESIS_HASH
    key = trusted_key
    report.key_chain = [key]
    for event in events:
        name = f"admin event {event.get('id')} ({event.get('action')})"
        content = {k: event.get(k) for k in ("created_at", "actor", "action", "subject", "details")}
        if event.get("prev_hash") != expected:
            report.problems.append(f"{name}: its prev_hash is not the previous event's hash (deleted or reordered)")
        elif event_hash(str(event["prev_hash"]), content) != event.get("row_hash"):
            report.problems.append(f"{name}: its content does not match its hash (edited)")
        expected = str(event.get("row_hash"))
        if event.get("action") != ROTATE_ACTION:
            continue
        details = event.get("details") or {}
        old, new = str(details.get("old_public_key")), str(details.get("new_public_key"))
        if old != key or not _signed_by(key, details.get("signature"), rotation_statement(old, new)):
            report.problems.append(f"{name}: the rotation is not signed by the key in force ({key[:16]}…)")
            continue
        key = new
        report.key_chain.append(key)
    return key


def _record_problem(record: Mapping[str, Any], seq: int, prev: str, erased: Mapping[str, str]) -> str | None:
    """What is wrong with ``record`` at position ``seq`` after ``prev``, or None."""
    got = record.get("seq")
    if not isinstance(got, int) or got != seq:
        if isinstance(got, int) and got > seq:
            missing = f"seq {seq}" if got == seq + 1 else f"seq {seq}-{got - 1}"
            return f"{missing} missing before it (deleted)"
        return f"seq out of order (expected {seq}: reordered or added)"
    if record.get("prev_hash") != prev:
        return "prev_hash does not link to the previous record (moved, replaced or added)"
    if header_hash(prev, record) != record.get("row_hash"):
        return "header does not match its row hash (edited)"
    return _content_problem(record, erased)


def _content_problem(record: Mapping[str, Any], erased: Mapping[str, str]) -> str | None:
    if record.get("erased_at") is None:
        return (
            None
            if content_digest(record) == record.get("content_digest")
            else "content does not match its digest (edited)"
        )
    if erased.get(str(record.get("decision_id"))) != record_digest(record):
        return "erased record differs from the one the manifest lists (edited, or not erased)"
    return None


def _check_records(records: list[dict[str, Any]], manifest: dict[str, Any], report: BundleReport) -> None:
    chains: dict[str, dict[str, Any]] = manifest.get("chains") or {}
    erased: dict[str, str] = manifest.get("erased") or {}
    state: dict[str, tuple[int, str, int]] = {}  # chain -> (next seq, expected prev_hash, rows seen)
    for record in records:
        chain_id = str(record.get("chain_id"))
        name = _name(record)
        if chain_id not in chains:
            report.problems.append(f"{name}: its chain is not in the manifest (added)")
            continue
        seq, prev, seen = state.get(
            chain_id, (int(chains[chain_id]["first_seq"]), str(chains[chain_id]["first_prev_hash"]), 0)
        )
        got = record.get("seq")
        problem = _record_problem(record, seq, prev, erased)
        if problem is None and isinstance(got, int) and got > chains[chain_id]["last_seq"]:
            problem = f"after the manifest's head seq {chains[chain_id]['last_seq']} (added)"
        if problem:
            report.problems.append(f"{name}: {problem}")
        state[chain_id] = ((got if isinstance(got, int) else seq) + 1, str(record.get("row_hash")), seen + 1)
    for chain_id, expected in sorted(chains.items()):
        next_seq, head_hash, seen = state.get(chain_id, (int(expected["first_seq"]), "", 0))
        head = f"record {expected.get('last_decision_id')} (chain {chain_id}, seq {expected.get('last_seq')})"
        if next_seq - 1 != expected["last_seq"] or head_hash != expected["last_row_hash"]:
            report.problems.append(
                f"{head}: the chain's last record is not the manifest's head (deleted, added or truncated)"
            )
        elif seen != expected["rows"]:
            report.problems.append(f"chain {chain_id}: {seen} records, the manifest says {expected['rows']}")


def verify_bundle(directory: Path, trusted_key: str) -> BundleReport:
    """Check a bundle against the first signing key's public key (hex); :attr:`BundleReport.problems` names each."""
    report = BundleReport()
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        events = _lines(directory / EVENTS_FILE)
        records = _lines(directory / RECORDS_FILE)
        _public_key(trusted_key)
    except (OSError, ValueError) as exc:
        report.problems.append(f"unreadable bundle or key: {exc}")
        return report
    report.records, report.admin_events = len(records), len(events)
    if manifest.get("format") != BUNDLE_FORMAT:
        report.problems.append(f"manifest: unknown format {manifest.get('format')!r}")
        return report
    body = {k: v for k, v in manifest.items() if k != "signature"}
    signer = str(manifest.get("public_key"))
    key_in_force = _check_events(events, trusted_key, report)
    if signer != key_in_force:
        where = "a retired key of" if signer in report.key_chain else "a key not in"
        report.problems.append(f"manifest: signed by {signer[:16]}…, {where} the signed key chain")
    elif not _signed_by(signer, manifest.get("signature"), canonical(body)):
        report.problems.append("manifest: its signature does not match its content (altered)")
    admin = manifest.get("admin_events") or {}
    head = events[-1] if events else {}
    if admin.get("count") != len(events) or admin.get("head_hash") != head.get("row_hash", GENESIS_HASH):
        report.problems.append(
            f"admin event {head.get('id')}: the events end elsewhere than the manifest's head (deleted or added)"
        )
    _check_records(records, manifest, report)
    for name, expected in (manifest.get("files") or {}).items():
        if _sha256(directory / name) != expected:
            report.problems.append(f"{name}: its sha256 differs from the manifest's")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a guard audit bundle offline.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--public-key", required=True, help="the first signing key's public key (hex), out of band")
    args = parser.parse_args(argv)
    report = verify_bundle(args.directory, args.public_key.strip())
    print(f"{report.records} records, {report.admin_events} admin events, {len(report.key_chain)} keys in the chain")
    for problem in report.problems:
        print(f"BROKEN {problem}")
    print("bundle verified" if report.ok else "bundle verification FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
