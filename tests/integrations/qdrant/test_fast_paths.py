"""The wrappers' fast paths (one plain dense vector, no prefetch) send exactly what the generic walk sends.

Each test runs the same call through a wrapper and through a twin whose fast path is switched
off (``_fast`` / ``_fast_nearest`` return ``None``, so every call takes the generic walk), and
compares the vectors the wrapped client or shard received and the hits. Other tests check that
the fast path is really taken for the common shapes, and that the rest (prefetches, models,
ids, stale aliases, adapters not checked yet) falls back to the generic walk and its checks.
Fixtures: dim=8, a few dozen seeded random unit vectors.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.errors import DimensionMismatchError, DistanceMismatchError
from queryshift.integrations.qdrant import AdaptedQdrantClient, AsyncAdaptedQdrantClient
from queryshift.integrations.qdrant import edge as edge_module
from queryshift.integrations.qdrant.edge import AdaptedEdgeShard

DIM = 8


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_adapter(seed: int, *, dim: int = DIM, distance: str = "cosine") -> LinearAdapter:
    rng = np.random.default_rng(seed)
    weight = np.eye(dim, dtype=np.float32) + 0.8 * rng.normal(size=(dim, dim)).astype(np.float32)
    return LinearAdapter(AdapterConfig(kind="linear", dim=dim, distance=distance), weight=weight)


A = random_adapter(1)
B = random_adapter(2)
DOCS = unit(np.random.default_rng(0), 40)  # (40, dim)
QUERIES = unit(np.random.default_rng(1), 5)  # (5, dim)


class Recording:
    """A real client that records the keyword arguments of every query and client call it serves."""

    def __init__(self, client: QdrantClient | AsyncQdrantClient) -> None:
        self.inner, self.sent, self.calls = client, [], []

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            if name.startswith("query"):
                self.sent.append(kwargs)
            return attribute(*args, **kwargs)

        return call


class Generic(AdaptedQdrantClient):
    def _fast(self, arguments, rewrite):  # noqa: ANN001, ANN202 - the fast path switched off
        return None


class AsyncGeneric(AsyncAdaptedQdrantClient):
    def _fast(self, arguments, rewrite):  # noqa: ANN001, ANN202
        return None


def collections(client: QdrantClient) -> QdrantClient:
    client.create_collection("plain", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    client.create_collection(
        "named",
        vectors_config={
            "text": models.VectorParams(size=DIM, distance="Cosine"),
            "image": models.VectorParams(size=DIM, distance="Dot"),
        },
    )
    client.create_collection("other", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    for name in ("plain", "other"):
        client.upsert(
            name,
            [models.PointStruct(id=i, vector=v.tolist(), payload={"g": i % 3}) for i, v in enumerate(DOCS)],
        )
    client.upsert(
        "named",
        [
            models.PointStruct(
                id=i, vector={"text": v.tolist(), "image": DOCS[-1 - i].tolist()}, payload={"g": i % 3}
            )
            for i, v in enumerate(DOCS)
        ],
    )
    client.update_collection_aliases(
        [
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="plain", alias_name="live")
            )
        ]
    )
    return client


ADAPTERS = {"plain": A, ("named", "text"): B, ("named", "image"): random_adapter(5, distance="dot")}
# (collection, query, using, extra query_points arguments) of every shape the fast path takes.
FAST_SHAPES = [
    ("plain", QUERIES[0].tolist(), None, {}),
    ("plain", QUERIES[1], None, {"limit": 3}),  # float32 array
    ("plain", QUERIES[2].astype(np.float64), None, {"with_payload": False}),
    ("plain", [1, 0, 0, 0, 0, 0, 0, 2], None, {}),  # ints
    ("plain", QUERIES[3].tolist(), "", {}),  # "" is the unnamed vector
    ("named", QUERIES[0].tolist(), "text", {}),
    (
        "named",
        QUERIES[1].tolist(),
        "image",
        {
            "query_filter": models.Filter(
                must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))]
            )
        },
    ),
    ("live", QUERIES[4].tolist(), None, {"score_threshold": -1.0, "offset": 2}),  # through an alias
    ("other", QUERIES[0].tolist(), None, {}),  # no adapter: forwarded unchanged
]


def ranked(response: models.QueryResponse) -> list[tuple[object, float]]:
    return [(p.id, round(p.score, 6)) for p in response.points]


@pytest.fixture(scope="module")
def recording() -> Recording:
    return Recording(collections(QdrantClient(":memory:")))


@pytest.mark.parametrize("shape", range(len(FAST_SHAPES)))
def test_fast_path_sends_and_returns_what_the_generic_walk_does(recording: Recording, shape: int) -> None:
    collection, query, using, extra = FAST_SHAPES[shape]
    fast, generic = AdaptedQdrantClient(recording, ADAPTERS), Generic(recording, ADAPTERS)
    for _ in range(2):  # the first call checks the adapter on the generic walk, the second is fast
        got = fast.query_points(collection, query=query, using=using, **extra)
    sent_fast = recording.sent[-1]
    want = generic.query_points(collection, query=query, using=using, **extra)
    sent_generic = recording.sent[-1]
    assert sent_fast == sent_generic  # the same adapted list, the same other arguments
    assert ranked(got) == ranked(want)
    if collection != "other":
        assert isinstance(sent_fast["query"], list) and sent_fast["query"] != list(np.asarray(query, float))


def test_fast_path_is_taken_for_plain_vectors_and_not_for_the_rest(recording: Recording) -> None:
    adapted = AdaptedQdrantClient(recording, ADAPTERS)
    walks = []
    original = adapted._prepared
    adapted._prepared = lambda arguments, rewrite: walks.append(1) or original(arguments, rewrite)
    adapted.query_points("plain", query=QUERIES[0].tolist())  # checks the adapter: generic
    assert len(walks) == 1
    adapted.query_points("plain", query=QUERIES[1].tolist())
    adapted.query_points("plain", query=QUERIES[1])
    adapted.query_points_groups("plain", "g", query=QUERIES[2].tolist())
    assert len(walks) == 1  # all three fast
    vector = QUERIES[0].tolist()
    adapted.query_points("plain", query=models.NearestQuery(nearest=vector))
    adapted.query_points("plain", query=3)  # a point id
    adapted.query_points("plain", query=vector, prefetch=models.Prefetch(query=vector, limit=5))
    adapted.query_batch_points("plain", [models.QueryRequest(query=vector)])
    assert len(walks) == 5  # each of these took the generic walk


def test_fast_path_matches_the_generic_walk_for_groups(recording: Recording) -> None:
    fast, generic = AdaptedQdrantClient(recording, ADAPTERS), Generic(recording, ADAPTERS)
    results = []
    for wrapper in (fast, fast, generic):
        result = wrapper.query_points_groups("named", "g", query=QUERIES[3].tolist(), using="text", limit=2)
        results.append(([g.id for g in result.groups], recording.sent[-1]))
    assert results[1] == results[2]


def test_a_swap_is_checked_again_before_the_fast_path_serves_it() -> None:
    client = collections(QdrantClient(":memory:"))
    adapted = AdaptedQdrantClient(client, {"plain": A})
    adapted.query_points("plain", query=QUERIES[0].tolist())
    adapted.query_points("plain", query=QUERIES[0].tolist())  # fast, cached
    adapted.set_adapter("plain", random_adapter(3, dim=4))
    with pytest.raises(DimensionMismatchError, match="dim=8 but the adapter expects dim=4"):
        adapted.query_points("plain", query=QUERIES[0][:4].tolist())
    adapted.set_adapter("plain", random_adapter(3, distance="dot"))
    with pytest.raises(DistanceMismatchError):
        adapted.query_points("plain", query=QUERIES[0].tolist())
    adapted.set_adapter("plain", B)
    sent = Recording(client)
    adapted._client = sent
    adapted.query_points("plain", query=QUERIES[0].tolist())
    assert sent.sent[-1]["query"] == B.apply(QUERIES[0]).tolist()


def test_an_alias_moved_is_checked_against_its_new_collection_on_the_next_query() -> None:
    client = collections(QdrantClient(":memory:"))
    client.create_collection("dot", vectors_config=models.VectorParams(size=DIM, distance="Dot"))
    adapted = AdaptedQdrantClient(client, {"live": A}, alias_ttl=None)
    adapted.query_points("live", query=QUERIES[0].tolist())
    adapted.query_points("live", query=QUERIES[0].tolist())  # fast, cached against "plain"
    adapted.update_collection_aliases(
        [
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="dot", alias_name="live")
            )
        ]
    )
    with pytest.raises(DistanceMismatchError, match="'dot'"):
        adapted.query_points("live", query=QUERIES[0].tolist())


def test_stale_aliases_are_read_again_before_the_fast_path_serves() -> None:
    recording = Recording(collections(QdrantClient(":memory:")))
    adapted = AdaptedQdrantClient(recording, {"plain": A}, alias_ttl=0)
    for _ in range(3):
        adapted.query_points("live", query=QUERIES[0].tolist())
    assert recording.calls.count("get_aliases") == 3  # ttl 0: before every query, fast path or not


def test_multi_vectors_still_refused_and_unconfigured_wrappers_forward_unchanged(
    recording: Recording,
) -> None:
    adapted = AdaptedQdrantClient(recording, ADAPTERS)
    adapted.query_points("plain", query=QUERIES[0].tolist())
    with pytest.raises(DimensionMismatchError, match="multi-vector"):
        adapted.query_points("plain", query=QUERIES[:2].tolist())
    bare = AdaptedQdrantClient(recording)
    vector = QUERIES[0].tolist()
    bare.query_points("plain", query=vector)
    assert recording.sent[-1]["query"] is vector


def test_async_fast_path_sends_what_the_generic_walk_does() -> None:
    async def run() -> list[tuple[list, dict]]:
        client = AsyncQdrantClient(":memory:")
        await client.create_collection(
            "plain", vectors_config=models.VectorParams(size=DIM, distance="Cosine")
        )
        await client.upsert(
            "plain", [models.PointStruct(id=i, vector=v.tolist()) for i, v in enumerate(DOCS)]
        )
        recording = Recording(client)
        out = []
        for wrapper in (
            AsyncAdaptedQdrantClient(recording, {"plain": A}),
            AsyncGeneric(recording, {"plain": A}),
        ):
            for query in (QUERIES[0].tolist(), QUERIES[1]):
                for _ in range(2):
                    response = await wrapper.query_points("plain", query=query, limit=4)
                out.append((ranked(response), recording.sent[-1]))
        await client.close()
        return out

    out = asyncio.run(run())
    assert out[:2] == out[2:]


# -- qdrant-edge ------------------------------------------------------------------------------

EDGE_CONFIG = qe.EdgeConfig(
    vectors={
        "text": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
        "image": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
        "raw": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Dot),
    },
)


class GenericShard(AdaptedEdgeShard):
    def _fast_nearest(self, query):  # noqa: ANN001, ANN202 - the fast path switched off
        return None


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> qe.EdgeShard:
    s = qe.EdgeShard.create(str(tmp_path_factory.mktemp("edge-fast")), EDGE_CONFIG)
    points = [
        qe.Point(i, {"text": v.tolist(), "image": DOCS[-1 - i].tolist(), "raw": v.tolist()}, {"g": i % 3})
        for i, v in enumerate(DOCS)
    ]
    s.update(qe.UpdateOperation.upsert_points(points))
    yield s
    s.close()


def scored(points: list[qe.ScoredPoint]) -> list[tuple[object, float]]:
    return [(p.id, p.score) for p in points]


EDGE_SHAPES = [
    (QUERIES[0].tolist(), "text", {}),
    (QUERIES[1], "image", {"with_payload": True}),  # an array inside Nearest
    (QUERIES[2].tolist(), "raw", {"offset": 1}),  # no adapter for "raw": unchanged
    (QUERIES[3].tolist(), "text", {"filter": qe.Filter(must=[qe.FieldCondition("g", qe.MatchValue(1))])}),
]


@pytest.mark.parametrize("shape", range(len(EDGE_SHAPES)))
def test_edge_fast_path_sends_and_returns_what_the_generic_walk_does(
    shard: qe.EdgeShard, shape: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    vector, using, extra = EDGE_SHAPES[shape]
    sent = []
    adapt = edge_module.adapted_vector
    monkeypatch.setattr(edge_module, "adapted_vector", lambda a, v: sent.append(adapt(a, v)) or sent[-1])
    adapters = {"text": A, "image": B}
    results = []
    for wrapper in (
        AdaptedEdgeShard(shard, adapters, config=EDGE_CONFIG),
        GenericShard(shard, adapters, config=EDGE_CONFIG),
    ):
        results.append(scored(wrapper.query(limit=5, query=qe.Query.Nearest(vector, using=using), **extra)))
    assert results[0] == results[1]
    if using == "raw":
        assert sent == [] and results[0] == scored(
            shard.query(qe.QueryRequest(limit=5, query=qe.Query.Nearest(vector, using=using), **extra))
        )
    else:
        assert len(sent) == 2 and sent[0] == sent[1]
        by_hand = adapters[using].apply(np.asarray(vector, np.float32)).tolist()
        assert sent[0] == by_hand
        want = shard.query(qe.QueryRequest(limit=5, query=qe.Query.Nearest(by_hand, using=using), **extra))
        assert results[0] == scored(want)


def test_edge_fast_path_is_taken_only_for_plain_nearest(
    shard: qe.EdgeShard, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapted = AdaptedEdgeShard(shard, {"text": A, "image": B}, config=EDGE_CONFIG)
    walks = []
    build = edge_module._build_request
    monkeypatch.setattr(edge_module, "_build_request", lambda fn, **kw: walks.append(1) or build(fn, **kw))
    vector = QUERIES[0].tolist()
    adapted.query(limit=3, query=qe.Query.Nearest(vector, using="text"))
    adapted.request(limit=3, query=qe.Query.Nearest(vector, using="image"))
    assert walks == []
    adapted.query(
        limit=3,
        query=qe.Query.Nearest(vector, using="text"),
        prefetches=[{"limit": 5, "query": qe.Query.Nearest(vector, using="image")}],
    )
    adapted.query(limit=3, query=qe.Mmr(vector, 0.5, 10, using="text"))
    adapted.query(
        limit=3,
        query=qe.Query.RecommendBestScore(qe.RecommendQuery(positives=[vector], negatives=[]), using="text"),
    )
    assert len(walks) == 3
    with pytest.raises(DimensionMismatchError, match="multi-vector"):
        adapted.query(limit=3, query=qe.Query.Nearest(QUERIES[:2].tolist(), using="text"))


def test_edge_all_vectors_adapter_is_checked_on_first_fast_use_and_after_a_swap(shard: qe.EdgeShard) -> None:
    adapted = AdaptedEdgeShard(shard, A, config=EDGE_CONFIG)
    with pytest.raises(DistanceMismatchError, match="'raw'"):
        adapted.query(limit=3, query=qe.Query.Nearest(QUERIES[0].tolist(), using="raw"))
    adapted.query(limit=3, query=qe.Query.Nearest(QUERIES[0].tolist(), using="text"))
    adapted.set_adapters(random_adapter(4, dim=4))
    with pytest.raises(DimensionMismatchError, match="dim=8 but the adapter expects dim=4"):
        adapted.query(limit=3, query=qe.Query.Nearest(QUERIES[0][:4].tolist(), using="text"))
