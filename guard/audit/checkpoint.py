"""Signed checkpoints of the chain heads, kept outside the database so that truncating a chain's tail shows.

A checkpoint is JSON: ``{"version", "created_at", "heads": {chain_id: {seq, row_hash, decision_id}}, "public_key",
"signature"}``, signed with Ed25519 over the canonical JSON of everything but the signature. The private key lives
in a file outside the database (``GUARD_AUDIT_SIGNING_KEY``, default ``$GUARD_HOME/audit-signing.key``, mode 0600).
The embedded public key proves the file is intact; whoever checks it should compare that key with the one printed
when the checkpoint was made (or with the local signing key, which ``guard audit verify`` does when it has it).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from guard.audit.admin_events import record_admin_event
from guard.audit.bundle_verify import ROTATE_ACTION, rotation_statement
from guard.audit.chain import canonical
from guard.audit.models import DecisionRow
from guard.errors import GuardError
from guard.settings import Settings

__all__ = [
    "Checkpoint",
    "Head",
    "InvalidCheckpoint",
    "chain_heads",
    "load_checkpoint",
    "load_or_create_signing_key",
    "make_checkpoint",
    "public_key_hex",
    "rotate_signing_key",
    "signing_key_path",
]

_VERSION = 1


class InvalidCheckpoint(GuardError, ValueError):
    """The checkpoint file is unreadable or its signature does not match."""


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    row_hash: str
    decision_id: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    created_at: datetime
    heads: dict[str, Head]
    public_key: str
    """Hex of the raw 32-byte Ed25519 public key that signed it."""


def signing_key_path(settings: Settings) -> Path:
    """``GUARD_AUDIT_SIGNING_KEY``, else ``$GUARD_HOME/audit-signing.key``."""
    return settings.keys.audit_signing_key or settings.home / "audit-signing.key"


def _write_key(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The PEM key at ``path``, or a new one written there with mode 0600."""
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidCheckpoint(f"{path} does not hold an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    _write_key(path, key)
    return key


async def rotate_signing_key(engine: AsyncEngine, path: Path, *, actor: str) -> tuple[str, str]:
    """Replace the signing key at ``path`` with a new one; ``(old, new)`` public keys (hex).

    The hand-over is an ``audit.signing_key_rotate`` admin event whose details carry both public keys and the
    outgoing key's signature over :func:`~guard.audit.bundle_verify.rotation_statement`, so a verifier that trusts
    only the first key follows the chain of keys. The new key is written beside the old one first, the event is
    committed, then the new key takes the old one's place (the old one is kept as ``<name>.retired-<old key>``)."""
    old = load_or_create_signing_key(path)
    new = Ed25519PrivateKey.generate()
    old_hex, new_hex = public_key_hex(old), public_key_hex(new)
    staged = path.with_name(f"{path.name}.new-{new_hex[:16]}")
    _write_key(staged, new)
    signature = base64.b64encode(old.sign(rotation_statement(old_hex, new_hex))).decode("ascii")
    async with engine.begin() as connection:
        await record_admin_event(
            connection,
            actor=actor,
            action=ROTATE_ACTION,
            subject=new_hex[:16],
            details={"old_public_key": old_hex, "new_public_key": new_hex, "signature": signature},
        )
    os.replace(path, path.with_name(f"{path.name}.retired-{old_hex[:16]}"))
    os.replace(staged, path)
    return old_hex, new_hex


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


async def chain_heads(engine: AsyncEngine) -> dict[str, Head]:
    """The last row of every chain."""
    async with engine.connect() as connection:
        last = (
            select(DecisionRow.chain_id, func.max(DecisionRow.seq).label("seq"))
            .where(DecisionRow.seq.is_not(None))
            .group_by(DecisionRow.chain_id)
            .subquery()
        )
        rows = await connection.execute(
            select(DecisionRow.chain_id, DecisionRow.seq, DecisionRow.row_hash, DecisionRow.decision_id).join(
                last, (DecisionRow.chain_id == last.c.chain_id) & (DecisionRow.seq == last.c.seq)
            )
        )
        return {r.chain_id: Head(int(r.seq), r.row_hash, r.decision_id) for r in rows}


def _body(created_at: datetime, heads: dict[str, Head], public_key: str) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "created_at": created_at.astimezone(UTC).isoformat(),
        "heads": {
            chain_id: {"seq": h.seq, "row_hash": h.row_hash, "decision_id": h.decision_id}
            for chain_id, h in sorted(heads.items())
        },
        "public_key": public_key,
    }


def make_checkpoint(heads: dict[str, Head], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed checkpoint document (write it as JSON to a place the database's writers cannot reach)."""
    body = _body(datetime.now(UTC), heads, public_key_hex(key))
    return {**body, "signature": base64.b64encode(key.sign(canonical(body))).decode("ascii")}


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint file; :class:`InvalidCheckpoint` if it is malformed or its signature fails."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        heads = {
            chain_id: Head(int(h["seq"]), str(h["row_hash"]), str(h["decision_id"]))
            for chain_id, h in document["heads"].items()
        }
        created_at = datetime.fromisoformat(document["created_at"])
        public_key = str(document["public_key"])
        signature = base64.b64decode(document["signature"], validate=True)
        verifier = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidCheckpoint(f"unreadable checkpoint ({type(exc).__name__})") from None
    try:
        verifier.verify(signature, canonical(_body(created_at, heads, public_key)))
    except InvalidSignature:
        raise InvalidCheckpoint("the checkpoint's signature does not match its content") from None
    return Checkpoint(created_at=created_at, heads=heads, public_key=public_key)
