"""guard's own Prometheus metrics, on prometheus_client's default registry (what ``/metrics`` serves).

Defined once at import, so any number of apps in one process (tests) share them; counters only ever grow, so
tests compare before/after. Gauges of live state (queue depths) are read on scrape through probes that each app
adds while it runs, not set in hot loops. Label values are bounded (policy names, decisions, check names, finding
types): never request text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "AUDIT_COMMIT_SECONDS",
    "CHECK_BATCH_SIZE",
    "DECISIONS",
    "ENGINE_BATCH_SIZE",
    "FINDINGS",
    "STAGE_SECONDS",
    "Probe",
    "Sample",
    "add_probe",
    "observe_decision",
    "remove_probe",
]

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

DECISIONS = Counter("guard_decisions_total", "Audited decisions by policy and decision", ["policy", "decision"])
FINDINGS = Counter(
    "guard_findings_total",
    "Findings in audited decisions by policy, check and category",
    ["policy", "check", "category"],
)
STAGE_SECONDS = Histogram(
    "guard_stage_seconds",
    "Latency of each pipeline stage (input_checks, generation, output_checks, checks, audit, total)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CHECK_BATCH_SIZE = Histogram("guard_check_batch_size", "Items per check batch", ["check"], buckets=_SIZE_BUCKETS)
ENGINE_BATCH_SIZE = Histogram("guard_engine_batch_size", "Sequences per engine step", buckets=_SIZE_BUCKETS)
AUDIT_COMMIT_SECONDS = Histogram(
    "guard_audit_commit_seconds",
    "Time to commit one audit row",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# Stages the pipeline measures into each audit record's latency_ms; "opened" (a stream's first record) is not one.
_STAGES = frozenset({"input_checks", "generation", "output_checks", "checks", "total"})

_GAUGES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "guard_check_queue_depth": ("Requests waiting for a check's worker", ("check",)),
    "guard_engine_queue_depth": ("Requests waiting for an engine slot", ()),
    "guard_engine_running": ("Sequences in the engine's running batch", ()),
    "guard_audit_queue_depth": ("Writers waiting to commit an audit row", ()),
}

Sample = tuple[str, tuple[str, ...], float]
"""A gauge name from the list above, its label values, and the value."""
Probe = Callable[[], Iterable[Sample]]

_probes: dict[int, Probe] = {}


def add_probe(owner: object, probe: Probe) -> None:
    """Read ``probe`` on every scrape until :func:`remove_probe` (values of several live apps are summed)."""
    _probes[id(owner)] = probe


def remove_probe(owner: object) -> None:
    _probes.pop(id(owner), None)


class _ProbeCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        totals: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        for probe in list(_probes.values()):
            for name, labels, value in probe():
                totals[name, labels] += value
        for name, (documentation, label_names) in _GAUGES.items():
            family = GaugeMetricFamily(name, documentation, labels=list(label_names))
            if not label_names:
                family.add_metric([], totals.get((name, ()), 0.0))
            for (sample, labels), value in totals.items():
                if sample == name and label_names:
                    family.add_metric(list(labels), value)
            yield family


REGISTRY.register(_ProbeCollector())


def observe_decision(
    *,
    policy: str | None,
    decision: str,
    findings: Sequence[Mapping[str, Any]],
    latency_ms: Mapping[str, float],
) -> None:
    """Count one audited decision, its findings (by check and type, never text) and its stage latencies."""
    name = policy or ""
    DECISIONS.labels(policy=name, decision=decision).inc()
    for finding in findings:
        FINDINGS.labels(policy=name, check=str(finding.get("check", "")), category=str(finding.get("type", ""))).inc()
    for stage, ms in latency_ms.items():
        if stage in _STAGES:
            STAGE_SECONDS.labels(stage=stage).observe(ms / 1000)
