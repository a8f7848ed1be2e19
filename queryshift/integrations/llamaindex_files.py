"""Old path of :mod:`queryshift.integrations.llamaindex.files`, kept so existing imports keep working."""

from queryshift.integrations.llamaindex import files as _moved
from queryshift.integrations.llamaindex.files import *  # noqa: F403

__all__ = _moved.__all__
