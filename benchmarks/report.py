"""What every benchmark records next to its numbers (machine, threads, versions) and where it writes them."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def set_runtime_defaults() -> None:
    """Call before torch is imported: OpenMP's busy-wait policy makes decode ~10x slower on small CPUs."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """The settings that change the numbers; the load average shows whether other work shared the CPU."""
    import torch
    import transformers

    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def write_results(stem: str, payload: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<stem>-<UTC timestamp>.json`` and ``<stem>-latest.json``; returns the timestamped path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(clean(payload), indent=2, default=_json_default, allow_nan=False) + "\n"
    path = out_dir / f"{stem}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text, encoding="utf-8")
    (out_dir / f"{stem}-latest.json").write_text(text, encoding="utf-8")
    return path


def clean(value: Any) -> Any:
    """NaN (a metric with no samples) becomes null: JSON has no NaN."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    return str(value)
