"""One training run: optimise a torch adapter on cached vectors, calling back after each epoch.

A step's candidate set is built from index tensors (no per-row Python): the pairs are turned
once into a padded ``(n_queries, width)`` table of positive and negative document indices, and
each step gathers its rows, deduplicates them with ``torch.unique`` and finds its positives'
candidate columns through the inverse indices (no label matrix: the loss gathers them).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from queryshift.training.config import TrainingConfig
from queryshift.training.losses import contrastive_loss_by_columns, linear_loss_and_gradients
from queryshift.training.modules import TorchLinear
from queryshift.training.optimizer import AdamW
from queryshift.training.schedule import learning_rate_at

logger = logging.getLogger(__name__)

__all__ = ["BatchAssembler", "TrainingPairs", "fit", "pick_device"]

IndexRows = Sequence[Sequence[int]] | np.ndarray


@dataclass(frozen=True)
class TrainingPairs:
    """Training signal in index form.

    Args:
        queries: ``(n_queries, dim)`` query vectors.
        documents: ``(n_documents, dim)`` document vectors (the searchable corpus).
        positives: for each query, indices into ``documents`` of its relevant documents (at least
            one): a list of lists, or an ``(n_queries, k)`` integer array padded with -1.
        negatives: for each query, indices of known or mined wrong answers (may be empty), in the
            same two forms.

    Float32 C-contiguous vectors and integer arrays are used as they are (no copy), so a caller
    holding a million pairs does not pay for them twice.
    """

    queries: np.ndarray
    documents: np.ndarray
    positives: IndexRows
    negatives: IndexRows


def pick_device(device: str | None) -> torch.device:
    """``device`` if given, else CUDA when torch sees a GPU, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def index_table(pairs: TrainingPairs) -> tuple[np.ndarray, int, np.ndarray | None]:
    """``(table, n_positive_columns, repeats)``: each query's positives then negatives as one int64 row.

    Each row's positives are sorted and padded by repeating its last one; ``repeats`` is the
    ``(n, n_positive_columns)`` mask of entries equal to the one before (padding or a positive
    given twice), which the loss leaves out so no document counts twice; None when no row has
    any. Negative padding repeats the last positive too, a column that is a candidate anyway.

    Raises:
        ValueError: a query without positives, or an index outside ``documents``.
    """
    n, n_docs = len(pairs.queries), len(pairs.documents)
    positives = _padded(pairs.positives, n, "positives")  # (n, P), -1 = none
    negatives = _padded(pairs.negatives, n, "negatives")  # (n, N)
    for name, rows in (("positives", positives), ("negatives", negatives)):
        if rows.size and (rows.max() >= n_docs or rows.min() < -1):
            bad = int(np.flatnonzero(((rows >= n_docs) | (rows < -1)).any(axis=1))[0])
            raise ValueError(
                f"{name}[{bad}] = {rows[bad][rows[bad] != -1].tolist()}: indices must be in [0, {n_docs}) "
                f"(rows of documents)"
            )
    last = positives.max(axis=1, initial=-1)  # (n,) a valid positive per row, -1 if none
    if (last < 0).any():
        bad = int(np.flatnonzero(last < 0)[0])
        raise ValueError(f"positives[{bad}] is empty: every training query needs a relevant document")
    table = np.concatenate([positives, negatives], axis=1)  # (n, P + N)
    np.copyto(table, last[:, None], where=table < 0)
    width = positives.shape[1]
    table[:, :width].sort(axis=1)
    repeats = np.zeros((n, width), dtype=bool)
    repeats[:, 1:] = table[:, 1:width] == table[:, : width - 1]
    return table, width, repeats if repeats.any() else None


def _padded(rows: IndexRows, n: int, name: str) -> np.ndarray:
    """``rows`` as an ``(n, width)`` int64 array, short rows padded with -1."""
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2 or len(rows) != n or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(
                f"{name} must be an (n_queries={n}, k) integer array, got {rows.dtype} {rows.shape}"
            )
        return rows.astype(np.int64, copy=False)
    if len(rows) != n:
        raise ValueError(f"{name} has {len(rows)} rows for {n} queries")
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=n)  # (n,)
    width = int(lengths.max(initial=0))
    out = np.full((n, width), -1, dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    out[np.arange(width) < lengths[:, None]] = flat
    return out


class BatchAssembler:
    """A step's inputs from a batch of query rows: what :func:`fit` does besides the step's math.

    Built once per fit from the pairs' index table; a call gathers the batch's rows, deduplicates
    their documents with ``torch.unique`` and finds the positives' candidate columns through the
    inverse indices. Apart so the speed benchmark can time it alone (the gathers from a large
    corpus are memory-bound: the floor of batch assembly).

    Example:
        >>> import torch
        >>> pairs = TrainingPairs(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), [[0], [1]], [[1], [0]])
        >>> queries, candidates, columns, repeats = BatchAssembler(pairs, TrainingConfig(), torch.device("cpu"))(torch.tensor([1]))
        >>> tuple(candidates.shape), columns.tolist(), repeats
        ((2, 2), [[1]], None)
    """

    def __init__(self, pairs: TrainingPairs, config: TrainingConfig, device: torch.device) -> None:
        table, self._n_positive, repeats = index_table(pairs)
        self._table = torch.from_numpy(table).to(device)  # (n_queries, P + N)
        self._repeats = (
            torch.from_numpy(repeats).to(device) if repeats is not None else None
        )  # (n_queries, P)
        self._queries = torch.as_tensor(pairs.queries, dtype=torch.float32, device=device)  # (n_queries, dim)
        documents = torch.as_tensor(pairs.documents, dtype=torch.float32, device=device)  # (n_documents, dim)
        self.normalize = config.distance != "dot"
        self._corpus = config.negatives == "corpus"
        if self.normalize and self._corpus:
            documents = torch.nn.functional.normalize(documents, dim=-1)
        self._documents = documents
        # In-batch candidates are normalised per step with the norms computed once: no normalised
        # copy of the whole corpus (the same per-row division torch.nn.functional.normalize does).
        self._inverse_norms = (
            documents.norm(dim=-1).clamp_min(1e-12).reciprocal()
            if self.normalize and not self._corpus
            else None
        )  # (n_documents,)
        self.n_queries = len(self._table)

    def __call__(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(queries (b, dim), candidates (c, dim), positive columns (b, P), repeats (b, P) or None)``."""
        queries, candidates, scale, positive_columns, repeats = self.unscaled(batch)
        if scale is not None:
            candidates = candidates * scale[:, None]
        return queries, candidates, positive_columns, repeats

    def unscaled(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """As a call, with the candidates as stored and their inverse norms ``(c,)`` apart (None: unit already).

        For the closed-form step, which scales the ``(b, c)`` logits by the inverse norms instead
        of dividing the ``(c, dim)`` candidates: a sixth of the element operations at batch 64.
        """
        # index_select, not tensor[index]: the same rows without the generic indexing machinery.
        rows = self._table.index_select(0, batch)  # (b, P + N)
        scale = None
        if self._corpus:
            candidates = self._documents  # (n_documents, dim)
            positive_columns = rows[:, : self._n_positive]
        else:
            columns, inverse = torch.unique(rows, return_inverse=True)  # (n_candidates,), (b, P + N)
            candidates = self._documents.index_select(0, columns)  # (n_candidates, dim)
            if self._inverse_norms is not None:
                scale = self._inverse_norms.index_select(0, columns)  # (n_candidates,)
            positive_columns = inverse[:, : self._n_positive]
        repeats = self._repeats.index_select(0, batch) if self._repeats is not None else None
        return self._queries.index_select(0, batch), candidates, scale, positive_columns, repeats


def fit(
    module: torch.nn.Module,
    pairs: TrainingPairs,
    config: TrainingConfig,
    *,
    epochs: int | None = None,
    on_epoch: Callable[[int, torch.nn.Module], None] | None = None,
    stop_after: Callable[[int], bool] | None = None,
    show_progress_bar: bool = False,
) -> list[float]:
    """Train ``module`` in place with AdamW; returns the mean loss of each epoch.

    ``on_epoch(epoch, module)`` runs after each epoch (in eval mode, without gradients), then
    ``stop_after(epoch)``: True ends training there, e.g. once another run has settled how many
    epochs are needed.

    Each step takes ``batch_size`` queries; candidates are the union of their positives and
    mined negatives (``negatives="in_batch"``) or every document (``negatives="corpus"``).
    Batch order comes from ``config.seed`` only, so runs are reproducible. The learning rate of
    each step follows ``config.lr_schedule`` over ``config.epochs`` epochs even when ``epochs``
    asks for fewer (:mod:`~queryshift.training.schedule`), so a shorter run is the longer one's start.
    """
    device = pick_device(config.device)
    module.to(device)
    batches = BatchAssembler(pairs, config, device)
    optimizer = AdamW(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    # The default linear adapter's gradients in closed form (a step in half the time); other kinds by autograd.
    closed_form = type(module) is TorchLinear and module.delta.requires_grad
    generator = torch.Generator().manual_seed(config.seed)
    n = batches.n_queries
    losses = []
    n_epochs = epochs if epochs is not None else config.epochs
    n_steps = -(-n // config.batch_size)
    sizes = torch.tensor(
        [min(config.batch_size, n - s) for s in range(0, n, config.batch_size)], dtype=torch.float64
    )  # (n_steps,)
    # constant without warm-up: the optimiser keeps its lr, untouched
    scheduled = config.lr_schedule != "constant" or config.lr_warmup_ratio > 0
    for epoch in tqdm(range(n_epochs), desc="training", disable=not show_progress_bar):
        module.train()
        order = torch.randperm(n, generator=generator).to(device)  # (n,)
        step_losses = []
        for step in range(n_steps):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]  # (b,)
            if closed_form:
                queries, candidates, scale, positive_columns, repeats = batches.unscaled(batch)
                loss, module.delta.grad, bias_grad = linear_loss_and_gradients(
                    module.delta,
                    module.bias,
                    queries,
                    candidates,
                    positive_columns,
                    repeats,
                    temperature=config.temperature,
                    normalize=batches.normalize,
                    candidate_scale=scale,
                )
                if module.bias is not None:
                    module.bias.grad = bias_grad
            else:
                queries, candidates, positive_columns, repeats = batches(batch)
                loss = contrastive_loss_by_columns(
                    module(queries),
                    candidates,
                    positive_columns,
                    repeats,
                    temperature=config.temperature,
                    normalize=batches.normalize,
                )
                optimizer.zero_grad()
                loss.backward()
            if scheduled:
                optimizer.lr = learning_rate_at(config, epoch * n_steps + step, config.epochs * n_steps)
            optimizer.step()
            step_losses.append(loss.detach())
        losses.append(float((torch.stack(step_losses).double().cpu() * sizes).sum()) / n)
        if on_epoch is not None:
            module.eval()
            with torch.no_grad():
                on_epoch(epoch + 1, module)
        if stop_after is not None and stop_after(epoch + 1):
            break
    module.to("cpu")
    return losses
