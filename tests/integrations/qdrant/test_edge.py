"""AdaptedEdgeShard on the real embedded Qdrant engine (qdrant-edge), with an HNSW index built.

Every adapted query must return exactly what the shard returns for the same request built by
hand with ``adapter.apply(vector)`` in place of each raw query vector.
"""

from __future__ import annotations

import numpy as np
import pytest
import qdrant_edge as qe

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.errors import DimensionMismatchError, DistanceMismatchError
from queryshift.integrations.qdrant.edge import AdaptedEdgeShard

DIM = 8
N_POINTS = 3000  # 96 KB per dense vector: far above the 10 KB indexing / full-scan thresholds below


def random_adapter(seed: int, *, dim: int = DIM, distance: str = "cosine") -> LinearAdapter:
    rng = np.random.default_rng(seed)
    weight = np.eye(dim, dtype=np.float32) + 0.8 * rng.normal(size=(dim, dim)).astype(np.float32)
    return LinearAdapter(AdapterConfig(kind="linear", dim=dim, distance=distance), weight=weight)


A = random_adapter(1)
B = random_adapter(2)


def by_hand(adapter: LinearAdapter, vector: list[float]) -> list[float]:
    return adapter.apply(np.asarray(vector, dtype=np.float32)).tolist()


def ids(points: list[qe.ScoredPoint]) -> list[object]:
    return [p.id for p in points]


def scored(points: list[qe.ScoredPoint]) -> list[tuple[object, float]]:
    return [(p.id, p.score) for p in points]


def fused(points: list[qe.ScoredPoint]) -> list[tuple[float, str]]:
    """Fusion results up to tie order: RRF gives equal scores to, e.g., the top hit of each prefetch."""
    return sorted((-p.score, str(p.id)) for p in points)


CONFIG = qe.EdgeConfig(
    vectors={
        "text": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
        "image": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
    },
    sparse_vectors={"sparse": qe.EdgeSparseVectorParams()},
    hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10),  # KB
    optimizers=qe.EdgeOptimizersConfig(indexing_threshold=10, default_segment_number=1),  # KB
)


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> qe.EdgeShard:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(N_POINTS, DIM)).astype(np.float32)
    image = rng.normal(size=(N_POINTS, DIM)).astype(np.float32)
    points = [
        qe.Point(
            i,
            {
                "text": text[i].tolist(),
                "image": image[i].tolist(),
                "sparse": qe.SparseVector([i % 7, 10 + i % 5], [0.5, 0.3]),
            },
            {"group": i % 5},
        )
        for i in range(N_POINTS)
    ]
    s = qe.EdgeShard.create(str(tmp_path_factory.mktemp("edge")), CONFIG)
    s.update(qe.UpdateOperation.upsert_points(points))
    s.optimize()  # builds the HNSW graphs
    info = s.info()
    assert info.points_count == N_POINTS
    assert info.indexed_vectors_count >= 2 * N_POINTS  # both dense vectors are HNSW-indexed
    yield s
    s.close()


@pytest.fixture
def vectors() -> list[list[float]]:
    return np.random.default_rng(7).normal(size=(4, DIM)).astype(np.float32).tolist()


def test_nearest_with_filter_equals_by_hand_and_differs_from_plain(shard: qe.EdgeShard, vectors) -> None:
    adapted = AdaptedEdgeShard(shard, A, config=CONFIG)
    flt = qe.Filter(must=[qe.FieldCondition(key="group", match=qe.MatchValue(value=1))])
    differs = 0
    for v in vectors:
        got = adapted.query(limit=10, query=qe.Query.Nearest(v, using="text"), filter=flt, with_payload=True)
        want = shard.query(
            qe.QueryRequest(
                limit=10, query=qe.Query.Nearest(by_hand(A, v), using="text"), filter=flt, with_payload=True
            )
        )
        assert scored(got) == scored(want)
        assert all(p.payload == {"group": 1} for p in got)
        differs += ids(got) != ids(
            shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(v, using="text"), filter=flt))
        )
    assert differs >= len(vectors) // 2


def test_every_query_kind_adapts_its_raw_vectors(shard: qe.EdgeShard, vectors) -> None:
    v1, v2, v3, v4 = vectors
    a1, a2, a3 = by_hand(A, v1), by_hand(A, v2), by_hand(A, v3)
    strategy = qe.NaiveFeedbackStrategy(1.0, 1.0, 1.0)
    cases = [
        (
            qe.Query.RecommendBestScore(qe.RecommendQuery(positives=[v1, v2], negatives=[v3]), using="text"),
            qe.Query.RecommendBestScore(qe.RecommendQuery(positives=[a1, a2], negatives=[a3]), using="text"),
        ),
        (
            qe.Query.RecommendSumScores(qe.RecommendQuery(positives=[v1], negatives=[v2]), using="text"),
            qe.Query.RecommendSumScores(qe.RecommendQuery(positives=[a1], negatives=[a2]), using="text"),
        ),
        (
            qe.Query.Discover(qe.DiscoverQuery(target=v1, pairs=[qe.ContextPair(v2, v3)]), using="text"),
            qe.Query.Discover(qe.DiscoverQuery(target=a1, pairs=[qe.ContextPair(a2, a3)]), using="text"),
        ),
        (
            qe.Query.Context(qe.ContextQuery(pairs=[qe.ContextPair(v1, v2)]), using="text"),
            qe.Query.Context(qe.ContextQuery(pairs=[qe.ContextPair(a1, a2)]), using="text"),
        ),
        (
            # Feedback items are judged documents (document space): only the target is adapted.
            qe.Query.FeedbackNaive(
                qe.FeedbackNaiveQuery(target=v1, feedback=[qe.FeedbackItem(v4, 0.9)], strategy=strategy),
                using="text",
            ),
            qe.Query.FeedbackNaive(
                qe.FeedbackNaiveQuery(target=a1, feedback=[qe.FeedbackItem(v4, 0.9)], strategy=strategy),
                using="text",
            ),
        ),
        (qe.Mmr(v1, 0.5, 50, using="text"), qe.Mmr(a1, 0.5, 50, using="text")),
    ]
    adapted = AdaptedEdgeShard(shard, {"text": A}, config=CONFIG)
    for raw, manual in cases:
        assert scored(adapted.query(limit=8, query=raw)) == scored(
            shard.query(qe.QueryRequest(limit=8, query=manual))
        ), raw


def test_prefetch_fusion_batch_and_search(shard: qe.EdgeShard, vectors) -> None:
    v1, v2, v3, _ = vectors
    sparse = qe.SparseVector([1, 2, 11], [1.0, 0.5, 0.2])
    adapted = AdaptedEdgeShard(shard, {"text": A, "image": B}, config=CONFIG)

    def prefetch_args(t1, t2, t3):
        return [
            {"limit": 30, "query": qe.Query.Nearest(t1, using="text")},
            {"limit": 30, "query": qe.Query.Nearest(sparse, using="sparse")},  # sparse: untouched
            {
                "limit": 20,
                "query": qe.Query.Nearest(t3, using="text"),
                "prefetches": [{"limit": 40, "query": qe.Query.Nearest(t2, using="image")}],
            },
        ]

    def built(args):
        return [
            qe.Prefetch(
                limit=a["limit"],
                query=a["query"],
                prefetches=[qe.Prefetch(**inner) for inner in a.get("prefetches", [])],
            )
            for a in args
        ]

    manual_args = prefetch_args(by_hand(A, v1), by_hand(B, v2), by_hand(A, v3))
    for fusion in (qe.Fusion.Rrf(k=60), qe.Fusion.Dbsf()):
        # limit above the 80 prefetched candidates: every fused point is returned, none cut in a tie.
        got = adapted.query(limit=100, query=fusion, prefetches=prefetch_args(v1, v2, v3))
        want = shard.query(qe.QueryRequest(limit=100, query=fusion, prefetches=built(manual_args)))
        assert fused(got) == fused(want)
        plain = shard.query(
            qe.QueryRequest(limit=100, query=fusion, prefetches=built(prefetch_args(v1, v2, v3)))
        )
        assert fused(got) != fused(plain)
    # A built prefetch is accepted when it holds no vector query (here: a filtered selection).
    outer = qe.Prefetch(
        limit=500, filter=qe.Filter(must=[qe.FieldCondition(key="group", match=qe.MatchValue(value=3))])
    )
    got = adapted.query(limit=5, query=qe.Query.Nearest(v1, using="text"), prefetches=[outer])
    want = shard.query(
        qe.QueryRequest(limit=5, query=qe.Query.Nearest(by_hand(A, v1), using="text"), prefetches=[outer])
    )
    assert scored(got) == scored(want)

    batch = adapted.query_batch(
        [
            {"limit": 5, "query": qe.Query.Nearest(v1, using="text")},
            {"limit": 5, "query": qe.Query.Nearest(v2, using="image"), "with_payload": True},
        ]
    )
    manual = shard.query_batch(
        qe.QueryBatchRequest(
            [
                qe.QueryRequest(limit=5, query=qe.Query.Nearest(by_hand(A, v1), using="text")),
                qe.QueryRequest(
                    limit=5, query=qe.Query.Nearest(by_hand(B, v2), using="image"), with_payload=True
                ),
            ]
        )
    )
    assert [scored(r) for r in batch] == [scored(r) for r in manual]

    got = adapted.search(query=qe.Query.Nearest(v3, using="image"), limit=7)
    want = shard.search(qe.SearchRequest(query=qe.Query.Nearest(by_hand(B, v3), using="image"), limit=7))
    assert scored(got) == scored(want)


def test_vectors_without_adapter_are_untouched(shard: qe.EdgeShard, vectors) -> None:
    adapted = AdaptedEdgeShard(shard, {"text": A}, config=CONFIG)
    v = vectors[0]
    got = adapted.query(limit=10, query=qe.Query.Nearest(v, using="image"))
    assert scored(got) == scored(
        shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(v, using="image")))
    )
    assert dict(adapted.adapters) == {"text": A}


def test_mismatches_and_unreadable_requests_are_clear_errors(shard: qe.EdgeShard, vectors) -> None:
    with pytest.raises(
        DimensionMismatchError, match=r"vector 'text' stores vectors of dim=8 but the adapter expects dim=4"
    ):
        AdaptedEdgeShard(shard, {"text": LinearAdapter.identity(4)}, config=CONFIG)
    with pytest.raises(DistanceMismatchError, match="distance='dot'"):
        AdaptedEdgeShard(shard, {"image": random_adapter(3, distance="dot")}, config=CONFIG)
    with pytest.raises(ValueError, match="'sparse' is a sparse vector"):
        AdaptedEdgeShard(shard, {"sparse": A}, config=CONFIG)
    # The all-vectors adapter is checked per vector when first used.
    lazy = AdaptedEdgeShard(shard, LinearAdapter.identity(4), config=CONFIG)
    with pytest.raises(DimensionMismatchError):
        lazy.query(limit=3, query=qe.Query.Nearest(vectors[0], using="text"))

    adapted = AdaptedEdgeShard(shard, A, config=CONFIG)
    read_back = qe.QueryRequest(limit=3, query=qe.Query.Nearest(vectors[0], using="text")).query
    with pytest.raises(TypeError, match="read back from a built request"):
        adapted.query(limit=3, query=read_back)
    built = qe.Prefetch(limit=10, query=qe.Query.Nearest(vectors[0], using="text"))
    with pytest.raises(TypeError, match="pass the prefetch as a mapping"):
        adapted.query(limit=3, query=qe.Fusion.Rrf(k=60), prefetches=[built])
    with pytest.raises(TypeError, match="unknown qe.Prefetch arguments"):
        adapted.query(limit=3, prefetches=[{"limit": 3, "using": "text"}])
    with pytest.raises(TypeError, match="EdgeConfig"):
        AdaptedEdgeShard(shard, A, config={"text": 8})


def test_swap_is_checked_before_it_goes_live(shard: qe.EdgeShard, vectors) -> None:
    adapted = AdaptedEdgeShard(shard, {"text": A}, config=CONFIG)
    request = dict(limit=10, query=qe.Query.Nearest(vectors[1], using="text"))
    with_a = scored(adapted.query(**request))
    adapted.set_adapters({"text": B})
    assert scored(adapted.query(**request)) == scored(
        shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(by_hand(B, vectors[1]), using="text")))
    )
    with pytest.raises(DimensionMismatchError):
        adapted.set_adapters({"text": LinearAdapter.identity(4)})
    assert adapted.adapters["text"] is B  # the bad swap never went live
    adapted.set_adapters({"text": A})
    assert scored(adapted.query(**request)) == with_a


def test_other_methods_are_the_shards_own(shard: qe.EdgeShard) -> None:
    adapted = AdaptedEdgeShard(shard, A, config=CONFIG)
    assert adapted.shard is shard
    assert adapted.info().points_count == N_POINTS
    assert adapted.count(qe.CountRequest()) == N_POINTS
    assert [r.id for r in adapted.retrieve([3, 4], False, False)] == [3, 4]
    assert "*" in repr(adapted)
