import numpy as np
import pytest
import torch

from queryshift.training import (
    TrainingConfig,
    TrainingPairs,
    build_module,
    fit,
    multi_positive_contrastive_loss,
)
from queryshift.training.loop import index_table
from queryshift.training.losses import contrastive_loss_by_columns


def _pairs(rng, n=50, n_docs=30, dim=8):
    docs = rng.standard_normal((n_docs, dim), dtype=np.float32)
    queries = docs[np.arange(n) % n_docs] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    positives = [
        sorted({i % n_docs, *rng.integers(0, n_docs, size=rng.integers(0, 3)).tolist()}) for i in range(n)
    ]
    negatives = [sorted(set(rng.integers(0, n_docs, size=rng.integers(0, 5)).tolist())) for _ in range(n)]
    return TrainingPairs(queries, docs, positives, negatives)


def _reference_fit(module, pairs, config):
    """The per-row loop ``fit`` replaced: Python sets for candidates, a dict for label columns."""
    q_all = torch.as_tensor(pairs.queries)
    d_all = torch.nn.functional.normalize(torch.as_tensor(pairs.documents), dim=-1)
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    n = len(pairs.positives)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            cand = sorted(
                {i for b in batch for i in pairs.positives[b]}
                | {i for b in batch for i in pairs.negatives[b]}
            )
            column = {doc: c for c, doc in enumerate(cand)}
            labels = torch.zeros(len(batch), len(cand), dtype=torch.bool)
            for row, b in enumerate(batch):
                for doc in pairs.positives[b]:
                    labels[row, column[doc]] = True
            loss = multi_positive_contrastive_loss(
                module(q_all[batch]), d_all[cand], labels, temperature=config.temperature
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@pytest.mark.parametrize("kind", ["linear", "low_rank", "residual_mlp"])
def test_tensor_batches_train_exactly_like_the_per_row_loop(rng, kind):
    pairs = _pairs(rng)
    config = TrainingConfig(epochs=2, batch_size=16, learning_rate=1e-2, lr_schedule="constant", device="cpu")
    ours, reference = (
        build_module(kind, 8, rank=4, hidden_dim=16),
        build_module(kind, 8, rank=4, hidden_dim=16),
    )
    fit(ours, pairs, config)
    _reference_fit(reference, pairs, config)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert float(ours.to_adapter().tensors()[next(iter(ours.to_adapter().tensors()))].std()) > 0


def test_padded_arrays_train_like_lists(rng):
    pairs = _pairs(rng)
    table, n_positive, _ = index_table(pairs)
    width = max(map(len, pairs.positives))
    as_arrays = TrainingPairs(
        pairs.queries,
        pairs.documents,
        np.array([row + [-1] * (width - len(row)) for row in pairs.positives]),
        np.array([row + [-1] * (4 - len(row)) for row in pairs.negatives]),
    )
    config = TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-2, device="cpu")
    a, b = build_module("linear", 8), build_module("linear", 8)
    assert fit(a, pairs, config) == fit(b, as_arrays, config)
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)
    assert n_positive == width and table.shape == (50, width + max(map(len, pairs.negatives)))


def test_index_table_pads_with_the_rows_last_positive_and_masks_repeats():
    docs = np.zeros((5, 2), np.float32)
    table, n_positive, repeats = index_table(
        TrainingPairs(np.zeros((3, 2), np.float32), docs, [[3], [2, 1], [0, 0]], [[], [4], []])
    )
    assert n_positive == 2
    np.testing.assert_array_equal(table, [[3, 3, 3], [1, 2, 4], [0, 0, 0]])
    np.testing.assert_array_equal(repeats, [[False, True], [False, False], [False, True]])
    single = index_table(TrainingPairs(np.zeros((2, 2), np.float32), docs, [[3], [1]], [[], [4]]))
    assert single[1] == 1 and single[2] is None


def test_a_positive_given_twice_counts_once(rng):
    pairs = _pairs(rng)
    twice = TrainingPairs(
        pairs.queries, pairs.documents, [row + row[:1] for row in pairs.positives], pairs.negatives
    )
    config = TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-2, device="cpu")
    a, b = build_module("linear", 8), build_module("linear", 8)
    assert fit(a, pairs, config) == pytest.approx(fit(b, twice, config), rel=1e-6)
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=1e-6)


def test_the_column_loss_is_the_mask_loss(rng):
    queries, candidates = torch.randn(6, 8), torch.randn(10, 8)
    columns = torch.tensor([[0, 3], [1, 1], [2, 5], [9, 9], [4, 7], [6, 6]])
    repeats = columns[:, 1:] == columns[:, :1]
    repeats = torch.cat([torch.zeros(6, 1, dtype=torch.bool), repeats], dim=1)
    labels = torch.zeros(6, 10, dtype=torch.bool).scatter_(1, columns, True)
    for normalize in (True, False):
        expected = multi_positive_contrastive_loss(
            queries, candidates, labels, temperature=0.1, normalize=normalize
        )
        got = contrastive_loss_by_columns(
            queries, candidates, columns, repeats, temperature=0.1, normalize=normalize
        )
        torch.testing.assert_close(got, expected)
        one = contrastive_loss_by_columns(
            queries, candidates, columns[:, :1], temperature=0.1, normalize=normalize
        )
        first = torch.zeros(6, 10, dtype=torch.bool).scatter_(1, columns[:, :1], True)
        torch.testing.assert_close(
            one,
            multi_positive_contrastive_loss(queries, candidates, first, temperature=0.1, normalize=normalize),
        )


def test_index_table_refuses_what_training_cannot_use():
    docs, queries = np.zeros((5, 2), np.float32), np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"positives\[1\] is empty"):
        index_table(TrainingPairs(queries, docs, [[0], []], [[], []]))
    with pytest.raises(ValueError, match=r"negatives\[0\] = \[7\]: indices must be in \[0, 5\)"):
        index_table(TrainingPairs(queries, docs, [[0], [1]], [[7], []]))
    with pytest.raises(ValueError, match="positives has 1 rows for 2 queries"):
        index_table(TrainingPairs(queries, docs, [[0]], [[], []]))


def test_corpus_negatives_train(rng):
    pairs = _pairs(rng)
    module = build_module("linear", 8)
    losses = fit(
        module, pairs, TrainingConfig(epochs=3, negatives="corpus", learning_rate=1e-2, device="cpu")
    )
    assert losses[-1] < losses[0]
