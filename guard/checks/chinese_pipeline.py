# ruff: noqa: RUF001  # fullwidth colons are how Chinese labels a field (NFKC folds them, raw text keeps them)
"""Chinese people and places from jieba's part-of-speech tags, as a spaCy pipeline presidio can read (``zh``).

spaCy's Chinese models are not on the registry (placeholders), so the ``zh`` extra brings jieba (MIT; its dictionary
ships inside the wheel): jieba segments a text (Chinese is written without spaces) and tags words, ``nr`` for
people's names and ``ns`` for places. This module cuts the text at jieba's words and finds:

* **LOCATION**: a run that starts at a place (``ns``) or an administrative word (…省, …市, …区, …县) and takes what
  Chinese addresses write after it, in their order: cities, districts and counties, towns, roads and streets
  (…路, …街, …大道), the house number (…号), building, floor and room (…座, …栋, …楼, …室) and the six-digit postcode;
  a word jieba mistakes for a name inside the run belongs to it when an address word follows.
* **PERSON**: jieba's names (``nr``, a family name and a given name it split joined) that start with a common
  Chinese family name (a closed list of family names, not of people), and a family name with one or two characters
  after it where a title follows (先生, 女士, 老师, 经理...) or a label comes before (姓名, 收件人, 我叫...).

Tuned on ``benchmarks/data/pii_zh/dev.jsonl`` (``make_dev.py``), never on the evaluation set ``zh.jsonl``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from guard.checks.segmented_pipeline import Entity, segmented_pipeline

__all__ = ["JIEBA_PIPELINE", "chinese_entities", "chinese_pipeline"]

JIEBA_PIPELINE = "jieba"
"""What ``PiiCheck.pipelines`` says reads Chinese when the ``zh`` extra is installed."""


def _split(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` (how the word lists are written)."""
    return text.split()


_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范"
    "金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪"
    "庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房"
    "滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁"
    "沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝封习萧洪哈谈邰郁鞠须丰巢蒯荆竺权逯盖益桓帅亢况归晋楚汝鄢钦冼隆戈慎厉燕"
    "宦蔺伏晁幸蓬储靖汲邴糜松井富乌焦巴弓牧隗山谷车侯宓蓬全郗班仰秋仲伊宫宁仇栾暴甘钭厉戎祖武符刘景詹束龙叶幸司韶郜黎蓟"
)
"""Common Chinese family names (one character each): a closed list of family names, not of people."""
_COMPOUND_SURNAMES = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "令狐",
)
_TITLES = (
    "先生",
    "女士",
    "小姐",
    "老师",
    "经理",
    "医生",
    "教授",
    "主任",
    "同学",
    "总监",
    "律师",
    "师傅",
    "阿姨",
    "大夫",
)
"""Forms of address and job titles written right after a name."""
_LABELS = (
    "姓名",
    "名字是",
    "名字叫",
    "我叫",
    "我是",
    "名叫",
    "收件人",
    "寄件人",
    "联系人",
    "负责人",
    "收货人",
    "发件人",
    "顾客",
    "客户",
    "朋友",
    "同事",
)
"""Words written right before a name (labels, "my name is", role words)."""
_COMMON_WORD = 200
"""A dictionary frequency from which a word jieba tags as a name is taken for an ordinary word (明白 "understand",
阳光 "sunshine", 王朝 "dynasty": 264 to 10875), unless a title or a label marks it as a name; private people's
names are rare there (张伟 0, 王建国 12)."""
_NOT_NAMES = frozenset([*_LABELS, *_TITLES, *_split("谢谢 高兴 方便 安全 明天 时间 成功 江湖")])
"""Common words jieba tags as names or that start with a family name's character."""
_ADMIN = ("特别行政区", "自治区", "自治州", "省", "市", "州", "盟", "地区", "区", "县", "旗", "镇", "乡", "村", "街道")
_ROAD = ("大道", "大街", "胡同", "路", "街", "道", "巷", "弄", "里")
_BUILDING = ("号楼", "单元", "号", "座", "栋", "幢", "楼", "层", "室")
_ADDRESS_WORDS = _ADMIN + _ROAD + _BUILDING
_SUFFIX_WORDS = frozenset(
    ["省", "市", "州", "盟", "区", "县", "旗", "镇", "乡", "村", "自治区", "自治州", "特别行政区"]
)
"""An administrative unit jieba cut off the name before it ("海燕/nr 县/n"): the two are one place."""
_PLACE_CUES = tuple(_split("住在 来自 搬到 搬到了 出生在 生于 位于 前往 调到 飞往 回到"))
"""Words written right before a place ("住在", "来自", "调到")."""
_COMMON_ADMIN_WORDS = frozenset(
    _split(
        """城市 超市 股市 上市 都市 门市 夜市 集市 黑市 菜市 地区 社区 小区 园区 景区 山区
        郊区 校区 误区 专区 灾区 禁区 市区 城区 县城 省份 农村 乡村 城镇 乡镇 街道 街区
        全省 全市 全县 本市 本省 该市 该县 外省"""
    )
)
"""Common nouns that end in an administrative word (超市 "supermarket", 小区 "housing estate"): no place alone."""
_PREPOSITIONS = "从在到往于自去来"
"""Characters jieba sometimes glues onto the name after them ("从玲/nr 市")."""
_HAN = re.compile(r"[\u4e00-\u9fff]+")
_NUMBERISH = re.compile(r"[0-9A-Za-z]{1,6}")


@cache
def _posseg() -> Any:
    import jieba  # type: ignore[import-untyped]  # no type information shipped
    import jieba.posseg  # type: ignore[import-untyped]

    jieba.setLogLevel(60)  # jieba logs its dictionary loading at INFO
    jieba.initialize()
    return jieba.posseg


def _frequency(word: str) -> int:
    """How often ``word`` occurs in jieba's dictionary (0 where it is not there)."""
    import jieba

    _posseg()  # loads the dictionary
    return int(jieba.dt.FREQ.get(word) or 0)


def _words(text: str) -> list[tuple[str, str, int, int]]:
    """(surface, tag, start, end) of each word jieba cuts, whitespace included (tag ``x``)."""
    words: list[tuple[str, str, int, int]] = []
    position = 0
    for pair in _posseg().cut(text):
        word = pair.word
        start = text.find(word, position)
        if start < 0:  # jieba never rewrites its input, but an offset must never be guessed
            return []
        words.append((word, pair.flag, start, start + len(word)))
        position = start + len(word)
    return words


def _is_address_word(word: str, tag: str) -> bool:
    return bool(_HAN.search(word)) and (tag == "ns" or word.endswith(_ADDRESS_WORDS))


def _starts_place(words: list[tuple[str, str, int, int]], index: int) -> bool:
    """Word ``index`` starts a place: jieba's place, an administrative word, or a name jieba cut its unit off."""
    word, tag, _, end = words[index]
    if word in _COMMON_ADMIN_WORDS:
        return False
    if tag == "ns" or (tag.startswith("n") and word.endswith(_ADMIN) and 1 < len(word) <= 8 and _HAN.fullmatch(word)):
        return True
    following = words[index + 1] if index + 1 < len(words) else None
    return (
        bool(_HAN.fullmatch(word)) and following is not None and following[2] == end and following[0] in _SUFFIX_WORDS
    )


def _places(text: str, words: list[tuple[str, str, int, int]]) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    index = 0
    while index < len(words):
        word, tag, start, _ = words[index]
        cued = text[max(0, start - 3) : start].endswith(_PLACE_CUES)
        if not _starts_place(words, index):
            # a word jieba does not know as a place ("合肥/n"), right after "住在", "调到"...
            if cued and tag in ("n", "nr", "ns", "nz") and 2 <= len(word) <= 4:
                found.append((start, words[index][3], "LOC"))
            index += 1
            continue
        if len(word) == 2 and word[0] in _PREPOSITIONS and tag.startswith("nr"):
            start += 1  # "从玲/nr 市": 从 is "from"
        last = index
        k = index + 1
        while k < len(words):
            surface, flag = words[k][0], words[k][1]
            following = next((w for w in words[k + 1 :] if not w[0].isspace()), None)
            if surface.isspace():
                k += 1
                continue
            if _is_address_word(surface, flag) or (
                # a number or letters before a building word, the six-digit postcode at the end
                (_NUMBERISH.fullmatch(surface) and following is not None and following[0].startswith(_BUILDING))
                or re.fullmatch(r"\d{6}", surface)
            ):
                last = k
                k += 1
                continue
            # a word jieba misreads (as a name, an adjective) inside the run, when an address word follows it
            if (
                _HAN.fullmatch(surface)
                and following is not None
                and following[2] == words[k][3]
                and _is_address_word(following[0], following[1])
            ):
                last = k
                k += 1
                continue
            break
        found.append((start, words[last][3], "LOC"))
        index = last + 1
    return found


def _surname_length(name: str) -> int:
    if name.startswith(_COMPOUND_SURNAMES):
        return 2
    return 1 if name[:1] in _SURNAMES else 0


def _people(text: str, words: list[tuple[str, str, int, int]]) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    index = 0
    while index < len(words):
        word, tag, start, end = words[index]
        # jieba's names, a family name and the given name it cut apart joined: 李/nr + 淑英/nrt, 张/q + 红梅/nr
        last = index
        while last + 1 < len(words) and words[last + 1][1].startswith("nr") and words[last + 1][2] == words[last][3]:
            last += 1
        if last > index and not tag.startswith("nr") and len(word) == 1 and _surname_length(word):
            tag = "nr"
        elif last == index and tag.startswith("nr") and len(word) == 1 and index + 1 < len(words):
            # a family name jieba read alone, before a word it glued the given name into ("廖/nr 彬请我/i")
            nxt = words[index + 1]
            if nxt[2] == end and _HAN.fullmatch(nxt[0]) and nxt[1] not in ("uj", "ul", "p", "v", "r", "c", "d"):
                take = len(nxt[0]) if len(nxt[0]) <= 2 else 1
                found_end = nxt[2] + take
                if _surname_length(word) and text[start:found_end] not in _NOT_NAMES:
                    found.append((start, found_end, "PERSON"))
                    index += 2 if take == len(nxt[0]) else 1
                    continue
        run = text[start : words[last][3]]
        before = text[max(0, start - 6) : start].rstrip(" :：")
        cued = before.endswith(_LABELS)
        after = text[words[last][3] :].lstrip(" ")
        titled = after.startswith(_TITLES)
        surname = _surname_length(run)
        common = _frequency(run) >= _COMMON_WORD and not (cued or titled)
        if (
            tag.startswith("nr")
            and surname
            and 2 <= len(run) <= 3 + (surname - 1)
            and run not in _NOT_NAMES
            and not common
        ):
            found.append((start, words[last][3], "PERSON"))
            index = last + 1
            continue
        # a family name and one or two characters that jieba read otherwise ("高/a 玉兰", "成静/a"), before a title
        # or after a label
        if (cued or titled) and _HAN.fullmatch(word) and _surname_length(word):
            length = len(word)
            k = index
            while (
                length < 2 and k + 1 < len(words) and words[k + 1][2] == words[k][3] and _HAN.fullmatch(words[k + 1][0])
            ):
                k += 1
                length += len(words[k][0])
            name = text[start : words[k][3]]
            if 2 <= len(name) <= 3 and name not in _NOT_NAMES and not name.endswith(_ADDRESS_WORDS):
                found.append((start, words[k][3], "PERSON"))
                index = k + 1
                continue
        index += 1
    return found


def chinese_entities(text: str) -> list[Entity]:
    """(start, end, label) of the people (``PERSON``) and places (``LOC``) in ``text``."""
    return _analyse(text)[1]


def _analyse(text: str) -> tuple[list[int], list[Entity]]:
    """jieba's word boundaries and the entities read from its words; where a person and a place overlap, the place
    wins, but for a one-word 'place' without a unit where a label announces a name ("收件人江利/ns")."""
    words = _words(text)
    people = _people(text, words)
    labelled = [p for p in people if text[max(0, p[0] - 6) : p[0]].rstrip(" :：").endswith(_LABELS)]
    starts = {start: word for word, _, start, _ in words}
    places = [
        (s, e, label)
        for s, e, label in _places(text, words)
        if not (
            starts.get(s) == text[s:e]
            and not text[s:e].endswith(_ADMIN)
            and any(a < e and s < b for a, b, _ in labelled)
        )
    ]
    people = [p for p in people if all(p[1] <= s or p[0] >= e for s, e, _ in places)]
    return [p for _, _, s, e in words for p in (s, e)], sorted(places + people)


def chinese_pipeline() -> Any:
    """A blank spaCy pipeline whose tokenizer cuts at jieba's words and whose entities are jieba's people and places
    (labels ``PERSON`` and ``LOC``, which presidio's default mapping knows)."""
    _posseg()  # loads jieba's dictionary (~1.4 s) now, at PiiCheck.load, not on the first request
    return segmented_pipeline("guard_chinese_entities", _analyse)
