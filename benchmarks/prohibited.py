"""The README's prohibited-use figures (issue 15), reproduced in one command on the held-apart splits.

Reads ``../shared/data/prohibited`` (nothing of it is in the repository), splits it as training did
(:mod:`guard.training.prohibited_data`: by source row, fixed salt, de-duplicated between splits), and runs the shipped
``default`` policy's non-PII checks (deny rules + the fine-tuned classifier, injection, toxicity) through
``guard eval``'s evaluator:

- ``requests_test``: the test split of the requests (English, Japanese, Korean, Chinese), input stage;
- ``responses_test``: the test split of the answers, output stage, each read beside its request;
- ``responses_test_alone``: the same answers scanned without their request;
- ``requests_loso``: the published-benchmark sources, never trained or tuned on (leave-source-out);
- ``cjk_benign_other_test``: ja/ko/zh benign texts of the other shared corpora's test splits (prompts, quiz
  questions and documents of ``../shared/data/injection``, non-toxic comments of the toxicity corpus): false positives
  of the ja/ko/zh n-gram layer beyond the prohibited-use corpus's own benign sources;
- ``ours``: the 650 requests we wrote for the first classifier (``benchmarks/data/prohibited/requests.jsonl``) and
  222 more written for a retrain that was measured and not shipped (``requests_more.jsonl``: 52 violent-extremism
  and 20 other harmful requests, 150 safe-but-scary ones), never trained on;
- ``ours_answers``: 110 answers we wrote beside their requests (``answers.jsonl``: six harmful completions per
  category, 44 refusals, safety, clinical, educational, news and fiction answers on the same topics), never trained
  on;
- ``ours_extremism``: 39 violent-extremism requests (recruitment, attack planning, financing, glorification) and 40
  safe questions on the same topics (history, research, prevention, news; tagged ``scary``) we wrote on 2026-12-07
  (``requests_extremism.jsonl``), never trained on by the shipped weights;
- ``--dev``: the split the calibration and thresholds were chosen on, for reference.

Writes ``benchmarks/data/prohibited/figures.json`` (figures, the policy stamp, the environment and the data manifest:
rows per split and source, the de-duplication report) and prints the tables.

    GUARD_PROFILE=dev python benchmarks/prohibited.py [--data ../shared/data/prohibited] [--dev]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from report import environment, set_runtime_defaults

REPO = Path(__file__).resolve().parent.parent
OURS = [REPO / "benchmarks" / "data" / "prohibited" / name for name in ("requests.jsonl", "requests_more.jsonl")]
OUR_ANSWERS = REPO / "benchmarks" / "data" / "prohibited" / "answers.jsonl"
OUR_EXTREMISM = REPO / "benchmarks" / "data" / "prohibited" / "requests_extremism.jsonl"


def _rows(examples: list[Any], *, with_context: bool = True) -> list[dict[str, Any]]:
    tags = {"benign_borderline": "borderline", "refusal": "refusal"}
    return [
        {
            "text": e.text,
            "label": e.label,
            "lang": e.lang,
            "tag": tags.get(e.kind),
            "source": e.source,
            **({"context": e.context} if with_context and e.context else {}),
        }
        for e in examples
    ]


def _print(title: str, reports: list[Any]) -> None:
    print(f"\n## {title}")
    for report in reports:
        print(f"\n{report.title}")
        print("  " + " | ".join(report.columns))
        for row in report.rows:
            print("  " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in row))
        if report.summary:
            print("  " + "  ".join(f"{k}={v:g}" for k, v in report.summary.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "prohibited")
    parser.add_argument("--dev", action="store_true", help="Also report the dev split (calibration reference).")
    args = parser.parse_args()
    set_runtime_defaults()
    os.environ.setdefault("GUARD_PROFILE", "dev")

    import msgspec

    from guard.evaluation import load_checks
    from guard.evaluation.prohibited import evaluate
    from guard.policy import PolicyRegistry
    from guard.settings import Settings
    from guard.training.ngram import ngram_rows
    from guard.training.prohibited_data import load_corpus

    settings = Settings.from_env()
    loaded = PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default).get(None)
    checks = load_checks(settings)
    corpus = load_corpus(args.data)
    sets: dict[str, tuple[list[dict[str, Any]], str]] = {
        "requests_test": (_rows(corpus.select("requests", "test")), "input"),
        "responses_test": (_rows(corpus.select("responses", "test")), "output"),
        "responses_test_alone": (_rows(corpus.select("responses", "test"), with_context=False), "output"),
        "requests_loso": (_rows(corpus.select("requests", "benchmark")), "input"),
        "cjk_benign_other_test": (
            _rows([e for e in ngram_rows(args.data, "test") if e.source.startswith(("injection:", "toxicity:"))]),
            "input",
        ),
        "ours": (
            [json.loads(line) for path in OURS for line in path.read_text("utf-8").splitlines() if line.strip()],
            "input",
        ),
        "ours_answers": (
            [json.loads(line) for line in OUR_ANSWERS.read_text("utf-8").splitlines() if line.strip()],
            "output",
        ),
        "ours_extremism": (
            [json.loads(line) for line in OUR_EXTREMISM.read_text("utf-8").splitlines() if line.strip()],
            "input",
        ),
    }
    if args.dev:
        sets["requests_dev"] = (_rows(corpus.select("requests", "dev")), "input")
        sets["responses_dev"] = (_rows(corpus.select("responses", "dev")), "output")
    results: dict[str, Any] = {
        "policy": {"name": loaded.name, "version": loaded.version, "sha256": loaded.sha256},
        "classifier": checks.descriptions.get("prohibited_use"),
        "environment": environment(),
        "manifest": corpus.manifest(),
        "figures": {},
    }
    for name, (rows, stage) in sets.items():
        reports = evaluate(rows, checks, loaded.policy, stage)  # type: ignore[arg-type]
        results["figures"][name] = msgspec.to_builtins(reports)
        _print(name, reports)
    out = REPO / "benchmarks" / "data" / "prohibited" / "figures.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
