"""Old path of :mod:`queryshift.integrations.qdrant.payload`, kept so existing imports keep working."""

from queryshift.integrations.qdrant.payload import (
    payload_root,
    payload_value,
)

__all__ = [
    "payload_value",
    "payload_root",
]
