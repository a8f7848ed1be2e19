"""Old path of :mod:`queryshift.integrations.qdrant.routing`, kept so existing imports keep working."""

from queryshift.integrations.qdrant.routing import (
    AdapterKey,
    AdapterRegistry,
    AdapterTable,
    check_adapter_fits,
    distance_name,
)

__all__ = [
    "AdapterKey",
    "AdapterTable",
    "AdapterRegistry",
    "check_adapter_fits",
    "distance_name",
]
