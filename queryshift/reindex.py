"""Safe re-indexing: re-embed a Qdrant collection with a new model behind an alias.

After a full fine-tune (:func:`queryshift.training.finetune.finetune_model`) every stored
document vector is stale. :func:`reindex_collection` rebuilds them without downtime:

1. The texts come from a payload field of each point (``text_field``) or from a
   :class:`~queryshift.data.RetrievalDataset` keyed by point id (``dataset``).
2. They are embedded in batches into a **new** collection with the same distance, the same
   payloads, the same payload indexes and any other vectors (sparse, other named vectors)
   copied unchanged. The old collection is only read, never modified or deleted.
3. Counts are verified: every source point must be in the target exactly once.
4. An alias is switched to the new collection in one atomic ``update_collection_aliases`` call
   (delete-alias + create-alias), so searches through the alias move at once. Rolling back is
   pointing the alias at the old collection again (:attr:`ReindexReport.previous_alias_target`).

**Resuming.** An interrupted run (crash, Ctrl-C, encoder error) is resumed by calling the
function again with the same arguments. The source is scrolled in id order and, before each
batch is embedded, the target is asked which of the batch's ids it already holds
(``retrieve`` without payloads or vectors); only the missing ones are embedded and upserted.
We chose this over a progress marker because upserts are idempotent and the target itself is
the only record that cannot drift from what was written: a crash between writing a batch and
writing a marker can neither skip a batch nor duplicate a point. The target carries a small
``queryshift_reindex`` entry in its collection metadata (source collection and model), so a
resume with another model, or into an unrelated existing collection, is refused.

The same code path serves ``QdrantClient(":memory:")``, ``QdrantClient(path=...)`` and
``QdrantClient(url=...)``: only public client methods are called.

Keep the source read-only while re-indexing: points added meanwhile are picked up by running
again, but points deleted meanwhile make the count check fail (nothing is switched).

**At scale.** ``shard=Shard(i, n)`` (:class:`~queryshift.sharding.Shard`, a hash of the point
id) copies only that part of the source, so ``n`` machines can fill one target in parallel;
each shard resumes on its own, verifies its own points and never switches the alias. Once all
shards are done, :func:`verify_and_switch` checks every point and switches the alias, once.
:class:`WriteOptions` passes Qdrant's ``shard_key_selector`` (custom sharding), write
``ordering`` and ``wait=False`` (upserts are not awaited; the final check then waits until every
point is readable) to the calls. An encoder pool (:class:`~queryshift.encoder_pool.EncoderPool`)
spreads the embedding over processes or GPUs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.http import models

from queryshift.data import RetrievalDataset
from queryshift.embeddings import Encoder
from queryshift.errors import DataFormatError, DimensionMismatchError, QueryshiftError
from queryshift.integrations.qdrant.payload import payload_value
from queryshift.sharding import Shard

logger = logging.getLogger(__name__)

__all__ = [
    "ReindexReport",
    "ReindexError",
    "reindex_collection",
    "METADATA_KEY",
    # the steps of reindex_collection, usable (and testable) one by one
    "ReindexPlan",
    "CopyResult",
    "plan_reindex",
    "copy_points",
    "verify_copy",
    "switch_alias",
    "verify_and_switch",
    "WriteOptions",
]

METADATA_KEY = "queryshift_reindex"


class ReindexError(QueryshiftError, RuntimeError):
    """The target collection does not match the source (or a previous run); nothing was switched."""


@dataclass(frozen=True)
class WriteOptions:
    """Qdrant settings of a re-index that matter on a cluster.

    Attributes:
        shard_key_selector: Custom-sharding key(s) of the points: every read of the source and
            every read and write of the target go to these shards (the target's shard keys must
            exist, see ``create_shard_key``).
        ordering: Write ordering of the upserts (``weak``, ``medium``, ``strong``).
        wait: Await each upsert. With ``False`` writes are only queued; the final check then
            retries until every point is readable, for up to ``settle_seconds``.
        settle_seconds: How long the final check waits for unawaited writes to land.
    """

    shard_key_selector: Any = None
    ordering: models.WriteOrdering | None = None
    wait: bool = True
    settle_seconds: float = 60.0

    @property
    def read(self) -> dict[str, Any]:
        """Keyword arguments of every read call (``scroll``, ``retrieve``, ``count``)."""
        return {"shard_key_selector": self.shard_key_selector} if self.shard_key_selector is not None else {}


@dataclass(frozen=True)
class ReindexReport:
    """What :func:`reindex_collection` did.

    Attributes:
        source_collection: The collection read (an alias is resolved to its collection).
        target_collection: The collection written; the alias now points here.
        alias: The alias switched.
        previous_alias_target: Where the alias pointed before (``None`` if it did not exist);
            point the alias back there to roll back.
        points: Points in the source and in the target (verified equal).
        written: Points embedded and written by this call.
        skipped: Points already present in the target from an earlier, interrupted call.
        dim: Dimension of the new vectors.
        previous_dim: Dimension of the source vectors.
        distance: Distance of both collections (``"Cosine"``, ``"Dot"``, ...).
        vector_name: The re-embedded named vector, or ``None`` for the unnamed default vector.
        seconds: Wall-clock time of the whole call.
        embed_seconds: Time spent inside the encoder.
        shard: The shard copied (``"I/N"``), ``None`` for the whole collection.
        alias_switched: Whether this call switched the alias (never for a shard).
    """

    source_collection: str
    target_collection: str
    alias: str
    previous_alias_target: str | None
    points: int
    written: int
    skipped: int
    dim: int
    previous_dim: int
    distance: str
    vector_name: str | None
    seconds: float
    embed_seconds: float
    shard: str | None = None
    alias_switched: bool = True

    @property
    def docs_per_second(self) -> float:
        """Measured embedding throughput of this call (0 when nothing was embedded)."""
        return self.written / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus ``docs_per_second``."""
        return {**asdict(self), "docs_per_second": round(self.docs_per_second, 3)}


def reindex_collection(
    client: QdrantClient,
    *,
    source_collection: str,
    target_collection: str,
    alias: str,
    encoder: Encoder,
    text_field: str | None = None,
    dataset: RetrievalDataset | None = None,
    vector_name: str | None = None,
    batch_size: int = 128,
    expected_dim: int | None = None,
    allow_dim_change: bool = False,
    show_progress_bar: bool = False,
    shard: Shard | None = None,
    write: WriteOptions | None = None,
) -> ReindexReport:
    """Re-embed ``source_collection`` into ``target_collection`` and point ``alias`` at it.

    Args:
        client: Any ``QdrantClient`` (``":memory:"``, ``path=``, ``url=``).
        source_collection: Collection (or alias) to read; never modified.
        target_collection: New collection to write; created if missing, resumed if it holds an
            interrupted run of the same re-index.
        alias: Alias to point at the target once it is complete. It must not be the name of a
            collection (Qdrant cannot alias over one); it may be the alias ``source_collection`` is.
        encoder: The new model: ``encode_documents(texts) -> (n, dim)`` float32
            (e.g. ``SentenceTransformerEncoder("path/to/finetuned", cache=False)``).
        text_field: Payload field holding each point's text. A dotted path reaches into nested
            objects and JSON strings, e.g. ``"_node_content.text"`` for LlamaIndex collections.
        dataset: Alternatively, texts by point id: ``dataset.documents[str(point_id)]``.
        vector_name: Which named vector to re-embed; ``None`` picks the unnamed vector or the
            only dense named vector. Other vectors are copied unchanged.
        batch_size: Points per scroll, embedding call and upsert.
        expected_dim: Fail unless the encoder produces vectors of this dimension.
        allow_dim_change: Allow the new vectors to have another dimension than the source's.
        show_progress_bar: tqdm bars over points written and verified.
        shard: Copy and verify only this shard of the points, and leave the alias alone; run
            :func:`verify_and_switch` once every shard is done.
        write: Cluster settings (:class:`WriteOptions`); default: awaited writes.

    Returns:
        A :class:`ReindexReport` (with ``shard``: ``points`` counts the shard's points and
        ``alias`` is not switched, ``previous_alias_target`` is where it still points).

    Raises:
        DataFormatError: A point lacks ``text_field`` (or ``dataset`` lacks its id); the message
            names the point id and the field.
        DimensionMismatchError: The new dimension differs from the source's without
            ``allow_dim_change=True``, or from ``expected_dim`` / an existing target.
        ReindexError: The target exists but was not started by this re-index, or verification
            found missing points; the alias is left untouched.

    Example:
        >>> import numpy as np
        >>> from qdrant_client import QdrantClient, models
        >>> class Doubled:
        ...     model_id = "toy"
        ...     def encode_documents(self, texts):
        ...         return np.array([[len(t), 1.0] for t in texts], np.float32)
        ...     def encode_queries(self, texts):
        ...         return self.encode_documents(texts)
        >>> client = QdrantClient(":memory:")
        >>> client.create_collection("v1", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        True
        >>> _ = client.upsert("v1", [models.PointStruct(id=i, vector=[0.0, 1.0], payload={"text": "x" * i})
        ...                          for i in range(1, 4)])
        >>> report = reindex_collection(client, source_collection="v1", target_collection="v2", alias="docs",
        ...                             encoder=Doubled(), text_field="text")
        >>> report.points, report.written, client.get_aliases().aliases[0].collection_name
        (3, 3, 'v2')
    """
    started = time.perf_counter()
    plan = plan_reindex(
        client,
        source_collection=source_collection,
        target_collection=target_collection,
        alias=alias,
        encoder=encoder,
        text_field=text_field,
        dataset=dataset,
        vector_name=vector_name,
        batch_size=batch_size,
        expected_dim=expected_dim,
        allow_dim_change=allow_dim_change,
    )
    write = write or WriteOptions()
    copied = copy_points(client, plan, encoder, show_progress_bar=show_progress_bar, shard=shard, write=write)
    verify_copy(
        client,
        plan.source,
        plan.target,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        shard=shard,
        write=write,
    )
    if shard is None:
        switch_alias(client, plan.alias, plan.target, previous=plan.previous_alias_target)
        logger.info(
            "alias %r now points at %r (was %r); %d points, %d written, %d already present",
            plan.alias,
            plan.target,
            plan.previous_alias_target,
            plan.source_count,
            copied.written,
            copied.skipped,
        )
    else:
        logger.info(
            "shard %s of %r is complete in %r (%d written, %d already present); the alias is switched by "
            "verify_and_switch once every shard is done",
            shard,
            plan.source,
            plan.target,
            copied.written,
            copied.skipped,
        )
    params = plan.params
    return ReindexReport(
        source_collection=plan.source,
        target_collection=plan.target,
        alias=plan.alias,
        previous_alias_target=plan.previous_alias_target,
        points=plan.source_count if shard is None else copied.written + copied.skipped,
        written=copied.written,
        skipped=copied.skipped,
        dim=plan.dim,
        previous_dim=int(params.size),
        distance=str(params.distance.value if hasattr(params.distance, "value") else params.distance),
        vector_name=plan.dense_name or None,
        seconds=round(time.perf_counter() - started, 3),
        embed_seconds=round(copied.embed_seconds, 3),
        shard=None if shard is None else str(shard),
        alias_switched=shard is None,
    )


@dataclass(frozen=True)
class ReindexPlan:
    """What a re-index will do, decided by :func:`plan_reindex` before anything is written.

    Attributes:
        source: The source collection (an alias resolved). ``target``, ``alias``: as given.
        previous_alias_target: Where ``alias`` points now (``None``: it does not exist yet).
        target_exists: The target exists already (an interrupted run to resume).
        info: The source's ``CollectionInfo``.
        dense_name: The re-embedded vector (``""``: the unnamed vector); ``params`` its ``VectorParams``.
        other_dense, sparse: Vectors copied unchanged.
        source_count: Points in the source.
        dim: Dimension of the new vectors (measured on the first point's text).
        marker: Stored in the target's metadata; a resume must match it.
        texts_of: ``point -> text`` (payload field or data set).
        batch_size: Points per scroll, embedding call and upsert.
    """

    source: str
    target: str
    alias: str
    previous_alias_target: str | None
    target_exists: bool
    info: models.CollectionInfo
    dense_name: str
    params: models.VectorParams
    other_dense: dict[str, models.VectorParams]
    sparse: dict[str, Any]
    source_count: int
    dim: int
    marker: dict[str, Any]
    texts_of: Callable[[Any], str]
    batch_size: int

    @property
    def copied_vectors(self) -> list[str]:
        """Names of the vectors copied as they are (other dense vectors, sparse vectors)."""
        return [*self.other_dense, *self.sparse]


@dataclass(frozen=True)
class CopyResult:
    """What :func:`copy_points` wrote: points embedded now, points found from an earlier run, encoder time."""

    written: int
    skipped: int
    embed_seconds: float


def plan_reindex(
    client: QdrantClient,
    *,
    source_collection: str,
    target_collection: str,
    alias: str,
    encoder: Encoder,
    text_field: str | None = None,
    dataset: RetrievalDataset | None = None,
    vector_name: str | None = None,
    batch_size: int = 128,
    expected_dim: int | None = None,
    allow_dim_change: bool = False,
) -> ReindexPlan:
    """Check the arguments against the collections and measure the new dimension; writes nothing.

    Arguments and errors are those of :func:`reindex_collection` (the encoder embeds one text).
    """
    if (text_field is None) == (dataset is None):
        raise ValueError("pass exactly one of text_field (a payload field) or dataset (texts by point id)")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    collections = {c.name for c in client.get_collections().collections}
    source = aliases.get(source_collection, source_collection)
    if source not in collections:
        raise ValueError(f"source_collection {source_collection!r} is neither a collection nor an alias")
    if target_collection in (source, source_collection):
        raise ValueError(
            f"target_collection must be a new collection, got {target_collection!r} which is the source"
        )
    if target_collection in aliases:
        raise ValueError(f"target_collection {target_collection!r} is an alias; give a collection name")
    if alias in collections:
        raise ValueError(
            f"alias {alias!r} is the name of a collection, and Qdrant cannot alias over a collection; "
            f"choose another alias (and point your application at it)"
        )

    info = client.get_collection(source)
    dense_name, params, other_dense, sparse = _vector_layout(info, vector_name, source)
    source_count = client.count(source, exact=True).count
    if source_count == 0:
        raise ValueError(f"source collection {source!r} is empty; nothing to re-index")
    texts_of = _text_getter(text_field, dataset, source)

    first, _ = client.scroll(source, limit=1, with_payload=True, with_vectors=False)
    probe = _encode(encoder, [texts_of(first[0])])
    dim = int(probe.shape[1])
    if expected_dim is not None and dim != expected_dim:
        raise DimensionMismatchError(
            f"encoder {encoder.model_id!r} produces dim={dim} vectors, expected_dim={expected_dim}"
        )
    if dim != params.size and not allow_dim_change:
        raise DimensionMismatchError(
            f"encoder {encoder.model_id!r} produces dim={dim} vectors but {source!r} stores dim={params.size}; "
            "pass allow_dim_change=True if the new model is meant to change the dimension "
            "(every query must then be embedded with the new model)"
        )
    marker = {
        "source_collection": source,
        "model_id": encoder.model_id,
        "vector_name": dense_name,
        "text_field": text_field,
    }
    return ReindexPlan(
        source=source,
        target=target_collection,
        alias=alias,
        previous_alias_target=aliases.get(alias),
        target_exists=target_collection in collections,
        info=info,
        dense_name=dense_name,
        params=params,
        other_dense=other_dense,
        sparse=sparse,
        source_count=source_count,
        dim=dim,
        marker=marker,
        texts_of=texts_of,
        batch_size=batch_size,
    )


def copy_points(
    client: QdrantClient,
    plan: ReindexPlan,
    encoder: Encoder,
    *,
    show_progress_bar: bool = False,
    shard: Shard | None = None,
    write: WriteOptions | None = None,
) -> CopyResult:
    """Create the target (or check that it holds this re-index), then embed and upsert what it lacks.

    Resumable: before each batch is embedded the target is asked which of its ids it holds, and
    only the missing points are embedded, so calling again after an interruption finishes the copy.
    With ``shard``, the source is scrolled by id only and the payloads of the shard's missing
    points are retrieved, so each shard reads the payload of its own points alone.
    """
    write = write or WriteOptions()
    read = write.read
    if plan.target_exists:
        _check_resumable(client, plan.target, plan.marker, plan.dense_name, plan.dim)
        logger.info("resuming the re-index into existing collection %r", plan.target)
    else:
        try:
            _create_target(client, plan, write)
        except Exception:
            if not client.collection_exists(plan.target):
                raise
            # Another shard created it between our plan and now: resume into it like a restart.
            _check_resumable(client, plan.target, plan.marker, plan.dense_name, plan.dim)
    copied = plan.copied_vectors
    written = skipped = 0
    embed_seconds = 0.0
    from tqdm.auto import tqdm

    with tqdm(total=plan.source_count, desc="re-embedding", unit="pt", disable=not show_progress_bar) as bar:
        offset = None
        while True:
            page, offset = client.scroll(
                plan.source,
                limit=plan.batch_size,
                offset=offset,
                with_payload=shard is None,
                with_vectors=copied if copied and shard is None else False,
                **read,
            )
            if not page:
                break
            points = page if shard is None else [p for p in page if shard.owns(p.id)]
            present = {
                _key(r.id)
                for r in client.retrieve(
                    plan.target, [p.id for p in points], with_payload=False, with_vectors=False, **read
                )
            }
            todo = [p for p in points if _key(p.id) not in present]
            skipped += len(points) - len(todo)
            if todo and shard is not None:
                todo = client.retrieve(
                    plan.source,
                    [p.id for p in todo],
                    with_payload=True,
                    with_vectors=copied if copied else False,
                    **read,
                )
            if todo:
                texts = [plan.texts_of(p) for p in todo]
                tick = time.perf_counter()
                vectors = _encode(encoder, texts)  # (len(todo), dim)
                embed_seconds += time.perf_counter() - tick
                if vectors.shape != (len(todo), plan.dim):
                    raise DimensionMismatchError(
                        f"encoder returned shape {vectors.shape} for {len(todo)} texts, "
                        f"expected ({len(todo)}, {plan.dim})"
                    )
                client.upsert(
                    plan.target,
                    [
                        models.PointStruct(
                            id=p.id, vector=_vector(p, row, plan.dense_name, copied), payload=p.payload
                        )
                        for p, row in zip(todo, vectors, strict=True)
                    ],
                    wait=write.wait,
                    ordering=write.ordering,
                    **read,
                )
                written += len(todo)
            bar.update(len(page))
            if offset is None:
                break
    return CopyResult(written=written, skipped=skipped, embed_seconds=embed_seconds)


def verify_and_switch(
    client: QdrantClient,
    *,
    source_collection: str,
    target_collection: str,
    alias: str,
    batch_size: int = 128,
    show_progress_bar: bool = False,
    write: WriteOptions | None = None,
) -> bool:
    """The last step of a sharded re-index: verify every point, then switch ``alias`` to the target.

    Run it once all shards (``reindex_collection(..., shard=Shard(i, n))`` for every ``i``) have
    finished. Nothing is embedded, so no model is needed.

    Returns:
        ``True`` when the alias was switched, ``False`` when it already pointed at the target
        (running this step twice switches once).

    Raises:
        ReindexError: The target was not created by a re-index of this source, or a point is
            missing (a shard has not finished); the alias is left untouched.
    """
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    source = aliases.get(source_collection, source_collection)
    if not client.collection_exists(target_collection):
        raise ReindexError(f"target_collection {target_collection!r} does not exist; run the shards first")
    marker = (client.get_collection(target_collection).config.metadata or {}).get(METADATA_KEY)
    if not marker or marker.get("source_collection") != source:
        raise ReindexError(
            f"target_collection {target_collection!r} does not hold a queryshift re-index of {source!r} "
            f"(its marker: {marker!r})"
        )
    verify_copy(
        client,
        source,
        target_collection,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        write=write,
    )
    previous = aliases.get(alias)
    if previous == target_collection:
        logger.info("alias %r already points at %r", alias, target_collection)
        return False
    switch_alias(client, alias, target_collection, previous=previous)
    logger.info("alias %r now points at %r (was %r)", alias, target_collection, previous)
    return True


def switch_alias(client: QdrantClient, alias: str, target: str, *, previous: str | None) -> None:
    """Point ``alias`` at ``target`` in one atomic ``update_collection_aliases`` call.

    ``previous``: the collection it points at now (``None`` when it does not exist yet), whose
    alias is deleted in the same call.
    """
    operations: list[Any] = []
    if previous is not None:
        operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
    operations.append(
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=target, alias_name=alias))
    )
    client.update_collection_aliases(change_aliases_operations=operations)


def _vector_layout(
    info: models.CollectionInfo, vector_name: str | None, source: str
) -> tuple[str, models.VectorParams, dict[str, models.VectorParams], dict[str, Any]]:
    """(dense name or "" for unnamed, its params, other dense vectors, sparse vectors) of the source."""
    vectors = info.config.params.vectors
    sparse = dict(info.config.params.sparse_vectors or {})
    if isinstance(vectors, models.VectorParams):
        if vector_name not in (None, ""):
            raise ValueError(
                f"vector_name={vector_name!r} given but {source!r} has a single unnamed vector; leave it unset"
            )
        name, params, others = "", vectors, {}
    else:
        dense = dict(vectors or {})
        if vector_name is None:
            if len(dense) != 1:
                raise ValueError(
                    f"{source!r} has dense vectors {sorted(dense)}; pass vector_name to choose which to re-embed"
                )
            vector_name = next(iter(dense))
        if vector_name not in dense:
            raise ValueError(
                f"vector_name={vector_name!r} is not a dense vector of {source!r}; it has {sorted(dense)}"
            )
        name, params = vector_name, dense[vector_name]
        others = {k: v for k, v in dense.items() if k != vector_name}
    if params.multivector_config is not None:
        raise ValueError(
            f"vector {name or '(unnamed)'!r} of {source!r} is a multi-vector; re-indexing supports single vectors"
        )
    return name, params, others, sparse


def _text_getter(text_field: str | None, dataset: RetrievalDataset | None, source: str):
    if dataset is not None:
        documents = dataset.documents

        def from_dataset(point: Any) -> str:
            key = str(point.id)
            if key not in documents:
                raise DataFormatError(
                    f"point id {point.id!r} of {source!r} has no document in dataset {dataset.name or ''!r} "
                    "(documents are looked up by str(point id))",
                    field="documents",
                )
            return documents[key]

        return from_dataset

    if text_field is None:
        raise ValueError("pass text_field (a payload field) or dataset (texts by point id)")

    def from_payload(point: Any) -> str:
        value = payload_value(point.payload or {}, text_field)
        if not isinstance(value, str) or not value.strip():
            found = "missing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"
            raise DataFormatError(
                f"point id {point.id!r} has no text in payload field {text_field!r} ({found}); "
                f"payload keys: {sorted(point.payload or {})[:10]}",
                path=source,
                field=text_field,
            )
        return value

    return from_payload


def _encode(encoder: Encoder, texts: list[str]) -> np.ndarray:
    vectors = np.asarray(encoder.encode_documents(texts), dtype=np.float32)  # (n, dim)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise DimensionMismatchError(
            f"encoder {encoder.model_id!r} returned shape {vectors.shape} for {len(texts)} texts; expected (n, dim)"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"encoder {encoder.model_id!r} returned non-finite vectors")
    return vectors


def _key(point_id: Any) -> Any:
    """Point ids compared by value: ints as is, UUID strings in canonical form."""
    if isinstance(point_id, str):
        try:
            return str(uuid.UUID(point_id))
        except ValueError:
            return point_id
    return point_id


def _vector(point: Any, row: np.ndarray, dense_name: str, copied: list[str]) -> Any:
    if not dense_name and not copied:
        return row.tolist()
    out: dict[str, Any] = {dense_name: row.tolist()}
    stored = point.vector if isinstance(point.vector, dict) else {}
    for name in copied:
        if name in stored:
            out[name] = stored[name]
    return out


def _create_target(client: QdrantClient, plan: ReindexPlan, write: WriteOptions) -> None:
    target, info, dense_name, dim, marker = plan.target, plan.info, plan.dense_name, plan.dim, plan.marker
    new_params = plan.params.model_copy(update={"size": dim})
    vectors_config: Any = new_params if not dense_name else {dense_name: new_params, **plan.other_dense}
    sharding = info.config.params.sharding_method
    client.create_collection(
        target,
        vectors_config=vectors_config,
        sparse_vectors_config=plan.sparse or None,
        on_disk_payload=info.config.params.on_disk_payload,
        metadata={METADATA_KEY: marker},
        **({"sharding_method": sharding} if sharding is not None else {}),
    )
    selector = write.shard_key_selector
    if sharding == models.ShardingMethod.CUSTOM and selector is not None:
        keys = selector.shards if isinstance(selector, models.ShardKeyWithFallback) else selector
        for key in keys if isinstance(keys, list) else [keys]:
            client.create_shard_key(target, key)
    for field_name, schema in (info.payload_schema or {}).items():
        client.create_payload_index(
            target, field_name=field_name, field_schema=schema.params or schema.data_type, wait=True
        )
    logger.info("created %r (dim=%d) for the re-index of %r", target, dim, marker["source_collection"])


def _check_resumable(
    client: QdrantClient, target: str, marker: dict[str, Any], dense_name: str, dim: int
) -> None:
    info = client.get_collection(target)
    found = (info.config.metadata or {}).get(METADATA_KEY)
    if found is None:
        raise ReindexError(
            f"target_collection {target!r} already exists and was not created by a queryshift re-index; "
            "choose a new target name (existing collections are never overwritten)"
        )
    if found != marker:
        changed = sorted(k for k in marker if found.get(k) != marker[k])
        raise ReindexError(
            f"target_collection {target!r} holds an interrupted re-index with other settings "
            f"({', '.join(f'{k}: {found.get(k)!r} now {marker[k]!r}' for k in changed)}); "
            "resume with the same settings or choose a new target name"
        )
    vectors = info.config.params.vectors
    params = vectors if isinstance(vectors, models.VectorParams) else (vectors or {}).get(dense_name)
    if params is None or params.size != dim:
        raise DimensionMismatchError(
            f"target_collection {target!r} stores dim={getattr(params, 'size', None)} but the encoder produces dim={dim}"
        )


def verify_copy(
    client: QdrantClient,
    source: str,
    target: str,
    *,
    batch_size: int = 128,
    show_progress_bar: bool = False,
    shard: Shard | None = None,
    write: WriteOptions | None = None,
) -> None:
    """Raise a :class:`ReindexError` unless every source id is in the target and it holds nothing else.

    With ``shard``, only that shard's ids are checked (the target holds the other shards' points
    too). With unawaited writes (``write.wait=False``) the missing ids are asked again until they
    are readable or ``write.settle_seconds`` have passed.
    """
    from tqdm.auto import tqdm

    write = write or WriteOptions()
    read = write.read
    missing: list[Any] = []

    def absent(ids: list[Any]) -> list[Any]:
        found = {
            _key(r.id) for r in client.retrieve(target, ids, with_payload=False, with_vectors=False, **read)
        }
        return [i for i in ids if _key(i) not in found]

    source_count = client.count(source, exact=True, **read).count
    offset = None
    with tqdm(total=source_count, desc="verifying", unit="pt", disable=not show_progress_bar) as bar:
        while True:
            points, offset = client.scroll(
                source, limit=batch_size, offset=offset, with_payload=False, with_vectors=False, **read
            )
            if not points:
                break
            ids = [p.id for p in points if shard is None or shard.owns(p.id)]
            missing.extend(absent(ids) if ids else [])
            bar.update(len(points))
            if offset is None:
                break
    deadline = time.monotonic() + (0.0 if write.wait else write.settle_seconds)
    while missing and time.monotonic() < deadline:  # unawaited writes still landing
        time.sleep(0.5)
        missing = [
            i
            for start in range(0, len(missing), batch_size)
            for i in absent(missing[start : start + batch_size])
        ]
    if shard is not None:
        if missing:
            raise ReindexError(
                f"verification of shard {shard} failed: {len(missing)} of its points of {source!r} are missing "
                f"from {target!r} (e.g. {missing[:5]}); run the shard again to add them"
            )
        return
    target_count = client.count(target, exact=True, **read).count
    if missing or source_count != target_count:
        raise ReindexError(
            f"verification failed: source {source!r} has {source_count} points, target {target!r} has "
            f"{target_count}; {len(missing)} source points missing from the target (e.g. {missing[:5]}). "
            "Was the source modified during the re-index? Run again to add missing points; the alias was not switched"
        )
