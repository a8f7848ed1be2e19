"""Old path of :mod:`queryshift.integrations.qdrant.edge`, kept so existing imports keep working."""

from queryshift.integrations.qdrant import edge as _moved
from queryshift.integrations.qdrant.edge import *  # noqa: F403

__all__ = _moved.__all__
