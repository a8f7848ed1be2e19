"""The Qdrant wrapper and the Qdrant training source under bad input: non-finite stored vectors,
multi-vector fields, aliases. On ``QdrantClient(":memory:")``; cases in docs/reliability.md."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from queryshift.errors import DataFormatError
from queryshift.integrations.qdrant.training_data import load_training_data_from_qdrant

DIM = 4


class _Encoder:
    model_id = "toy"

    def encode_queries(self, texts):
        return np.ones((len(texts), DIM), np.float32)

    def encode_documents(self, texts):  # pragma: no cover - documents come from Qdrant
        raise AssertionError("documents are never embedded")


def test_training_from_qdrant_refuses_a_stored_vector_that_overflowed_to_inf(tmp_path):
    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Dot"))
    with warnings.catch_warnings():  # Qdrant stores float32: 1e39 becomes inf (and numpy says so)
        warnings.simplefilter("ignore", RuntimeWarning)
        client.upsert(
            "docs",
            [
                models.PointStruct(id=i, vector=[1.0, float(i), 0.0, 1e39 if i == 3 else 0.0])
                for i in range(5)
            ],
        )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "q?", "point_id": 1}) + "\n")
    with pytest.raises(DataFormatError, match=r"vectors stored in collection 'docs'.*row 3 \(id '3'\)"):
        load_training_data_from_qdrant(client, "docs", pairs, encoder=_Encoder())


# -- the wrapper: multi-vector fields and aliases ---------------------------------------------


def _swap_adapter(distance: str = "cosine"):
    """Swaps the first two coordinates: adapted and plain queries hit different points."""
    from queryshift.adapters import AdapterConfig, LinearAdapter

    weight = np.eye(DIM, dtype=np.float32)[[1, 0, 2, 3]]
    return LinearAdapter(AdapterConfig(kind="linear", dim=DIM, distance=distance), weight=weight)


def _collection(client, name, distance="Cosine"):
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance))
    points = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    client.upsert(name, [models.PointStruct(id=i, vector=v) for i, v in enumerate(points)])


def _top(response) -> int:
    return response.points[0].id


Q = [1.0, 0.0, 0.0, 0.0]  # plain: point 0; through the swap adapter: point 1


def test_multivector_query_on_an_adapted_multivector_field_is_refused():
    from queryshift.errors import DimensionMismatchError
    from queryshift.integrations.qdrant import AdaptedQdrantClient

    client = QdrantClient(":memory:")
    multi = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
    client.create_collection(
        "docs",
        vectors_config={
            "dense": models.VectorParams(size=DIM, distance="Cosine"),
            "colbert": models.VectorParams(size=DIM, distance="Cosine", multivector_config=multi),
        },
    )
    client.upsert("docs", [models.PointStruct(id=1, vector={"dense": Q, "colbert": [Q, Q]})])
    for key in (("docs", "colbert"), "docs"):  # keyed on the field, or on every vector of the collection
        adapted = AdaptedQdrantClient(client, adapters={key: _swap_adapter()})
        for query in ([Q, Q], models.NearestQuery(nearest=[Q, Q]), np.array([Q, Q], np.float32)):
            with pytest.raises(DimensionMismatchError, match=r"'colbert' is a multi-vector"):
                adapted.query_points("docs", query=query, using="colbert")
        prefetch = models.Prefetch(query=[Q, Q], using="colbert")
        with pytest.raises(DimensionMismatchError, match=r"'colbert' is a multi-vector"):
            adapted.query_points("docs", query=Q, using="dense", prefetch=prefetch)
    # Keyed on the dense field only: the multi-vector field is the user's business.
    adapted = AdaptedQdrantClient(client, adapters={("docs", "dense"): _swap_adapter()})
    assert _top(adapted.query_points("docs", query=[Q, Q], using="colbert")) == 1
    with pytest.raises(
        DimensionMismatchError, match=r"'dense' has a query adapter, but the query is a multi-vector"
    ):
        adapted.query_points("docs", query=[Q, Q], using="dense")


def test_adapter_keyed_by_real_name_applies_through_an_alias():
    from queryshift.integrations.qdrant import AdaptedQdrantClient

    client = QdrantClient(":memory:")
    _collection(client, "docs_v1")
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="docs_v1", alias_name="docs")
            )
        ]
    )
    adapted = AdaptedQdrantClient(client, adapters={"docs_v1": _swap_adapter()})
    assert _top(client.query_points("docs", query=Q)) == 0  # plain
    assert _top(adapted.query_points("docs_v1", query=Q)) == 1
    assert _top(adapted.query_points("docs", query=Q)) == 1  # through the alias: adapted too
    assert adapted.adapter_for("docs") is adapted.adapter_for("docs_v1")
    assert adapted.verify("docs") is adapted.adapter_for("docs")


def _point_alias(client, alias, collection):
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        ]
    )


def test_adapter_keyed_by_alias_is_checked_again_after_the_alias_moves():
    from queryshift.errors import DistanceMismatchError
    from queryshift.integrations.qdrant import AdaptedQdrantClient

    client = QdrantClient(":memory:")
    _collection(client, "cos")
    _collection(client, "dot", distance="Dot")
    _point_alias(client, "docs", "cos")
    adapted = AdaptedQdrantClient(client, adapters={"docs": _swap_adapter()}, alias_ttl=None)
    assert _top(adapted.query_points("docs", query=Q)) == 1  # checked against 'cos' and adapted
    _point_alias(client, "docs", "dot")  # moved by another process (e.g. `queryshift reindex`)
    adapted.refresh()
    with pytest.raises(
        DistanceMismatchError,
        match=r"collection 'dot', unnamed vector \(queried through alias 'docs'\) uses distance 'dot'",
    ):
        adapted.query_points("docs", query=Q)
    # Moved back through the wrapper itself: aliases are re-read at once, no refresh needed.
    adapted.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="cos", alias_name="docs")
            )
        ]
    )
    assert _top(adapted.query_points("docs", query=Q)) == 1


def test_aliases_are_re_read_after_alias_ttl():
    from queryshift.errors import DistanceMismatchError
    from queryshift.integrations.qdrant import AdaptedQdrantClient

    client = QdrantClient(":memory:")
    _collection(client, "cos")
    _collection(client, "dot", distance="Dot")
    _point_alias(client, "docs", "cos")
    adapted = AdaptedQdrantClient(client, adapters={"docs": _swap_adapter()}, alias_ttl=0)
    assert _top(adapted.query_points("docs", query=Q)) == 1
    _point_alias(client, "docs", "dot")
    with pytest.raises(DistanceMismatchError):
        adapted.query_points("docs", query=Q)  # ttl 0: read before every query
    with pytest.raises(ValueError, match="alias_ttl must be >= 0"):
        AdaptedQdrantClient(client, alias_ttl=-1)


def test_async_wrapper_resolves_aliases_too():
    import asyncio

    from qdrant_client import AsyncQdrantClient

    from queryshift.integrations.qdrant import AsyncAdaptedQdrantClient

    async def main():
        client = AsyncQdrantClient(":memory:")
        await client.create_collection(
            "docs_v1", vectors_config=models.VectorParams(size=DIM, distance="Cosine")
        )
        await client.upsert(
            "docs_v1", [models.PointStruct(id=i, vector=np.eye(DIM)[i].tolist()) for i in range(3)]
        )
        adapted = AsyncAdaptedQdrantClient(client, adapters={"docs_v1": _swap_adapter()})
        await adapted.update_collection_aliases(
            change_aliases_operations=[
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name="docs_v1", alias_name="docs")
                )
            ]
        )
        return (await adapted.query_points("docs", query=Q)).points[0].id

    assert asyncio.run(main()) == 1


def test_edge_shard_refuses_a_multivector_query_under_an_all_vectors_adapter(tmp_path):
    import qdrant_edge as qe

    from queryshift.adapters import LinearAdapter
    from queryshift.errors import DimensionMismatchError
    from queryshift.integrations.qdrant.edge import AdaptedEdgeShard

    multi = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
    config = qe.EdgeConfig(
        vectors={
            "dense": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
            "colbert": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine, multivector_config=multi),
        }
    )
    shard = qe.EdgeShard.create(str(tmp_path / "edge"), config)
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(1, {"dense": Q, "colbert": [Q, Q]}, {})]))
    adapted = AdaptedEdgeShard(shard, LinearAdapter.identity(DIM), config=config)
    try:
        with pytest.raises(DimensionMismatchError, match=r"'colbert' is a multi-vector"):
            adapted.query(query=qe.Query.Nearest([Q, Q], using="colbert"), limit=1)
        assert [p.id for p in adapted.query(query=qe.Query.Nearest(Q, using="dense"), limit=1)] == [1]
    finally:
        adapted.close()


def test_a_key_that_may_not_list_aliases_still_queries_with_a_warning(caplog):
    """Fault injection: a collection-scoped API key gets 403 from get_aliases."""
    import httpx
    from qdrant_client.http.exceptions import UnexpectedResponse

    from queryshift.integrations.qdrant import AdaptedQdrantClient

    class ScopedKeyClient(QdrantClient):
        status = 403

        def get_aliases(self, **kwargs):
            raise UnexpectedResponse(self.status, "Forbidden", b"", httpx.Headers())

    client = ScopedKeyClient(":memory:")
    _collection(client, "docs")
    adapted = AdaptedQdrantClient(client, adapters={"docs": _swap_adapter()})
    with caplog.at_level("WARNING", logger="queryshift.integrations.qdrant.client"):
        assert _top(adapted.query_points("docs", query=Q)) == 1
    assert "cannot read the server's aliases" in caplog.text
    client.status = 500  # any other failure is the caller's to see
    adapted.refresh()
    with pytest.raises(UnexpectedResponse, match="500"):
        adapted.query_points("docs", query=Q)
