"""Exporting adapters to other runtimes: a sentence-transformers model with an adapted query route.

Importing this package imports neither torch nor sentence-transformers; exporting does.
"""

from queryshift.export.sentence_transformer import (
    CUSTOM_MODULE_FILE,
    needs_trust_remote_code,
    to_sentence_transformer,
)

__all__ = ["to_sentence_transformer", "needs_trust_remote_code", "CUSTOM_MODULE_FILE"]
