"""Generate the synthetic secrets set (dev.jsonl for tuning, eval.jsonl for the figures in the README).

Standalone on purpose: it imports nothing from guard (written before the secrets check existed), only the standard
library. Every credential is random, made in the format its provider documents (the document is named beside each
generator below); none is a real credential. Look-alikes are values a developer pastes every day that are *not*
credentials (commit hashes, UUIDs, checksums, base64 of ordinary text, high-entropy identifiers).

Rerun::

    python benchmarks/data/secrets/make_dataset.py

Rows: ``{"text", "label": "secret"|"lookalike", "kind", "secrets": [value, ...], "spans": [{"type", "start", "end"}]}``
where ``secrets`` are the substrings that must never be stored or passed on raw (empty for look-alikes) and
``spans`` locate them (offsets in code points). Deterministic for a given seed.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path

SEEDS = {"dev.jsonl": 17, "eval.jsonl": 2026}
PER_KIND = 8
"""Rows per credential format and per look-alike kind in each split."""

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = string.ascii_letters + string.digits + "-_"
HEX = "0123456789abcdef"
BASE32 = string.ascii_uppercase + "234567"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- credentials, one generator per documented format ------------------------------------------------------------
# Each returns (text, [secret substrings]). Sentence frames vary: prose, shell, config files, code.


def aws_access_key(rng: random.Random) -> tuple[str, list[str]]:
    # AWS IAM User Guide, "Understanding unique ID prefixes" / "Managing access keys": access key IDs are 20
    # characters, AKIA (long-term) or ASIA (temporary, STS) + 16 upper-case letters/digits; the secret access key is
    # 40 characters of base64 alphabet (the guide's example: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY).
    key_id = rng.choice(["AKIA", "ASIA"]) + pick(rng, BASE32, 16)
    secret = pick(rng, B64, 40)
    frames = [
        "export AWS_ACCESS_KEY_ID={k}\nexport AWS_SECRET_ACCESS_KEY={s}",
        "[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\nregion = eu-west-1",
        "my boto3 client fails with AccessDenied, I use key {k} and secret {s}, what is wrong?",
        'session = boto3.Session(aws_access_key_id="{k}", aws_secret_access_key="{s}")',
    ]
    return rng.choice(frames).format(k=key_id, s=secret), [key_id, secret]


def aws_key_id_only(rng: random.Random) -> tuple[str, list[str]]:
    # Same AWS document: an access key ID on its own (it identifies the key; leaked IDs are reported by scanners).
    key_id = "AKIA" + pick(rng, BASE32, 16)
    frames = ["Which IAM user owns access key {k}?", "The CloudTrail event shows accessKeyId {k} at 03:12."]
    return rng.choice(frames).format(k=key_id), [key_id]


def gcp_api_key(rng: random.Random) -> tuple[str, list[str]]:
    # Google Cloud docs, "Manage API keys": keys are 39 characters starting with "AIza" (AIza + 35 of [0-9A-Za-z_-]).
    key = "AIza" + pick(rng, URLSAFE, 35)
    frames = [
        "fetch(`https://maps.googleapis.com/maps/api/geocode/json?address=Paris&key={k}`)",
        "GOOGLE_API_KEY={k}",
        "The Gemini call returns 403 with my key {k}, is the API enabled?",
    ]
    return rng.choice(frames).format(k=key), [key]


def gcp_service_account(rng: random.Random) -> tuple[str, list[str]]:
    # Google Cloud IAM docs, "Create and delete service account keys": the JSON key file has "type":
    # "service_account", "private_key_id" (40 hex) and "private_key" (a PKCS#8 PEM block, RFC 7468).
    key_id = pick(rng, HEX, 40)
    lines = [pick(rng, B64, 64) for _ in range(4)]
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
    project = f"demo-project-{rng.randint(100, 999)}"
    text = json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": f"svc@{project}.iam.gserviceaccount.com",
        }
    )
    return text, [key_id, *lines]  # json.dumps writes the newlines as \n, as in a downloaded key file


def gcp_oauth_secret(rng: random.Random) -> tuple[str, list[str]]:
    # Google Identity docs (OAuth 2.0 client credentials): client secrets are issued with the "GOCSPX-" prefix.
    secret = "GOCSPX-" + pick(rng, URLSAFE, 28)
    frames = ['"client_secret": "{s}"', "client secret is {s} for the web client"]
    return rng.choice(frames).format(s=secret), [secret]


def azure_storage(rng: random.Random) -> tuple[str, list[str]]:
    # Azure Storage docs, "Configure a connection string for an Azure storage account": DefaultEndpointsProtocol=
    # https;AccountName=...;AccountKey=<base64 of 64 bytes, 88 characters>;EndpointSuffix=core.windows.net
    key = base64.b64encode(rng.randbytes(64)).decode()
    account = "stor" + pick(rng, string.ascii_lowercase + string.digits, 8)
    text = f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};EndpointSuffix=core.windows.net"
    frame = rng.choice(["{c}", "conn_str = '{c}'", "Why does BlobServiceClient reject this: {c}"])
    return frame.format(c=text), [key]


def azure_service_bus(rng: random.Random) -> tuple[str, list[str]]:
    # Azure Service Bus docs, "Get a connection string": Endpoint=sb://<ns>.servicebus.windows.net/;
    # SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=<base64 of 32 bytes, 44 characters>
    key = base64.b64encode(rng.randbytes(32)).decode()
    ns = "ns-" + pick(rng, string.ascii_lowercase, 8)
    text = (
        f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={key}"
    )
    return rng.choice(["SERVICEBUS_CONNECTION={c}", "my connection string is {c}"]).format(c=text), [key]


def github_token(rng: random.Random) -> tuple[str, list[str]]:
    # GitHub Docs, "About authentication to GitHub" (GitHub's token formats): ghp_ (classic personal), gho_ (OAuth),
    # ghu_ (user-to-server), ghs_ (server-to-server), ghr_ (refresh) + 36 alphanumerics; fine-grained personal tokens
    # are github_pat_ + 22 + "_" + 59 characters.
    if rng.random() < 0.3:
        token = "github_pat_" + pick(rng, ALNUM, 22) + "_" + pick(rng, ALNUM, 59)
    else:
        token = rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + pick(rng, ALNUM, 36)
    frames = [
        "git clone https://{t}@github.com/acme/internal.git",
        "GITHUB_TOKEN={t}",
        'headers = {{"Authorization": "Bearer {t}"}}',
        "can you check why my token {t} gets a 401 from the API?",
    ]
    return rng.choice(frames).format(t=token), [token]


def gitlab_token(rng: random.Random) -> tuple[str, list[str]]:
    # GitLab Docs, "Token overview" / "Personal access tokens": personal access tokens carry the "glpat-" prefix
    # (20 characters of [0-9a-zA-Z_-] after it); pipeline trigger tokens "glptt-", deploy tokens "gldt-".
    prefix = rng.choice(["glpat-", "glpat-", "glptt-", "gldt-"])
    token = prefix + pick(rng, URLSAFE, 20)
    frames = ['curl --header "PRIVATE-TOKEN: {t}" https://gitlab.example.com/api/v4/projects', "CI_TOKEN: {t}"]
    return rng.choice(frames).format(t=token), [token]


def slack_token(rng: random.Random) -> tuple[str, list[str]]:
    # Slack API docs, "Token types": bot tokens xoxb-, user tokens xoxp-, app-level xapp-; incoming webhooks are
    # https://hooks.slack.com/services/T<team>/B<bot>/<24-character secret> ("Sending messages using incoming
    # webhooks").
    kind = rng.randrange(3)
    if kind == 0:
        token = f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**11, 10**13)}-{pick(rng, ALNUM, 24)}"
        text = rng.choice(["SLACK_BOT_TOKEN={t}", "client = WebClient(token='{t}')"]).format(t=token)
    elif kind == 1:
        numbers = "-".join(str(rng.randint(10**10, 10**12)) for _ in range(3))
        token = f"xoxp-{numbers}-{pick(rng, HEX, 32)}"
        text = f"my user token is {token}"
    else:
        path = f"T{pick(rng, UPPER_DIGITS, 8)}/B{pick(rng, UPPER_DIGITS, 10)}/{pick(rng, ALNUM, 24)}"
        token = f"https://hooks.slack.com/services/{path}"
        text = f'curl -X POST -d \'{{"text":"deploy done"}}\' {token}'
    return text, [token]


def stripe_key(rng: random.Random) -> tuple[str, list[str]]:
    # Stripe docs, "API keys": secret keys sk_live_/sk_test_, restricted keys rk_live_/rk_test_ (publishable pk_
    # keys are public and not included); the documented examples are the prefix + 24 or more alphanumerics.
    token = rng.choice(["sk_live_", "sk_test_", "rk_live_"]) + pick(rng, ALNUM, rng.choice([24, 99]))
    frames = ['stripe.api_key = "{t}"', "STRIPE_SECRET_KEY={t}", "Refund failed with key {t} -- any idea?"]
    return rng.choice(frames).format(t=token), [token]


def openai_key(rng: random.Random) -> tuple[str, list[str]]:
    # OpenAI API reference, "Authentication": keys are "sk-..." secrets; project keys are "sk-proj-...", service
    # account keys "sk-svcacct-..."; both contain the marker "T3BlbkFJ" (base64 of "OpenAI") between two random parts.
    prefix = rng.choice(["sk-proj-", "sk-svcacct-", "sk-"])
    if prefix == "sk-":
        token = "sk-" + pick(rng, ALNUM, 20) + "T3BlbkFJ" + pick(rng, ALNUM, 20)
    else:
        token = prefix + pick(rng, URLSAFE, 74) + "T3BlbkFJ" + pick(rng, URLSAFE, 74)
    frames = ["OPENAI_API_KEY={t}", 'client = OpenAI(api_key="{t}")', "Here's my key {t}, why do I get 429?"]
    return rng.choice(frames).format(t=token), [token]


def private_key(rng: random.Random) -> tuple[str, list[str]]:
    # RFC 7468 (textual encodings): "-----BEGIN PRIVATE KEY-----" (PKCS#8), "RSA PRIVATE KEY" (PKCS#1),
    # "EC PRIVATE KEY" (RFC 5915); OpenSSH's PROTOCOL.key: "-----BEGIN OPENSSH PRIVATE KEY-----".
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [pick(rng, B64, 64) for _ in range(rng.randint(3, 6))]
    block = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    frame = rng.choice(["{b}", "Is this key in the right format?\n{b}\nssh says invalid format", "key.pem:\n{b}\n"])
    return frame.format(b=block), lines


def jwt(rng: random.Random) -> tuple[str, list[str]]:
    # RFC 7519 (JSON Web Token), section 3.1: BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(signature),
    # header {"alg": "HS256", "typ": "JWT"}.
    alg = rng.choice(["HS256", "RS256"])
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    claims = {"sub": str(rng.randint(10**6, 10**9)), "iat": rng.randint(1_600_000_000, 1_800_000_000)}
    if rng.random() < 0.5:
        claims["scope"] = "read:orders"
    payload = b64url(json.dumps(claims).encode())
    token = f"{header}.{payload}.{b64url(rng.randbytes(32 if alg == 'HS256' else 256))}"
    frames = ["Authorization: Bearer {t}", "decode this token for me: {t}", "document.cookie = 'session={t}'"]
    return rng.choice(frames).format(t=token), [token]


def url_password(rng: random.Random) -> tuple[str, list[str]]:
    # RFC 3986 section 3.2.1 (userinfo "user:password@" in a URI, deprecated but used); PostgreSQL docs "Connection
    # URIs" (postgresql://user:secret@host/db); redis-py / AMQP URLs alike.
    password = pick(rng, ALNUM + "!#%^*", rng.randint(10, 20))
    user = rng.choice(["admin", "app", "svc_orders", "postgres", "deploy"])
    scheme, host = rng.choice(
        [
            ("postgresql", "db.internal:5432/orders"),
            ("mysql", "10.0.4.12:3306/shop"),
            ("redis", "cache:6379/0"),
            ("amqp", "rabbit.internal:5672/"),
            ("https", "registry.example.com/v2/"),
        ]
    )
    url = f"{scheme}://{user}:{password}@{host}"
    frames = ["DATABASE_URL={u}", 'engine = create_engine("{u}")', "I connect with {u} and get a timeout"]
    return rng.choice(frames).format(u=url), [password]


def password_assignment(rng: random.Random) -> tuple[str, list[str]]:
    # Passwords in configuration and code (as the OWASP Secrets Management Cheat Sheet describes them leaking):
    # key = value in .env / INI / YAML / JSON / Python.
    password = pick(rng, ALNUM + "!@#$%&*", rng.randint(10, 18))
    frames = [
        'DB_PASSWORD="{p}"',
        "password: {p}",
        '{{"username": "ops", "password": "{p}"}}',
        "db.password={p}",
        'conn = psycopg.connect(host="db", user="app", password="{p}")',
        "my wifi password is {p} can you remember it",
        "SMTP_PASS={p}",
    ]
    return rng.choice(frames).format(p=password), [password]


CREDENTIALS: dict[str, Callable[[random.Random], tuple[str, list[str]]]] = {
    "aws_access_key": aws_access_key,
    "aws_key_id": aws_key_id_only,
    "gcp_api_key": gcp_api_key,
    "gcp_service_account": gcp_service_account,
    "gcp_oauth_secret": gcp_oauth_secret,
    "azure_storage": azure_storage,
    "azure_service_bus": azure_service_bus,
    "github_token": github_token,
    "gitlab_token": gitlab_token,
    "slack_token": slack_token,
    "stripe_key": stripe_key,
    "openai_key": openai_key,
    "private_key": private_key,
    "jwt": jwt,
    "url_password": url_password,
    "password_assignment": password_assignment,
}

# --- look-alikes: high entropy, not credentials ------------------------------------------------------------------


def commit_hash(rng: random.Random) -> str:
    sha = pick(rng, HEX, 40)
    return rng.choice(
        [
            "The regression came in with commit {h}.",
            'commit = "{h}"',
            "git revert {h}",
            "Fixed in {s}, see the PR for details.",
            "pip install git+https://github.com/acme/lib@{h}",
        ]
    ).format(h=sha, s=sha[:7])


def uuid_like(rng: random.Random) -> str:
    groups = [pick(rng, HEX, 8), pick(rng, HEX, 4), "4" + pick(rng, HEX, 3), rng.choice("89ab") + pick(rng, HEX, 3)]
    value = "-".join([*groups, pick(rng, HEX, 12)])  # RFC 4122 version 4
    return rng.choice(
        ["order_id: {u}", "The request {u} timed out after 30 s.", "GET /v1/items/{u} returns 404", "trace-id={u}"]
    ).format(u=value)


def checksum(rng: random.Random) -> str:
    sha256, md5 = pick(rng, HEX, 64), pick(rng, HEX, 32)
    return rng.choice(
        [
            "{a}  ubuntu-24.04-live-server-amd64.iso",
            "docker pull nginx@sha256:{a}",
            "The MD5 of the file is {b}, does it match?",
            "SHA256 checksum: {a}",
            'integrity="sha384-{c}"',
        ]
    ).format(a=sha256, b=md5, c=base64.b64encode(rng.randbytes(48)).decode())


PROSE = [
    "The meeting moved to Thursday afternoon because of the holiday.",
    "Please summarise the attached report in three bullet points.",
    "Hello world, this is a test of the encoder.",
    "The quick brown fox jumps over the lazy dog again and again.",
    "Remember to water the plants while I am away next week.",
    "Quarterly revenue grew by eight percent over the last year.",
]


def base64_text(rng: random.Random) -> str:
    encoded = base64.b64encode(rng.choice(PROSE).encode()).decode()
    return rng.choice(["What does this base64 say: {e}", 'data = base64.b64decode("{e}")', "payload: {e}"]).format(
        e=encoded
    )


def high_entropy_id(rng: random.Random) -> str:
    return rng.choice(
        [
            f"Container {pick(rng, HEX, 12)} exited with code 137.",
            f'S3 ETag "{pick(rng, HEX, 32)}" differs after upload.',
            f"The YouTube video id is {pick(rng, URLSAFE, 11)}.",
            f"arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:role/deploy-role is missing a trust policy",
            f"My order number is {pick(rng, UPPER_DIGITS, 12)}.",
            f"npm ERR! integrity sha512-{base64.b64encode(rng.randbytes(64)).decode()} mismatch",
            f"Bitcoin tx {pick(rng, HEX, 64)} has 3 confirmations.",
            "Use the pk_live_ publishable key prefix on the client side only.",
        ]
    )


def password_mention(rng: random.Random) -> str:
    # Hard negatives: password words with no password in them.
    return rng.choice(
        [
            'password = os.environ["DB_PASSWORD"]',
            "password: ${DB_PASSWORD}",
            "How do I reset my password if I forgot it?",
            'if not check_password(user, password): raise AuthError("bad password")',
            "The password must be at least 12 characters long.",
            "postgresql://app@db.internal:5432/orders",
            "api_key = get_secret('stripe-api-key')",
        ]
    )


LOOKALIKES: dict[str, Callable[[random.Random], str]] = {
    "commit_hash": commit_hash,
    "uuid": uuid_like,
    "checksum": checksum,
    "base64_text": base64_text,
    "high_entropy_id": high_entropy_id,
    "password_mention": password_mention,
}


def rows(seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for kind, make in CREDENTIALS.items():
        for _ in range(PER_KIND):
            text, values = make(rng)
            spans = []
            for value in values:
                start = text.index(value)
                spans.append({"type": kind, "start": start, "end": start + len(value)})
            out.append({"text": text, "label": "secret", "kind": kind, "secrets": values, "spans": spans})
    for kind, make_lookalike in LOOKALIKES.items():
        for _ in range(PER_KIND * 2):
            out.append({"text": make_lookalike(rng), "label": "lookalike", "kind": kind, "secrets": [], "spans": []})
    rng.shuffle(out)
    return out


def main() -> None:
    here = Path(__file__).parent
    for name, seed in SEEDS.items():
        data = rows(seed)
        with (here / name).open("w", encoding="utf-8") as handle:
            for row in data:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(name, Counter(str(row["label"]) for row in data))


if __name__ == "__main__":
    main()
