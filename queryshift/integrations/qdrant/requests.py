"""Finding and replacing raw query vectors inside qdrant-client query models.

A query to Qdrant can hold vectors in many places: the ``query`` argument itself, a
``NearestQuery``, the examples of ``RecommendQuery`` / ``DiscoverQuery`` / ``ContextQuery``,
the target of a ``RelevanceFeedbackQuery``, and any of these inside (nested) ``Prefetch``
stages, each with its own ``using``. :func:`rewrite_query`, :func:`rewrite_prefetch` and
:func:`rewrite_request` walk these structures and call ``fn(using, vector)`` for every *raw
dense vector* they find, returning copies with the replaced vectors; the caller's objects are
never modified, and structures without raw dense vectors are returned as the same objects.

What is adapted and what is not, and why:

* **Raw dense vectors** (``list[float]``, 1-d numpy arrays): adapted. They are query-side
  vectors computed by the caller's embedding model.
* **Raw example vectors** of recommend / discover / context queries: adapted, like the
  query itself (they are compared to documents the same way).
* **Point ids** (``int``, UUID strings, ``UUID``, gRPC ``PointId``): untouched. The server
  resolves an id to the point's *stored document vector*, which lives in document space and
  must not be transformed (that is the whole point of a query-side adapter).
* **Relevance-feedback examples** (``FeedbackItem.example``): untouched: they are documents
  judged by a feedback model, i.e. document-space vectors; only the ``target`` is adapted.
* **Sparse vectors**: untouched: adapters map dense embeddings only.
* **Multi-vectors** (``list[list[float]]``, 2-d arrays): handed to ``fn`` too, so that a query on
  a vector that has an adapter is refused instead of silently searched unadapted (an adapter maps
  single vectors; the wrapper's ``fn`` raises); ``fn`` returns them unchanged where no adapter serves.
* **Server-side / client-side inference inputs** (``Document``, ``Image``, ``InferenceObject``):
  untouched: there is no vector yet; the model named in the object embeds it (on the server, or
  with fastembed in the client), and that embedding is outside the wrapper's reach.
* Fusion, RRF, formula, order-by, sample and text (BM25) queries hold no vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import numpy as np
from qdrant_client import grpc
from qdrant_client.http import models

logger = logging.getLogger(__name__)

__all__ = [
    "VectorFn",
    "is_dense_vector",
    "is_multi_vector",
    "rewrite_query",
    "rewrite_prefetch",
    "rewrite_prefetches",
    "rewrite_request",
]

VectorFn = Callable[[str | None, Any], Any]
"""``fn(using, vector) -> vector``: called for each raw dense vector (or multi-vector, see
:func:`is_multi_vector`) with the vector name it targets."""

_Model = TypeVar("_Model")

# Queries that carry no vector at all.
_VECTOR_FREE = (
    models.OrderByQuery,
    models.FusionQuery,
    models.RrfQuery,
    models.FormulaQuery,
    models.SampleQuery,
    models.TextQuery,
)
# Inputs that are passed through untouched on purpose (see the module docstring).
_UNTOUCHED = (
    int,
    str,
    UUID,
    grpc.PointId,
    models.SparseVector,
    models.Document,
    models.Image,
    models.InferenceObject,
)


def is_dense_vector(value: object) -> bool:
    """Whether ``value`` is one raw dense vector: a non-empty list of numbers or a 1-d numeric array.

    Example:
        >>> is_dense_vector([0.1, 0.2]), is_dense_vector([[0.1, 0.2]]), is_dense_vector(7)
        (True, False, False)
    """
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.size > 0 and value.dtype.kind in "fiu"
    if isinstance(value, list) and value:
        first = value[0]
        return isinstance(first, (float, int, np.number)) and not isinstance(first, bool)
    return False


def is_multi_vector(value: object) -> bool:
    """Whether ``value`` is a raw multi-vector (late interaction): a list of vectors or a 2-d array.

    Example:
        >>> is_multi_vector([[0.1, 0.2], [0.3, 0.4]]), is_multi_vector([0.1, 0.2])
        (True, False)
    """
    if isinstance(value, np.ndarray):
        return value.ndim == 2
    return isinstance(value, list) and bool(value) and isinstance(value[0], (list, np.ndarray))


def _copy(model: _Model, update: dict[str, Any]) -> _Model:
    """Shallow copy of a pydantic model with some fields replaced; no validation, no mutation."""
    copier = getattr(model, "model_copy", None)
    if copier is not None:
        return copier(update=update)
    return model.copy(update=update)  # type: ignore[attr-defined]  # pydantic v1


def _vector_input(value: Any, using: str | None, fn: VectorFn) -> Any:
    """A ``VectorInput`` position: ``fn`` for raw dense and multi-vectors; ids, sparse and inference inputs stay."""
    if is_dense_vector(value) or is_multi_vector(value):
        return fn(using, value)
    return value


def _vector_inputs(values: list[Any] | None, using: str | None, fn: VectorFn) -> list[Any] | None:
    if not values:
        return values
    out = [_vector_input(v, using, fn) for v in values]
    return values if all(a is b for a, b in zip(out, values, strict=True)) else out


def _context_pair(pair: models.ContextPair, using: str | None, fn: VectorFn) -> models.ContextPair:
    positive = _vector_input(pair.positive, using, fn)
    negative = _vector_input(pair.negative, using, fn)
    if positive is pair.positive and negative is pair.negative:
        return pair
    return _copy(pair, {"positive": positive, "negative": negative})


def _context(
    context: models.ContextPair | list[models.ContextPair], using: str | None, fn: VectorFn
) -> models.ContextPair | list[models.ContextPair]:
    if isinstance(context, list):
        out = [_context_pair(p, using, fn) for p in context]
        return context if all(a is b for a, b in zip(out, context, strict=True)) else out
    return _context_pair(context, using, fn)


def rewrite_query(query: Any, using: str | None, fn: VectorFn) -> Any:
    """Replace the raw dense vectors of one ``query`` (anything ``query_points(query=...)`` accepts).

    Args:
        query: A raw vector, point id, sparse vector, multi-vector, ``models.Query`` variant,
            inference object or ``None``.
        using: The vector name the query targets (``None``: the unnamed vector).
        fn: Called as ``fn(using, vector)`` for each raw dense vector or multi-vector; returns its
            replacement.

    Returns:
        ``query`` itself when nothing was replaced, else a copy.

    Raises:
        TypeError: ``query`` is of a type qdrant-client does not accept as a query, so it cannot
            be known whether it holds vectors.

    Example:
        >>> rewrite_query([1.0, 2.0], "text", lambda using, v: [x * 10 for x in v])
        [10.0, 20.0]
        >>> rewrite_query(42, None, lambda using, v: v)  # a point id: the stored document vector
        42
    """
    if query is None:
        return None
    if is_dense_vector(query) or is_multi_vector(query):
        return fn(using, query)
    if isinstance(query, models.NearestQuery):
        nearest = _vector_input(query.nearest, using, fn)
        return query if nearest is query.nearest else _copy(query, {"nearest": nearest})
    if isinstance(query, models.RecommendQuery):
        rec = query.recommend
        positive = _vector_inputs(rec.positive, using, fn)
        negative = _vector_inputs(rec.negative, using, fn)
        if positive is rec.positive and negative is rec.negative:
            return query
        return _copy(query, {"recommend": _copy(rec, {"positive": positive, "negative": negative})})
    if isinstance(query, models.DiscoverQuery):
        disc = query.discover
        target = _vector_input(disc.target, using, fn)
        context = _context(disc.context, using, fn)
        if target is disc.target and context is disc.context:
            return query
        return _copy(query, {"discover": _copy(disc, {"target": target, "context": context})})
    if isinstance(query, models.ContextQuery):
        context = _context(query.context, using, fn)
        return query if context is query.context else _copy(query, {"context": context})
    if isinstance(query, models.RelevanceFeedbackQuery):
        feedback = query.relevance_feedback
        target = _vector_input(feedback.target, using, fn)
        if target is feedback.target:
            return query
        return _copy(query, {"relevance_feedback": _copy(feedback, {"target": target})})
    if isinstance(query, _VECTOR_FREE) or isinstance(query, _UNTOUCHED):
        return query
    raise TypeError(
        f"cannot adapt a query of type {type(query).__name__}: expected a vector, a point id, a sparse "
        "vector, a models.Query variant (NearestQuery, RecommendQuery, ...), an inference object or None"
    )


def rewrite_prefetch(prefetch: models.Prefetch, fn: VectorFn) -> models.Prefetch:
    """Replace raw dense vectors in ``prefetch`` and its nested prefetches, each with its own ``using``.

    Example:
        >>> inner = models.Prefetch(query=[1.0, 0.0], using="image", limit=5)
        >>> outer = models.Prefetch(query=[0.0, 1.0], using="text", prefetch=inner, limit=3)
        >>> seen = []
        >>> _ = rewrite_prefetch(outer, lambda using, v: seen.append(using) or v)
        >>> seen
        ['text', 'image']
    """
    query = rewrite_query(prefetch.query, prefetch.using, fn)
    nested = rewrite_prefetches(prefetch.prefetch, fn)
    if query is prefetch.query and nested is prefetch.prefetch:
        return prefetch
    return _copy(prefetch, {"query": query, "prefetch": nested})


def rewrite_prefetches(
    prefetch: models.Prefetch | Sequence[models.Prefetch] | None, fn: VectorFn
) -> models.Prefetch | list[models.Prefetch] | None:
    """:func:`rewrite_prefetch` over ``None``, one prefetch or a list of them.

    Example:
        >>> rewrite_prefetches(None, lambda using, v: v) is None
        True
    """
    if prefetch is None:
        return None
    if isinstance(prefetch, models.Prefetch):
        return rewrite_prefetch(prefetch, fn)
    out = [rewrite_prefetch(p, fn) for p in prefetch]
    return prefetch if all(a is b for a, b in zip(out, prefetch, strict=True)) else out  # type: ignore[return-value]


def rewrite_request(
    request: models.QueryRequest | models.QueryGroupsRequest, fn: VectorFn
) -> models.QueryRequest | models.QueryGroupsRequest:
    """Replace raw dense vectors in a batch request (its ``query`` and ``prefetch``).

    Example:
        >>> request = models.QueryRequest(query=[1.0, 2.0], limit=3)
        >>> rewrite_request(request, lambda using, v: [0.0, 1.0]).query
        [0.0, 1.0]
        >>> request.query  # the caller's request is unchanged
        [1.0, 2.0]
    """
    if not isinstance(request, (models.QueryRequest, models.QueryGroupsRequest)):
        raise TypeError(f"expected a models.QueryRequest, got {type(request).__name__}")
    query = rewrite_query(request.query, request.using, fn)
    prefetch = rewrite_prefetches(request.prefetch, fn)
    if query is request.query and prefetch is request.prefetch:
        return request
    return _copy(request, {"query": query, "prefetch": prefetch})
