import numpy as np
import pytest

from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset
from queryshift.evaluation import evaluate_retrieval, rank_documents
from queryshift.training.scoring import SplitScorer, rank_top_k

METRICS = ("ndcg@10", "mrr@10", "hit@1", "hit@5", "recall@10", "precision@3", "map@100")


def _split(rng, n_docs, q00_relevant=(1, 2, 5)):
    docs = rng.standard_normal((n_docs, 8)).astype(np.float32)
    docs[1] = docs[0]  # a tie: broken by ascending index in both scorers
    doc_ids = [f"d{i:02d}" for i in range(n_docs)]
    qrels = {f"q{i:02d}": {doc_ids[i % n_docs], doc_ids[(3 * i) % n_docs]} for i in range(12)}
    qrels["q00"] = {doc_ids[i % n_docs] for i in q00_relevant}
    ds = RetrievalDataset(queries=dict.fromkeys(qrels, ""), documents=dict.fromkeys(doc_ids, ""), qrels=qrels)
    queries = docs[[i % n_docs for i in range(12)]] + rng.standard_normal((12, 8)).astype(np.float32)
    return EmbeddedDataset(ds, sorted(qrels), queries, doc_ids, docs, "toy")


@pytest.mark.parametrize("n_docs", [40, 6])  # 6 < k: rankings shorter than the metrics' cut-off
def test_matches_evaluate_retrieval_for_every_stacked_candidate(rng, n_docs):
    part = _split(rng, n_docs)
    stack = np.stack([part.query_vectors, part.query_vectors[::-1].copy(), -part.query_vectors])
    got = SplitScorer(part, METRICS).score(stack)
    for vectors, scores in zip(stack, got, strict=True):
        expected = evaluate_retrieval(
            vectors,
            part.query_ids,
            part.document_vectors,
            part.document_ids,
            part.dataset.qrels,
            metrics=METRICS,
        ).metrics
        assert scores == pytest.approx(expected, abs=1e-12)
    assert got[0] != got[2]


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
@pytest.mark.parametrize("n_docs", [40, 6])
# 3 relevant documents at most: ranks counted; 11: each row's top k selected
@pytest.mark.parametrize("q00_relevant", [(1, 2, 5), tuple(range(1, 12))])
def test_alpha_path_ranks_every_alpha_as_the_stacked_vectors_do(rng, distance, n_docs, q00_relevant):
    part = _split(rng, n_docs, q00_relevant)
    updates = rng.standard_normal(part.query_vectors.shape).astype(np.float32)
    alphas = (0.25, 0.5, 1.0)
    scorer = SplitScorer(part, METRICS, distance=distance)
    stacked = scorer.score_per_query(np.stack([part.query_vectors + a * updates for a in alphas]))
    by_path = scorer.score_alpha_path(part.query_vectors, updates, alphas)
    for metric in METRICS:
        np.testing.assert_allclose(by_path[metric], stacked[metric], atol=1e-12)
    assert not np.array_equal(by_path["ndcg@10"][0], by_path["ndcg@10"][2])  # the alphas do rank apart
    # the next epoch: the base queries' scores come from the first call, the updates are new
    later = -2 * updates
    again = scorer.score_alpha_path(part.query_vectors, later, alphas)
    stacked = scorer.score_per_query(np.stack([part.query_vectors + a * later for a in alphas]))
    for metric in METRICS:
        np.testing.assert_allclose(again[metric], stacked[metric], atol=1e-12)
    assert not np.array_equal(again["ndcg@10"], by_path["ndcg@10"])


def test_alpha_path_refuses_non_finite_updates(rng):
    part = _split(rng, 40)
    updates = np.zeros_like(part.query_vectors)
    updates[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"adapted query rows \[3\]"):
        SplitScorer(part, METRICS).score_alpha_path(part.query_vectors, updates, (0.5,))


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
def test_rank_top_k_ranks_as_rank_documents(rng, distance):
    queries = rng.standard_normal((1500, 8)).astype(np.float32)  # two chunks of 1,024 rows
    documents = rng.standard_normal((60, 8)).astype(np.float32)
    expected = rank_documents(queries, documents, k=7, distance=distance)
    np.testing.assert_array_equal(rank_top_k(queries, documents, k=7, distance=distance), expected)
    assert rank_top_k(queries[:2], documents[:3], k=7, distance=distance).shape == (2, 3)
    queries[1200, 3] = np.inf
    with pytest.raises(ValueError, match=r"query_vectors rows \[1200\]"):
        rank_top_k(queries, documents, k=7, distance=distance)
