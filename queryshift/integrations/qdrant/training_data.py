"""Training data read from a Qdrant collection: the corpus is never re-embedded.

A pair file says which stored points answer which question, one JSON object per line::

    {"query": "What was Uber's revenue in 2021?", "point_id": 17}
    {"query": "Who audits Uber?", "point_ids": ["0b6c...-uuid", 42], "id": "q-audit"}

``point_id`` (one id) or ``point_ids`` (a list) are Qdrant point ids: unsigned integers or
UUID strings (a string of digits is read as the integer id). Lines without ``"id"`` that ask
the same question are merged into one query with all their points. Only the query texts are
embedded (with the model that embedded the collection); document vectors come from Qdrant:
``retrieve`` for the relevant points and ``scroll`` for the rest of the corpus, which serves as
negatives during training and as the search space during validation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.http import models

from queryshift.data import RetrievalDataset, read_jsonl
from queryshift.embeddings import EmbeddedDataset, Encoder, check_finite
from queryshift.errors import DataFormatError, DimensionMismatchError, DistanceMismatchError
from queryshift.integrations.qdrant.client import vector_params
from queryshift.integrations.qdrant.payload import payload_root, payload_value
from queryshift.integrations.qdrant.routing import distance_name

logger = logging.getLogger(__name__)

__all__ = [
    "load_training_data_from_qdrant",
    "mine_hard_negatives_from_qdrant",
    "scroll_corpus",
    "collection_distance",
    "parse_point_id",
]

PointId = int | str


def parse_point_id(value: object) -> PointId:
    """Normalise a Qdrant point id: an unsigned ``int``, or a UUID as its canonical string.

    Raises:
        ValueError: ``value`` is neither (Qdrant accepts no other ids).

    Example:
        >>> parse_point_id(7), parse_point_id("7"), parse_point_id("D193A4CE-E62B-415C-A2E4-91DBC65BA284")
        (7, 7, 'd193a4ce-e62b-415c-a2e4-91dbc65ba284')
    """
    if isinstance(value, bool):
        raise ValueError(f"a point id must be an unsigned integer or a UUID string, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            return str(UUID(text))
        except ValueError:
            pass
    raise ValueError(f"a point id must be an unsigned integer or a UUID string, got {value!r}")


def collection_distance(client: QdrantClient, collection_name: str, *, using: str | None = None) -> str:
    """The distance of a collection's vector as queryshift names it (``"cosine"``, ``"dot"``, ``"euclid"``).

    Use it for ``TrainingConfig(distance=...)`` so the adapter is trained for the collection's geometry.

    Raises:
        DistanceMismatchError: The collection uses Manhattan distance, which adapters do not support.

    Example:
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=4, distance="Dot"))
        >>> collection_distance(client, "docs")
        'dot'
    """
    params = vector_params(client.get_collection(collection_name), collection_name, using)
    name = distance_name(params.distance)
    if name not in ("cosine", "dot", "euclid"):
        raise DistanceMismatchError(
            f"collection {collection_name!r} uses distance {name!r}; query adapters support Cosine, Dot and Euclid"
        )
    return name


def _read_pairs(path: Path) -> tuple[dict[str, str], dict[str, list[PointId]], dict[PointId, list[int]]]:
    """``(query id → text, query id → point ids, point id → line numbers)`` from a pair file."""
    queries: dict[str, str] = {}
    relevant: dict[str, list[PointId]] = {}
    lines_of: dict[PointId, list[int]] = {}
    by_text: dict[str, str] = {}
    for line_no, obj in read_jsonl(path):
        query = obj.get("query")
        if not isinstance(query, str) or not query.strip():
            raise DataFormatError("expected a non-empty string", path=path, line=line_no, field="query")
        raw_ids: list[Any] = []
        if "point_id" in obj:
            raw_ids.append(obj["point_id"])
        if "point_ids" in obj:
            if not isinstance(obj["point_ids"], list) or not obj["point_ids"]:
                raise DataFormatError(
                    "expected a non-empty list of point ids", path=path, line=line_no, field="point_ids"
                )
            raw_ids.extend(obj["point_ids"])
        if not raw_ids:
            raise DataFormatError(
                "missing field: give the relevant point as 'point_id' or a list as 'point_ids'",
                path=path,
                line=line_no,
                field="point_id",
            )
        ids = []
        for raw in raw_ids:
            try:
                ids.append(parse_point_id(raw))
            except ValueError as exc:
                raise DataFormatError(str(exc), path=path, line=line_no, field="point_id") from None
        if "id" in obj:
            qid = str(obj["id"])
            if qid in queries and queries[qid] != query:
                raise DataFormatError(
                    f"query id {qid!r} reused for a different query", path=path, line=line_no, field="id"
                )
        else:
            qid = by_text.setdefault(query, f"q{line_no}")
        queries[qid] = query
        known = relevant.setdefault(qid, [])
        known.extend(i for i in ids if i not in known)
        for i in ids:
            lines_of.setdefault(i, []).append(line_no)
    if not queries:
        raise DataFormatError("no pairs in file", path=path)
    return queries, relevant, lines_of


def _vector_of(record: models.Record, using: str | None) -> list[float] | None:
    vector = record.vector
    if isinstance(vector, dict):
        return vector.get(using or "")
    return vector


def _text_of(record: models.Record, text_field: str | None) -> str:
    if text_field is None:
        return ""
    value = payload_value(record.payload or {}, text_field)
    return value if isinstance(value, str) else ""


def _retrieve(
    client: QdrantClient,
    collection_name: str,
    ids: Sequence[PointId],
    *,
    using: str | None,
    text_field: str | None,
    batch_size: int,
) -> dict[PointId, models.Record]:
    found: dict[PointId, models.Record] = {}
    for start in range(0, len(ids), batch_size):
        records = client.retrieve(
            collection_name,
            ids=list(ids[start : start + batch_size]),
            with_vectors=[using] if using else True,
            with_payload=payload_root(text_field) if text_field else False,
        )
        for record in records:
            found[parse_point_id(record.id)] = record
    return found


def load_training_data_from_qdrant(
    client: QdrantClient,
    collection_name: str,
    pairs_path: str | Path,
    *,
    encoder: Encoder,
    using: str | None = None,
    text_field: str | None = None,
    corpus_filter: models.Filter | None = None,
    max_documents: int | None = None,
    batch_size: int = 256,
    query_dim: int | None = None,
) -> EmbeddedDataset:
    """Build training data from query texts and the document vectors stored in a collection.

    Args:
        client: Client of the collection (any backend).
        collection_name: The collection whose stored vectors are the documents.
        pairs_path: JSONL pair file (see the module docstring): query text and relevant point id(s).
        encoder: Embeds the query texts; it must be the model that embedded the collection.
        using: Vector name to read (``None``: the unnamed vector).
        text_field: Payload key (or dotted path, e.g. ``"_node_content.text"``) holding each point's
            text, kept as the document text; the trainer samples pseudo-queries from it (vectors are
            never recomputed). ``None`` leaves texts empty.
        corpus_filter: Restricts the scrolled corpus (e.g. to one tenant); relevant points are
            always included.
        max_documents: Stop scrolling after this many points (a sample of negatives for very large
            collections); ``None`` reads the whole collection; ``0`` reads only the relevant points
            (index-side training, :mod:`~queryshift.integrations.qdrant.index_training`, searches
            the collection for the rest).
        batch_size: Points per ``retrieve`` / ``scroll`` call.
        query_dim: Dimension the encoded queries must have. ``None``: the collection's (queries
            and documents from one model); a cross-model adapter's queries come from another model.

    Returns:
        An :class:`~queryshift.embeddings.EmbeddedDataset` whose document ids are the point ids as
        strings, ready for :func:`~queryshift.training.train_adapter`.

    Raises:
        DataFormatError: A pair line is malformed, or relevant point ids are not in the collection
            (all missing ids are listed with their lines) or lack the vector.
            A stored vector or an encoded query holds NaN or inf (the point ids are named).
        DimensionMismatchError: The encoder's query vectors do not have the collection's dimension.

    Example:
        >>> import json, tempfile, pathlib
        >>> from qdrant_client import QdrantClient, models
        >>> class Toy:  # an encoder; use SentenceTransformerEncoder in practice
        ...     model_id = "toy"
        ...     def encode_queries(self, texts):
        ...         return np.ones((len(texts), 2), np.float32)
        ...     def encode_documents(self, texts):
        ...         raise AssertionError("documents are never embedded")
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Cosine"))
        >>> _ = client.upsert("docs", [models.PointStruct(id=i, vector=[1.0, i]) for i in range(3)])
        >>> pairs = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
        >>> _ = pairs.write_text(json.dumps({"query": "q?", "point_id": 2}) + "\\n")
        >>> data = load_training_data_from_qdrant(client, "docs", pairs, encoder=Toy())
        >>> data.document_ids, data.dataset.qrels
        (['0', '1', '2'], {'q1': {'2'}})
    """
    pairs_path = Path(pairs_path)
    if not pairs_path.is_file():
        raise FileNotFoundError(f"pair file {pairs_path} does not exist")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if max_documents is not None and max_documents < 0:
        raise ValueError(f"max_documents must be >= 0 or None, got {max_documents}")
    queries, relevant, lines_of = _read_pairs(pairs_path)
    params = vector_params(client.get_collection(collection_name), collection_name, using)
    if params.multivector_config is not None:
        raise DimensionMismatchError(
            f"vector {using or ''!r} of collection {collection_name!r} is a multi-vector; adapters need single vectors"
        )
    where = f"collection {collection_name!r}" + (f", vector {using!r}" if using else "")

    # Relevant points first: a clear error before a long scroll.
    wanted = list(lines_of)
    records = _retrieve(
        client, collection_name, wanted, using=using, text_field=text_field, batch_size=batch_size
    )
    missing = [i for i in wanted if i not in records]
    no_vector = [i for i in wanted if i in records and _vector_of(records[i], using) is None]
    for problem, ids in (("are not in " + where, missing), ("have no vector in " + where, no_vector)):
        if ids:
            listed = ", ".join(f"{i!r} (line {', '.join(map(str, lines_of[i][:3]))})" for i in ids[:20])
            more = f" and {len(ids) - 20} more" if len(ids) > 20 else ""
            raise DataFormatError(f"{len(ids)} relevant point ids {problem}: {listed}{more}", path=pairs_path)

    documents, vectors = scroll_corpus(
        client,
        collection_name,
        using=using,
        text_field=text_field,
        corpus_filter=corpus_filter,
        max_documents=max_documents,
        batch_size=batch_size,
    )
    for point_id, record in records.items():
        doc_id = str(point_id)
        vectors[doc_id] = _vector_of(record, using)  # type: ignore[assignment]
        documents[doc_id] = _text_of(record, text_field)

    query_ids = sorted(queries)
    query_vectors = np.asarray(encoder.encode_queries([queries[q] for q in query_ids]), dtype=np.float32)
    if query_dim is not None:
        if query_vectors.ndim != 2 or query_vectors.shape[1] != query_dim:
            raise DimensionMismatchError(
                f"encoder {encoder.model_id!r} produced query vectors of shape {query_vectors.shape}, expected dim={query_dim}"
            )
    elif query_vectors.ndim != 2 or query_vectors.shape[1] != params.size:
        raise DimensionMismatchError(
            f"{where} stores vectors of dim={params.size} but encoder {encoder.model_id!r} produced query "
            f"vectors of shape {query_vectors.shape}; embed queries with the model that embedded the collection"
        )
    check_finite(query_vectors, query_ids, what=f"query vectors (model {encoder.model_id!r})")
    document_ids = sorted(vectors)
    document_vectors = np.asarray([vectors[d] for d in document_ids], dtype=np.float32)  # (n_documents, dim)
    check_finite(document_vectors, document_ids, what=f"vectors stored in {where} (ids are point ids)")
    dataset = RetrievalDataset(
        queries=queries,
        documents=documents,
        qrels={q: {str(i) for i in relevant[q]} for q in queries},
        name=f"qdrant:{collection_name}:{pairs_path.name}",
    )
    logger.info(
        "read %d queries and %d documents (%d relevant) from %s",
        len(query_ids),
        len(document_ids),
        len(records),
        where,
    )
    return EmbeddedDataset(
        dataset, query_ids, query_vectors, document_ids, document_vectors, encoder.model_id
    )


def scroll_corpus(
    client: QdrantClient,
    collection_name: str,
    *,
    using: str | None = None,
    text_field: str | None = None,
    corpus_filter: models.Filter | None = None,
    max_documents: int | None = None,
    batch_size: int = 256,
) -> tuple[dict[str, str], dict[str, list[float]]]:
    """``(texts, vectors)`` of a collection's points keyed by point id as a string; nothing is embedded.

    Points without the vector are left out (with one warning); texts are ``""`` without
    ``text_field`` or where the payload has no string there. Arguments as for
    :func:`load_training_data_from_qdrant`.
    """
    documents: dict[str, str] = {}
    vectors: dict[str, list[float]] = {}
    skipped = 0
    offset: Any = None
    while max_documents is None or len(vectors) < max_documents:
        limit = batch_size if max_documents is None else min(batch_size, max_documents - len(vectors))
        page, offset = client.scroll(
            collection_name,
            scroll_filter=corpus_filter,
            limit=limit,
            offset=offset,
            with_vectors=[using] if using else True,
            with_payload=payload_root(text_field) if text_field else False,
        )
        for record in page:
            vector = _vector_of(record, using)
            if vector is None:
                skipped += 1
                continue
            doc_id = str(parse_point_id(record.id))
            vectors[doc_id] = vector
            documents[doc_id] = _text_of(record, text_field)
        if offset is None:
            break
    if skipped:
        logger.warning(
            "%d points of collection %r have no vector %r and were left out of the corpus",
            skipped,
            collection_name,
            using or "",
        )
    return documents, vectors


def mine_hard_negatives_from_qdrant(
    client: QdrantClient,
    collection_name: str,
    data: EmbeddedDataset,
    *,
    using: str | None = None,
    count: int = 8,
    query_filter: models.Filter | None = None,
    search_params: models.SearchParams | None = None,
    batch_size: int = 64,
) -> EmbeddedDataset:
    """Add the ``count`` best-ranked non-relevant points of each query (searched in Qdrant) as negatives.

    Useful when ``data`` holds only part of the collection (``max_documents`` or a filter):
    the search covers the whole collection with its own index, and negatives outside ``data``'s
    corpus are fetched (vectors only) and added to it. The negatives land in
    ``data.dataset.negatives``, which :func:`~queryshift.training.train_adapter` trains against.

    Args:
        client, collection_name, using: The collection and vector that ``data`` was read from.
        data: From :func:`load_training_data_from_qdrant`.
        count: Negatives per query.
        query_filter: Restricts the searched points.
        search_params: Passed to the searches (e.g. ``hnsw_ef``).
        batch_size: Queries per ``query_batch_points`` call.

    Returns:
        A new ``EmbeddedDataset``; ``data`` is unchanged.

    Example:
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Cosine"))
        >>> _ = client.upsert("docs", [models.PointStruct(id=i, vector=[1.0, i / 10]) for i in range(5)])
        >>> docs = np.array([[1.0, i / 10] for i in range(3)], np.float32)
        >>> ds = RetrievalDataset(queries={"q": "?"}, documents={"0": "", "1": "", "2": ""}, qrels={"q": {"0"}})
        >>> data = EmbeddedDataset(ds, ["q"], np.array([[1.0, 0.0]], np.float32), ["0", "1", "2"], docs, "toy")
        >>> mined = mine_hard_negatives_from_qdrant(client, "docs", data, count=2)
        >>> mined.dataset.negatives, mined.document_ids
        ({'q': ['1', '2']}, ['0', '1', '2'])
    """
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    negatives: dict[str, list[str]] = {q: list(v) for q, v in data.dataset.negatives.items()}
    for start in range(0, len(data.query_ids), batch_size):
        qids = data.query_ids[start : start + batch_size]
        requests = [
            models.QueryRequest(
                query=data.query_vectors[start + i].tolist(),
                using=using,
                filter=query_filter,
                params=search_params,
                limit=count + len(data.dataset.qrels[q]),
                with_payload=False,
                with_vector=False,
            )
            for i, q in enumerate(qids)
        ]
        for qid, response in zip(qids, client.query_batch_points(collection_name, requests), strict=True):
            relevant = data.dataset.qrels[qid]
            mined = [str(p.id) for p in response.points if str(p.id) not in relevant][:count]
            known = negatives.setdefault(qid, [])
            known.extend(d for d in mined if d not in known)
    position = {d: i for i, d in enumerate(data.document_ids)}
    new_ids = sorted({d for ids in negatives.values() for d in ids if d not in position})
    document_ids = list(data.document_ids)
    document_vectors = data.document_vectors
    documents = dict(data.dataset.documents)
    if new_ids:
        records = _retrieve(
            client,
            collection_name,
            [parse_point_id(d) for d in new_ids],
            using=using,
            text_field=None,
            batch_size=256,
        )
        extra = np.asarray([_vector_of(records[parse_point_id(d)], using) for d in new_ids], dtype=np.float32)
        check_finite(
            extra, new_ids, what=f"vectors stored in collection {collection_name!r} (ids are point ids)"
        )
        document_vectors = np.concatenate([document_vectors, extra])
        document_ids.extend(new_ids)
        documents.update(dict.fromkeys(new_ids, ""))
        logger.info("added %d mined negatives outside the corpus sample", len(new_ids))
    dataset = RetrievalDataset(
        queries=data.dataset.queries,
        documents=documents,
        qrels=data.dataset.qrels,
        negatives={q: v for q, v in negatives.items() if v},
        name=data.dataset.name,
    )
    return EmbeddedDataset(
        dataset, data.query_ids, data.query_vectors, document_ids, document_vectors, data.model_id
    )
