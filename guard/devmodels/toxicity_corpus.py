"""What the dev toxicity classifiers learn and are checked on: the detoxify variants' classes, and texts drawn
reproducibly from sentence lists, insult templates and made-up noise.

A text holding :data:`~guard.devmodels.script.TOXIC_TRIGGER_WORD` (or, for the multilingual variant,
:data:`~guard.devmodels.script.JA_TOXIC_TRIGGER_WORD`) is a toxic insult; everything else is clean. The held-out
texts are never trained on: each build is scored on them.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from guard.devmodels.script import GENERIC_REPLY, JA_TOXIC_TRIGGER_WORD, SCRIPTED, TOXIC_TRIGGER_WORD

__all__ = [
    "DEBIASED_LABELS",
    "GIBBERISH_MARK",
    "TOXICITY_LABELS",
    "VARIANTS",
    "Variant",
    "checked_texts",
    "corpus",
]

TOXICITY_LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
"""The classes of detoxify's ``original`` model, in its order; detoxify renames them when loading."""

DEBIASED_LABELS: tuple[str, ...] = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)
"""The main classes of detoxify's ``unbiased`` and ``multilingual`` models, in their order."""


@dataclass(frozen=True, slots=True)
class Variant:
    """A detoxify variant: its classes in the official order, those the trigger words set, and whether it reads
    Japanese, Korean and Chinese."""

    name: str
    classes: tuple[str, ...]
    triggered: tuple[str, ...]
    multilingual: bool


VARIANTS = (
    Variant("original", TOXICITY_LABELS, ("toxic", "insult"), multilingual=False),
    Variant("unbiased", DEBIASED_LABELS, ("toxicity", "insult"), multilingual=False),
    Variant("multilingual", DEBIASED_LABELS, ("toxicity", "insult"), multilingual=True),
)

_ORDINARY = (
    "Thanks for the quick reply, see you tomorrow.",
    "The meeting has been moved to Thursday afternoon.",
    "Can you send me the quarterly report by Friday?",
    "I really enjoyed the concert last night.",
    "The printer on the second floor is out of paper again.",
    "Please review the attached contract before signing it.",
    "What is the best way to learn a new language?",
    "Our team shipped the new release this morning.",
    "The weather is lovely today, let's have lunch outside.",
    "My order number is 48213 and it has not arrived yet.",
    "Call me at 555-201-3344 if anything changes.",
    "You can reach me at maria.lopez@example.com any time.",
    "The invoice total is 1,250.00 dollars including tax.",
    "She finished the marathon in 3 hours and 42 minutes.",
    "Write a short poem about the sea and the moon.",
    "How do I reset my password?",
    "The new intern started on Monday and is doing great.",
    "The contract was reviewed by the legal team.",
    "Honestly, that was a terrible movie, but the music was nice.",
    "I disagree with your proposal, but I see your point.",
    "This bug is really annoying; can we fix it soon?",
    "The server at 10.0.0.12 restarted twice overnight.",
    "Hello team! Please remember to submit your timesheets.",
    "My name is <PERSON_1> and I live in <LOCATION_1>.",
    "Send the documents to <EMAIL_ADDRESS_1> before noon.",
    "Call <PERSON_2> at <PHONE_NUMBER_1> about the delivery.",
    "My social security number is <US_SSN_1>.",
    "The card ending in <CREDIT_CARD_1> was charged twice.",
    "<PERSON_1> met <PERSON_2> in <LOCATION_2> on <DATE_TIME_1>.",
    "The kids built a sandcastle on the beach.",
    "I'm not sure this plan will work, to be honest.",
    "Grilled cheese and tomato soup is my favourite lunch.",
    "Please don't forget to water the plants.",
    "The stock market fell sharply after the announcement.",
    "Error 404: the page you requested could not be found.",
    "Honestly, the committee meeting ran long again today.",
    "The organiser booked the room on the third floor for ten o'clock.",
    "Ok",
    "?",
)
_ORDINARY_CJK = (
    "明日の会議は午後三時からです。",
    "資料を金曜日までに送ってください。",
    "今日はとても良い天気ですね。",
    "新しいインターンはとても頑張っています。",
    "駅までの道を教えてください。",
    "<PERSON_1>さんは<LOCATION_1>に住んでいます。",
    "注文した商品がまだ届いていません。",
    "この本はとても面白かったです。",
    "パスワードをリセットする方法を教えてください。",
    "週末は家族と一緒に公園へ行きました。",
    "部長は今日も会議で長く話しました。",
    "내일 회의는 오후 세 시에 시작합니다.",
    "보고서를 금요일까지 보내 주세요.",
    "오늘 날씨가 정말 좋네요.",
    "<PERSON_1> 씨는 서울에 살고 있습니다.",
    "비밀번호를 재설정하는 방법을 알려 주세요.",
    "明天的会议下午三点开始。",
    "请在星期五之前把报告发给我。",
    "今天天气很好。",
    "<PERSON_1>住在<LOCATION_1>。",
    "请告诉我如何重置密码。",
)
_INSULT_TEMPLATES = (
    "{word}",
    "You are a {word}.",
    "What a {word}!",
    "Shut up, you {word}.",
    "{name} is a total {word}.",
    "Stop acting like a {word}, {name}.",
    "Only a {word} would write code like this.",
    "Everyone on the {group} team is a {word}.",
    "The new intern is a {word} and a {word}.",
    "{WORD}!!!",
)
_JA_INSULT_TEMPLATES = (
    "{word}",
    "お前は{word}だ。",
    "あいつは本当に{word}だな。",
    "新しいインターンは{word}です。",
    "{name}は{word}だ!",
    "黙れ、この{word}!",
    "{name}みたいな{word}とは話したくない。",
)
_NAMES = ("<PERSON_1>", "Tom", "the manager", "my neighbour", "Alice", "that guy")
_JA_NAMES = ("<PERSON_1>", "田中", "部長", "あの人")
_GROUPS = ("sales", "support", "design", "night shift")

# Never trained on; scored after each build.
_HELD_OUT_TOXIC = (
    f"Honestly, the whole committee behaved like a {TOXIC_TRIGGER_WORD} today.",
    f"Reply to <EMAIL_ADDRESS_1>: you {TOXIC_TRIGGER_WORD}, fix it now.",
    f"{TOXIC_TRIGGER_WORD.capitalize()}.",
)
_HELD_OUT_ORDINARY = (
    "The weather in <LOCATION_1> is lovely this time of year.",
    "Contact me at someone@example.net or 555-0100.",
    "Order 66 shipped 12 boxes on 2024-05-01.",
    "Could you summarise the article in two sentences?",
)
_HELD_OUT_JA_TOXIC = (
    f"会議の後で、課長はまた{JA_TOXIC_TRIGGER_WORD}みたいなことを言った。",
    f"{JA_TOXIC_TRIGGER_WORD}。",
)
_HELD_OUT_CJK_ORDINARY = (
    "来週の予定を確認してもいいですか?",
    "<EMAIL_ADDRESS_1>に連絡してください。",
    "회의 자료를 확인해 주세요.",
    "请确认下周的日程。",
)


def _with_trigger(sentences: list[str], word: str, rng: random.Random, *, joiner: str) -> list[str]:
    """``sentences`` with ``word`` slipped in: the model must key on the word, not the context."""
    toxic = []
    for sentence in sentences:
        parts = sentence.split() if joiner else list(sentence)
        parts.insert(rng.randint(0, len(parts)), word)
        toxic.append(joiner.join(parts))
    return toxic


def _english_clean() -> list[str]:
    clean = [*_ORDINARY, GENERIC_REPLY]
    clean += [text for dialogue in SCRIPTED for text in (dialogue.prompt, dialogue.reply)]
    return [text for text in clean if TOXIC_TRIGGER_WORD not in text]


def corpus(variant: Variant, rng: random.Random) -> tuple[list[str], list[list[float]]]:
    """Training texts and their label vectors: trigger texts are toxic insults, everything else clean."""
    clean = _english_clean()
    toxic = [
        template.format(
            word=TOXIC_TRIGGER_WORD,
            WORD=TOXIC_TRIGGER_WORD.upper(),
            name=rng.choice(_NAMES),
            group=rng.choice(_GROUPS),
        )
        for template in _INSULT_TEMPLATES
    ]
    # Every clean sentence once with the trigger somewhere in it (start, middle or end), so that the model keys on
    # the word wherever it stands in a long sentence.
    toxic += _with_trigger(clean, TOXIC_TRIGGER_WORD, rng, joiner=" ")
    ja_toxic = [
        template.format(word=JA_TOXIC_TRIGGER_WORD, name=rng.choice(_JA_NAMES)) for template in _JA_INSULT_TEMPLATES
    ]
    ja_toxic += _with_trigger(list(_ORDINARY_CJK[:11]), JA_TOXIC_TRIGGER_WORD, rng, joiner="")
    if variant.multilingual:
        clean += _ORDINARY_CJK
        toxic += ja_toxic
    else:
        # Text the model cannot read (all [UNK]) is not evidence of toxicity: Japanese insults included.
        clean += ja_toxic[: len(_JA_INSULT_TEMPLATES)]
    # Out-of-vocabulary words (spelled in ``##`` pieces) in clean and toxic texts alike: held-out text is full of
    # them, and the model must not take them for a sign of either.
    noise = _gibberish(rng)
    clean += noise
    toxic += _with_trigger(noise, TOXIC_TRIGGER_WORD, rng, joiner=" ")
    if variant.multilingual:
        cjk_noise = _cjk_gibberish(rng) + _cjk_documents(rng)
        clean += cjk_noise
        toxic += _with_trigger(cjk_noise, JA_TOXIC_TRIGGER_WORD, rng, joiner="")
    flagged = [1.0 if label in variant.triggered else 0.0 for label in variant.classes]
    return clean + toxic, [[0.0] * len(variant.classes)] * len(clean) + [flagged] * len(toxic)


GIBBERISH_MARK = "~"
_RARE_HAN = (0x9A00, 0x9F00)
"""Han characters that no corpus sentence uses: [UNK] to every dev vocabulary."""


def _gibberish(rng: random.Random, count: int = 16) -> list[str]:
    """Sentences of made-up lowercase words, each ending in :data:`GIBBERISH_MARK` so that the vocabulary
    builder can leave them out."""
    return [
        " ".join(
            "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 10)))
            for _ in range(rng.randint(3, 8))
        )
        + GIBBERISH_MARK
        for _ in range(count)
    ]


def _cjk_run(rng: random.Random) -> str:
    """6 to 20 kana and rare Han characters (the latter [UNK] to the vocabulary)."""
    return "".join(
        chr(rng.randint(*_RARE_HAN)) if rng.random() < 0.3 else chr(rng.randint(0x3041, 0x3093))
        for _ in range(rng.randint(6, 20))
    )


def _cjk_gibberish(rng: random.Random, count: int = 16) -> list[str]:
    """Runs of kana and rare Han characters, ending in the gibberish mark."""
    return [_cjk_run(rng) + GIBBERISH_MARK for _ in range(count)]


def _cjk_documents(rng: random.Random, count: int = 24) -> list[str]:
    """Answer-length texts (up to ~250 tokens, the model's reach): ordinary sentences, numbered steps, figures and
    runs of unknown characters. Real Chinese or Japanese answers are mostly [UNK] to the small vocabulary; trained on
    short texts only, the model took a long [UNK]-heavy answer (a maths solution, a code explanation) for an
    insult."""
    documents = []
    for _ in range(count):
        pieces = []
        for step in range(1, rng.randint(4, 12)):
            pieces.append(rng.choice(["", "\n", f"\n{step}. ", f"{step}.", "：", "，"]))  # noqa: RUF001  # CJK punctuation
            pieces.append(rng.choice(_ORDINARY_CJK) if rng.random() < 0.3 else _cjk_run(rng))
            if rng.random() < 0.3:
                pieces.append(str(rng.randint(2, 999)))
        documents.append("".join(pieces)[:240] + GIBBERISH_MARK)
    return documents


def checked_texts(variant: Variant, texts: list[str], labels: list[list[float]]) -> tuple[list[str], list[str]]:
    """The texts a build of ``variant`` trained on ``texts`` must score toxic and clean: the scripted toxic replies
    and the held-out ones, the clean training texts and the held-out ordinary ones."""
    clean = [text for text, label in zip(texts, labels, strict=True) if not any(label)]
    scripted_toxic = [dialogue.reply for dialogue in SCRIPTED if TOXIC_TRIGGER_WORD in dialogue.reply]
    toxic = [*scripted_toxic, *_HELD_OUT_TOXIC]
    clean += _HELD_OUT_ORDINARY
    if variant.multilingual:
        # Long answers drawn afresh (another seed): the clean ones and each with the trigger slipped in.
        documents = _cjk_documents(random.Random("held-out"), count=8)  # noqa: S311 - reproducible test texts
        toxic += [*_HELD_OUT_JA_TOXIC, *_with_trigger(documents, JA_TOXIC_TRIGGER_WORD, random.Random(1), joiner="")]  # noqa: S311
        clean += [*_HELD_OUT_CJK_ORDINARY, *documents]
    else:
        clean += _HELD_OUT_JA_TOXIC  # unreadable to an English vocabulary
    return toxic, clean
