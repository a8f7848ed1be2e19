"""A tiny real sentence-transformers model (static embeddings, dim 8) for fast tests.

It runs the same ``encode_query`` / ``encode_document`` machinery as the real model (prompts,
routing, normalisation) in milliseconds, so export, LangChain and serving tests can check exact
numbers without loading a transformer.
"""

from __future__ import annotations

import numpy as np

WORDS = (
    "the a of to in covid virus vaccine mask spread lung fever cough test ride driver car "
    "revenue loss risk city price query passage what how is are"
).split()
TEXTS = [
    "what is the covid vaccine",
    "how is the virus spread",
    "fever and cough test",
    "driver revenue loss in the city",
    "ride price risk",
    "a mask of the lung",
]


def tiny_sentence_transformer(
    *, dim: int = 8, normalize: bool = False, prompts: dict[str, str] | None = None, seed: int = 0
):
    """A ``SentenceTransformer``: mean of seeded random word vectors, optionally then ``Normalize``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0} | {word: i + 1 for i, word in enumerate(WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = np.random.default_rng(seed).normal(size=(len(vocab), dim)).astype(np.float32)
    modules = [StaticEmbedding(tokenizer, embedding_weights=torch.from_numpy(weights))]
    if normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu", prompts=prompts or {})
