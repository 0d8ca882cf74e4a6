"""The audit log: tables, the committing writer, reviewer queries and migrations."""

from __future__ import annotations

from guard.audit.db import create_engine, ping
from guard.audit.queries import AuditFilters, InvalidCursor, get_decision, list_decisions
from guard.audit.record import AuditRecord
from guard.audit.subjects import SubjectHasher, load_keyring, load_or_create_key
from guard.audit.writer import AuditUnavailable, AuditWriter

__all__ = [
    "AuditFilters",
    "AuditRecord",
    "AuditUnavailable",
    "AuditWriter",
    "InvalidCursor",
    "SubjectHasher",
    "create_engine",
    "get_decision",
    "list_decisions",
    "load_keyring",
    "load_or_create_key",
    "ping",
]
