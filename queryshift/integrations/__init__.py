"""Wrappers that put an adapter in front of a vector store or framework.

Nothing is imported here, so ``import queryshift`` never needs qdrant-client or llama-index;
import ``queryshift.integrations.qdrant`` or ``queryshift.integrations.llamaindex`` directly.
"""

__all__: list[str] = []
