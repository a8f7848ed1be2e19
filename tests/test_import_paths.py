"""Every import path users had before the package was restructured (issue 16) still works."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

OLD_PATHS = {
    "queryshift.integrations.qdrant": ["AdaptedQdrantClient", "AsyncAdaptedQdrantClient", "vector_params"],
    "queryshift.integrations.qdrant_queries": ["rewrite_query", "rewrite_prefetch", "rewrite_request"],
    "queryshift.integrations.qdrant_routing": ["AdapterRegistry", "AdapterTable", "check_adapter_fits"],
    "queryshift.integrations.qdrant_edge": ["AdaptedEdgeShard"],
    "queryshift.integrations.qdrant_source": [
        "load_training_data_from_qdrant",
        "mine_hard_negatives_from_qdrant",
        "collection_distance",
        "parse_point_id",
    ],
    "queryshift.integrations.qdrant_payload": ["payload_value", "payload_root"],
    "queryshift.integrations.llamaindex": [
        "AdaptedEmbedding",
        "AdaptedRetriever",
        "SentenceTransformerEmbedding",
        "resolve_adapter",
        "load_llamaindex_adapter",
        "export_llamaindex_adapter",
    ],
    "queryshift.integrations.llamaindex_files": [
        "load_llamaindex_adapter",
        "export_llamaindex_adapter",
        "LLAMAINDEX_CONFIG_NAME",
        "LLAMAINDEX_WEIGHTS_NAME",
        "PROVENANCE_NAME",
    ],
    "queryshift.cli": ["main"],
    "queryshift.pipeline": ["pseudo_queries_for", "train_and_save", "compare_adapter", "describe_regime"],
    "queryshift.reindex": ["reindex_collection", "ReindexError", "METADATA_KEY"],
    "queryshift.adapters.io": ["load_adapter", "save_adapter", "CONFIG_NAME"],
    "queryshift.adapters.linear": ["LinearAdapter"],
    "queryshift.adapters.residual_mlp": ["ResidualMLPAdapter", "gelu"],
    "queryshift.adapters.two_layer": ["TwoLayerAdapter"],
}


@pytest.mark.parametrize("module", sorted(OLD_PATHS))
def test_old_public_import_path_still_works(module):
    imported = importlib.import_module(module)
    missing = [name for name in OLD_PATHS[module] if not hasattr(imported, name)]
    assert not missing, f"{module} lost {missing}"


def test_old_and_new_paths_give_the_same_objects():
    from queryshift.integrations.llamaindex import AdaptedRetriever
    from queryshift.integrations.llamaindex.retriever import AdaptedRetriever as new_retriever
    from queryshift.integrations.qdrant.edge import AdaptedEdgeShard as new_shard
    from queryshift.integrations.qdrant_edge import AdaptedEdgeShard

    assert AdaptedRetriever is new_retriever and AdaptedEdgeShard is new_shard


def test_import_queryshift_needs_neither_qdrant_client_nor_llama_index():
    code = (
        "import sys, queryshift, queryshift.integrations; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qdrant_client', 'llama_index', 'torch')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
