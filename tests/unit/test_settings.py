"""Settings: one annotated, documented line per variable, parsed (and refused) when read, secrets never echoed."""

from __future__ import annotations

import ast
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from guard.audit.checkpoint import signing_key_path
from guard.audit.subjects import load_or_create_key
from guard.errors import GuardError
from guard.settings import Env, Profile, Settings, SettingsError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SECRET = "0123456789abcdef-not-hex"


def _variables(cls: type[Any] = Settings) -> dict[str, str]:
    """Every variable read, recursively: ``{GUARD_NAME: dotted field path}``."""
    found: dict[str, str] = {}
    hints = get_type_hints(cls, include_extras=True)
    for item in fields(cls):
        hint = hints[item.name]
        if is_dataclass(hint):
            found |= {name: f"{item.name}.{path}" for name, path in _variables(hint).items()}  # type: ignore[arg-type]
            continue
        markers = [meta for meta in get_args(hint) if isinstance(meta, Env)]
        assert len(markers) == 1, f"{cls.__name__}.{item.name} names no variable"
        assert markers[0].name not in found, f"{markers[0].name} is read twice"
        found[markers[0].name] = item.name
    return found


def test_every_field_reads_one_variable_and_an_empty_environment_gives_the_defaults() -> None:
    variables = _variables()
    assert all(name.startswith("GUARD_") for name in variables)
    assert len(variables) == 47  # the 34 settings of before, the three key variables that used to bypass them,
    # the two that choose the policies of the LiteLLM and LLM Guard routes, the reviewer page's sign-in limit, the
    # six connection limits and the decode step's thread count
    assert Settings.from_env(environ={}) == Settings()


def test_every_setting_is_one_documented_line() -> None:
    tree = ast.parse((ROOT / "guard" / "settings.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for field, after in zip(node.body, [*node.body[1:], None], strict=True):
            if isinstance(field, ast.AnnAssign) and "Env(" in ast.unparse(field.annotation):
                assert field.end_lineno == field.lineno, f"{node.name}: the setting on line {field.lineno} spans lines"
                documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                assert documented, f"{node.name}.{ast.unparse(field.target)} has no docstring"


def test_the_readme_lists_only_real_variables() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`(GUARD_[A-Z_]+)`", table)) <= set(_variables())


def test_values_are_parsed_once_and_typed() -> None:
    settings = Settings.from_env(
        environ={
            "GUARD_PROFILE": "dev",
            "GUARD_HOME": "/srv/guard",
            "GUARD_ENGINE": "remote",
            "GUARD_ENGINE_URL": "http://vllm:8000",
            "GUARD_ENGINE_TIMEOUT_S": "2.5",
            "GUARD_MAX_BATCH_SIZE": " 8 ",
            "GUARD_DEVICE_MAP": "auto",
            "GUARD_JUDGE_MODEL": "google/shieldgemma-2b",
            "GUARD_POLICY_POLL_S": "0",
            "GUARD_OTEL": "yes",
            "GUARD_PII_HMAC_KEY": "ab" * 32,
            "GUARD_AUDIT_SIGNING_KEY": "/keys/signing.pem",
            "GUARD_MODEL": "",  # blank: the default
        }
    )
    assert settings.profile is Profile.DEV
    assert settings.home == Path("/srv/guard")
    assert settings.engine.backend == "remote"
    assert settings.engine.remote.url == "http://vllm:8000"
    assert settings.engine.remote.timeout_s == 2.5
    assert settings.engine.max_batch_size == 8
    assert settings.engine.local.device_map == "auto"
    assert settings.engine.judge.model == "google/shieldgemma-2b"
    assert settings.engine.model is None
    assert settings.policy.poll_s == 0.0
    assert settings.observability.otel
    assert settings.observability.log_format == "text"  # the dev profile's default
    assert settings.keys.pii_hmac == bytes.fromhex("ab" * 32)
    assert signing_key_path(settings) == Path("/keys/signing.pem")
    assert signing_key_path(Settings(home=Path("/srv/guard"))) == Path("/srv/guard/audit-signing.key")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GUARD_ENGINE", "vllm"),
        ("GUARD_PROFILE", "staging"),
        ("GUARD_LOG_FORMAT", "xml"),
        ("GUARD_ENGINE_TIMEOUT_S", "-1"),
        ("GUARD_CHECK_TIMEOUT_S", "0"),
        ("GUARD_REQUEST_TIMEOUT_S", "nan"),
        ("GUARD_POLICY_POLL_S", "-5"),
        ("GUARD_MAX_BATCH_SIZE", "many"),
        ("GUARD_MAX_QUEUE", "-1"),
        ("GUARD_ENGINE_RETRIES", "1.5"),
        ("GUARD_COMPILE", "maybe"),
    ],
)
def test_a_bad_value_fails_when_parsed_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}=") as raised:
        Settings.from_env(environ={variable: value})
    assert isinstance(raised.value, GuardError)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("variable", ["GUARD_PII_HMAC_KEY", "GUARD_AUDIT_HMAC_KEY"])
def test_a_bad_key_is_refused_without_echoing_it(variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}: not a hex string$") as raised:
        Settings.from_env(environ={variable: SECRET})
    assert SECRET not in str(raised.value)


def test_secrets_stay_out_of_the_repr() -> None:
    keys = {"GUARD_API_KEY": "gk-bootstrap-secret", "GUARD_AUDIT_HMAC_KEY": "cd" * 32, "GUARD_PII_HMAC_KEY": "ef" * 8}
    settings = Settings.from_env(environ=keys)
    shown = repr(settings)
    assert "gk-bootstrap-secret" not in shown
    assert "\\xcd" not in shown
    assert "\\xef" not in shown
    assert settings.api.api_key == "gk-bootstrap-secret"


def test_a_configured_key_wins_over_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "audit-hmac.key"
    assert load_or_create_key(path, b"\x01" * 32) == b"\x01" * 32
    assert not path.exists()  # nothing written when the key comes from the settings
    made = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == made
