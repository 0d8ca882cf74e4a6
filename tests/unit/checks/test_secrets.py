"""The secrets check: every provider format of the synthetic set, look-alikes left alone, actions, placeholders.

Token values here are made up in the documented shapes (no real credential); the committed set
(benchmarks/data/secrets/, generated before the check was written) is measured in full at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.checks import CheckItem, RequestScope
from guard.checks.secrets import SecretsCheck
from guard.policy import SecretsConfig

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[3] / "benchmarks" / "data" / "secrets"
REDACT = SecretsConfig()


@pytest.fixture(scope="module")
def check() -> SecretsCheck:
    return SecretsCheck.load()


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("export AWS_ACCESS_KEY_ID=AKIAQ4W2LZT7MNB3XK5P", "AKIAQ4W2LZT7MNB3XK5P", "AWS_ACCESS_KEY"),
        (
            "aws_secret_access_key = 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",
            "q8Vn2Lr+Tz0Wm5Yb7Kc1Pd9Hf3Jg6Xs4Ae2Bu0Nw",
            "AWS_SECRET_KEY",
        ),
        ("key=AIzaSyD3x9Q-7mKp2LwZ8vRt5Nc1Hb4Jf6Gd0Ye", "AIzaSyD3x9Q-7mKp2LwZ8vRt5Nc1Hb4Jf6Gd0Ye", "GCP_API_KEY"),
        (
            "GITHUB_TOKEN=ghp_R7kQ2mZx9LpT4vWn8BcY1sJd5HfG3aE6uK0o",
            "ghp_R7kQ2mZx9LpT4vWn8BcY1sJd5HfG3aE6uK0o",
            "GITHUB_TOKEN",
        ),
        ("CI_TOKEN: glpat-x7Kp2Qm9Zr4Lt8Vw1Bn5", "glpat-x7Kp2Qm9Zr4Lt8Vw1Bn5", "GITLAB_TOKEN"),
        (
            "SLACK_BOT_TOKEN=xoxb-123456789012-1234567890123-Qm7Zr2Lt8Vw1Bn5Kp9Xc3Hd6",
            "xoxb-123456789012-1234567890123-Qm7Zr2Lt8Vw1Bn5Kp9Xc3Hd6",
            "SLACK_TOKEN",
        ),
        ("Refund failed with key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_KEY"),
        (
            "DATABASE_URL=postgresql://app:Zq8!mR2#xLp4@db.internal:5432/orders",
            "Zq8!mR2#xLp4",
            "PASSWORD",
        ),
        ('conn = connect(host="db", password="Tr0ub4dor&3x")', "Tr0ub4dor&3x", "PASSWORD"),
    ],
)
def test_provider_formats_are_redacted_with_typed_placeholders(
    check: SecretsCheck, text: str, secret: str, kind: str
) -> None:
    (result,) = check.run([CheckItem(text=text, config=REDACT, stage="input")])
    assert result.text is not None
    assert secret not in result.text
    assert f"<{kind}_1>" in result.text
    assert [f.type for f in result.findings] == [kind]


def test_a_private_key_block_is_replaced_whole(check: SecretsCheck) -> None:
    body = "MIIEowIBAAKCAQEAx7Kp2Qm9Zr4Lt8Vw1Bn5Xc3Hd6Jf0Ye2Au4Ms7Ng1Ro5Tv8Wb"
    text = (
        f"Is this right?\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n{body[::-1]}\n-----END RSA PRIVATE KEY-----\nthanks"
    )
    (result,) = check.run([CheckItem(text=text, config=REDACT, stage="input")])
    assert result.text == "Is this right?\n<PRIVATE_KEY_1>\nthanks"


@pytest.mark.parametrize(
    "text",
    [
        "The regression came in with commit 9fceb02d0ae598e95dc970b74767f19372d61af8.",
        'commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"',
        "The request 3f2b8c1e-7d4a-4e9b-a1c2-9f8e7d6c5b4a timed out.",
        "docker pull nginx@sha256:0c12406111db94ae870b18e045242fdebf994069623f3d03970a0477fed1635e",
        "payload: SGVsbG8gd29ybGQsIHRoaXMgaXMgYSB0ZXN0IG9mIHRoZSBlbmNvZGVyLg==",
        'integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"',
        'password = os.environ["DB_PASSWORD"]',
        "password: ${DB_PASSWORD}",
        "The password is incorrect, please try again.",
        "Use the pk_live_ publishable key prefix on the client side only.",
    ],
)
def test_look_alikes_are_left_alone(check: SecretsCheck, text: str) -> None:
    (result,) = check.run([CheckItem(text=text, config=REDACT, stage="input")])
    assert result.findings == ()
    assert result.text == text


def test_block_and_flag_leave_the_text_and_types_override_the_action(check: SecretsCheck) -> None:
    text = "GITHUB_TOKEN=ghp_R7kQ2mZx9LpT4vWn8BcY1sJd5HfG3aE6uK0o and AKIAQ4W2LZT7MNB3XK5P"
    config = SecretsConfig(action="block", types={"AWS_ACCESS_KEY": "flag"})
    (result,) = check.run([CheckItem(text=text, config=config, stage="output")])
    assert result.text == text
    assert [(f.type, f.action) for f in result.findings] == [("GITHUB_TOKEN", "block"), ("AWS_ACCESS_KEY", "flag")]
    assert result.rewrites == ()


def test_placeholders_are_shared_across_the_request_and_ours_are_not_secrets(check: SecretsCheck) -> None:
    scope = RequestScope()
    token = "ghp_R7kQ2mZx9LpT4vWn8BcY1sJd5HfG3aE6uK0o"
    items = [CheckItem(text=t, config=REDACT, stage="input", scope=scope) for t in (token, f"again {token}")]
    first, second = check.run(items)
    assert (first.text, second.text) == ("<GITHUB_TOKEN_1>", "again <GITHUB_TOKEN_1>")
    (again,) = check.run([CheckItem(text="token = <GITHUB_TOKEN_1>", config=REDACT, stage="input")])
    assert again.findings == ()


def test_the_committed_secrets_set(check: SecretsCheck) -> None:
    """Issue 17, must-show 1 (check level): ≥ 95% of the credentials redacted, ≤ 5% of the look-alikes touched."""
    rows = [json.loads(line) for line in (DATA / "eval.jsonl").read_text(encoding="utf-8").splitlines()]
    results = check.run([CheckItem(text=row["text"], config=REDACT, stage="input") for row in rows])
    secrets = [(row, r) for row, r in zip(rows, results, strict=True) if row["label"] == "secret"]
    lookalikes = [(row, r) for row, r in zip(rows, results, strict=True) if row["label"] == "lookalike"]
    redacted = sum(all(value not in (r.text or "") for value in row["secrets"]) for row, r in secrets)
    touched = sum(bool(r.findings) for _, r in lookalikes)
    assert len({row["kind"] for row, _ in secrets}) == 16
    assert redacted >= 0.95 * len(secrets), (redacted, len(secrets))
    assert touched <= 0.05 * len(lookalikes), (touched, len(lookalikes))
