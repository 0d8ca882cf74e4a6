"""Generator A (tuning): sentences with the thirteen PII types of issue 17, for tuning recognizers. Writes tune.jsonl.

Independent of generator B (make_eval.py, the evaluation set): written separately, sharing no template, no value
generator and no code. Here values come from **Faker's en_US providers** (``name``, ``city``, ``ssn``, ``itin``,
``passport_number``, ``phone_number``, ``credit_card_number``, ``iban``, ``ipv4``...) and a few format helpers for
what Faker lacks (state driver licences, NHS numbers, obfuscated e-mails); sentences are short support-chat
requests. Generator B writes its own value builders from the published formats and longer form-like sentences.

A second part (``FORM_TEMPLATES``, added for issue 17's second round) is form-like too, written here without reading
B's templates: labelled fields ("Account holder:", "Birthplace -", "Payee ="), inline appositions, US street
addresses, IBANs printed in groups of four; its names and towns come from Faker's en_US, de_DE, fr_FR, es_ES, it_IT,
nl_NL and sv_SE providers (B draws on en_GB/en_IE/en_CA/en_AU, none of these), its IBANs from Faker's de_DE, fr_FR,
es_ES, it_IT and nl_NL ``iban`` grouped by four.

A third part (``ADDRESS_TEMPLATES``, issue 17's third round) writes street addresses in the layouts of other postal
services than the US one, from their published conventions and not from B: thoroughfare types beyond "Street"/"Road"
(Rise, Parade, Meadows, Crescent, Wynd...), flat/unit/studio lines above a street or a named building, Australian
``unit/house`` numbers with a state code and four-digit postcode, UK outward+inward postcodes, Canadian ``A1A 1A1``
postcodes with a province code, Irish Eircodes, and towns written with an abbreviated "St."/"Mt.". Street stems and
towns come from the same Faker locales as the second part; the part has its own seed, so the first two parts' rows
are unchanged.

    python benchmarks/data/pii_types/make_tune.py

Rows: ``{"text", "spans": [{"type", "start", "end"}], "lang": "en", "source": "A"}``; rows with no span are negatives
(greetings, role words, code identifiers, ports) that must not be tagged.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from faker import Faker

if os.environ.get("PYTHONHASHSEED") != "0":  # Faker's it_IT towns are drawn from a set: pin string hashing
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

SEED = 1701
PER_TEMPLATE = 50

fake = Faker("en_US")
fake.seed_instance(SEED)
FORM_LOCALES = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "sv_SE"]
IBAN_LOCALES = ["de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"]
fakes = {locale: Faker(locale) for locale in sorted({*FORM_LOCALES, *IBAN_LOCALES})}
for index, other in enumerate(fakes.values()):
    other.seed_instance(SEED + 1 + index)
rng = random.Random(SEED)
SPELLED = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def spaced_ssn() -> str:
    return fake.ssn().replace("-", " ")


def obfuscated_email() -> str:
    user, domain = fake.email().split("@")
    host, tld = domain.rsplit(".", 1)
    return rng.choice([f"{user}@{host}[DOT]{tld}", f"{user} [at] {host} [dot] {tld}", f"{user}(at){host}(dot){tld}"])


def spelled_phone() -> str:
    digits = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    return " ".join(SPELLED[int(d)] for d in digits)


def driver_license() -> str:
    return rng.choice(
        [
            f"{rng.choice('ABCDEFGHJKLMNPRSTVWXYZ')}{rng.randint(0, 9999999):07d}",  # California
            f"{rng.randint(100000000, 999999999)}",  # New York
            f"{rng.choice('ABCDEFGHJKLMNPRSTVWXYZ')}{rng.randint(0, 999999999999):012d}",  # Florida
        ]
    )


def nhs_number() -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            text = "".join(map(str, [*digits, check]))
            return f"{text[:3]} {text[3:6]} {text[6:]}"


def form_name() -> str:
    """A full name from one of several locales, sometimes with a courtesy title (part of the name span)."""
    name = fakes[rng.choice(FORM_LOCALES)].name()
    title = rng.choice(["", "", "", "Mr. ", "Mrs. ", "Ms ", "Dr ", "Prof. "])
    return name if "." in name or not name.split()[0].istitle() else title + name  # Faker's own prefix: no second


def town() -> str:
    return fakes[rng.choice(FORM_LOCALES)].city()


def us_address() -> str:
    sep = rng.choice([", ", ", ", "\n"])
    return f"{fake.street_address()}{sep}{fake.city()}, {fake.state_abbr()} {fake.zipcode()}"


def grouped_iban() -> str:
    """An IBAN in its printed form: groups of four separated by spaces (ISO 13616's paper format)."""
    compact = fakes[rng.choice(IBAN_LOCALES)].iban()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def bank_account() -> str:
    return str(rng.randint(10**7, 10**12 - 1))


VALUES: dict[str, Callable[[], str]] = {
    "PERSON": fake.name,
    "LOCATION": lambda: rng.choice([fake.city(), fake.state(), fake.country()]),
    "EMAIL_ADDRESS": fake.email,
    "EMAIL_OBFUSCATED": obfuscated_email,
    "PHONE_NUMBER": fake.phone_number,
    "PHONE_SPELLED": spelled_phone,
    "US_SSN": fake.ssn,
    "US_SSN_SPACED": spaced_ssn,
    "US_ITIN": fake.itin,
    "US_PASSPORT": fake.passport_number,
    "US_DRIVER_LICENSE": driver_license,
    "US_BANK_NUMBER": bank_account,
    "CREDIT_CARD": fake.credit_card_number,
    "IBAN_CODE": fake.iban,
    "IP_ADDRESS": lambda: rng.choice([fake.ipv4(), fake.ipv4_public(), fake.ipv6()]),
    "UK_NHS": nhs_number,
    "NAME": form_name,
    "TOWN": town,
    "ADDRESS": us_address,
    "IBAN_GROUPED": grouped_iban,
}
LABEL = {
    "EMAIL_OBFUSCATED": "EMAIL_ADDRESS",
    "PHONE_SPELLED": "PHONE_NUMBER",
    "US_SSN_SPACED": "US_SSN",
    "NAME": "PERSON",
    "TOWN": "LOCATION",
    "ADDRESS": "LOCATION",
    "IBAN_GROUPED": "IBAN_CODE",
}

TEMPLATES = [
    "Hi, I'm {PERSON} and I can't log in.",
    "Please ask {PERSON} to call me back.",
    "Ship it to our office in {LOCATION}, please.",
    "We are moving from {LOCATION} to {LOCATION} next month.",
    "My email is {EMAIL_ADDRESS}, send the receipt there.",
    "Reach me at {EMAIL_OBFUSCATED} if the form fails.",
    "My phone number is {PHONE_NUMBER}.",
    "Call me on {PHONE_SPELLED} after six.",
    "My SSN is {US_SSN}.",
    "Social security number: {US_SSN_SPACED}",
    "My ITIN is {US_ITIN} for the tax form.",
    "Individual taxpayer identification number {US_ITIN}, please update it.",
    "My passport number is {US_PASSPORT}.",
    "Passport no. {US_PASSPORT} expires next year.",
    "Driver's license {US_DRIVER_LICENSE} was suspended by mistake.",
    "My driver license number is {US_DRIVER_LICENSE}.",
    "Bank account {US_BANK_NUMBER} was charged twice.",
    "Please deposit it into checking account number {US_BANK_NUMBER}.",
    "Card {CREDIT_CARD} was declined.",
    "My IBAN is {IBAN_CODE}.",
    "The login came from IP {IP_ADDRESS}.",
    "My NHS number is {UK_NHS}.",
    "NHS no {UK_NHS}, GP surgery in {LOCATION}.",
    "{PERSON} from {LOCATION} paid with card {CREDIT_CARD}.",
]

FORM_TEMPLATES = [
    "Account holder: {NAME}\nBirthplace: {TOWN}\nIBAN: {IBAN_GROUPED}",
    "Payee = {NAME} | Bank city = {TOWN} | IBAN = {IBAN_GROUPED}",
    "Policyholder - {NAME}; residence - {TOWN}; date of issue - 2019-03-02.",
    "Claimant: {NAME}, resident in {TOWN}, claims for water damage.",
    "Tenant name {NAME}, previous address {ADDRESS}.",
    "Emergency contact: {NAME} (sister), lives at {ADDRESS}",
    "Next of kin — {NAME}. Town of birth — {TOWN}.",
    "Transfer to {NAME}, IBAN {IBAN_GROUPED}, reference INV-2231.",
    "The guarantor, {NAME}, was born in {TOWN} and now lives in {TOWN}.",
    "Student: {NAME} / Hometown: {TOWN} / Year: 2",
    "Please update the mailing address to {ADDRESS}.",
    "Refund the deposit to {IBAN_GROUPED} (holder {NAME}).",
    "Passenger {NAME}, origin {TOWN}, destination {TOWN}.",
    "Cardholder name: {NAME}. Billing address: {ADDRESS}.",
    "Witness statement signed by {NAME} in {TOWN} on 12 May.",
    "Our new branch in {TOWN} opens Monday; ask {NAME} for keys.",
    "Insured person: {NAME}. Country of residence: {LOCATION}.",
    "IBAN {IBAN_GROUPED} belongs to {NAME} of {TOWN}.",
]
"""Form-like prose: labelled fields with several separators, appositions, addresses, grouped IBANs."""

FORM_NEGATIVES = [
    "Applicant status: Approved. Place of birth: not stated.",
    "Beneficiary: see attached sheet; Residence: unchanged.",
    "Account holder type - Business | Branch - Head Office",
    "Next of kin: None given. Town of birth: Unknown.",
    "Cardholder name: as printed on the card.",
    "Payment reference: Invoice 7781, Due: Friday.",
]

NEGATIVES = [
    "Hi, can you help me with my homework?",
    "Sorry, I didn't get that.",
    "Human: what's the weather like? AI: I can't check the weather.",
    "You are an idiot. Idiot!",
    "Explain the ReAct prompting pattern.",
    "Map Port 80:443 on the load balancer.",
    "Thanks, that fixed it. Cheers!",
    "Use the Assistant role for the model turns.",
    "Okay, great, let's continue.",
    "Set the timeout to 30 seconds and retry.",
]


def render(template: str) -> dict[str, object]:
    text, spans, cursor = "", [], 0
    for match in re.finditer(r"\{([A-Z_]+)\}", template):
        text += template[cursor : match.start()]
        slot = match.group(1)
        value = VALUES[slot]()
        spans.append({"type": LABEL.get(slot, slot), "start": len(text), "end": len(text) + len(value)})
        text += value
        cursor = match.end()
    return {"text": text + template[cursor:], "spans": spans, "lang": "en", "source": "A"}


# Third part: street addresses in other postal layouts (own seed: the rows above stay as they were).
arng = random.Random(SEED + 3)
afakes = {locale: Faker(locale) for locale in FORM_LOCALES}
for index, other in enumerate(afakes.values()):
    other.seed_instance(SEED + 30 + index)


def words(text: str) -> list[str]:
    return text.split()


THOROUGHFARES = words(
    """Street Road Avenue Lane Drive Close Crescent Grove Rise Parade Terrace Mews Gardens Walk Way Place Row Square
    Hill Vale View Meadows Meadow Green Park Court Heights Ridge Circuit Esplanade Promenade Wynd Brae Chase Croft
    Fields Hollow Glen Dale Bank Brow Approach Boulevard Highway Loop Trail Track Quay Wharf Orchard Manor Mount Crest
    Point Landing Pass Path Spur Cove Creek Valley Glade Retreat Outlook Link Grange Fold Garth Mead Lea"""
)
BUILDINGS = words("Court House Mansions Lodge Tower Point Heights Place")
UNITS = ["Flat", "Flat", "Apartment", "Unit", "Studio", "Suite", "Apt", "Unit"]
AU_STATES = words("NSW VIC QLD WA SA TAS ACT NT")
CA_PROVINCES = words("ON QC BC AB MB SK NS NB NL PE")
LETTERS = "ABCDEFGHJKLMNPRSTUVWXY"
EIRCODE_CHARS = "0123456789ACDEFHKNPRTVWXY"


def _stem() -> str:
    fake_ = afakes[arng.choice(FORM_LOCALES)]
    return arng.choice([fake_.last_name(), fake_.first_name(), fake_.last_name()]).split()[-1]


def street() -> str:
    kind = arng.choice(THOROUGHFARES)
    return f"{_stem()} {kind if arng.random() > 0.15 else kind.lower()}"


def house_number() -> str:
    number = str(arng.choice([arng.randint(1, 99), arng.randint(1, 99), arng.randint(100, 999)]))
    return number + arng.choice(["", "", "", "", "A", "B", "a"])


def postal_town() -> str:
    return afakes[arng.choice(FORM_LOCALES)].city()


def uk_postcode() -> str:
    """Outward code A9, A99, AA9, AA99, A9A or AA9A, then the inward code 9AA."""
    area = arng.choice(LETTERS) + arng.choice(["", arng.choice(LETTERS)])
    district = arng.choice(
        [str(arng.randint(1, 9)), str(arng.randint(10, 29)), f"{arng.randint(1, 9)}{arng.choice(LETTERS)}"]
    )
    return f"{area}{district} {arng.randint(0, 9)}{arng.choice(LETTERS)}{arng.choice(LETTERS)}"


def ca_postcode() -> str:
    return (
        f"{arng.choice(LETTERS)}{arng.randint(0, 9)}{arng.choice(LETTERS)} "
        f"{arng.randint(0, 9)}{arng.choice(LETTERS)}{arng.randint(0, 9)}"
    )


def eircode() -> str:
    """A routing key (a letter and two digits) and a four-character unique identifier."""
    unique = "".join(arng.choice(EIRCODE_CHARS) for _ in range(4))
    return f"{arng.choice(LETTERS)}{arng.randint(10, 99)} {unique}"


def street_line() -> str:
    """A house number and a street, the Australian way with a unit ("4/27 Wattle Parade") now and then."""
    if arng.random() < 0.2:
        return f"{arng.randint(1, 40)}/{arng.randint(1, 400)} {street()}"
    return f"{house_number()} {street()}"


def unit_line() -> str:
    return f"{arng.choice(UNITS)} {arng.randint(1, 120)}{arng.choice(['', '', 'B'])}"


def intl_address() -> str:
    """A whole address: unit/building line (sometimes), street line, town, postcode of one of four layouts."""
    layout = arng.choice(["uk", "uk", "au", "ca", "ie"])
    sep = arng.choice([", ", "\n"])
    lines = []
    if arng.random() < 0.4:
        lines.append(unit_line())
        if arng.random() < 0.3:
            lines.append(f"{_stem()} {arng.choice(BUILDINGS)}")
    lines.append(street() if lines and arng.random() < 0.4 else street_line())
    town_ = postal_town()
    if layout == "uk":
        lines += [town_, uk_postcode()] if sep == "\n" else [f"{town_} {uk_postcode()}"]
    elif layout == "au":
        lines.append(f"{town_} {arng.choice(AU_STATES)} {arng.randint(800, 7999):04d}")
    elif layout == "ca":
        lines.append(f"{town_} {arng.choice(CA_PROVINCES)} {ca_postcode()}")
    else:
        lines += [town_, f"Co. {_stem()}"] if arng.random() < 0.3 else [town_]
        lines.append(eircode())
    return sep.join(lines)


def unit_street() -> str:
    return f"{unit_line()}, {street_line()}" if arng.random() < 0.6 else f"{unit_line()}\n{street()}"


def saint_town() -> str:
    return f"{arng.choice(['St.', 'St', 'Mt.', 'Ft.'])} {_stem()}"


ADDRESS_VALUES: dict[str, Callable[[], str]] = {
    "INTL_ADDRESS": intl_address,
    "STREET_LINE": street_line,
    "UNIT_STREET": unit_street,
    "SAINT_TOWN": saint_town,
    "NAME": lambda: afakes[arng.choice(FORM_LOCALES)].name(),  # noqa: PLW0108  # the locale is drawn per call
}
ADDRESS_TEMPLATES = [
    "Please post the replacement card to {INTL_ADDRESS}.",
    "Correspondence address:\n{INTL_ADDRESS}\nThanks!",
    "I moved to {STREET_LINE} last spring, so update my file.",
    "The courier left the box at {STREET_LINE} instead of my door.",
    "Deliver to: {NAME}, {INTL_ADDRESS} (ring twice)",
    "Her flat is {UNIT_STREET}, near the bakery.",
    "We met at {STREET_LINE} and then drove to {SAINT_TOWN}.",
    "Forwarding address for {NAME} - {INTL_ADDRESS}",
    "Is {STREET_LINE} inside your delivery zone?",
    "Send the keys to {UNIT_STREET} before Friday.",
    "My parents still live in {SAINT_TOWN}, at {STREET_LINE}.",
    "Registered office: {INTL_ADDRESS}",
]
"""Street addresses in UK, Irish, Australian and Canadian layouts, in sentences and labelled lines."""
ADDRESS_NEGATIVES = [
    "Chapter 3 Key Points is the part to read first.",
    "We shipped 12 Park benches and 4 Garden chairs.",
    "Top 10 Travel Tips for Spring",
    "Version 2 Green Build passed all checks.",
    "Meet me at Gate 12 after the talk.",
]


def render_address(template: str) -> dict[str, object]:
    text, spans, cursor = "", [], 0
    for match in re.finditer(r"\{([A-Z_]+)\}", template):
        text += template[cursor : match.start()]
        value = ADDRESS_VALUES[match.group(1)]()
        entity = "PERSON" if match.group(1) == "NAME" else "LOCATION"
        spans.append({"type": entity, "start": len(text), "end": len(text) + len(value)})
        text += value
        cursor = match.end()
    return {"text": text + template[cursor:], "spans": spans, "lang": "en", "source": "A"}


def main() -> None:
    rows = [render(t) for t in TEMPLATES for _ in range(PER_TEMPLATE)]
    rows += [render(t) for t in FORM_TEMPLATES for _ in range(PER_TEMPLATE)]
    rows += [{"text": t, "spans": [], "lang": "en", "source": "A"} for t in [*NEGATIVES, *FORM_NEGATIVES]]
    rng.shuffle(rows)
    third = [render_address(t) for t in ADDRESS_TEMPLATES for _ in range(PER_TEMPLATE // 2)]
    third += [{"text": t, "spans": [], "lang": "en", "source": "A"} for t in ADDRESS_NEGATIVES]
    arng.shuffle(third)
    rows += third
    out = Path(__file__).with_name("tune.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(out.name, Counter(s["type"] for r in rows for s in r["spans"]))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
