"""Every relative link of the project's Markdown (README, docs/, benchmarks/) leads somewhere: a file
that exists and, for ``#anchor``, a heading of it (GitHub's anchor rules)."""

from __future__ import annotations

import re
import subprocess

import pytest

from orchestration.core.settings import PROJECT_ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.split()
    return sorted(set(listed))


def _outside_code_fences(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower-case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip()).lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def _anchors(path) -> set[str]:
    anchors, seen = set(), {}
    for line in _outside_code_fences(path.read_text()):
        match = re.match(r"^#{1,6} (.*)", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("name", _markdown_files())
def test_every_relative_link_leads_to_a_file_and_heading(name):
    path = PROJECT_ROOT / name
    broken = []
    for target in LINK.findall("\n".join(_outside_code_fences(path.read_text()))):
        if re.match(r"^[a-z]+:", target):  # http:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"missing file {target}")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(f"missing anchor {target}")
    assert broken == []
