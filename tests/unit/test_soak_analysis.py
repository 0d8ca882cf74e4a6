"""benchmarks/soak.py's verdict (issue 21, must-show 1): windows, growth, drift and loss from recorded samples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

# The benchmarks import each other as scripts; their folder is on the path only while soak (and load, report) load.
sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
try:
    import soak
finally:
    del sys.path[0]

pytestmark = pytest.mark.unit

ARGS = argparse.Namespace(
    minutes=30.0, warmup_minutes=5.0, window_minutes=5.0, rss_growth=0.05, fd_slack=0.0, p95_ratio=1.2
)


def _run(rss: tuple[float, float], fds: tuple[int, int], latency: tuple[float, float]) -> soak.Run:
    """Samples every 10 s and one request a second: ``(first, last)`` values before and after minute 15."""
    run = soak.Run()
    for t in range(0, 1800, 10):
        half = int(t >= 900)
        run.samples.append({"t": float(t), "rss_mb": rss[half], "fds": float(fds[half]), "threads": 30.0})
    for t in range(1800):
        run.requests.append((float(t), "chat", latency[int(t >= 900)], 200))
    return run


def test_the_windows_follow_the_warm_up_and_end_the_run() -> None:
    assert soak.windows(30, 5, 5) == ((300, 600), (1500, 1800))
    assert soak.windows(2, 0.25, 0.5) == ((15, 45), (90, 120))
    with pytest.raises(ValueError, match="no window"):
        soak.windows(5, 5, 5)


def test_a_steady_run_passes() -> None:
    result = soak.verdict(_run((1800, 1850), (31, 31), (0.30, 0.33)), {"missing": []}, ARGS)
    assert result["ok"]
    checks = result["checks"]
    assert checks["rss_growth"]["value"] == pytest.approx(50 / 1800)
    assert checks["p95_ratio"]["value"] == pytest.approx(1.1)
    assert checks["fd_growth"]["value"] == 0


@pytest.mark.parametrize(
    ("rss", "fds", "latency", "missing", "failing"),
    [
        ((1800, 1900), (31, 31), (0.3, 0.3), [], "rss_growth"),
        ((1800, 1800), (31, 33), (0.3, 0.3), [], "fd_growth"),
        ((1800, 1800), (31, 31), (0.3, 0.4), [], "p95_ratio"),
        ((1800, 1800), (31, 31), (0.3, 0.3), ["an-id"], "missing_rows"),
    ],
)
def test_each_limit_fails_on_its_own(
    rss: tuple[float, float], fds: tuple[int, int], latency: tuple[float, float], missing: list[str], failing: str
) -> None:
    result = soak.verdict(_run(rss, fds, latency), {"missing": missing}, ARGS)
    assert not result["ok"]
    assert [name for name, check in result["checks"].items() if not check["ok"]] == [failing]


def test_gauges_are_summed_over_their_labels() -> None:
    scrape = (
        "# HELP guard_check_queue_depth x\n"
        'guard_check_queue_depth{check="pii"} 3.0\n'
        'guard_check_queue_depth{check="toxicity"} 2.0\n'
        "guard_audit_queue_depth 1.0\n"
        "guard_decisions_total 7.0\n"
    )
    assert soak.queue_gauges(scrape) == {"guard_check_queue_depth": 5.0, "guard_audit_queue_depth": 1.0}
