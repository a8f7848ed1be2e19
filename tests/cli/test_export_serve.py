"""`queryshift export` and `queryshift serve` on the command line (the tiny model; no server started)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from sentence_transformers import SentenceTransformer

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.cli import main

from ..tiny_models import TEXTS, tiny_sentence_transformer  # noqa: TID252


def saved_adapter(path, *, base_model: str | None = None) -> LinearAdapter:
    rng = np.random.default_rng(5)
    weight = np.eye(8, dtype=np.float32) + 0.3 * rng.normal(size=(8, 8)).astype(np.float32)
    adapter = LinearAdapter(AdapterConfig(dim=8, base_model=base_model), weight=weight)
    adapter.save(path)
    return adapter


def test_export_writes_a_model_that_adapts_queries(tmp_path):
    base = tiny_sentence_transformer(dim=8, normalize=True)
    base.save(str(tmp_path / "base"))
    adapter = saved_adapter(tmp_path / "adapter")
    out = tmp_path / "exported"
    args = ["export", str(tmp_path / "adapter"), "--sentence-transformers", str(out)]
    result = CliRunner().invoke(main, [*args, "--model", str(tmp_path / "base")])
    assert result.exit_code == 0, result.output
    assert f"load it with SentenceTransformer('{out}')" in result.output
    model = SentenceTransformer(str(out), device="cpu")
    assert np.abs(model.encode_query(TEXTS) - adapter.apply(base.encode_query(TEXTS))).max() <= 1e-5
    assert np.array_equal(model.encode_document(TEXTS), base.encode_document(TEXTS))


def test_export_errors_are_one_line(tmp_path):
    tiny_sentence_transformer(dim=4).save(str(tmp_path / "base4"))
    saved_adapter(tmp_path / "adapter")
    args = ["export", str(tmp_path / "adapter"), "--sentence-transformers", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--model", str(tmp_path / "base4")])
    assert result.exit_code == 1
    assert "Error: adapter expects dim=8, but the base model's embeddings have dim=4" in result.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Error: no base model" in result.output
    saved_adapter(tmp_path / "recorded", base_model=str(tmp_path / "base4"))  # a path in the config
    result = CliRunner().invoke(main, ["export", str(tmp_path / "recorded"), *args[2:]])
    assert result.exit_code == 1
    assert "is not a model name (it is read as a name, never as a path)" in result.output
    assert not (tmp_path / "out").exists()


def test_serve_checks_its_limits_before_loading_anything(tmp_path):
    saved_adapter(tmp_path / "adapter")
    result = CliRunner().invoke(
        main, ["serve", "--adapter", str(tmp_path / "adapter"), "--max-batch-size", "0"]
    )
    assert result.exit_code == 1
    assert "Error: max_batch_size must be a positive integer, got 0" in result.output
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    for flag in ("--max-batch-size", "--max-wait-ms", "--max-inputs", "--max-body-bytes", "--max-pending"):
        assert flag in help_text
