"""Train LlamaIndex's ``EmbeddingAdapterFinetuneEngine`` and write adapted query vectors.

Runs inside ``.venv-llamaindex/`` (``bash benchmarks/setup_llamaindex_env.sh``), never in
queryshift's environment: ``llama-index-finetuning`` needs ``mistralai<2``. ``benchmarks/quality.py``
calls it as a subprocess; it imports nothing from queryshift. Usage::

    .venv-llamaindex/bin/python benchmarks/llamaindex_engine.py --train train.json \\
        --queries queries.json --model MODEL_DIR --kind linear --epochs 4 --out OUT_DIR

Inputs: ``--train``, an ``EmbeddingQAFinetuneDataset`` JSON; ``--queries``, ``{"ids": [...],
"texts": [...]}`` (the test queries). The engine runs as LlamaIndex's example notebook runs it:
``EmbeddingAdapterFinetuneEngine(train_dataset, base_embed_model, model_output_path=...,
epochs=..., verbose=True)``, plus ``adapter_model=TwoLayerNN(dim, hidden, dim, bias=True,
add_residual=True)`` for ``--kind 2layer``; then ``engine.get_finetuned_model()`` embeds each test
query. Writes to ``--out``: ``adapted.npy`` (adapted test query vectors, ``(n, dim)``),
``base.npy`` (the base model's test query vectors, to check they match queryshift's), ``ids.json``
and ``meta.json`` (``train_seconds``: engine construction plus ``finetune()``, which embeds every
batch with the base model; versions; arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--model", required=True, help="local sentence-transformers model folder")
    parser.add_argument("--kind", choices=("linear", "2layer"), default="linear")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--hidden-dim", type=int, default=1024)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from llama_index.embeddings.adapter.utils import TwoLayerNN
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.finetuning import EmbeddingAdapterFinetuneEngine, EmbeddingQAFinetuneDataset

    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_dataset = EmbeddingQAFinetuneDataset.from_json(args.train)
    queries = json.loads(Path(args.queries).read_text(encoding="utf-8"))
    base_embed_model = HuggingFaceEmbedding(model_name=args.model, device="cpu")

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        kwargs = {}
        if args.kind == "2layer":
            dim = len(base_embed_model.get_text_embedding("hello world"))
            kwargs["adapter_model"] = TwoLayerNN(dim, args.hidden_dim, dim, bias=True, add_residual=True)
        engine = EmbeddingAdapterFinetuneEngine(
            train_dataset,
            base_embed_model,
            model_output_path=str(Path(tmp) / "model_output"),
            epochs=args.epochs,
            verbose=True,
            **kwargs,
        )
        engine.finetune()
        train_seconds = time.perf_counter() - started
        embed_model = engine.get_finetuned_model(
            **({"adapter_cls": TwoLayerNN} if args.kind == "2layer" else {})
        )
        started = time.perf_counter()
        adapted = np.asarray([embed_model.get_query_embedding(t) for t in queries["texts"]], dtype=np.float32)
        query_seconds = time.perf_counter() - started
    base = np.asarray([base_embed_model.get_query_embedding(t) for t in queries["texts"]], dtype=np.float32)

    np.save(out / "adapted.npy", adapted)
    np.save(out / "base.npy", base)
    (out / "ids.json").write_text(json.dumps(queries["ids"]), encoding="utf-8")
    meta = {
        "kind": args.kind,
        "epochs": args.epochs,
        "hidden_dim": args.hidden_dim if args.kind == "2layer" else None,
        "batch_size": engine.batch_size,
        "train_pairs": len(train_dataset.queries),
        "train_seconds": round(train_seconds, 2),
        "embed_test_queries_seconds": round(query_seconds, 2),
        "device": str(engine._target_device),
        "versions": {
            p: version(p)
            for p in (
                "llama-index-core",
                "llama-index-finetuning",
                "llama-index-embeddings-adapter",
                "llama-index-embeddings-huggingface",
                "torch",
                "sentence-transformers",
            )
        },
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
