"""Qdrant integration: adapted queries on an existing collection, training data read from one.

* :mod:`~queryshift.integrations.qdrant.client`: :class:`AdaptedQdrantClient` /
  :class:`AsyncAdaptedQdrantClient`, the wrappers that adapt raw query vectors.
* :mod:`~queryshift.integrations.qdrant.requests`: which parts of a query request are raw vectors.
* :mod:`~queryshift.integrations.qdrant.routing`: which adapter serves which (collection, vector).
* :mod:`~queryshift.integrations.qdrant.edge`: the same for an embedded qdrant-edge shard.
* :mod:`~queryshift.integrations.qdrant.training_data`: training pairs read from a collection.
* :mod:`~queryshift.integrations.qdrant.payload`: reading (dotted) payload fields.
"""

from queryshift.integrations.qdrant.client import AdaptedQdrantClient, AsyncAdaptedQdrantClient, vector_params

__all__ = ["AdaptedQdrantClient", "AsyncAdaptedQdrantClient", "vector_params"]
