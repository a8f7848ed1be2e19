"""The Qdrant wrapper and the Qdrant training source under bad input: non-finite stored vectors,
multi-vector fields, aliases. On ``QdrantClient(":memory:")``; cases in docs/reliability.md."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from queryshift.errors import DataFormatError
from queryshift.integrations.qdrant.training_data import load_training_data_from_qdrant

DIM = 4


class _Encoder:
    model_id = "toy"

    def encode_queries(self, texts):
        return np.ones((len(texts), DIM), np.float32)

    def encode_documents(self, texts):  # pragma: no cover - documents come from Qdrant
        raise AssertionError("documents are never embedded")


def test_training_from_qdrant_refuses_a_stored_vector_that_overflowed_to_inf(tmp_path):
    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Dot"))
    with warnings.catch_warnings():  # Qdrant stores float32: 1e39 becomes inf (and numpy says so)
        warnings.simplefilter("ignore", RuntimeWarning)
        client.upsert(
            "docs",
            [
                models.PointStruct(id=i, vector=[1.0, float(i), 0.0, 1e39 if i == 3 else 0.0])
                for i in range(5)
            ],
        )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "q?", "point_id": 1}) + "\n")
    with pytest.raises(DataFormatError, match=r"vectors stored in collection 'docs'.*row 3 \(id '3'\)"):
        load_training_data_from_qdrant(client, "docs", pairs, encoder=_Encoder())
