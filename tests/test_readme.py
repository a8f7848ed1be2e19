"""Every Python snippet of the README runs as written (in a fresh folder, against the real data)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from .conftest import REPO, SHARED_DATA  # noqa: TID252

README = (REPO / "README.md").read_text(encoding="utf-8")
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _snippets() -> list[tuple[str, str]]:
    """``(heading it sits under, code)`` for every ```python block, in README order."""
    out = []
    for match in _BLOCK.finditer(README):
        prose = re.sub(r"^```.*?^```", "", README[: match.start()], flags=re.S | re.M)  # no "# comments"
        headings = re.findall(r"^#+ (.+)$", prose, re.M)
        out.append((headings[-1] if headings else "top", match.group(1)))
    return out


SNIPPETS = _snippets()
# Snippets that embed and train on the real data: minutes on a cold cache, so `slow`.
SLOW = {"LlamaIndex"}
# Snippets that need a step of their own first (an export, a running server): run by that file.
RUN_ELSEWHERE = {
    "A sentence-transformers model": "tests/test_readme_integrations.py",
    "LangChain": "tests/test_readme_integrations.py",
    "An embeddings server (OpenAI API)": "tests/test_readme_integrations.py",
}


def _params():
    for i, (heading, code) in enumerate(SNIPPETS):
        if heading in RUN_ELSEWHERE:
            continue
        marks = [pytest.mark.slow] if heading in SLOW else []
        yield pytest.param(code, id=f"{i}-{heading.split(':')[0].replace(' ', '_')}", marks=marks)


def test_every_readme_snippet_is_run():
    here = {"Your own data", "Qdrant: adapted retrieval on your existing collection", "LlamaIndex"}
    headings = [h for h, _ in SNIPPETS]
    assert len(headings) >= 4 and set(headings) <= here | RUN_ELSEWHERE.keys(), headings
    for heading, test_file in RUN_ELSEWHERE.items():
        if heading in headings:  # that test reads the section by its heading
            assert f"### {heading}" in (REPO / test_file).read_text(encoding="utf-8"), (heading, test_file)


@pytest.mark.parametrize("code", _params())
def test_readme_snippet_runs(code, tmp_path, monkeypatch):
    from queryshift import LinearAdapter
    from queryshift.embeddings import DEFAULT_MODEL

    # What the README's `queryshift train ... -o my-adapter` leaves behind, for the snippets that load it.
    LinearAdapter.identity(dim=384, base_model=DEFAULT_MODEL).save(tmp_path / "my-adapter")
    monkeypatch.chdir(tmp_path)
    # The README reads the data from ../shared/data; the tests read it from where conftest says.
    code = code.replace("../shared/data", str(SHARED_DATA))
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    if "adapted" in namespace:
        assert isinstance(namespace["adapted"], np.ndarray) and namespace["adapted"].shape == (384,)
    if "hits" in namespace:
        assert {point.id for point in namespace["hits"].points} == {0, 1}
