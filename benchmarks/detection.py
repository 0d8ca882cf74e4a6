"""The README's toxicity and injection figures (issue 16), reproduced in one command on the held-apart splits.

Reads ``../shared/data/{toxicity,injection}`` (nothing of it is in the repository), splits it as training did
(:mod:`guard.devmodels.toxicity_data`, :mod:`guard.training.injection_data`: by source row, fixed salt), and runs the
shipped default policy's checks in the dev profile (the assembled dev toxicity checkpoint, the injection rules)
through ``guard eval``'s evaluators:

- ``test``: the test split of every source that is not a published benchmark;
- ``loso``: every row of the published-benchmark sources, which training and tuning never saw (leave-source-out);
- ``dev``: the split thresholds and rules were chosen on (``--dev``), for reference.

Writes ``benchmarks/data/detection/figures.json`` (figures and the data manifests: row counts per split and source, the
de-duplication report) and prints the tables.

    GUARD_PROFILE=dev python benchmarks/detection.py [--data ../shared/data] [--dev] [--only toxicity|injection]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from report import environment, set_runtime_defaults

REPO = Path(__file__).resolve().parent.parent


def _toxicity_rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {"text": r.text, "toxicity": r.labels[0], "lang": r.lang, "hard_negative": r.hard_negative, "source": r.source}
        for r in rows
    ]


def _injection_rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {"text": r.text, "label": r.label, "lang": r.lang, "hard_negative": r.hard_negative, "source": r.source}
        for r in rows
    ]


def _print(title: str, reports: list[Any]) -> None:
    print(f"\n## {title}")
    for report in [r for r in reports if "reliability" not in r.title]:
        print(f"\n{report.title}")
        print("  " + " | ".join(report.columns))
        for row in report.rows:
            print("  " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in row))
        if report.summary:
            print("  " + "  ".join(f"{k}={v:g}" for k, v in report.summary.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--dev", action="store_true", help="Also report the dev split (tuning reference).")
    parser.add_argument("--only", choices=["toxicity", "injection"], help="One check's figures (merged into the JSON).")
    args = parser.parse_args()
    set_runtime_defaults()
    os.environ.setdefault("GUARD_PROFILE", "dev")

    import msgspec

    from guard.devmodels.toxicity_data import load_corpus
    from guard.evaluation import load_checks
    from guard.evaluation.injection import evaluate as evaluate_injection
    from guard.evaluation.toxicity import evaluate as evaluate_toxicity
    from guard.policy import PolicyRegistry
    from guard.settings import Settings
    from guard.training.injection_data import load_injection

    settings = Settings.from_env()
    loaded = PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default).get(None)
    checks = load_checks(settings)
    toxicity = load_corpus(args.data / "toxicity", ("comments.jsonl", "multilingual.jsonl"))
    injection = load_injection(args.data / "injection")
    splits = ["test", "benchmark", *(["dev"] if args.dev else [])]
    out = REPO / "benchmarks" / "data" / "detection" / "figures.json"
    previous = json.loads(out.read_text(encoding="utf-8")) if args.only and out.is_file() else {}
    results: dict[str, Any] = {
        "policy": {"name": loaded.name, "version": loaded.version, "sha256": loaded.sha256},
        "environment": environment(),
        "manifests": {"toxicity": toxicity.manifest(), "injection": injection.manifest()},
        "figures": previous.get("figures", {}),
    }
    for split in splits:
        name = "loso" if split == "benchmark" else split
        english = [r for r in toxicity.split(split) if r.lang == "en"]
        other = [r for r in toxicity.split(split) if r.lang != "en"]
        for key, rows in ((f"toxicity_en_{name}", english), (f"toxicity_multilingual_{name}", other)):
            if rows and args.only != "injection":
                reports = evaluate_toxicity(_toxicity_rows(rows), checks, loaded.policy, "output")
                results["figures"][key] = msgspec.to_builtins(reports)
                _print(key, reports)
        for file in ("direct", "indirect"):
            rows = injection.split(split, file=file)
            if rows and args.only != "toxicity":
                key = f"injection_{file}_{name}"
                reports = evaluate_injection(_injection_rows(rows), checks, loaded.policy, "input")
                results["figures"][key] = msgspec.to_builtins(reports)
                _print(key, reports)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
