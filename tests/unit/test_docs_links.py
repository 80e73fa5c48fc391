"""The repository is self-contained: no tracked file cites a document that lives outside it,
every relative link in the README and docs/ reaches a file (and heading) that exists, and every
`docs/*.md` a file mentions is there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]

# Spelled in pieces so that this file does not cite them itself.
OUTSIDE_DOCUMENTS = tuple(name + ".md" for name in ("API", "ARCHITECTURE", "LOCAL_STACK"))
MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOCS_MENTION = re.compile(r"\bdocs/[A-Za-z0-9_.-]+\.md\b")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True
    ).stdout.decode()
    return [PROJECT_DIR / name for name in listed.split("\0") if name]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def markdown_documents() -> list[Path]:
    return [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(document: Path) -> set[str]:
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def test_no_tracked_file_cites_a_document_outside_the_repository() -> None:
    citing = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if any(name in line for name in OUTSIDE_DOCUMENTS):
                citing.append(f"{path.relative_to(PROJECT_DIR)}:{number}: {line.strip()}")
    assert citing == [], "cite the repository's own docs/ instead:\n" + "\n".join(citing)


@pytest.mark.parametrize("document", markdown_documents(), ids=lambda path: path.name)
def test_every_relative_link_reaches_a_file_and_heading(document: Path) -> None:
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    broken = []
    for target in MARKDOWN_LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], f"{document.relative_to(PROJECT_DIR)}: " + "; ".join(broken)


def test_every_docs_file_a_tracked_file_mentions_exists() -> None:
    missing = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for mention in sorted(set(DOCS_MENTION.findall(text))):
            if not (PROJECT_DIR / mention).is_file():
                missing.append(f"{path.relative_to(PROJECT_DIR)}: {mention}")
    assert missing == []


def test_the_readme_links_the_docs() -> None:
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    linked = set(MARKDOWN_LINK.findall(FENCE.sub("", readme)))
    for name in ("docs/architecture.md", "docs/api.md", "docs/operations.md"):
        assert name in linked, f"README.md does not link {name}"
