"""A spaCy pipeline over an outside segmenter: its tokens cut where the segmenter cuts, its entities the segmenter's.

Korean (kiwipiepy) and Chinese (jieba) are read by segmenters that are not spaCy components. Presidio reads tokens,
lower-cased lemmas (for context words) and entities from a spaCy ``Doc``; :func:`segmented_pipeline` builds a blank
multilingual pipeline whose tokenizer cuts at the segmenter's boundaries (so particles and suffixes are tokens of
their own, outside any span) and whose one component sets the entities the language module finds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Entity", "segmented_pipeline"]

Entity = tuple[int, int, str]
"""``(start, end, label)`` in characters."""
_ENTITIES = "guard_entities"


def segmented_pipeline(component: str, analyse: Callable[[str], tuple[Iterable[int], list[Entity]]]) -> Any:
    """A blank spaCy pipeline over ``analyse(text)`` → (cuts, entities): tokens cut at the cuts (character offsets),
    at whitespace and at the entities' edges; the entities ``(start, end, label)`` (labels presidio's default
    mapping knows: ``PERSON``, ``LOC``) set by a component registered as ``component``. The segmenter runs once per
    text: the tokenizer keeps its entities on the ``Doc`` for the component."""
    import spacy
    from spacy.language import Language
    from spacy.tokens import Doc

    def tokenize(text: str) -> Doc:
        cuts, entities = analyse(text)
        positions = sorted({0, len(text), *cuts, *(edge for s, e, _ in entities for edge in (s, e))})
        words, spaces = [], []
        for left, right in itertools.pairwise(positions):
            for match in re.finditer(r"\S+", text[left:right]):
                words.append(match.group())
                spaces.append(left + match.end() < len(text) and text[left + match.end()].isspace())
        doc = Doc(nlp.vocab, words=words, spaces=spaces)
        if doc.text != text:  # whitespace runs the simple cut cannot rebuild: no entities rather than wrong ones
            return Doc(nlp.vocab, words=[text], spaces=[False]) if text else doc
        doc.user_data[_ENTITIES] = entities
        return doc

    if not Language.has_factory(component):
        Language.component(component, func=_set_entities)
    nlp = spacy.blank("xx")
    nlp.tokenizer = tokenize
    nlp.add_pipe(component)
    return nlp


def _set_entities(doc: Any) -> Any:
    import spacy

    spans = [doc.char_span(s, e, label=label) for s, e, label in doc.user_data.pop(_ENTITIES, [])]
    doc.ents = spacy.util.filter_spans([span for span in spans if span is not None])
    for token in doc:
        token.lemma_ = token.lower_
    return doc
