"""Old path of :mod:`queryshift.integrations.qdrant.routing`, kept so existing imports keep working."""

from queryshift.integrations.qdrant import routing as _moved
from queryshift.integrations.qdrant.routing import *  # noqa: F403

__all__ = _moved.__all__
