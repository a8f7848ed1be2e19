"""Index-side training: the collection does the heavy lifting, so memory grows with the queries.

:func:`~queryshift.integrations.qdrant.training_data.load_training_data_from_qdrant` with a
``max_documents`` scrolls vectors into memory, and the negatives and the validation ranking then
come from that sample, not from the index. Here nothing is scrolled:

* **Training candidates** are the labelled positives (``retrieve`` by id), the hard negatives
  that searching the collection with the base query vectors finds
  (:func:`~queryshift.integrations.qdrant.training_data.mine_hard_negatives_from_qdrant`, one
  ``query_batch_points`` call per batch of queries, then ``retrieve`` of those ids only), and,
  during training, the other queries' candidates of the same batch (in-batch documents).
* **Validation** ranks held-out queries by searching the collection with every candidate
  adapter's vectors (:class:`QdrantRanker`, plugged into the recipe as its ranker), batched; with
  ``exact=True`` Qdrant scans instead of using HNSW.
* **Pseudo-queries** come from a bounded random sample of points (:func:`add_sampled_points`,
  Qdrant's ``SampleQuery``), never the whole payload.

So the process holds ``queries × (1 + negatives)`` vectors plus the sample, whatever the size of
the collection; a Qdrant cluster (``QdrantClient(url=...)``) serves the same calls.
"""

from __future__ import annotations

import logging

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.http import models

from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset, check_finite
from queryshift.integrations.qdrant.payload import payload_root
from queryshift.integrations.qdrant.training_data import (
    _text_of,
    _vector_of,
    mine_hard_negatives_from_qdrant,
    parse_point_id,
)

logger = logging.getLogger(__name__)

__all__ = ["QdrantRanker", "add_sampled_points", "index_side_training_data"]


class QdrantRanker:
    """Rank query vectors by searching a collection: the recipe's validation ranker over the real index.

    Called as ``ranker(queries, k)`` (see :data:`~queryshift.training.scoring.Ranker`) with
    ``(m, dim)`` query vectors; returns each row's ``k`` best point ids as strings (the document
    ids of :func:`~queryshift.integrations.qdrant.training_data.load_training_data_from_qdrant`).

    Args:
        client: Client of the collection (any backend).
        collection_name: The collection searched.
        using: Vector name (``None``: the unnamed vector).
        query_filter: Restricts the searched points (e.g. to one tenant).
        exact: Exact (full-scan) search instead of HNSW: slower, and the validation figures are
            those of brute force. Local mode is always exact.
        batch_size: Queries per ``query_batch_points`` call.
        shard_key_selector: Shards searched in a cluster with custom sharding.

    Attributes:
        calls: ``query_batch_points`` calls made; ``queries``: query vectors searched.

    Example:
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Dot"))
        >>> _ = client.upsert("docs", [models.PointStruct(id=i, vector=[1.0, i]) for i in range(3)])
        >>> QdrantRanker(client, "docs")(np.array([[0.0, 1.0], [0.0, -1.0]], np.float32), 2)
        [['2', '1'], ['0', '1']]
    """

    def __init__(
        self,
        client: QdrantClient,
        collection_name: str,
        *,
        using: str | None = None,
        query_filter: models.Filter | None = None,
        exact: bool = False,
        batch_size: int = 256,
        shard_key_selector: models.ShardKeySelector | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.client, self.collection_name = client, collection_name
        self.using, self.query_filter, self.batch_size = using, query_filter, batch_size
        self.search_params = models.SearchParams(exact=True) if exact else None
        self.shard_key_selector = shard_key_selector
        self.calls = self.queries = 0

    def __call__(self, queries: np.ndarray, k: int) -> list[list[str]]:
        ranked: list[list[str]] = []
        for start in range(0, len(queries), self.batch_size):
            rows = queries[start : start + self.batch_size]  # (b, dim)
            requests = [
                models.QueryRequest(
                    query=row.tolist(),
                    using=self.using,
                    filter=self.query_filter,
                    params=self.search_params,
                    limit=k,
                    with_payload=False,
                    with_vector=False,
                    shard_key=self.shard_key_selector,
                )
                for row in rows
            ]
            responses = self.client.query_batch_points(self.collection_name, requests)
            ranked.extend([str(parse_point_id(p.id)) for p in r.points] for r in responses)
            self.calls += 1
            self.queries += len(rows)
        return ranked


def add_sampled_points(
    client: QdrantClient,
    collection_name: str,
    data: EmbeddedDataset,
    *,
    limit: int,
    text_field: str,
    using: str | None = None,
    query_filter: models.Filter | None = None,
) -> EmbeddedDataset:
    """Add at most ``limit`` random points, with text and vector, to ``data``'s corpus: where pseudo-queries come from.

    One ``query_points`` call with Qdrant's ``SampleQuery`` bounds what is read, whatever the
    size of the collection. Qdrant's sampler takes no seed, so on a collection larger than
    ``limit`` two runs see different samples; with ``limit`` at least the number of points the
    sample is the whole collection. Points without text or without the vector are skipped;
    points already in ``data`` keep their vector, and get the sampled text if they had none
    (mined negatives are fetched without payload).

    Returns:
        A new :class:`~queryshift.embeddings.EmbeddedDataset` (same queries; sampled documents
        appended, keyed by point id) for
        :func:`~queryshift.training.pseudo_queries.embed_pseudo_queries`; ``data`` is unchanged.

    Example:
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Dot"))
        >>> _ = client.upsert("docs", [models.PointStruct(id=i, vector=[1.0, i], payload={"t": f"text {i}"})
        ...                            for i in range(5)])
        >>> ds = RetrievalDataset(queries={"q": "?"}, documents={"0": "text 0"}, qrels={"q": {"0"}})
        >>> data = EmbeddedDataset(ds, ["q"], np.ones((1, 2), np.float32), ["0"], np.ones((1, 2), np.float32), "toy")
        >>> sampled = add_sampled_points(client, "docs", data, limit=3, text_field="t")
        >>> 3 <= len(sampled.document_ids) <= 4, sampled.document_vectors.shape[1]
        (True, 2)
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    response = client.query_points(
        collection_name,
        query=models.SampleQuery(sample=models.Sample.RANDOM),
        using=using,
        query_filter=query_filter,
        limit=limit,
        with_payload=payload_root(text_field),
        with_vectors=[using] if using else True,
    )
    known = set(data.document_ids)
    texts: dict[str, str] = {}
    vectors: dict[str, list[float]] = {}
    for point in response.points:
        doc_id = str(parse_point_id(point.id))
        vector, text = _vector_of(point, using), _text_of(point, text_field)
        if vector is not None and text.strip() and not data.dataset.documents.get(doc_id):
            texts[doc_id] = text  # a mined negative (fetched without text) gets its text too
            if doc_id not in known:
                vectors[doc_id] = vector
    new_ids = sorted(vectors)
    logger.info(
        "sampled %d points of %r (%d new) for pseudo-queries",
        len(response.points),
        collection_name,
        len(new_ids),
    )
    if not texts:
        return data
    extra = np.asarray([vectors[d] for d in new_ids], dtype=np.float32).reshape(
        len(new_ids), -1
    )  # (n_new, dim)
    check_finite(extra, new_ids, what=f"vectors stored in collection {collection_name!r} (ids are point ids)")
    dataset = RetrievalDataset(
        queries=data.dataset.queries,
        documents={**data.dataset.documents, **texts},
        qrels=data.dataset.qrels,
        negatives=data.dataset.negatives,
        name=data.dataset.name,
    )
    return EmbeddedDataset(
        dataset,
        data.query_ids,
        data.query_vectors,
        [*data.document_ids, *new_ids],
        np.concatenate([data.document_vectors, extra]) if new_ids else data.document_vectors,
        data.model_id,
    )


def index_side_training_data(
    client: QdrantClient,
    collection_name: str,
    data: EmbeddedDataset,
    *,
    hard_negatives: int = 8,
    pseudo_documents: int = 0,
    text_field: str | None = None,
    using: str | None = None,
    query_filter: models.Filter | None = None,
    exact: bool = False,
) -> tuple[EmbeddedDataset, QdrantRanker]:
    """``(training data, validation ranker)`` for :func:`~queryshift.training.train_adapter` on a collection.

    Args:
        client, collection_name, using: The collection and vector ``data`` was read from.
        data: Labelled queries with their relevant points only, from
            :func:`~queryshift.integrations.qdrant.training_data.load_training_data_from_qdrant`
            with ``max_documents=0`` (after holding out test queries, which are then never searched).
        hard_negatives: Negatives per query found by searching the collection (0: none).
        pseudo_documents: Points sampled (with ``text_field``) for pseudo-queries; 0 or no
            ``text_field``: none.
        query_filter: Restricts mining, sampling and validation to these points.
        exact: Exact search for mining and validation (see :class:`QdrantRanker`).

    Returns:
        The data with mined negatives (and the sample) in its corpus, and the ranker to pass as
        ``train_adapter(..., ranker=ranker)``.

    Example:
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Cosine"))
        >>> _ = client.upsert("docs", [models.PointStruct(id=i, vector=[1.0, i / 10]) for i in range(50)])
        >>> ds = RetrievalDataset(queries={"q": "?"}, documents={"0": ""}, qrels={"q": {"0"}})
        >>> data = EmbeddedDataset(ds, ["q"], np.array([[1.0, 0.0]], np.float32), ["0"],
        ...                        np.array([[1.0, 0.0]], np.float32), "toy")
        >>> train, ranker = index_side_training_data(client, "docs", data, hard_negatives=2)
        >>> train.document_ids, train.dataset.negatives
        (['0', '1', '2'], {'q': ['1', '2']})
    """
    search_params = models.SearchParams(exact=True) if exact else None
    if hard_negatives:
        data = mine_hard_negatives_from_qdrant(
            client,
            collection_name,
            data,
            using=using,
            count=hard_negatives,
            query_filter=query_filter,
            search_params=search_params,
        )
    if pseudo_documents and text_field is not None:
        data = add_sampled_points(
            client,
            collection_name,
            data,
            limit=pseudo_documents,
            text_field=text_field,
            using=using,
            query_filter=query_filter,
        )
    ranker = QdrantRanker(client, collection_name, using=using, query_filter=query_filter, exact=exact)
    return data, ranker
