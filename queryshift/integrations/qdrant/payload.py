"""Reading a text out of a Qdrant payload by a dotted path.

Why a path and not a key: LlamaIndex's vector stores keep the node's text inside
``_node_content``, a JSON *string*, so ``"_node_content.text"`` must decode that string on the
way. ``reindex`` (texts to re-embed) and ``train --collection`` (texts to sample pseudo-queries
from) read payloads the same way.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["payload_value", "payload_root"]


def payload_value(payload: dict[str, Any], path: str) -> Any:
    """``payload[path]``, else walk a dotted path, decoding JSON strings on the way; ``None`` if absent.

    Example:
        >>> payload_value({"_node_content": '{"text": "chunk"}'}, "_node_content.text")
        'chunk'
    """
    if path in payload:
        return payload[path]
    value: Any = payload
    for part in path.split("."):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return None
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def payload_root(path: str) -> list[str]:
    """Payload keys to request from Qdrant so that :func:`payload_value` can resolve ``path``."""
    return list(dict.fromkeys([path, path.split(".")[0]]))
