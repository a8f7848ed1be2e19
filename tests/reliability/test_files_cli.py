"""The CLI never deletes what it did not write, checks its output before any work, and reads files strictly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from queryshift.adapters import LinearAdapter, save_adapter
from queryshift.cli import main
from queryshift.data import save_llamaindex_json
from queryshift.errors import AdapterFormatError

from ..conftest import toy_embedded  # noqa: TID252


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A tiny LlamaIndex-format data set with its vectors, and an empty embedding cache to watch."""
    monkeypatch.setenv("QUERYSHIFT_CACHE_DIR", str(tmp_path / "cache"))
    data = toy_embedded(n_docs=12, n_queries=36, noise=0.3)
    save_llamaindex_json(data.dataset, tmp_path / "toy.json")
    np.save(tmp_path / "q.npy", data.query_vectors)
    (tmp_path / "q.ids.txt").write_text("\n".join(data.query_ids))
    np.save(tmp_path / "d.npy", data.document_vectors)
    (tmp_path / "d.ids.txt").write_text("\n".join(data.document_ids))
    vectors = ["--query-vectors", str(tmp_path / "q.npy"), "--document-vectors", str(tmp_path / "d.npy")]
    return tmp_path / "toy.json", vectors


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_refuses_a_directory_of_user_files_before_embedding_anything(toy, tmp_path):
    data, _ = toy
    target = tmp_path / "x"
    target.mkdir()
    (target / "notes.txt").write_text("draft")
    result = _run("train", data, "-o", target, "--model", "toy")  # would embed with a model named toy
    _one_line_error(result, str(target), "notes.txt", "did not write")
    assert (target / "notes.txt").read_text() == "draft"
    assert not (tmp_path / "cache").exists()  # refused before any text was embedded


def test_train_refuses_to_write_over_its_own_input(toy, tmp_path, monkeypatch):
    data, vectors = toy
    folder = tmp_path / "beir"
    folder.mkdir()
    shutil.copy(data, folder / "dataset.json")
    before = sorted(p.name for p in folder.iterdir())
    _one_line_error(_run("train", folder / "dataset.json", "-o", folder, *vectors), "would replace the input")
    assert sorted(p.name for p in folder.iterdir()) == before
    monkeypatch.chdir(tmp_path)
    _one_line_error(_run("train", data, "-o", ".", *vectors), "current directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["toy.json", "q.npy", "q.ids.txt", "d.npy", "d.ids.txt", "beir"]
    )


def test_train_replaces_its_own_adapter(toy, tmp_path):
    data, vectors = toy
    out = tmp_path / "adapter"
    for _ in range(2):
        result = _run("train", data, "-o", out, "--epochs", "1", "--model", "toy", *vectors)
        assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_finetune_refuses_a_directory_of_user_files_before_loading_anything(toy, tmp_path, monkeypatch):
    import queryshift.training.finetune as finetune

    def never(*args, **kwargs):
        raise AssertionError("fine-tuning started")

    monkeypatch.setattr(finetune, "finetune_model", never)
    data, _ = toy
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("draft")
    _one_line_error(_run("finetune", data, "-o", target), "notes.txt")
    _one_line_error(_run("finetune", data, "-o", data.parent), "would replace the input")
    assert (target / "notes.txt").read_text() == "draft"


def _adapter(tmp_path, **config):
    adapter = LinearAdapter.identity(dim=8, base_model="toy")
    path = save_adapter(adapter, tmp_path / "adapter")
    raw = json.loads((path / "adapter_config.json").read_text())
    raw.update(config)
    (path / "adapter_config.json").write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("training", ["summary", [1, 2], 3])
def test_inspect_names_the_field_when_training_is_not_an_object(tmp_path, training):
    path = _adapter(tmp_path, training=training)
    _one_line_error(_run("inspect", path), "adapter_config.json", "field 'training' must be an object")


def test_inspect_survives_a_training_summary_of_unexpected_shape(tmp_path):
    path = _adapter(tmp_path, training={"validation": {"query": {"base": "n/a"}}, "split_regime": ["x"]})
    result = _run("inspect", path)
    assert result.exit_code == 0, result.output
    assert "validation[query]: (not in the expected form)" in result.output


def test_evaluate_reads_base_model_as_a_name_not_a_path(toy, tmp_path):
    data, vectors = toy
    path = _adapter(tmp_path, base_model="../../../../etc")
    _one_line_error(
        _run("evaluate", data, "--adapter", path, *vectors),
        "field 'base_model'",
        "not a model name",
        "--model",
    )
    # the user may still name the model explicitly
    result = _run("evaluate", data, "--adapter", path, "--model", "../../../../etc", "--json", *vectors)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_queries"] == 36


def test_evaluate_takes_the_name_from_name_at_path(toy, tmp_path):
    data, vectors = toy
    path = _adapter(tmp_path, base_model="toy@/somewhere/else")
    result = _run("evaluate", data, "--adapter", path, "--json", *vectors)
    assert result.exit_code == 0, result.output


def test_a_non_utf8_adapter_config_is_one_line(tmp_path):
    path = _adapter(tmp_path)
    (path / "adapter_config.json").write_bytes(b"\xff\xfe{}")
    _one_line_error(_run("inspect", path), "adapter_config.json: not UTF-8 text")


def test_serve_and_export_read_base_model_as_a_name_not_a_path(tmp_path):
    from queryshift.export import to_sentence_transformer
    from queryshift.serve import load_service

    path = _adapter(tmp_path, base_model="../../../../etc")
    with pytest.raises(AdapterFormatError, match="adapter_config.json: field 'base_model'"):
        load_service(path)  # 0.1 of serve: SentenceTransformer("../../../../etc")
    with pytest.raises(AdapterFormatError, match="field 'base_model' '../../../../etc' is not a model name"):
        to_sentence_transformer(path, None, tmp_path / "exported")
    assert not (tmp_path / "exported").exists()


def test_demo_checks_both_adapter_directories_before_any_work(tmp_path, monkeypatch):
    import queryshift.demo

    monkeypatch.setattr(queryshift.demo, "example_data_dir", lambda data: pytest.fail("demo started"))
    (tmp_path / "out" / "setting-2").mkdir(parents=True)
    (tmp_path / "out" / "setting-2" / "notes.txt").write_text("draft")
    _one_line_error(_run("demo", "--output", tmp_path / "out"), "setting-2", "notes.txt")


def test_finetune_model_from_python_refuses_user_files_before_loading_a_model(toy, tmp_path, monkeypatch):
    import queryshift.training.finetune as finetune
    from queryshift.data import load_dataset
    from queryshift.errors import OutputPathError

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(finetune, "SentenceTransformerEncoder", never)
    monkeypatch.setattr(finetune, "split_dataset", never)
    data, _ = toy
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("draft")
    with pytest.raises(OutputPathError, match="notes.txt"):
        finetune.finetune_model(load_dataset(data), output_dir=target)
    assert (target / "notes.txt").read_text() == "draft"
