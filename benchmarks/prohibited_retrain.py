"""A retrained prohibited-use encoder against the shipped one, on the dev split: is it worth shipping?

Retraining (``guard models train-prohibited``) moves every figure a little, so a change of recipe or data is judged
on the split the thresholds were chosen on, beside the shipped weights, through the same checks and the shipped
``default`` policy's thresholds: the prohibited-use check (deny rules + classifier) on the English dev requests
(per category; benign; safe-but-scary) and on the dev answers read beside their requests, and the injection check
(rules + classifier, long texts window by window) on the injection corpus's dev rows, our support-desk messages and
the prohibited-use corpus's benign dev requests. Test figures are never read here.

    python benchmarks/prohibited_retrain.py --weights FILE                 # weights trained already
    python benchmarks/prohibited_retrain.py --train-with EXTRA.jsonl --threads 2   # train first (~26 min), then compare

Writes ``benchmarks/results/prohibited_retrain-*.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import environment, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent
SUPPORT = REPO / "guard" / "training" / "data" / "injection_benign.jsonl"
BATCH = 64


def _fraction(flags: list[bool], keep: list[bool]) -> str:
    return f"{sum(f for f, k in zip(flags, keep, strict=True) if k)}/{sum(keep)}"


def dev_figures(weights: Path | None, data: Path) -> dict[str, str]:
    """Per figure, ``acted/rows`` on the dev split with ``weights`` (None: the shipped ones)."""
    from guard.checks import CheckItem
    from guard.checks.injection import InjectionCheck
    from guard.checks.prohibited import ProhibitedUseCheck
    from guard.checks.semantic import EmbeddingClassifier, SafetyEncoder
    from guard.policy import load_policy_file
    from guard.training.injection_data import load_injection
    from guard.training.prohibited_data import load_corpus

    policy = load_policy_file(REPO / "policies" / "default.yaml").policy
    encoder = SafetyEncoder.load(weights)
    prohibited = ProhibitedUseCheck(embedding=EmbeddingClassifier(encoder))
    injection = InjectionCheck.load(classifier=encoder)

    def acted(check: Any, items: list[Any], flagged: Callable[[Any], bool]) -> list[bool]:
        results = [r for start in range(0, len(items), BATCH) for r in check.run(items[start : start + BATCH])]
        return [any(flagged(f) for f in result.findings) for result in results]

    corpus = load_corpus(data / "prohibited")
    figures: dict[str, str] = {}
    requests = [e for e in corpus.select("requests", "dev") if e.lang == "en"]
    config = policy.input.prohibited_use
    blocked = acted(
        prohibited,
        [CheckItem(text=e.text, config=config, stage="input") for e in requests],
        lambda f: f.action == "block",
    )
    figures["requests: harmful"] = _fraction(blocked, [e.harmful for e in requests])
    for category in sorted({e.label for e in requests if e.harmful}):
        figures[f"requests: {category}"] = _fraction(blocked, [e.label == category for e in requests])
    for kind in ("benign", "benign_borderline"):
        figures[f"requests: {kind}"] = _fraction(blocked, [e.kind == kind for e in requests])
    answers = [e for e in corpus.select("responses", "dev") if e.lang == "en"]
    config = policy.output.prohibited_use
    blocked = acted(
        prohibited,
        [CheckItem(text=e.text, config=config, stage="output", prompt=e.context) for e in answers],
        lambda f: f.action != "redact",
    )
    for kind in ("harmful_response", "refusal", "benign_response"):
        figures[f"answers: {kind}"] = _fraction(blocked, [e.kind == kind for e in answers])
    rows = load_injection(data / "injection").split("dev")
    support = [json.loads(line)["text"] for line in SUPPORT.read_text("utf-8").splitlines() if line.strip()]
    benign_requests = [e.text for e in requests if not e.harmful]
    texts = [r.text for r in rows] + support + benign_requests
    config = policy.input.injection
    flagged = acted(
        injection,
        [CheckItem(text=t, config=config, stage="input", role="user") for t in texts],
        lambda f: f.action != "redact",
    )
    attack = {"injection", "jailbreak"}
    labels = [(r.label, r.lang, r.hard_negative) for r in rows] + [("support", "en", False)] * len(support)
    labels += [("prohibited_benign", "en", False)] * len(benign_requests)
    for name, keep in {
        "injection: English direct attacks": [lang == "en" and label in attack for label, lang, _ in labels],
        "injection: English indirect attacks": [
            lang == "en" and label == "indirect_injection" for label, lang, _ in labels
        ],
        "injection: other languages' attacks": [
            lang != "en" and label in {*attack, "indirect_injection"} for label, lang, _ in labels
        ],
        "injection: benign look-alikes": [label == "benign" and hard for label, _, hard in labels],
        "injection: other benign prompts": [label == "benign" and not hard for label, _, hard in labels],
        "injection: clean documents": [label == "benign_document" for label, _, _ in labels],
        "injection: support-desk messages": [label == "support" for label, _, _ in labels],
        "injection: prohibited-use benign requests": [label == "prohibited_benign" for label, _, _ in labels],
    }.items():
        figures[name] = _fraction(flagged, keep)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, help="Retrained weights to compare (skips training).")
    parser.add_argument("--train-with", type=Path, action="append", default=[], help="Extra request files.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_runtime_defaults()

    weights = args.weights
    trained: dict[str, Any] = {}
    if weights is None:
        from guard.training.prohibited import train_prohibited

        weights = Path(tempfile.mkdtemp(prefix="guard-retrain-")) / "minilm-safety.safetensors"
        trained = train_prohibited(
            args.data / "prohibited",
            weights,
            injection_dir=args.data / "injection",
            threads=args.threads,
            extra_requests=args.train_with,
        )
    shipped, retrained = dev_figures(None, args.data), dev_figures(weights, args.data)
    print(f"{'dev split, shipped default thresholds':48s} {'shipped':>10s} {'retrained':>10s}")
    for name in shipped:
        print(f"{name:48s} {shipped[name]:>10s} {retrained[name]:>10s}")
    path = write_results(
        "prohibited_retrain",
        {
            "environment": environment(),
            "weights": str(weights),
            "training": {k: v for k, v in trained.items() if k in ("seconds", "threads", "seed", "written_rows")},
            "figures": {name: {"shipped": shipped[name], "retrained": retrained[name]} for name in shipped},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
