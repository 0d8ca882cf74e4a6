"""Logging setup: one JSON object per line (production) or plain text (dev), with the request and decision ids.

The ids travel in context variables: the request-id middleware sets one, the pipeline the other when it makes a
decision id, and a filter copies both onto every record logged in that context. Messages never carry request
text (the code that logs is written that way); this module only shapes the lines.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from typing import Any

__all__ = [
    "LOG_FORMATS",
    "ContextFilter",
    "configure_logging",
    "decision_id_var",
    "json_formatter",
    "logging_config",
    "request_id_var",
]

LOG_FORMATS = ("json", "text")

request_id_var: ContextVar[str | None] = ContextVar("guard_request_id", default=None)
decision_id_var: ContextVar[str | None] = ContextVar("guard_decision_id", default=None)

_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
_RENAME = {"asctime": "time", "levelname": "level", "name": "logger"}


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``decision_id`` (``None`` when unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.decision_id = decision_id_var.get()
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message, request_id, decision_id (and any ``extra``)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    # uvicorn adds a copy of some messages with ANSI colour codes: not for machines.
    reserved = [*RESERVED_ATTRS, "color_message"]
    return JsonFormatter(_JSON_FIELDS, rename_fields=_RENAME, datefmt="%Y-%m-%dT%H:%M:%S%z", reserved_attrs=reserved)


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` for guard and uvicorn's loggers (access lines too) in ``json`` or ``text``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: use json or text")
    if log_format == "json":
        formatter: dict[str, Any] = {"()": json_formatter}
    else:
        formatter = {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "guard", "filters": ["context"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"guard": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        # uvicorn's loggers get the same handler instead of their own colourised ones.
        "loggers": {
            name: {"handlers": ["default"], "level": level, "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """Apply :func:`logging_config` now and return it (uvicorn takes it as ``log_config`` to keep it)."""
    config = logging_config(log_format, level)
    logging.config.dictConfig(config)
    return config
