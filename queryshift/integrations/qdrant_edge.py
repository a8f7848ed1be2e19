"""Old path of :mod:`queryshift.integrations.qdrant.edge`, kept so existing imports keep working."""

from queryshift.integrations.qdrant.edge import (
    AdaptedEdgeShard,
)

__all__ = [
    "AdaptedEdgeShard",
]
