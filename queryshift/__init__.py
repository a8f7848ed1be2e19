"""queryshift: adapt retrieval to your domain without re-embedding the index.

A small transform learned over frozen embeddings and applied only to query vectors.
Importing ``queryshift`` never imports torch, qdrant-client or llama-index.
"""

__version__ = "0.1.0"

from queryshift.adapters import (  # noqa: E402
    AdapterConfig,
    LinearAdapter,
    QueryAdapter,
    ResidualMLPAdapter,
    load_adapter,
    save_adapter,
)
from queryshift.data import RetrievalDataset, load_dataset  # noqa: E402
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval  # noqa: E402

__all__ = [
    "__version__",
    "AdapterConfig",
    "LinearAdapter",
    "ResidualMLPAdapter",
    "QueryAdapter",
    "load_adapter",
    "save_adapter",
    "RetrievalDataset",
    "load_dataset",
    "evaluate_retrieval",
    "bootstrap_difference",
]
