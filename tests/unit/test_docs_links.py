"""Every relative link in the README and docs/ points to an existing file (and heading)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code, external URLs (those with a scheme) left out."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    targets = [match.group(1) for match in LINK.finditer(prose)]
    return [target for target in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def anchor_of(heading: str) -> str:
    """GitHub's anchor for a heading: code marks and punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {anchor_of(heading) for heading in HEADING.findall(FENCE.sub("", markdown))}


def broken_links(document: Path) -> list[str]:
    markdown = document.read_text(encoding="utf-8")
    broken = []
    for target in relative_links(markdown):
        path_part, _, anchor = target.partition("#")
        file = (document.parent / path_part).resolve() if path_part else document
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    assert not broken_links(document)


def test_documents_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/architecture.md", "docs/conventions.md"} <= names


def test_finds_broken_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The `ACH` rails: windows\n", encoding="utf-8")
    document = tmp_path / "page.md"
    document.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok](other.md#the-ach-rails-windows) [ok](#page) [web](https://example.com/x)\n"
        "[missing](nowhere.md) [bad heading](other.md#nothing) [bad anchor](#absent)\n"
        "`[in code](skipped.md)`\n\n```\n[in a fence](skipped.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(document) == [
        "nowhere.md: no such file",
        "other.md#nothing: no such heading",
        "#absent: no such heading",
    ]
