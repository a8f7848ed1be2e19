"""Old path of :mod:`queryshift.integrations.qdrant.requests`, kept so existing imports keep working."""

from queryshift.integrations.qdrant import requests as _moved
from queryshift.integrations.qdrant.requests import *  # noqa: F403

__all__ = _moved.__all__
