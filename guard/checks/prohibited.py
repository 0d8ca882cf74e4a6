"""Prohibited use, per Gemma Prohibited Use Policy category, in three layers the policy turns on per category.

1. deny rules: case-insensitive regular expressions (cheap, precise, span-level findings), lifted for a category
   where one of its ``exceptions`` matches (a question about a film's plot: the classifier still reads it);
2. the classifier (the policy's ``embedding`` thresholds): all-MiniLM-L6-v2 fine-tuned on public corpora, a
   ``request`` head for inputs and a ``response`` head that reads an answer beside the request it answers
   (:mod:`guard.checks.semantic`; layer ``embedding``), one encoder pass per batch; for Japanese, Korean and Chinese
   requests, which that encoder cannot read, a character n-gram classifier (:mod:`guard.checks.ngram`; layer
   ``ngram``);
3. judge: ShieldGemma-style P(Yes) from a Gemma judge (:mod:`guard.checks.judge`), one forward pass per batch.

Every finding cites its category's clause and names its layer in ``detail``. The judge, the expensive layer, only
sees items the cheaper layers have not already blocked. Whether a policy may run without a judge model is its own
choice (``judge_required``): by default it fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

from guard.checks.base import CheckItem, CheckResult, CheckUnavailable, Finding
from guard.checks.judge import Judge, JudgeRequest
from guard.checks.ngram import NgramClassifier
from guard.checks.semantic import EmbeddingClassifier
from guard.policy import CLAUSES, Action, ProhibitedUseConfig

__all__ = ["JUDGE_MISSING", "ProhibitedUseCheck"]

JUDGE_MISSING = (
    "the policy sets judge thresholds for prohibited_use but no judge model is loaded: set GUARD_JUDGE_MODEL "
    "(e.g. google/shieldgemma-2b) or, to run without the judge layer, set prohibited_use.judge_required: false"
)


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _wants_embedding(config: ProhibitedUseConfig) -> bool:
    return config.enabled and any(rule.embedding is not None for rule in config.categories.values())


def _wants_judge(config: ProhibitedUseConfig) -> bool:
    return config.enabled and any(rule.judge is not None for rule in config.categories.values())


class ProhibitedUseCheck:
    """Deny rules always; the embedding classifier and the judge when they were loaded and a policy asks for them."""

    name: ClassVar[str] = "prohibited_use"

    def __init__(
        self,
        embedding: EmbeddingClassifier | None = None,
        judge: Judge | None = None,
        ngram: NgramClassifier | None = None,
    ) -> None:
        self._embedding = embedding
        self._judge = judge
        self._ngram = ngram if embedding is not None else None  # a layer of the classifier, never on its own
        layers = ["deny rules"]
        if embedding is not None:
            layers.append(embedding.description)
        if self._ngram is not None:
            layers.append(self._ngram.description)
        if judge is not None:
            layers.append(f"judge {judge.description}")
        self.description = " + ".join(layers)

    def validate(self, config: ProhibitedUseConfig) -> None:
        """Raise :class:`CheckUnavailable` if this check cannot apply ``config`` (for start-up and policy reload)."""
        if _wants_embedding(config) and self._embedding is None:
            raise CheckUnavailable(
                "the policy sets embedding thresholds for prohibited_use but the classifier is not loaded"
            )
        if _wants_judge(config) and self._judge is None and config.judge_required:
            raise CheckUnavailable(JUDGE_MISSING)

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        for config in {id(item.config): item.config for item in items}.values():
            self.validate(config)
        scores: list[dict[str, float]] = [{} for _ in items]
        findings = [self._deny_rules(item, score) for item, score in zip(items, scores, strict=True)]
        self._embedding_layer(items, findings, scores)
        self._judge_layer(items, findings, scores)
        return [CheckResult(findings=tuple(found), scores=score) for found, score in zip(findings, scores, strict=True)]

    def _deny_rules(self, item: CheckItem, scores: dict[str, float]) -> list[Finding]:
        config: ProhibitedUseConfig = item.config
        if not config.enabled:
            return []
        findings: list[Finding] = []
        for category, rule in config.categories.items():
            matches = [match for pattern in rule.patterns for match in _compiled(pattern).finditer(item.text)]
            if matches and any(_compiled(exception).search(item.text) for exception in rule.exceptions):
                scores[f"deny_rule_exception:{category}"] = 1.0  # the audit row shows why a matching rule did not act
                continue
            findings += [
                Finding(
                    check=self.name,
                    type=category,
                    score=1.0,
                    threshold=1.0,
                    action=rule.action,
                    start=match.start(),
                    end=match.end(),
                    clause=CLAUSES[category],
                    stage=item.stage,
                    detail="deny_rule",
                )
                for match in matches
            ]
        return findings

    def _embedding_layer(
        self, items: Sequence[CheckItem], findings: list[list[Finding]], scores: list[dict[str, float]]
    ) -> None:
        if self._embedding is None:
            return
        wanted, by_ngram = [], []
        for i, item in enumerate(items):
            if not _wants_embedding(item.config):
                continue
            if self._embedding.reads(item.text):
                wanted.append(i)
            elif self._ngram is not None and item.stage == "input" and self._ngram.reads(item.text):
                by_ngram.append(i)
            else:
                scores[i]["embedding:unread_language"] = 1.0  # the audit row shows the layer did not apply
        # One encoder pass for every text of the batch; answers are read beside the request they answer.
        inputs = [i for i in wanted if items[i].stage == "input"]
        outputs = [i for i in wanted if items[i].stage == "output"]
        scored = dict(zip(inputs, self._embedding.scores([items[i].text for i in inputs]), strict=True))
        answers = self._embedding.scores([items[i].text for i in outputs], [items[i].prompt for i in outputs])
        scored.update(zip(outputs, answers, strict=True))
        if self._ngram is not None:
            scored.update(zip(by_ngram, self._ngram.scores([items[i].text for i in by_ngram]), strict=True))
        layers = dict.fromkeys(by_ngram, "ngram")
        wanted += by_ngram
        batch = [scored[i] for i in wanted]
        for i, category_scores in zip(wanted, batch, strict=True):
            item = items[i]
            config: ProhibitedUseConfig = item.config
            for category, rule in config.categories.items():
                score = category_scores.get(category)
                if rule.embedding is None or score is None:
                    continue
                layer = layers.get(i, "embedding")
                scores[i][f"{layer}:{category}"] = round(score, 4)
                if score >= rule.embedding:
                    findings[i].append(self._whole_text(item, category, rule.action, score, rule.embedding, layer))

    def _judge_layer(
        self, items: Sequence[CheckItem], findings: list[list[Finding]], scores: list[dict[str, float]]
    ) -> None:
        if self._judge is None:
            return
        requests: list[JudgeRequest] = []
        owners: list[int] = []
        for i, item in enumerate(items):
            config: ProhibitedUseConfig = item.config
            if not _wants_judge(config) or any(f.action == "block" for f in findings[i]):
                continue  # already blocked: the judge's forward pass would not change the decision
            for category, rule in config.categories.items():
                if rule.judge is not None:
                    requests.append(JudgeRequest(item.text, item.stage, category, rule.guideline, item.prompt))
                    owners.append(i)
        for i, request, score in zip(owners, requests, self._judge.scores(requests), strict=True):
            item = items[i]
            rule = item.config.categories[request.category]
            scores[i][f"judge:{request.category}"] = round(score, 4)
            if score >= rule.judge:
                findings[i].append(self._whole_text(item, request.category, rule.action, score, rule.judge, "judge"))

    def _whole_text(
        self, item: CheckItem, category: str, action: Action, score: float, threshold: float, layer: str
    ) -> Finding:
        return Finding(
            check=self.name,
            type=category,
            score=round(score, 4),
            threshold=threshold,
            action=action,
            start=0,
            end=len(item.text),
            clause=CLAUSES[category],
            stage=item.stage,
            detail=layer,
        )
