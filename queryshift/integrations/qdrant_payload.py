"""Old path of :mod:`queryshift.integrations.qdrant.payload`, kept so existing imports keep working."""

from queryshift.integrations.qdrant import payload as _moved
from queryshift.integrations.qdrant.payload import *  # noqa: F403

__all__ = _moved.__all__
