"""advise(): both options measured on the same held-out queries, with intervals, costs and a rule."""

from __future__ import annotations

import json

import pytest

from queryshift.advise import RULE, Advice, Interval, advise, recommend
from queryshift.data import RetrievalDataset, load_dataset
from queryshift.training.config import TrainingConfig
from queryshift.training.finetune_config import FinetuneConfig

from .conftest import FINETUNE_DATA  # noqa: TID252

LYFT = FINETUNE_DATA / "train_dataset.json"


@pytest.mark.parametrize(
    ("adapter", "finetune", "versus", "gain", "expected"),
    [
        # fine-tune clearly ahead of both, by more than the minimum gain
        ((0.02, 0.01, 0.03), (0.06, 0.04, 0.08), (0.04, 0.02, 0.06), 0.01, "finetune"),
        # fine-tune ahead of the adapter but by less than the minimum gain: the cheaper adapter
        ((0.02, 0.01, 0.03), (0.025, 0.015, 0.035), (0.005, 0.001, 0.01), 0.01, "adapter"),
        # fine-tune not separable from the adapter: adapter
        ((0.02, 0.01, 0.03), (0.03, 0.01, 0.05), (0.01, -0.01, 0.03), 0.01, "adapter"),
        # adapter useless, fine-tune clearly better than base
        ((0.0, -0.01, 0.01), (0.03, 0.01, 0.05), (0.03, 0.0, 0.06), 0.01, "finetune"),
        # adapter useless, fine-tune better than base but below the minimum gain
        ((0.0, -0.01, 0.01), (0.005, 0.001, 0.01), (0.005, -0.01, 0.02), 0.01, "none"),
        # nothing measurable
        ((0.01, -0.01, 0.03), (0.02, -0.01, 0.05), (0.01, -0.02, 0.04), 0.01, "none"),
    ],
)
def test_rule(adapter, finetune, versus, gain, expected):
    choice, reason = recommend(
        Interval(*adapter), Interval(*finetune), Interval(*versus), min_finetune_gain=gain
    )
    assert choice == expected
    assert reason


def _lyft_subset(n_documents: int) -> RetrievalDataset:
    full = load_dataset(LYFT)
    documents = dict(sorted(full.documents.items())[:n_documents])
    queries = {q: t for q, t in full.queries.items() if full.qrels[q] <= documents.keys()}
    return RetrievalDataset(
        queries=queries,
        documents=documents,
        qrels={q: set(full.qrels[q]) for q in queries},
        name="lyft-subset",
    )


@pytest.mark.slow
def test_advise_end_to_end_on_lyft_subset(tmp_path):
    data = _lyft_subset(60)
    advice = advise(
        data,
        regime="document",
        adapter_config=TrainingConfig(epochs=5),
        finetune_config=FinetuneConfig(epochs=1, batch_size=16, max_seq_length=64),
        collection_size=1_000_000,
        n_resamples=500,
        output_dir=tmp_path / "advice",
    )
    assert isinstance(advice, Advice)
    assert advice.test_queries + advice.train_queries <= data.num_queries
    assert advice.test_documents == 60

    # both options with figures and intervals, and the rule applied to exactly those intervals
    for metrics in (advice.base, advice.adapter, advice.finetune):
        assert 0.0 < metrics["ndcg@10"] <= 1.0
    for name in ("adapter", "finetune"):
        interval = getattr(advice, f"{name}_vs_base")
        assert interval.low <= interval.diff <= interval.high
        assert interval.diff == pytest.approx(getattr(advice, name)["ndcg@10"] - advice.base["ndcg@10"])
    expected, _ = recommend(
        advice.adapter_vs_base, advice.finetune_vs_base, advice.finetune_vs_adapter, min_finetune_gain=0.01
    )
    assert advice.recommendation == expected

    # costs: the adapter is small and needs no re-index; the fine-tune rewrites the collection
    assert 0 < advice.adapter_cost.size_bytes < 2_000_000
    assert advice.adapter_cost.train_seconds > 0 and advice.adapter_cost.query_overhead_ms > 0
    cost = advice.finetune_cost
    assert cost.vectors_to_rewrite == 1_000_000
    assert cost.model_bytes > 10_000_000 and cost.docs_per_second > 0
    assert cost.reindex_seconds_estimate == pytest.approx(1_000_000 / cost.docs_per_second, rel=1e-2)

    text = advice.render()
    for needle in (
        "adapter",
        "fine-tune",
        f"{advice.adapter['ndcg@10']:.4f}",
        f"{advice.finetune['ndcg@10']:.4f}",
        advice.adapter_vs_base.render(),
        advice.finetune_vs_base.render(),
        advice.finetune_vs_adapter.render(),
        "95% CI",
        "1,000,000 vectors",
        f"Recommendation: {advice.recommendation}",
    ):
        assert needle in text, needle

    as_json = json.loads(json.dumps(advice.to_dict()))
    assert as_json["recommendation"] == advice.recommendation
    assert as_json["rule"] == RULE
    assert set(as_json["finetune_vs_adapter"]) == {"diff", "low", "high"}
    saved = json.loads((tmp_path / "advice" / "advice.json").read_text())
    assert saved == as_json
    assert (tmp_path / "advice" / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "advice" / "finetuned-model" / "finetune_report.json").is_file()


def test_advise_refuses_mismatched_base_model_and_overlapping_test():
    from queryshift.embeddings import SentenceTransformerEncoder

    data = RetrievalDataset(
        queries={"q1": "a", "q2": "b"}, documents={"d1": "x", "d2": "y"}, qrels={"q1": {"d1"}, "q2": {"d2"}}
    )
    with pytest.raises(ValueError, match="same base model"):
        advise(
            data,
            data,
            encoder=SentenceTransformerEncoder("/some/other/model"),
            finetune_config=FinetuneConfig(),
        )
    with pytest.raises(ValueError, match="test shares 2 query ids"):
        advise(data, data, finetune_config=FinetuneConfig())
    with pytest.raises(ValueError, match="collection_size"):
        advise(data, collection_size=0)
