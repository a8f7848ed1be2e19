import numpy as np
import pytest
import torch

from queryshift.evaluation import evaluate_retrieval
from queryshift.splits import split_by_query
from queryshift.training import TrainingConfig, multi_positive_contrastive_loss, train_adapter

from ..conftest import toy_embedded  # noqa: TID252


def _ndcg(data, vectors):
    return evaluate_retrieval(
        vectors, data.query_ids, data.document_vectors, data.document_ids, data.dataset.qrels
    ).metrics["ndcg@10"]


def test_loss_counts_every_positive():
    q = torch.tensor([[1.0, 0.0]])
    docs = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    one = multi_positive_contrastive_loss(q, docs, torch.tensor([[True, False, False]]), temperature=0.1)
    two = multi_positive_contrastive_loss(q, docs, torch.tensor([[True, True, False]]), temperature=0.1)
    assert two < one


def test_learns_a_distortion_and_beats_base_on_heldout():
    data = toy_embedded(n_docs=40, n_queries=400, noise=0.3)
    split = split_by_query(data.dataset, test_fraction=0.3)
    train, test = data.subset(split.train), data.subset(split.test)
    result = train_adapter(train, TrainingConfig(epochs=15, learning_rate=1e-2, hard_negatives=4))
    assert not result.is_identity
    assert _ndcg(test, result.adapter.apply(test.query_vectors)) > _ndcg(test, test.query_vectors) + 0.02
    for figures in result.validation.values():
        assert figures["adapted"]["ndcg@10"] >= figures["base"]["ndcg@10"]


def test_never_worse_than_identity_on_validation():
    data = toy_embedded(n_docs=30, n_queries=300, noise=0.3)
    rng = np.random.default_rng(1)
    # Shuffle relevance: no transform of the queries can learn anything that generalises.
    shuffled = data.dataset.subset(data.query_ids)
    ids = list(shuffled.documents)
    for q in shuffled.qrels:
        shuffled.qrels[q] = {ids[rng.integers(len(ids))]}
    noise = type(data)(
        shuffled, data.query_ids, data.query_vectors, data.document_ids, data.document_vectors, "toy"
    )
    result = train_adapter(noise, TrainingConfig(epochs=5))
    for figures in result.validation.values():
        assert figures["adapted"]["ndcg@10"] >= figures["base"]["ndcg@10"]
    if result.is_identity:
        np.testing.assert_allclose(
            result.adapter.apply(data.query_vectors[:3]),
            data.query_vectors[:3] / np.linalg.norm(data.query_vectors[:3], axis=1, keepdims=True),
            atol=1e-6,
        )


def test_training_is_deterministic():
    data = toy_embedded(n_docs=20, n_queries=120)
    a = train_adapter(data, TrainingConfig(epochs=4, validation="none"))
    b = train_adapter(data, TrainingConfig(epochs=4, validation="none"))
    for name, tensor in a.adapter.tensors().items():
        np.testing.assert_array_equal(b.adapter.tensors()[name], tensor)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        TrainingConfig(epochs=0)
    with pytest.raises(ValueError, match="alphas"):
        TrainingConfig(alphas=(0.0,))
    with pytest.raises(ValueError, match="metric"):
        TrainingConfig(metric="ndcg")


def test_without_refit_the_chosen_epochs_weights_are_kept():
    data = toy_embedded(n_docs=40, n_queries=300, noise=0.3)
    config = TrainingConfig(epochs=6, learning_rate=1e-2, hard_negatives=4, refit=False)
    result = train_adapter(data, config)
    assert not result.is_identity
    for name, figures in result.validation.items():
        assert figures["adapted"]["ndcg@10"] == result.chosen.scores[name]
    # A run stopped at the chosen epoch follows the same trajectory and chooses the same candidate.
    again = train_adapter(data, TrainingConfig(**{**vars(config), "epochs": result.chosen.epoch}))
    assert again.chosen == result.chosen
    for name, tensor in result.adapter.tensors().items():
        np.testing.assert_array_equal(again.adapter.tensors()[name], tensor)
