import math

import numpy as np
import pytest

from queryshift.evaluation import bootstrap_difference, evaluate_retrieval, rank_documents, score_rankings


def test_metrics_worked_out_by_hand():
    # q1: relevant {b}, ranked a, b, c -> first hit at rank 2
    # q2: relevant {a, c}, ranked a, b, c -> hits at ranks 1 and 3
    out = score_rankings(
        [["a", "b", "c"], ["a", "b", "c"]],
        [{"b"}, {"a", "c"}],
        metrics=["mrr@10", "hit@1", "recall@2", "ndcg@3", "map@3", "precision@2"],
    )
    assert out["mrr@10"].tolist() == [0.5, 1.0]
    assert out["hit@1"].tolist() == [0.0, 1.0]
    assert out["recall@2"].tolist() == [0.0 + 1.0, 0.5]
    ndcg_q2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    np.testing.assert_allclose(out["ndcg@3"], [1 / math.log2(3), ndcg_q2])
    np.testing.assert_allclose(out["map@3"], [0.5, (1 + 2 / 3) / 2])
    assert out["precision@2"].tolist() == [0.5, 0.5]


def test_rank_documents_distances_and_ties():
    docs = np.array([[1, 0], [1, 0], [0, 2]], np.float32)
    q = np.array([[1, 0.1]], np.float32)
    assert rank_documents(q, docs, k=3).tolist() == [[0, 1, 2]]  # tie broken by index
    assert rank_documents(q, docs, k=1, distance="dot").tolist() == [[0]]
    assert rank_documents(np.array([[0, 1.9]], np.float32), docs, k=1, distance="euclid").tolist() == [[2]]
    with pytest.raises(ValueError, match="distance"):
        rank_documents(q, docs, k=1, distance="manhattan")


def test_bootstrap_interval_contains_the_true_difference():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    b = a + 0.05 + 0.1 * rng.standard_normal(400)
    diff, low, high = bootstrap_difference(a, b, seed=1)
    assert low < diff < high and low > 0.03 and high < 0.07
    with pytest.raises(ValueError):
        bootstrap_difference(a, b[:10])


@pytest.mark.slow
def test_matches_sentence_transformers_evaluator(encoder, uber):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    ds = uber.dataset
    qids = sorted(ds.queries)[:40]
    docs = sorted({d for q in qids for d in ds.qrels[q]} | set(sorted(ds.documents)[:60]))
    sub = uber.subset(qids)
    rows = [uber.document_ids.index(d) for d in docs]
    ours = evaluate_retrieval(
        sub.query_vectors,
        qids,
        uber.document_vectors[rows],
        docs,
        ds.qrels,
        metrics=["ndcg@10", "mrr@10", "hit@1", "hit@5", "recall@10", "precision@5", "map@100"],
    ).metrics
    evaluator = InformationRetrievalEvaluator(
        queries={q: ds.queries[q] for q in qids},
        corpus={d: ds.documents[d] for d in docs},
        relevant_docs={q: ds.qrels[q] for q in qids},
        name="x",
        write_csv=False,
    )
    theirs = evaluator(encoder.model)
    pairs = {
        "ndcg@10": "x_cosine_ndcg@10",
        "mrr@10": "x_cosine_mrr@10",
        "hit@1": "x_cosine_accuracy@1",
        "hit@5": "x_cosine_accuracy@5",
        "recall@10": "x_cosine_recall@10",
        "precision@5": "x_cosine_precision@5",
        "map@100": "x_cosine_map@100",
    }
    for ours_key, their_key in pairs.items():
        assert ours[ours_key] == pytest.approx(theirs[their_key], abs=1e-4), ours_key
