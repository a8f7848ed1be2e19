"""Old path of :mod:`queryshift.integrations.qdrant.requests`, kept so existing imports keep working."""

from queryshift.integrations.qdrant.requests import (
    VectorFn,
    is_dense_vector,
    rewrite_prefetch,
    rewrite_prefetches,
    rewrite_query,
    rewrite_request,
)

__all__ = [
    "VectorFn",
    "is_dense_vector",
    "rewrite_query",
    "rewrite_prefetch",
    "rewrite_prefetches",
    "rewrite_request",
]
