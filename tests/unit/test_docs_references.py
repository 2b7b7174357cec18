"""Docstrings and comments cite documents inside the repository only, and what they cite exists:
every `docs/<file>.md §N` has its section, every link in README.md and docs/ resolves, and every
module docs/ARCHITECTURE.md names is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    path
    for folder in ("shared", "devhost", "tests", "bench")
    for path in sorted((ROOT / folder).rglob("*.py"))
    if path != Path(__file__).resolve()
] + [ROOT / "function_app.py"]
# The team's notes live outside the repository; citing them (or their numbering) is what went.
OUTSIDE = re.compile(
    r"scheduler-landscape|next-features|style-by-example|scheduler-limits-defaults-errors"
    r"|\breference (section )?\d+\.\d+|\bsection \d+\.\d+|issue \d+, section"
    r"|the reference says|the reference's",
    re.IGNORECASE,
)
CITATION = re.compile(r"docs/([\w.-]+\.md) §(\d+)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MODULE = re.compile(r"`((?:shared|devhost|tests|bench)/[\w/]+\.py)`")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_documents_outside_the_repository(path: Path) -> None:
    found = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(_text(path).splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, found


def test_every_cited_section_exists() -> None:
    cited = {
        (name, int(section)) for path in SOURCES for name, section in CITATION.findall(_text(path))
    }
    assert cited, "the code cites docs/azure-scheduler.md"
    for name, section in sorted(cited):
        doc = ROOT / "docs" / name
        assert doc.is_file(), name
        assert re.search(rf"^## {section}\. ", _text(doc), re.MULTILINE), f"{name} §{section}"


def test_links_of_readme_and_docs_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in LINK.findall(_text(page)):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_modules_named_by_the_architecture_exist() -> None:
    named = MODULE.findall(_text(ROOT / "docs" / "ARCHITECTURE.md"))
    assert named
    missing = [module for module in named if not (ROOT / module).is_file()]
    assert not missing, missing
