"""The full fine-tune path on a small real subset: model directory, report, checkpoint choice, cleanup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from queryshift.data import RetrievalDataset, load_dataset
from queryshift.splits import split_dataset
from queryshift.training import finetune as finetune_module
from queryshift.training.finetune import REPORT_NAME, finetune_model, load_finetune_report
from queryshift.training.finetune_config import FinetuneConfig

from ..conftest import FINETUNE_DATA  # noqa: TID252

LYFT = FINETUNE_DATA / "train_dataset.json"


def _subset(n_documents: int) -> RetrievalDataset:
    """The first ``n_documents`` Lyft chunks and every question about them."""
    full = load_dataset(LYFT)
    documents = dict(sorted(full.documents.items())[:n_documents])
    queries = {q: t for q, t in full.queries.items() if full.qrels[q] <= documents.keys()}
    return RetrievalDataset(
        queries=queries,
        documents=documents,
        qrels={q: set(full.qrels[q]) for q in queries},
        name=f"lyft[:{n_documents}]",
    )


@pytest.fixture(scope="module")
def small() -> RetrievalDataset:
    data = _subset(40)
    assert 70 <= data.num_queries <= 90
    return data


@pytest.fixture(scope="module")
def finetuned(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune") / "model"
    config = FinetuneConfig(epochs=1, batch_size=16, max_seq_length=64, evaluations_per_epoch=2, seed=3)
    return finetune_model(small, config, output_dir=out), config


@pytest.mark.slow
def test_model_directory_loads_and_embeds(finetuned):
    from sentence_transformers import SentenceTransformer

    result, _ = finetuned
    model = SentenceTransformer(str(result.model_path))
    assert model.max_seq_length == 64
    vectors = model.encode_query(["How did Lyft's revenue change?"])
    assert vectors.shape == (1, 384) and np.isfinite(vectors).all()
    # only the model and its report: checkpoints were written elsewhere and removed
    assert not any(p.name.startswith("checkpoint-") for p in result.model_path.iterdir())
    leftovers = [p.name for p in result.model_path.parent.iterdir() if p != result.model_path]
    assert leftovers == []


@pytest.mark.slow
def test_report_has_base_and_finetuned_validation_metrics(finetuned, small):
    result, config = finetuned
    report = load_finetune_report(result.model_path)
    assert json.loads((result.model_path / REPORT_NAME).read_text()) == report
    for side in ("base", "finetuned"):
        assert set(report["validation"][side]) >= {"ndcg@10", "mrr@10", "hit@10", "recall@10"}
        assert 0.0 < report["validation"][side]["ndcg@10"] <= 1.0
    assert report["config"] == config.to_dict()
    assert report["queryshift_version"] and report["sentence_transformers_version"]
    assert set(report["seconds"]) == {"base_eval", "train", "final_eval", "total"}

    # validation carved from the training data with the configured regime; never trained on
    split = split_dataset(
        small, regime="document", test_fraction=config.validation_fraction, seed=config.seed
    )
    assert report["validation"]["queries"] == len(split.test)
    assert report["validation"]["regime"] == "document"
    trained_on = sum(len(small.qrels[q]) for q in split.train)
    assert report["train_pairs"] == result.train_pairs == trained_on


@pytest.mark.slow
def test_best_checkpoint_is_chosen_on_validation(finetuned):
    result, _ = finetuned
    history = result.eval_history
    assert len(history) == 2  # two validation runs in the one epoch
    best = max(history, key=lambda h: h["ndcg@10"])
    assert result.best_checkpoint["step"] == best["step"]
    assert result.best_checkpoint["value"] == pytest.approx(best["ndcg@10"])
    # the saved model is that checkpoint: re-scoring it reproduces the trainer's figure
    assert result.validation["finetuned"]["ndcg@10"] == pytest.approx(best["ndcg@10"], abs=2e-3)


@pytest.mark.slow
def test_cached_loss_matryoshka_and_hard_negatives(tmp_path):
    from sentence_transformers import SentenceTransformer

    data = _subset(16)
    config = FinetuneConfig(
        epochs=1,
        batch_size=8,
        loss="cached_mnrl",
        mini_batch_size=4,
        matryoshka_dims=(64, 384),
        hard_negatives=1,
        max_seq_length=32,
        validation_split="query",
    )
    result = finetune_model(data, config, output_dir=tmp_path / "model")
    assert config.matryoshka_dims == (384, 64)
    model = SentenceTransformer(str(result.model_path), truncate_dim=64)
    assert model.encode_document(["a chunk"]).shape == (1, 64)
    assert result.validation["regime"] == "query"
    assert 0 < result.train_pairs <= sum(len(v) for v in data.qrels.values())
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 1}, "batch_size must be >= 2"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
        ({"mini_batch_size": 8}, "only applies to loss='cached_mnrl'"),
        ({"loss": "triplet"}, "loss must be 'mnrl' or 'cached_mnrl'"),
        ({"matryoshka_dims": (64, 64)}, "must not repeat"),
        ({"matryoshka_dims": (0,)}, "positive integers"),
        ({"hard_negatives": -1}, "hard_negatives"),
        ({"validation_split": "random"}, "validation_split"),
        ({"validation_fraction": 0.5}, r"validation_fraction must be in \(0, 0.5\)"),
        ({"max_seq_length": 0}, "max_seq_length"),
    ],
)
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**kwargs)


@pytest.mark.slow
def test_bad_inputs_fail_before_training_and_leave_nothing(small, tmp_path):
    out = tmp_path / "model"
    with pytest.raises(ValueError, match=r"matryoshka_dims \[512\] exceed the model's dim=384"):
        finetune_model(small, FinetuneConfig(matryoshka_dims=(512,)), output_dir=out)
    with pytest.raises(ValueError, match="validation shares"):
        finetune_model(
            small, FinetuneConfig(), output_dir=out, validation=small.subset(sorted(small.queries)[:5])
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_failure_during_training_removes_checkpoints_and_keeps_old_model(small, tmp_path, monkeypatch):
    out = tmp_path / "model"
    out.mkdir()
    # A model an earlier `finetune` wrote (its report marks it), which the crash must leave whole.
    (out / "finetune_report.json").write_text('{"old": "model"}')
    seen: list[Path] = []

    def failing_trainer(model, pairs, validation, config, checkpoints, show_progress_bar):
        seen.append(checkpoints)
        assert checkpoints.is_dir()
        raise RuntimeError("trainer crashed")

    monkeypatch.setattr(finetune_module, "_build_trainer", failing_trainer)
    with pytest.raises(RuntimeError, match="trainer crashed"):
        finetune_model(small, FinetuneConfig(max_seq_length=32), output_dir=out)
    assert not seen[0].exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (out / "finetune_report.json").read_text() == '{"old": "model"}'
