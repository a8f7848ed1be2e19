"""One training run: optimise a torch adapter on cached vectors, calling back after each epoch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from queryshift.training.config import TrainingConfig
from queryshift.training.losses import multi_positive_contrastive_loss

logger = logging.getLogger(__name__)

__all__ = ["TrainingPairs", "fit", "pick_device"]


@dataclass(frozen=True)
class TrainingPairs:
    """Training signal in index form.

    Args:
        queries: ``(n_queries, dim)`` query vectors.
        documents: ``(n_documents, dim)`` document vectors (the searchable corpus).
        positives: for each query, indices into ``documents`` of its relevant documents.
        negatives: for each query, indices of known or mined wrong answers (may be empty).
    """

    queries: np.ndarray
    documents: np.ndarray
    positives: list[list[int]]
    negatives: list[list[int]]


def pick_device(device: str | None) -> torch.device:
    """``device`` if given, else CUDA when torch sees a GPU, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit(
    module: torch.nn.Module,
    pairs: TrainingPairs,
    config: TrainingConfig,
    *,
    epochs: int | None = None,
    on_epoch: Callable[[int, torch.nn.Module], None] | None = None,
    show_progress_bar: bool = False,
) -> list[float]:
    """Train ``module`` in place with AdamW; returns the mean loss of each epoch.

    Each step takes ``batch_size`` queries; candidates are the union of their positives and
    mined negatives (``negatives="in_batch"``) or every document (``negatives="corpus"``).
    Batch order comes from ``config.seed`` only, so runs are reproducible.
    """
    device = pick_device(config.device)
    module.to(device)
    q_all = torch.as_tensor(pairs.queries, dtype=torch.float32, device=device)  # (n_queries, dim)
    d_all = torch.as_tensor(pairs.documents, dtype=torch.float32, device=device)  # (n_documents, dim)
    normalize = config.distance != "dot"
    if normalize:
        d_all = torch.nn.functional.normalize(d_all, dim=-1)
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    n = len(pairs.positives)
    losses = []
    n_epochs = epochs if epochs is not None else config.epochs
    for epoch in tqdm(range(n_epochs), desc="training", disable=not show_progress_bar):
        module.train()
        order = torch.randperm(n, generator=generator).tolist()
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            if config.negatives == "corpus":
                cand = list(range(d_all.shape[0]))
            else:
                cand = sorted(
                    {i for b in batch for i in pairs.positives[b]}
                    | {i for b in batch for i in pairs.negatives[b]}
                )
            column = {doc: c for c, doc in enumerate(cand)}
            labels = torch.zeros(len(batch), len(cand), dtype=torch.bool)
            for row, b in enumerate(batch):
                for doc in pairs.positives[b]:
                    if doc in column:
                        labels[row, column[doc]] = True
            candidates = d_all[cand]  # (n_candidates, dim)
            adapted = module(q_all[batch])  # (batch, dim)
            loss = multi_positive_contrastive_loss(
                adapted, candidates, labels.to(device), temperature=config.temperature, normalize=normalize
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / n)
        if on_epoch is not None:
            module.eval()
            with torch.no_grad():
                on_epoch(epoch + 1, module)
    module.to("cpu")
    return losses
