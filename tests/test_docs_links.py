"""The design lives in the repository: every `docs/<file>.md#anchor` the code cites names a heading
that exists, and no comment cites a document outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("core", "cli", "tui", "sandbox", "scripts", "tests")
CITATION = re.compile(r"docs/([a-z0-9_-]+\.md)#([a-z0-9-]+)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in doc.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def _sources() -> list[Path]:
    return [p for d in CODE_DIRS for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".ps1", ".tcss")]


def test_every_cited_docs_anchor_exists() -> None:
    anchors = {doc.name: _anchors(doc) for doc in (ROOT / "docs").glob("*.md")}
    cited = 0
    missing = []
    for path in _sources():
        for name, anchor in CITATION.findall(path.read_text(encoding="utf-8", errors="replace")):
            cited += 1
            if anchor not in anchors.get(name, set()):
                missing.append(f"{path.relative_to(ROOT)}: docs/{name}#{anchor}")
    assert cited > 20, "the code cites the docs"
    assert not missing, missing


def test_no_comment_cites_a_design_document_outside_the_repository() -> None:
    needle = "DESIGN " + "section"  # split, so this file does not match itself
    offenders = [str(p.relative_to(ROOT)) for p in _sources()
                 if needle in p.read_text(encoding="utf-8", errors="replace")]
    assert not offenders, offenders


def test_the_readme_links_both_design_documents() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/architecture.md)" in readme and "(docs/exchange-facts.md)" in readme
