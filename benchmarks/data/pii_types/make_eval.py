"""Generator B (evaluation; never tuned on): the thirteen PII types of issue 17 in form-like prose. Writes eval.jsonl.

Written independently of generator A (make_tune.py) and sharing nothing with it: no template, no value generator,
no code. Values are built here from the published formats, with Faker used only for name parts and places of other
locales (``first_name``/``last_name`` of en_GB, en_IE, en_CA; ``city`` of en_GB/en_AU; ``street_address``):

* names as "Title First Last", "Last, First", "First M. Last"; places as cities, UK/AU towns and street addresses;
* SSNs from the SSA's area/group/serial rules (no 000/666/9xx area, no 00 group, no 0000 serial), written with
  dashes, spaces or dots; ITINs from the IRS's 9XX-(50..65|70..88|90..92|94..99)-XXXX ranges;
* passports as the State Department's 9 digits or letter + 8 digits; driver licences in the formats of Illinois
  (letter + 11 digits), Washington (WDL + 9), Pennsylvania (8 digits), Ohio (2 letters + 6 digits); bank accounts of
  8..17 digits beside an ABA routing number; NHS numbers with the modulus-11 check digit, dashed or plain;
* cards with the Luhn digit on Visa/Mastercard/Amex prefixes in groups; IBANs of DE/FR/NL/ES with the ISO 7064
  mod-97 check; IPv4 and IPv6 written by hand; e-mails as user@domain and as "user at domain dot org" spellings;
  phones as "(NXX) NXX-XXXX", "+1 NXX NXX XXXX", "NXX.NXX.XXXX" and UK "+44 20 xxxx xxxx".

    python benchmarks/data/pii_types/make_eval.py

Rows: ``{"text", "spans": [{"type", "start", "end"}], "lang": "en", "source": "B"}``; rows with no span are negatives.
"""

from __future__ import annotations

import json
import random
import string
from collections import Counter
from pathlib import Path

from faker import Faker

SEED = 90210
ROWS_PER_FORM = 60

rand = random.Random(SEED)
people = [Faker(locale) for locale in ("en_GB", "en_IE", "en_CA")]
places = [Faker(locale) for locale in ("en_GB", "en_AU")]
for index, generator in enumerate(people + places):
    generator.seed_instance(SEED + index)


def digits(n: int) -> str:
    return "".join(rand.choice(string.digits) for _ in range(n))


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + digits(length - len(prefix) - 1)
    total = 0
    for i, char in enumerate(reversed(body)):
        d = int(char) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def person() -> str:
    who = rand.choice(people)
    first, last = who.first_name(), who.last_name()
    form = rand.randrange(3)
    if form == 0:
        return f"{rand.choice(['Mr', 'Ms', 'Dr', 'Mrs'])} {first} {last}"
    if form == 1:
        return f"{first} {rand.choice(string.ascii_uppercase)}. {last}"
    return f"{first} {last}"


def place() -> str:
    where = rand.choice(places)
    return rand.choice([where.city(), where.city(), where.street_address()])


def ssn() -> str:
    area = rand.choice([a for a in range(1, 900) if a != 666])
    value = f"{area:03d}{rand.randint(1, 99):02d}{rand.randint(1, 9999):04d}"
    sep = rand.choice(["-", " ", "."])
    return sep.join([value[:3], value[3:5], value[5:]])


def itin() -> str:
    group = rand.choice([*range(50, 66), *range(70, 89), 90, 91, 92, *range(94, 100)])
    return f"9{digits(2)}-{group}-{digits(4)}"


def passport() -> str:
    return rand.choice([digits(9), rand.choice(string.ascii_uppercase) + digits(8)])


def licence() -> str:
    letters = string.ascii_uppercase
    return rand.choice(
        [
            rand.choice(letters) + digits(11),
            "WDL" + "".join(rand.choice(letters + string.digits) for _ in range(9)),
            digits(8),
            rand.choice(letters) + rand.choice(letters) + digits(6),
        ]
    )


def account() -> str:
    return digits(rand.randint(8, 17))


def nhs() -> str:
    while True:
        body = digits(9)
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11
        if check == 10:
            continue
        number = body + str(0 if check == 11 else check)
        return rand.choice(
            [number, f"{number[:3]}-{number[3:6]}-{number[6:]}", f"{number[:3]} {number[3:6]} {number[6:]}"]
        )


def card() -> str:
    kind = rand.randrange(3)
    if kind == 2:
        number = luhn_complete(rand.choice(["34", "37"]), 15)
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    number = luhn_complete(rand.choice(["4", "51", "53", "55"]), 16)
    sep = rand.choice([" ", "-", ""])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def iban() -> str:
    country, length = rand.choice([("DE", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country == "NL":
        bban = "".join(rand.choice(string.ascii_uppercase) for _ in range(4)) + digits(10)
    else:
        bban = digits(length)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    value = f"{country}{check:02d}{bban}"
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rand.random() < 0.5 else value


def ip() -> str:
    if rand.random() < 0.7:
        return ".".join(str(rand.randint(1, 254)) for _ in range(4))
    return ":".join(f"{rand.randint(0, 0xFFFF):x}" for _ in range(8))


def email() -> str:
    who = rand.choice(people)
    user = f"{who.first_name().lower()}{rand.choice(['.', '_', ''])}{who.last_name().lower()}"
    domain = rand.choice(["mailbox.org", "example.net", "contoso.com", "uni-leeds.ac.uk"])
    if rand.random() < 0.3:
        host, tld = domain.rsplit(".", 1)
        return f"{user} at {host} dot {tld}" if rand.random() < 0.5 else f"{user}[at]{host}[dot]{tld}"
    return f"{user}@{domain}"


def phone() -> str:
    area, exchange, line = rand.randint(201, 989), rand.randint(200, 999), digits(4)
    return rand.choice(
        [
            f"({area}) {exchange}-{line}",
            f"+1 {area} {exchange} {line}",
            f"{area}.{exchange}.{line}",
            f"+44 20 {digits(4)} {digits(4)}",
        ]
    )


FORMS: list[list[tuple[str, str | None]]] = [
    [("Applicant: ", None), ("", "PERSON"), ("; place of birth: ", None), ("", "LOCATION"), (".", None)],
    [("Taxpayer SSN ", None), ("", "US_SSN"), (" on file for ", None), ("", "PERSON"), (".", None)],
    [("Form W-7 approved, ITIN ", None), ("", "US_ITIN"), (" assigned.", None)],
    [
        ("Travel document: US passport ", None),
        ("", "US_PASSPORT"),
        (", issued in ", None),
        ("", "LOCATION"),
        (".", None),
    ],
    [("Licence check: driver's licence ", None), ("", "US_DRIVER_LICENSE"), (" is valid until 2029.", None)],
    [("Direct deposit to routing 021000021, account ", None), ("", "US_BANK_NUMBER"), (".", None)],
    [("Patient NHS number ", None), ("", "UK_NHS"), (" registered with the local GP practice.", None)],
    [("Payment by ", None), ("", "CREDIT_CARD"), (" authorised for ", None), ("", "PERSON"), (".", None)],
    [("Refund to IBAN ", None), ("", "IBAN_CODE"), (" within five working days.", None)],
    [("Blocked request from ", None), ("", "IP_ADDRESS"), (" at 03:12 UTC.", None)],
    [("Contact: ", None), ("", "EMAIL_ADDRESS"), (", tel. ", None), ("", "PHONE_NUMBER"), (".", None)],
    [("Delivery address: ", None), ("", "LOCATION"), (". Recipient ", None), ("", "PERSON"), (".", None)],
    [
        ("The employee's social security no. is ", None),
        ("", "US_SSN"),
        (" and the mobile is ", None),
        ("", "PHONE_NUMBER"),
        (".", None),
    ],
]
BUILDERS = {
    "PERSON": person,
    "LOCATION": place,
    "US_SSN": ssn,
    "US_ITIN": itin,
    "US_PASSPORT": passport,
    "US_DRIVER_LICENSE": licence,
    "US_BANK_NUMBER": account,
    "UK_NHS": nhs,
    "CREDIT_CARD": card,
    "IBAN_CODE": iban,
    "IP_ADDRESS": ip,
    "EMAIL_ADDRESS": email,
    "PHONE_NUMBER": phone,
}
NEGATIVES = [
    "Hello! Sorry to bother you again.",
    "Human: summarise this. AI: Sure, here it is.",
    "Don't be an idiot, read the manual.",
    "The ReAct agent loops between thought and action.",
    "Forward Port 80:443 and restart nginx.",
    "Build 4.2.1 fixed the crash on start-up.",
    "Order 20 units by Friday.",
    "Assistant: happy to help with that.",
]


def main() -> None:
    rows = []
    for form in FORMS:
        for _ in range(ROWS_PER_FORM):
            text, spans = "", []
            for literal, slot in form:
                text += literal
                if slot is not None:
                    value = BUILDERS[slot]()
                    spans.append({"type": slot, "start": len(text), "end": len(text) + len(value)})
                    text += value
            rows.append({"text": text, "spans": spans, "lang": "en", "source": "B"})
    rows += [{"text": t, "spans": [], "lang": "en", "source": "B"} for t in NEGATIVES]
    rand.shuffle(rows)
    out = Path(__file__).with_name("eval.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = Counter(s["type"] for r in rows for s in r["spans"])
    assert all(counts[entity] >= 50 for entity in BUILDERS), counts
    print(out.name, counts)


if __name__ == "__main__":
    main()
