"""Readiness of the checks and the engine, for ``/readyz``: each actively probed, nothing latched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from guard.audit import AuditWriter
from guard.checks import CheckItem, RequestScope
from guard.checks.batcher import CheckBatcher
from guard.engine import Engine, SamplingParams
from guard.policy import LoadedPolicy

__all__ = ["PROBE_TEXT", "PROBE_TTL_S", "Health", "probe_items"]

PROBE_TEXT = "What time does the library open on Saturday?"
"""The benign item each check runs in the readiness probe."""
PROBE_TTL_S = 2.0
"""How long a probe's result answers /readyz, so frequent probes don't load the checks."""


def probe_items(policies: Iterable[LoadedPolicy], names: Iterable[str]) -> dict[str, CheckItem]:
    """A benign item per check, configured as the first loaded policy configures that check (readiness)."""
    items: dict[str, CheckItem] = {}
    checks = list(names)
    for loaded in policies:
        for stage, section in (("input", loaded.policy.input), ("output", loaded.policy.output)):
            for name in checks:
                config = getattr(section, name, None)
                if name not in items and config is not None:
                    items[name] = CheckItem(
                        text=PROBE_TEXT,
                        config=config,
                        stage=stage,  # type: ignore[arg-type]
                        scope=RequestScope(),
                        role="user" if stage == "input" else None,
                        prompt=PROBE_TEXT if stage == "output" else None,
                    )
    return items


class Health:
    """Readiness of the checks, the engine and the audit writer, for /readyz; nothing is latched, so recovery needs no
    restart.

    A check is not ready while its running batch is older than the check timeout (a hung call holds its worker
    thread) or while a probe item fails or times out through its batcher. The engine is not ready while its
    worker is down or its last step failed; then a one-token generation is the probe, and its step succeeding
    clears the failure. The audit writer is not ready while its last commit failed (a full disk still answers the
    database ping's read); then a commit is the probe (:meth:`AuditWriter.probe`), and its success clears it."""

    def __init__(
        self,
        batchers: Mapping[str, CheckBatcher],
        engine: Engine,
        probe_items: Callable[[], dict[str, CheckItem]],
        *,
        check_timeout_s: float | None,
        audit: AuditWriter | None = None,
    ) -> None:
        self.check_timeout_s = check_timeout_s
        self._audit = audit
        self._batchers = batchers
        self._engine = engine
        self._probe_items = probe_items
        self._lock = asyncio.Lock()
        self._probed_at = -PROBE_TTL_S
        self._probed: dict[str, str] = {}

    async def report(self) -> dict[str, str]:
        """``{"check:<name>": state, "engine": state, "audit": state}``; every state is ``"ok"`` when ready."""
        async with self._lock:  # concurrent readiness calls share one probe
            if time.monotonic() - self._probed_at >= PROBE_TTL_S:
                self._probed = await self._probe()
                self._probed_at = time.monotonic()
            report = dict(self._probed)
        for name, batcher in self._batchers.items():  # a hang shows at once, whatever the cached probe said
            if self.check_timeout_s is not None and (busy := batcher.busy_for()) > self.check_timeout_s:
                report[f"check:{name}"] = f"stuck (a batch has run for {busy:.0f} s)"
        if self._audit is not None and (failure := self._audit.failure) is not None:  # at once, like a hang
            since = failure.since.isoformat(timespec="seconds")
            report["audit"] = f"commits failing since {since} ({failure.reason}, {failure.commits} failed)"
        return report

    async def _probe(self) -> dict[str, str]:
        items = self._probe_items()
        names = [name for name in self._batchers if name in items]
        outcomes = await asyncio.gather(
            *(self._bounded(self._batchers[name].run([items[name]])) for name in names),
            self._engine_state(),
            self._bounded(self._audit.probe()) if self._audit is not None else asyncio.sleep(0),
            return_exceptions=True,
        )
        report = {f"check:{name}": _state(outcome) for name, outcome in zip(names, outcomes, strict=False)}
        engine = outcomes[-2]
        report["engine"] = engine if isinstance(engine, str) else _state(engine)
        if self._audit is not None:
            report["audit"] = _state(outcomes[-1])
        return report

    async def _engine_state(self) -> str:
        stats = self._engine.stats()
        if not stats.healthy:
            return "worker stopped"
        if stats.last_error is None:
            return "ok"
        prompt = self._engine.tokenize(PROBE_TEXT, add_special_tokens=True)
        try:
            await self._bounded(self._engine.generate(prompt, SamplingParams(max_tokens=1, temperature=0.0)))
        except Exception as exc:
            return f"last step failed ({stats.last_error}); probe: {type(exc).__name__}"
        return "ok"

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(call, self.check_timeout_s)


def _state(outcome: object) -> str:
    if isinstance(outcome, TimeoutError):
        return "timed out"
    if isinstance(outcome, BaseException):
        return f"failed ({type(outcome).__name__})"
    return "ok"
