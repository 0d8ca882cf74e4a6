"""How the toxicity check's language identification routes the toxicity corpus's comments (per split, language).

``guard.checks.language.identify_language`` decides which detoxify variant reads a text (a policy's ``languages``
and ``non_english``). For every language of ``../shared/data/toxicity`` (nothing of it is in the repository) this
prints the share of rows identified as their own language and the share sent away from English — for English rows,
the share sent elsewhere — split as training did (by source row, fixed salt; ``benchmark`` = the leave-source-out
published benchmarks). Writes ``benchmarks/results/language_id-*.json``.

    python benchmarks/language_id.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from report import environment, set_runtime_defaults, write_results

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    set_runtime_defaults()

    from guard.checks.language import identify_language
    from guard.devmodels.toxicity_data import load_corpus

    corpus = load_corpus(args.data / "toxicity", ("comments.jsonl", "multilingual.jsonl"))
    table: list[dict[str, Any]] = []
    seconds = 0.0
    texts = 0
    print("split | lang | rows | identified as itself | sent away from English (English: sent elsewhere)")
    for split in ("train", "dev", "test", "benchmark"):
        answers: dict[str, list[str]] = defaultdict(list)
        for row in corpus.split(split):
            start = time.perf_counter()
            answers[row.lang].append(identify_language(row.text))
            seconds += time.perf_counter() - start
            texts += 1
        for lang, found in sorted(answers.items()):
            own = sum(answer == lang for answer in found) / len(found)
            moved = sum(answer != "en" for answer in found) / len(found)
            table.append({"split": split, "lang": lang, "rows": len(found), "identified": own, "not_english": moved})
            print(f"{split} | {lang} | {len(found)} | {own:.3f} | {moved:.3f}")
    print(f"\n{texts} texts, {1000 * seconds / texts:.3f} ms a text (one thread, first call loads the model)")
    path = write_results(
        "language_id", {"environment": environment(), "rows": table, "ms_per_text": 1000 * seconds / texts}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
