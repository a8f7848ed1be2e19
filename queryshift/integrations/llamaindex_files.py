"""Old path of :mod:`queryshift.integrations.llamaindex.files`, kept so existing imports keep working."""

from queryshift.integrations.llamaindex.files import (
    LLAMAINDEX_CONFIG_NAME,
    LLAMAINDEX_WEIGHTS_NAME,
    PROVENANCE_NAME,
    export_llamaindex_adapter,
    load_llamaindex_adapter,
)

__all__ = [
    "load_llamaindex_adapter",
    "export_llamaindex_adapter",
    "LLAMAINDEX_CONFIG_NAME",
    "LLAMAINDEX_WEIGHTS_NAME",
    "PROVENANCE_NAME",
]
