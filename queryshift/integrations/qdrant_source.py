"""Old path of :mod:`queryshift.integrations.qdrant.training_data`, kept so existing imports keep working."""

from queryshift.integrations.qdrant import training_data as _moved
from queryshift.integrations.qdrant.training_data import *  # noqa: F403

__all__ = _moved.__all__
