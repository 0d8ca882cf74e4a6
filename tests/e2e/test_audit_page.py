"""The reviewer page in a real headless Chromium (Debian's, driven by playwright-python) against the real
`guard serve`: sign in with an audit:read key, check the session cookie, filter, drill down, see the charts drawn,
and save the screenshot the README links (docs/audit-page.png)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from guard.devmodels import TOXIC_TRIGGER_WORD
from tests.conftest import ROOT
from tests.e2e.serving import GUARD, running_server, server_env
from tests.services import chromium_path

pytestmark = pytest.mark.e2e

SCREENSHOT = ROOT / "docs" / "audit-page.png"
EMAIL = "maria.lopez@example.org"
# Non-transparent pixels on a canvas: > 0 once the chart drew anything.
_INKED = """(id) => { const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""


def _reviewer_key(guard_home: Path, tmp_path: Path) -> str:
    created = subprocess.run(
        [GUARD, "keys", "create", "--name", "reviewer", "--scopes", "audit:read"],
        env=server_env(guard_home, tmp_path),
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"^key:\s+(\S+)$", created.stdout, re.MULTILINE)
    assert match, created.stdout
    return match.group(1)


def test_reviewer_page_in_headless_chromium(guard_home: Path, tmp_path: Path) -> None:
    chromium = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with running_server(guard_home, tmp_path) as server:
        key = _reviewer_key(guard_home, tmp_path)
        for text, stage in (
            (f"Please write to {EMAIL} about the invoice.", "input"),
            (f"The new intern is a {TOXIC_TRIGGER_WORD} and a {TOXIC_TRIGGER_WORD}.", "output"),
            ("The weekly meeting is on Thursday at ten.", "input"),
            (f"You {TOXIC_TRIGGER_WORD}, call me at {EMAIL}.", "output"),
        ):
            response = httpx.post(
                f"{server.base}/v1/scan", json={"text": text, "stage": stage}, headers=server.auth, timeout=60
            )
            assert response.status_code == 200, response.text

        args = ["--disable-dev-shm-usage", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=args)
            try:
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                page = context.new_page()
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))

                # A wrong key: the form again, 401, nothing echoed, no cookie.
                page.goto(f"{server.base}/audit")
                page.fill("#key", "gk-not-a-key")
                with page.expect_navigation() as refused:
                    page.click("button[type=submit]")
                assert refused.value.status == 401
                expect(page.get_by_role("alert")).to_contain_text("not accepted")
                assert "gk-not-a-key" not in page.content()
                assert context.cookies() == []
                problems.clear()  # the 401 itself is logged as a console error

                page.fill("#key", key)
                page.click("button[type=submit]")
                page.wait_for_url(f"{server.base}/audit")
                rows = page.locator("#decisions tbody tr")
                expect(rows).to_have_count(4)
                (cookie,) = context.cookies()
                assert cookie["name"] == "guard_audit_session"
                assert cookie["httpOnly"] is True
                assert cookie["sameSite"] == "Strict"
                assert cookie["path"] == "/"
                assert key not in cookie["value"]
                assert key not in page.url
                assert key not in page.content()
                assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it

                expect(page.locator(".charts")).to_have_attribute("data-rendered", "true")
                assert page.evaluate(_INKED, "chart-days") > 0
                assert page.evaluate(_INKED, "chart-categories") > 0
                expect(page.locator("#chart-categories")).to_have_attribute("aria-label", re.compile("toxicity:"))

                page.select_option("#f-decision", "block")
                page.click("#filters button[type=submit]")
                expect(rows).to_have_count(2)
                for decision in rows.evaluate_all("rows => rows.map(r => r.dataset.decision)"):
                    assert decision == "block"
                expect(page.locator("#chart-days")).to_have_attribute("aria-label", re.compile(r"block 2 \(total 2\)"))

                # Keyboard drill-down: focus the row, Enter opens the explanation.
                rows.first.focus()
                page.keyboard.press("Enter")
                detail = page.locator("#detail")
                expect(detail).to_be_visible()
                explanation = page.locator("#explanation tbody")
                expect(explanation).to_contain_text("toxicity")
                expect(explanation).to_contain_text("output.toxicity")
                expect(page.locator("#detail-meta")).to_contain_text("block")
                assert EMAIL not in page.content()
                assert page.evaluate(_INKED, "chart-days") > 0

                SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
                assert problems == []

                page.click("header button[type=submit]")
                expect(page.locator("#key")).to_be_visible()
                assert context.cookies() == []
            finally:
                browser.close()
