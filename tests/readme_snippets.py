"""Code blocks of README.md, by section, so tests run exactly what the README shows."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(heading: str, language: str) -> list[str]:
    """The ``language`` fenced blocks under the README heading ``heading`` (e.g. ``"### LangChain"``)."""
    text = README.read_text(encoding="utf-8")
    level = len(heading) - len(heading.lstrip("#"))
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{1,{level}}} |\Z)", text, flags=re.M | re.S)
    if match is None:
        raise LookupError(f"README.md has no section {heading!r}")
    blocks = re.findall(rf"^```{language}\n(.*?)^```", match.group(1), flags=re.M | re.S)
    if not blocks:
        raise LookupError(f"README.md section {heading!r} has no ```{language} block")
    return blocks
