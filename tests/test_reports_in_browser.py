"""The HTML reports open in a real browser: Debian's chromium, headless, driven by Playwright's
driver (launched by path; Playwright's own browser download is never used). Each report shows
its rows and raises no script error; clicking a header sorts the table.

Skipped (with the reason) only when chromium is not installed; CI installs it (.ci/run).
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import exocm

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def test_readiness_html_report_shows_every_check_without_script_errors(browser, tmp_path: Path):
    out = tmp_path / "readiness.html"
    result = exocm("readiness", "--size", "60", "--scope", "decommission", "--format", "html", "-o", str(out))
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(exocm("readiness", "--size", "60", "--scope", "decommission", "--format", "json").stdout)
    page, errors = _open(browser, out)
    rows = page.locator("table.sortable tbody tr")
    assert rows.count() == len(doc["checks"]) == 15
    shown = [rows.nth(i).get_attribute("data-code") for i in range(rows.count())]
    assert shown == [c["code"] for c in doc["checks"]]
    for check in doc["checks"]:
        assert page.locator(f'tr[data-code="{check["code"]}"] .res').inner_text() == check["result"]
    assert page.locator(".verdict").inner_text().startswith(doc["summary"]["verdict"].upper())
    page.locator("table.sortable th").first.click()  # the sort script runs
    assert page.locator("table.sortable th").first.get_attribute("data-dir") == "asc"
    assert errors == []
    page.close()


def test_findings_html_report_shows_the_findings_without_script_errors(browser, tmp_path: Path):
    out = tmp_path / "findings.html"
    result = exocm("findings", "--size", "60", "--format", "html", "-o", str(out))
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(exocm("findings", "--size", "60", "--format", "json").stdout)
    page, errors = _open(browser, out)
    rows = page.locator("table.sortable tbody tr")
    assert rows.count() == len(doc["findings"]) > 0
    assert page.locator("svg[aria-label='Findings per code']").count() == 1
    codes = set(page.locator("table.sortable tbody tr td:nth-child(2)").all_inner_texts())
    assert codes == {f["code"] for f in doc["findings"]}
    page.locator("table.sortable th").nth(1).click()
    assert errors == []
    page.close()
