"""AdaptedQdrantClient / AsyncAdaptedQdrantClient against real in-process Qdrant (local mode).

Fixtures are dim=8 seeded random unit vectors. The central property: a query through the
wrapper returns exactly what the unwrapped client returns for the same query with every raw
query vector replaced by ``adapter.apply(vector)`` by hand, and exactly what the unwrapped
client returns for point ids, sparse vectors and other non-vector inputs.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.errors import DimensionMismatchError, DistanceMismatchError
from queryshift.integrations.qdrant import AdaptedQdrantClient, AsyncAdaptedQdrantClient
from queryshift.integrations.qdrant.requests import rewrite_prefetch, rewrite_query

DIM = 8
N_POINTS = 60


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_adapter(
    seed: int, *, dim: int = DIM, distance: str = "cosine", scale: float = 0.8
) -> LinearAdapter:
    """A clearly non-identity linear adapter."""
    rng = np.random.default_rng(seed)
    weight = np.eye(dim, dtype=np.float32) + scale * rng.normal(size=(dim, dim)).astype(np.float32)
    return LinearAdapter(AdapterConfig(kind="linear", dim=dim, distance=distance), weight=weight)


A = random_adapter(1)
B = random_adapter(2)


def hits(response: models.QueryResponse) -> Hits:
    """Ids in rank order, and scores; local mode's scores vary in the last bits between identical calls."""
    return Hits([p.id for p in response.points], [p.score for p in response.points])


class Hits:
    def __init__(self, ids: list[object], scores: list[float]) -> None:
        self.ids, self.scores = ids, scores

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Hits)
            and self.ids == other.ids
            and bool(np.allclose(self.scores, other.scores, rtol=0, atol=1e-6))
        )

    def __repr__(self) -> str:
        return f"Hits({list(zip(self.ids, np.round(self.scores, 6).tolist(), strict=True))})"


def fused(response: models.QueryResponse) -> list[tuple[float, str]]:
    """Fusion results up to tie order: RRF gives equal scores to, e.g., the top hit of each prefetch."""
    return sorted((round(-p.score, 6), str(p.id)) for p in response.points)


def groups(result: models.GroupsResult) -> list[tuple[object, Hits]]:
    return [(g.id, Hits([h.id for h in g.hits], [h.score for h in g.hits])) for g in result.groups]


def by_hand(adapter: LinearAdapter, vector: np.ndarray | list[float]) -> list[float]:
    return adapter.apply(np.asarray(vector, dtype=np.float32)).tolist()


def fill(client: QdrantClient, seed: int = 0) -> dict[str, np.ndarray]:
    """Collections: 'docs' (named dense 'text' + 'image', sparse 'sparse'), 'plain' (unnamed vector)."""
    rng = np.random.default_rng(seed)
    text, image, plain = unit(rng, N_POINTS), unit(rng, N_POINTS), unit(rng, N_POINTS)
    client.create_collection(
        "docs",
        vectors_config={
            "text": models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            "image": models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        },
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    points = []
    for i in range(N_POINTS):
        idx = sorted(rng.choice(20, size=3, replace=False).tolist())
        points.append(
            models.PointStruct(
                id=i,
                vector={
                    "text": text[i].tolist(),
                    "image": image[i].tolist(),
                    "sparse": models.SparseVector(indices=idx, values=rng.random(3).tolist()),
                },
                payload={"group": i % 5, "i": i},
            )
        )
    client.upsert("docs", points)
    client.create_collection(
        "plain", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    client.upsert(
        "plain",
        [
            models.PointStruct(id=i, vector=plain[i].tolist(), payload={"group": i % 5})
            for i in range(N_POINTS)
        ],
    )
    return {"text": text, "image": image, "plain": plain}


@pytest.fixture(scope="module", params=["memory", "path"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> QdrantClient:
    """The same tests run on QdrantClient(':memory:') and QdrantClient(path=...); tests only read."""
    if request.param == "memory":
        c = QdrantClient(":memory:")
    else:
        c = QdrantClient(path=str(tmp_path_factory.mktemp("qdrant")))
    fill(c)
    yield c
    c.close()


@pytest.fixture
def queries() -> np.ndarray:
    return unit(np.random.default_rng(42), 6)  # (6, dim)


class CountingClient(QdrantClient):
    """A real local client that counts get_collection calls (the adapter check)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.get_collection_calls = 0

    def get_collection(self, collection_name: str) -> models.CollectionInfo:
        self.get_collection_calls += 1
        return super().get_collection(collection_name)


# -- the basic property -----------------------------------------------------------------------


def test_raw_vector_query_equals_adapting_by_hand(client: QdrantClient, queries: np.ndarray) -> None:
    adapted = AdaptedQdrantClient(client, adapters={"plain": A})
    changed = 0
    for q in queries:
        got = hits(adapted.query_points("plain", query=q.tolist(), limit=10))
        assert got == hits(client.query_points("plain", query=by_hand(A, q), limit=10))
        assert got == hits(adapted.query_points("plain", query=q, limit=10))  # numpy input too
        changed += got != hits(client.query_points("plain", query=q.tolist(), limit=10))
    assert changed >= len(queries) // 2  # the adapter really changes rankings


def test_nearest_query_with_filter_and_options_passes_everything_else_through(
    client: QdrantClient, queries: np.ndarray
) -> None:
    adapted = AdaptedQdrantClient(client, adapters={"plain": A})
    flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=2))])
    kwargs = dict(
        query_filter=flt, limit=4, offset=1, with_payload=["group"], with_vectors=True, score_threshold=-1.0
    )
    got = adapted.query_points("plain", query=models.NearestQuery(nearest=queries[0].tolist()), **kwargs)
    want = client.query_points("plain", query=models.NearestQuery(nearest=by_hand(A, queries[0])), **kwargs)
    assert hits(got) == hits(want)
    assert [(p.payload, p.vector is not None) for p in got.points] == [(p.payload, True) for p in want.points]
    assert all(p.payload == {"group": 2} for p in got.points) and len(got.points) == 4


def test_named_vectors_are_adapted_per_vector(client: QdrantClient, queries: np.ndarray) -> None:
    q = queries[1]
    only_text = AdaptedQdrantClient(client, adapters={("docs", "text"): A})
    assert hits(only_text.query_points("docs", query=q.tolist(), using="text")) == hits(
        client.query_points("docs", query=by_hand(A, q), using="text")
    )
    # 'image' has no adapter: untouched.
    assert hits(only_text.query_points("docs", query=q.tolist(), using="image")) == hits(
        client.query_points("docs", query=q.tolist(), using="image")
    )
    # A collection-wide key serves every dense vector; a (collection, vector) key overrides it.
    mixed = AdaptedQdrantClient(client, adapters={"docs": A, ("docs", "image"): B})
    assert hits(mixed.query_points("docs", query=q.tolist(), using="text")) == hits(
        client.query_points("docs", query=by_hand(A, q), using="text")
    )
    assert hits(mixed.query_points("docs", query=q.tolist(), using="image")) == hits(
        client.query_points("docs", query=by_hand(B, q), using="image")
    )
    assert mixed.adapter_for("docs", "image") is B and mixed.adapter_for("other") is None


def test_prefetch_with_rrf_fusion_is_adapted_recursively(client: QdrantClient, queries: np.ndarray) -> None:
    q1, q2, q3 = queries[:3]
    sparse = models.SparseVector(indices=[1, 5, 7], values=[0.5, 0.2, 0.9])

    def prefetch(t1, t2, t3) -> list[models.Prefetch]:
        return [
            models.Prefetch(query=t1, using="text", limit=20),
            models.Prefetch(query=sparse, using="sparse", limit=20),
            models.Prefetch(
                prefetch=models.Prefetch(query=models.NearestQuery(nearest=t2), using="image", limit=30),
                query=t3,
                using="text",
                limit=15,
            ),
        ]

    original = prefetch(q1.tolist(), q2.tolist(), q3.tolist())
    snapshot = copy.deepcopy(original)
    adapted = AdaptedQdrantClient(client, adapters={("docs", "text"): A, ("docs", "image"): B})
    for fusion in (models.FusionQuery(fusion=models.Fusion.RRF), models.RrfQuery(rrf=models.Rrf(k=10))):
        # limit above the 55 prefetched candidates: every fused point is returned, none cut in a tie.
        got = adapted.query_points("docs", prefetch=original, query=fusion, limit=100)
        want = client.query_points(
            "docs", prefetch=prefetch(by_hand(A, q1), by_hand(B, q2), by_hand(A, q3)), query=fusion, limit=100
        )
        assert fused(got) == fused(want)
        unadapted = client.query_points("docs", prefetch=original, query=fusion, limit=100)
        assert fused(got) != fused(unadapted)
    assert original == snapshot  # the caller's objects are never modified


def test_batch_adapts_every_request(client: QdrantClient, queries: np.ndarray) -> None:
    def requests(t0, t1, t2) -> list[models.QueryRequest]:
        return [
            models.QueryRequest(query=t0, using="text", limit=5),
            models.QueryRequest(
                query=models.NearestQuery(nearest=t1), using="image", limit=5, with_payload=True
            ),
            models.QueryRequest(query=7, using="text", limit=5),  # by id: untouched
            models.QueryRequest(
                prefetch=[models.Prefetch(query=t2, using="text", limit=20)],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=5,
            ),
        ]

    q0, q1, q2 = (q.tolist() for q in queries[:3])
    adapted = AdaptedQdrantClient(client, adapters={"docs": A})
    got = adapted.query_batch_points("docs", requests(q0, q1, q2))
    want = client.query_batch_points("docs", requests(by_hand(A, q0), by_hand(A, q1), by_hand(A, q2)))
    assert [hits(r) for r in got] == [hits(r) for r in want]
    assert hits(got[2]) == hits(client.query_batch_points("docs", requests(q0, q1, q2))[2])


def test_groups_are_adapted(client: QdrantClient, queries: np.ndarray) -> None:
    adapted = AdaptedQdrantClient(client, adapters={"plain": A})
    kwargs = dict(group_by="group", limit=3, group_size=2)
    got = adapted.query_points_groups("plain", query=queries[0].tolist(), **kwargs)
    want = client.query_points_groups("plain", query=by_hand(A, queries[0]), **kwargs)
    assert groups(got) == groups(want)
    assert groups(got) != groups(client.query_points_groups("plain", query=queries[0].tolist(), **kwargs))


def test_queries_by_point_id_are_untouched(client: QdrantClient) -> None:
    """A point id resolves, on the server, to the stored document vector: never adapted."""
    adapted = AdaptedQdrantClient(client, adapters={"docs": A, "plain": A})
    for query, using, name in [
        (5, None, "plain"),
        (models.NearestQuery(nearest=5), None, "plain"),
        (11, "text", "docs"),
        (
            models.RecommendQuery(recommend=models.RecommendInput(positive=[3, 4], negative=[7])),
            "text",
            "docs",
        ),
        (models.ContextQuery(context=[models.ContextPair(positive=3, negative=9)]), "image", "docs"),
    ]:
        assert hits(adapted.query_points(name, query=query, using=using)) == hits(
            client.query_points(name, query=query, using=using)
        )


def test_recommend_discover_context_feedback_adapt_raw_vectors_only(
    client: QdrantClient, queries: np.ndarray
) -> None:
    v1, v2, v3 = (q.tolist() for q in queries[:3])
    a1, a2 = by_hand(A, v1), by_hand(A, v2)

    def recommend(p, n, strategy):
        return models.RecommendQuery(
            recommend=models.RecommendInput(positive=[p, 3], negative=[n], strategy=strategy)
        )

    def discover(t, p):
        return models.DiscoverQuery(
            discover=models.DiscoverInput(target=t, context=[models.ContextPair(positive=p, negative=4)])
        )

    def context(p, n):
        return models.ContextQuery(context=models.ContextPair(positive=p, negative=n))

    def feedback(t, example):
        return models.RelevanceFeedbackQuery(
            relevance_feedback=models.RelevanceFeedbackInput(
                target=t,
                feedback=[
                    models.FeedbackItem(example=example, score=0.9),
                    models.FeedbackItem(example=8, score=0.1),
                ],
                strategy=models.NaiveFeedbackStrategy(
                    naive=models.NaiveFeedbackStrategyParams(a=1.0, b=1.0, c=1.0)
                ),
            )
        )

    adapted = AdaptedQdrantClient(client, adapters={"docs": A})
    cases = [
        (
            recommend(v1, v2, models.RecommendStrategy.AVERAGE_VECTOR),
            recommend(a1, a2, models.RecommendStrategy.AVERAGE_VECTOR),
        ),
        (
            recommend(v1, v2, models.RecommendStrategy.BEST_SCORE),
            recommend(a1, a2, models.RecommendStrategy.BEST_SCORE),
        ),
        (
            recommend(v1, v2, models.RecommendStrategy.SUM_SCORES),
            recommend(a1, a2, models.RecommendStrategy.SUM_SCORES),
        ),
        (discover(v1, v2), discover(a1, a2)),
        (context(v1, v2), context(a1, a2)),
        # Feedback examples are judged documents (document space): only the target is adapted.
        (feedback(v1, v3), feedback(a1, v3)),
    ]
    for raw, manual in cases:
        got = adapted.query_points("docs", query=raw, using="text", limit=8)
        assert hits(got) == hits(client.query_points("docs", query=manual, using="text", limit=8)), raw


def test_inference_objects_and_vector_free_queries_pass_through() -> None:
    called = []

    def fn(using, vector):
        called.append(using)
        return vector

    untouched = [
        models.Document(text="what is uber's revenue", model="sentence-transformers/all-MiniLM-L6-v2"),
        models.Image(image="https://example.com/cat.png", model="clip"),
        models.InferenceObject(object={"x": 1}, model="custom"),
        models.NearestQuery(nearest=models.Document(text="q", model="m")),
        models.SparseVector(indices=[1], values=[0.5]),
        models.FusionQuery(fusion=models.Fusion.DBSF),
        models.OrderByQuery(order_by="i"),
        models.SampleQuery(sample=models.Sample.RANDOM),
        "3f1c0a56-8e8b-4a5e-8d1c-2b1f1c1b2a3d",
        17,
        None,
    ]
    for query in untouched:
        assert rewrite_query(query, "text", fn) is query
    prefetch = models.Prefetch(
        query=models.Document(text="q", model="m"), prefetch=[models.Prefetch(query=3)]
    )
    assert rewrite_prefetch(prefetch, fn) is prefetch
    assert called == []
    with pytest.raises(TypeError, match="cannot adapt a query of type dict"):
        rewrite_query({"nearest": [0.1]}, None, fn)
    # Multi-vectors reach fn (so an adapted vector can refuse them) and come back as they went.
    for multi in ([[0.1, 0.2], [0.3, 0.4]], np.ones((2, DIM), np.float32)):
        assert rewrite_query(multi, "colbert", fn) is multi
        nearest = models.NearestQuery(nearest=multi)
        assert rewrite_query(nearest, "colbert", fn) is nearest
    assert called == ["colbert"] * 4


# -- checks against the collection ---------------------------------------------------------


def test_dimension_mismatch_is_a_clear_error(client: QdrantClient, queries: np.ndarray) -> None:
    small = LinearAdapter.identity(4, base_model="tiny-model")
    adapted = AdaptedQdrantClient(client, adapters={"plain": small})
    with pytest.raises(DimensionMismatchError, match=r"'plain'.*dim=8.*dim=4.*tiny-model"):
        adapted.query_points("plain", query=queries[0].tolist())


def test_distance_mismatch_and_unsupported_layouts_are_clear_errors(queries: np.ndarray) -> None:
    client = QdrantClient(":memory:")
    fill(client)
    q = queries[0].tolist()
    with pytest.raises(
        DistanceMismatchError, match=r"'cosine'.*distance='dot'.*TrainingConfig\(distance='cosine'\)"
    ):
        AdaptedQdrantClient(client, adapters={"plain": random_adapter(3, distance="dot")}).query_points(
            "plain", query=q
        )
    client.create_collection(
        "manhattan", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.MANHATTAN)
    )
    with pytest.raises(DistanceMismatchError, match="manhattan.*not support"):
        AdaptedQdrantClient(client, adapters={"manhattan": A}).query_points("manhattan", query=q)
    client.create_collection(
        "colbert",
        vectors_config=models.VectorParams(
            size=DIM,
            distance=models.Distance.COSINE,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        ),
    )
    with pytest.raises(DimensionMismatchError, match="multi-vector"):
        AdaptedQdrantClient(client, adapters={"colbert": A}).verify("colbert")
    adapted = AdaptedQdrantClient(client, adapters={"docs": A})
    with pytest.raises(ValueError, match=r"no unnamed vector.*\['image', 'text'\]"):
        adapted.query_points("docs", query=q)
    with pytest.raises(ValueError, match="sparse vector"):
        adapted.query_points("docs", query=q, using="sparse")
    # Dot and Euclid collections work with adapters trained for them.
    for distance, name in [(models.Distance.DOT, "dot"), (models.Distance.EUCLID, "euclid")]:
        client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance))
        client.upsert(name, [models.PointStruct(id=i, vector=v.tolist()) for i, v in enumerate(queries)])
        adapter = random_adapter(4, distance=name)
        got = AdaptedQdrantClient(client, adapters={name: adapter}).query_points(name, query=q, limit=3)
        assert hits(got) == hits(client.query_points(name, query=by_hand(adapter, q), limit=3))


def test_check_is_cached_per_vector_and_redone_after_swap(queries: np.ndarray) -> None:
    client = CountingClient(":memory:")
    fill(client)
    adapted = AdaptedQdrantClient(client, adapters={"docs": A, "plain": A})
    q = queries[0].tolist()
    for _ in range(3):
        adapted.query_points("plain", query=q)
    assert client.get_collection_calls == 1
    adapted.query_points("docs", query=q, using="text")
    adapted.query_points("docs", query=q, using="image")
    adapted.query_points("docs", query=q, using="text")
    assert client.get_collection_calls == 3
    adapted.query_points("docs", query=5, using="text")  # no raw vector: nothing to check
    assert client.get_collection_calls == 3
    adapted.set_adapter("plain", B)  # re-checked on the next query; 'docs' checks are kept
    adapted.query_points("plain", query=q)
    adapted.query_points("docs", query=q, using="text")
    assert client.get_collection_calls == 4
    adapted.set_adapter("plain", LinearAdapter.identity(4))
    with pytest.raises(DimensionMismatchError):
        adapted.query_points("plain", query=q)
    adapted.remove_adapter("plain")
    assert hits(adapted.query_points("plain", query=q)) == hits(client.query_points("plain", query=q))


def test_unconfigured_collections_are_not_checked_or_changed(queries: np.ndarray) -> None:
    client = CountingClient(":memory:")
    fill(client)
    adapted = AdaptedQdrantClient(client, adapters={"docs": A})
    q = queries[0].tolist()
    assert hits(adapted.query_points("plain", query=q)) == hits(client.query_points("plain", query=q))
    assert client.get_collection_calls == 0


# -- swaps under concurrency ----------------------------------------------------------------


def test_swap_under_concurrent_queries_never_mixes_adapters(queries: np.ndarray) -> None:
    client = QdrantClient(":memory:")
    fill(client)

    def batch(adapter: LinearAdapter | None) -> list[models.QueryRequest]:
        f = (lambda v: by_hand(adapter, v)) if adapter else (lambda v: v.tolist())
        return [
            models.QueryRequest(
                prefetch=[
                    models.Prefetch(query=f(queries[0]), using="text", limit=20),
                    models.Prefetch(query=f(queries[1]), using="text", limit=20),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=10,
            ),
            models.QueryRequest(query=f(queries[2]), using="text", limit=10),
            models.QueryRequest(query=f(queries[3]), using="text", limit=10),
        ]

    def key(responses) -> tuple:
        return tuple(tuple(p.id for p in r.points) for r in responses)

    expected = {
        key(client.query_batch_points("docs", batch(A))): "A",
        key(client.query_batch_points("docs", batch(B))): "B",
    }
    assert len(expected) == 2
    adapted = AdaptedQdrantClient(client, adapters={"docs": A})
    raw = batch(None)
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def swapper() -> None:
        flip = False
        while not stop.is_set():
            adapted.set_adapter("docs", B if flip else A)
            flip = not flip

    def worker() -> None:
        try:
            for _ in range(40):
                result = key(adapted.query_batch_points("docs", raw))
                seen.append(expected.get(result, "MIXED"))
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    swap_thread = threading.Thread(target=swapper)
    swap_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    swap_thread.join()
    assert not errors
    assert len(seen) == 160 and "MIXED" not in seen
    assert {"A", "B"} <= set(seen)  # swaps really happened while queries ran


# -- async, signatures, delegation -----------------------------------------------------------


def test_async_client_adapts_like_the_sync_one(queries: np.ndarray) -> None:
    q0, q1 = (q.tolist() for q in queries[:2])

    async def main() -> None:
        client = AsyncQdrantClient(":memory:")
        rng = np.random.default_rng(0)
        vectors = unit(rng, N_POINTS)
        await client.create_collection(
            "plain", vectors_config=models.VectorParams(size=DIM, distance="Cosine")
        )
        await client.upsert(
            "plain",
            [
                models.PointStruct(id=i, vector=v.tolist(), payload={"group": i % 5})
                for i, v in enumerate(vectors)
            ],
        )
        adapted = AsyncAdaptedQdrantClient(client, adapters={"plain": A})
        got = await adapted.query_points(
            "plain", query=q0, prefetch=models.Prefetch(query=q1, limit=30), limit=5
        )
        want = await client.query_points(
            "plain", query=by_hand(A, q0), prefetch=models.Prefetch(query=by_hand(A, q1), limit=30), limit=5
        )
        assert hits(got) == hits(want)
        got_batch = await adapted.query_batch_points("plain", [models.QueryRequest(query=q0, limit=5)])
        want_batch = await client.query_batch_points(
            "plain", [models.QueryRequest(query=by_hand(A, q0), limit=5)]
        )
        assert [hits(r) for r in got_batch] == [hits(r) for r in want_batch]
        got_groups = await adapted.query_points_groups("plain", group_by="group", query=q0, limit=2)
        want_groups = await client.query_points_groups(
            "plain", group_by="group", query=by_hand(A, q0), limit=2
        )
        assert groups(got_groups) == groups(want_groups)
        assert (await adapted.count("plain")).count == N_POINTS  # delegated coroutine
        assert await adapted.verify("plain") is A
        adapted.set_adapter("plain", LinearAdapter.identity(4))
        with pytest.raises(DimensionMismatchError):
            await adapted.query_points("plain", query=q0)
        await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("name", ["query_points", "query_batch_points", "query_points_groups"])
def test_query_signatures_mirror_qdrant_client(name: str) -> None:
    for ours, theirs in [(AdaptedQdrantClient, QdrantClient), (AsyncAdaptedQdrantClient, AsyncQdrantClient)]:
        mine = inspect.signature(getattr(ours, name)).parameters
        upstream = inspect.signature(getattr(theirs, name)).parameters
        assert list(mine) == list(upstream)
        for param in upstream:
            assert (mine[param].kind, mine[param].default) == (
                upstream[param].kind,
                upstream[param].default,
            ), param
        assert inspect.iscoroutinefunction(getattr(ours, name)) == inspect.iscoroutinefunction(
            getattr(theirs, name)
        )


def test_other_methods_are_the_clients_own(queries: np.ndarray) -> None:
    client = QdrantClient(":memory:")
    fill(client)
    adapted = AdaptedQdrantClient(client, adapters={"plain": A})
    assert adapted.client is client
    adapted.upsert("plain", [models.PointStruct(id=1000, vector=queries[0].tolist(), payload={"group": 9})])
    assert client.count("plain").count == N_POINTS + 1
    records = adapted.retrieve("plain", ids=[1000], with_vectors=True)
    assert records == client.retrieve("plain", ids=[1000], with_vectors=True)
    points, _ = adapted.scroll("plain", limit=5)
    assert [p.id for p in points] == [p.id for p in client.scroll("plain", limit=5)[0]]
    assert "upsert" in dir(adapted)
    with pytest.raises(AssertionError, match="Unknown arguments"):  # unknown kwargs reach the client
        adapted.query_points("plain", query=queries[0].tolist(), not_an_argument=1)
    with pytest.raises(AttributeError):
        adapted._not_delegated  # noqa: B018
    with pytest.raises(TypeError, match="AsyncAdaptedQdrantClient"):
        AdaptedQdrantClient(AsyncQdrantClient(":memory:"))


def test_adapter_configuration_is_validated() -> None:
    client = QdrantClient(":memory:")
    with pytest.raises(TypeError, match="collection name or a .collection, vector name. tuple"):
        AdaptedQdrantClient(client, adapters={("docs", "text", "x"): A})
    with pytest.raises(TypeError, match=r"adapters\['docs'\] must be a query adapter"):
        AdaptedQdrantClient(client, adapters={"docs": np.eye(DIM)})
    adapted = AdaptedQdrantClient(client, adapters={("docs", ""): A})
    assert dict(adapted.adapters) == {("docs", None): A}
    with pytest.raises(KeyError, match="no adapter configured for .*docs"):
        adapted.remove_adapter("docs")
    with pytest.raises(KeyError, match="no adapter configured"):
        adapted.verify("other")
    adapted.set_adapters({"docs": B})
    assert dict(adapted.adapters) == {"docs": B}
    assert "docs" in repr(adapted)
