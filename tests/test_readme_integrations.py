"""The README's sentence-transformers, LangChain and server snippets, run as written."""

from __future__ import annotations

import shlex
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.serve_latency import free_port, wait_healthy
from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.cli import main

from .readme_snippets import readme_blocks  # noqa: TID252

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def my_adapter(tmp_path, monkeypatch):
    """A small low-rank adapter for all-MiniLM-L6-v2 in ./my-adapter, the name the README uses."""
    rng = np.random.default_rng(7)
    config = AdapterConfig(kind="low_rank", dim=384, rank=4, base_model=MINILM)
    adapter = LinearAdapter(config, u=0.05 * rng.normal(size=(384, 4)), v=0.05 * rng.normal(size=(384, 4)))
    monkeypatch.chdir(tmp_path)
    adapter.save(tmp_path / "my-adapter")
    return adapter


def cli_args(command: str) -> list[str]:
    args = shlex.split(command, comments=True)
    assert args[0] == "queryshift", command
    return args[1:]


@pytest.mark.slow
def test_readme_sentence_transformers_export(my_adapter, encoder):
    (command,) = readme_blocks("### A sentence-transformers model", "bash")
    (snippet,) = readme_blocks("### A sentence-transformers model", "python")
    result = CliRunner().invoke(main, cli_args(command))
    assert result.exit_code == 0, result.output
    assert "load it with SentenceTransformer('my-adapter-st')" in result.output
    scope: dict = {}
    exec(snippet, scope)
    queries, documents = ["How did revenue change in 2021?"], ["Revenue grew 57% in 2021."]
    expected = my_adapter.apply(encoder.model.encode_query(queries, normalize_embeddings=True))
    assert np.abs(scope["query_vectors"] - expected).max() <= 1e-5
    assert np.array_equal(scope["document_vectors"], encoder.model.encode_document(documents))


@pytest.mark.slow
def test_readme_langchain(my_adapter, capsys):
    (snippet,) = readme_blocks("### LangChain", "python")
    exec(snippet, {})
    assert capsys.readouterr().out.strip() == "Revenue grew 57% in 2021."


@pytest.mark.slow
def test_readme_server_with_the_openai_client(my_adapter, encoder):
    (command,) = readme_blocks("### An embeddings server (OpenAI API)", "bash")
    (snippet,) = readme_blocks("### An embeddings server (OpenAI API)", "python")
    port = free_port()
    args = [a if a != "8000" else str(port) for a in cli_args(command)]
    process = subprocess.Popen([sys.executable, "-m", "queryshift.cli", *args])
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        scope: dict = {}
        exec(snippet.replace("127.0.0.1:8000", f"127.0.0.1:{port}"), scope)
    finally:
        process.terminate()
        process.wait(timeout=60)
    query = np.array([scope["query"].data[0].embedding], np.float32)
    expected = my_adapter.apply(
        encoder.model.encode_query(["How did revenue change in 2021?"], normalize_embeddings=True)
    )
    assert np.abs(query - expected).max() <= 1e-5
    documents = np.array([row.embedding for row in scope["documents"].data], np.float32)
    base = encoder.model.encode_document(["Revenue grew 57% in 2021."], normalize_embeddings=True)
    assert np.abs(documents - base).max() <= 1e-6
