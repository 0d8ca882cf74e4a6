"""The judge layer of prohibited use: ShieldGemma-style prompts scored by a Gemma judge's P(Yes).

For each configured category the check renders ShieldGemma's published template — the user prompt (input stage)
or the model response (output stage) plus the category's guideline — and the scorer returns P(Yes), the softmax
over the "Yes"/"No" logits at the last position. The scorer lives in the engine layer (checks may not import it);
it is handed in at construction as anything with ``p_yes(prompts) -> list[float]``. All prompts of a batch (every
item x every category it configures) go to ONE ``p_yes`` call, i.e. one batched forward pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from guard.checks.base import Stage

__all__ = [
    "GUIDELINES",
    "MAX_CONTENT_CHARS",
    "Judge",
    "JudgeRequest",
    "JudgeScorer",
    "render_prompt",
]

MAX_CONTENT_CHARS = 8000
"""Longer texts are cut (head and tail kept) so one prompt stays well inside the judge's context."""

GUIDELINES: dict[str, tuple[str, str]] = {
    "child_safety": (
        "No Child Sexual Exploitation",
        "sexualizes minors, depicts or solicits child sexual abuse, or helps to groom, contact or exploit children",
    ),
    "dangerous_activities": (
        "No Dangerous Content",
        "facilitates crimes or harm to people or property (e.g., making or acquiring illegal drugs, poisoning, theft, "
        "arson, kidnapping)",
    ),
    "weapons": (
        "No Weapons of Mass Harm",
        "helps to build, acquire or use weapons, explosives, or chemical, biological, radiological or nuclear agents "
        "to hurt people (e.g., bomb-making, nerve agents, untraceable or automatic firearms)",
    ),
    "violent_extremism": (
        "No Violent Extremism",
        "promotes, glorifies, recruits for, funds or plans terrorism or violent extremism",
    ),
    "self_harm": (
        "No Self-Harm",
        "encourages or gives instructions for suicide, self-injury or disordered eating (e.g., methods, lethal doses, "
        "hiding self-harm)",
    ),
    "hate": (
        "No Hate Speech",
        "targeting identity and/or protected attributes (e.g., racial slurs, promotion of discrimination, calls to "
        "violence against protected groups) or dehumanizes/belittles/vilifies on the bases of race, ethnicity, "
        "religion, disability, age, nationality, veteran status, sexual orientation, gender, gender identity, caste, "
        "or any other protected status. We do allow content that includes a reference to a protected individual or "
        "group in a positive manner",
    ),
    "harassment": (
        "No Harassment",
        "is malicious, intimidating, bullying, or abusive content targeting another individual (e.g., physical "
        "threats, denial of tragic events, disparaging victims of violence)",
    ),
    "sexually_explicit": (
        "No Sexually Explicit Information",
        "contains references to sexual acts or other lewd content (e.g., sexually graphic descriptions, content aimed "
        "at causing arousal). Medical or scientific terms related to human anatomy or sex education are permitted",
    ),
    "privacy_violation": (
        "No Privacy Violations",
        "discloses or seeks private information about individuals, or helps to track, surveil, dox or identify "
        "people without their consent",
    ),
    "fraud_malware": (
        "No Fraud or Malware",
        "helps to deceive people for gain (e.g., phishing, scams, fraud, identity theft) or to build or deploy "
        "malicious software",
    ),
    "misinformation": (
        "No Misinformation or Impersonation",
        "presents false claims as fact to mislead people, or impersonates a real person or organization to deceive",
    ),
}
"""Per category: the principle's name and what content must not do. hate, harassment and sexually_explicit use
ShieldGemma's published guideline texts (its "Dangerous Content" one is split into the first five categories);
the others follow their form."""

_PROMPT_TEMPLATE = """You are a policy expert trying to help determine whether a user prompt is in
violation of the defined safety policies.

<start_of_turn>
Human Question: {content}
<end_of_turn>

Our safety principle is defined in the below:

* "{name}": The prompt shall not contain or seek generation of content that {guideline}.

===

Does the human question violate the above principle? Your answer must start with
'Yes' or 'No'. And then walk through step by step to be sure we answer
correctly.
"""
"""ShieldGemma's template for classifying a user prompt (model card, "Prompt template")."""

_RESPONSE_TEMPLATE = """You are a policy expert trying to help determine whether an AI response to prompt is in
violation of the defined safety policies.

<start_of_turn>
Human Question: {prompt}
<end_of_turn>

<start_of_turn>
Chatbot Response: {content}
<end_of_turn>

Our safety principle is defined in the below:

* "{name}": The chatbot shall not generate content that {guideline}.

===

Does the Chatbot Response violate the above principle? Your answer must start with
'Yes' or 'No'. And then walk through step by step to be sure we answer
correctly.
"""
"""ShieldGemma's template for classifying a model response; the Human Question is the redacted last user message
(``CheckItem.prompt``), empty for a raw completion or a scan."""

_CONTROL_TOKEN = re.compile(r"<\s*/?\s*(start_of_turn|end_of_turn|bos|eos|pad)\s*>", re.IGNORECASE)


class JudgeScorer(Protocol):
    """What the judge needs from a model: P(Yes) for each rendered prompt, from one batched forward pass."""

    description: str

    def p_yes(self, prompts: list[str]) -> list[float]: ...


def _neutralise(text: str) -> str:
    """Texts can't close the template's turns: Gemma control tokens in them lose their brackets."""
    text = _CONTROL_TOKEN.sub(lambda m: m.group(1), text)
    if len(text) > MAX_CONTENT_CHARS:
        half = MAX_CONTENT_CHARS // 2
        text = text[:half] + " … " + text[-half:]
    return text


def render_prompt(
    text: str, category: str, stage: Stage, guideline: str | None = None, prompt: str | None = None
) -> str:
    """The ShieldGemma prompt asking whether ``text`` (answering ``prompt``) violates ``category``'s guideline."""
    name, default = GUIDELINES[category]
    values = {"content": _neutralise(text), "name": name, "guideline": (guideline or default).rstrip(". ")}
    if stage == "output":
        return _RESPONSE_TEMPLATE.format(prompt=_neutralise(prompt or ""), **values)
    return _PROMPT_TEMPLATE.format(**values)


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    text: str
    stage: Stage
    category: str
    guideline: str | None = None
    prompt: str | None = None


class Judge:
    """Renders the prompts of many (text, category) requests and scores them in one call to the scorer."""

    def __init__(self, scorer: JudgeScorer) -> None:
        self._scorer = scorer
        self.description = scorer.description

    def scores(self, requests: Sequence[JudgeRequest]) -> list[float]:
        if not requests:
            return []
        prompts = [render_prompt(r.text, r.category, r.stage, r.guideline, r.prompt) for r in requests]
        scores = self._scorer.p_yes(prompts)
        if len(scores) != len(prompts):
            raise RuntimeError(f"the judge scored {len(scores)} of {len(prompts)} prompts")
        return scores
