"""Optional extras stay optional: importing queryshift, its CLI or its exporter loads none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(imports: str, packages: tuple[str, ...]) -> list[str]:
    """Top-level ``packages`` found in ``sys.modules`` of a fresh interpreter after ``import imports``."""
    code = (
        f"import sys, {imports}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return eval(result.stdout)  # a printed list of names


EXTRAS = (
    "langchain_core",
    "langchain_qdrant",
    "langchain",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "openai",
)


@pytest.mark.parametrize(
    ("imports", "packages"),
    [
        ("queryshift, queryshift.integrations, queryshift.adapters, queryshift.cli", EXTRAS),
        # Exporting and serving need torch and the serve extra; importing them does not.
        ("queryshift.export, queryshift.serve", (*EXTRAS, "torch", "sentence_transformers")),
    ],
)
def test_imports_load_no_optional_dependency(imports, packages):
    assert loaded_after(imports, packages) == []
