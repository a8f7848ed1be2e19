"""``finetune --max-seq-length``: base and tuned models are scored at the same length, a model that
did not win is never sent to ``reindex``, and the trainer prints nothing on stdout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from queryshift.data import RetrievalDataset, save_llamaindex_json

TOPICS = ["cats", "dogs", "ships", "trains", "bread", "rain", "chess", "glass", "bees", "salt", "ice", "wool"]


def _long_texts() -> RetrievalDataset:
    """Twelve questions whose answer words sit past token 8 of a long document."""
    filler = "this paragraph opens with words shared by every document in the collection and "
    return RetrievalDataset(
        queries={f"q{i}": f"what about {t}?" for i, t in enumerate(TOPICS)},
        documents={f"d{i}": filler * 3 + f"then talks about {t} at length." for i, t in enumerate(TOPICS)},
        qrels={f"q{i}": {f"d{i}"} for i in range(len(TOPICS))},
        name="long",
    )


@pytest.mark.slow
def test_finetune_scores_both_models_at_the_same_length_and_never_suggests_reindex_for_a_loser(tmp_path):
    from queryshift.cli import main

    data = save_llamaindex_json(_long_texts(), tmp_path / "long.json")
    out = tmp_path / "model"
    args = ["finetune", str(data), "-o", str(out), "--epochs", "1", "--batch-size", "4"]
    args += ["--max-seq-length", "8", "--learning-rate", "1e-12"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "finetune_report.json").read_text())
    validation = report["validation"]
    # A learning rate of 1e-12 changes nothing: scored at one length, both models score the same.
    assert validation["max_seq_length"] == 8
    assert validation["finetuned"]["ndcg@10"] == pytest.approx(validation["base"]["ndcg@10"], abs=1e-6)
    assert "reindex" not in result.stdout and "does not beat the base model" in result.stdout
    assert "train_runtime" not in result.stdout  # the trainer's log dicts go to the log, not stdout


@pytest.mark.slow
def test_advise_json_is_pure_json_on_stdout(tmp_path):
    from queryshift.cli import main

    data = save_llamaindex_json(_long_texts(), tmp_path / "long.json")
    args = ["advise", str(data), "--json", "--epochs", "1", "--pseudo-queries", "0", "--validation", "none"]
    args += ["--finetune-epochs", "1", "--finetune-batch-size", "4", "--finetune-max-seq-length", "16"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    advice = json.loads(result.stdout)  # nothing but the JSON document on stdout
    assert advice["recommendation"] in ("adapter", "finetune", "none")
