"""Cross-model training on a synthetic second space: an index of dim 12, queries of a dim-8 model.

Each document has a latent content ``z``; the old model embeds it linearly (``z A``, dim 12), the
new one through a fixed non-linear map (``tanh(z M)``, dim 8), so no linear map carries one
space into the other exactly. Queries are noisy copies of their document's ``z``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from queryshift.adapters import LinearAdapter, ResidualMLPAdapter, load_adapter
from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset
from queryshift.evaluation import evaluate_retrieval
from queryshift.integrations.qdrant import AdaptedQdrantClient
from queryshift.training import TrainingConfig
from queryshift.training.cross_model import fit_closed_form_map, train_cross_model_adapter

D_LATENT, D_OLD, D_NEW, N_DOCS = 8, 12, 8, 64
FAST = TrainingConfig(epochs=4, hard_negatives=3, batch_size=32)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Space:
    """The two models of the synthetic world and its documents."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.a_old = rng.normal(size=(D_LATENT, D_OLD))
        self.m_new = rng.normal(size=(D_LATENT, D_NEW)) / np.sqrt(D_LATENT)
        self.z = rng.normal(size=(N_DOCS, D_LATENT))
        self.doc_ids = [f"d{i:02d}" for i in range(N_DOCS)]
        self.rng = rng

    def old(self, z: np.ndarray) -> np.ndarray:
        return _unit(z @ self.a_old)

    def new(self, z: np.ndarray) -> np.ndarray:
        return _unit(np.tanh(z @ self.m_new))

    def queries(self, per_doc: int, noise: float, prefix: str) -> tuple[RetrievalDataset, np.ndarray]:
        """Noisy latent queries, ``per_doc`` per document, as a data set and their latents."""
        qids = [f"{prefix}{i:03d}" for i in range(N_DOCS * per_doc)]
        owner = [i % N_DOCS for i in range(len(qids))]
        z = self.z[owner] + noise * self.rng.normal(size=(len(qids), D_LATENT))
        dataset = RetrievalDataset(
            queries=dict.fromkeys(qids, "q"),
            documents=dict.fromkeys(self.doc_ids, "doc"),
            qrels={q: {self.doc_ids[o]} for q, o in zip(qids, owner, strict=True)},
            name=prefix,
        )
        return dataset, z

    def embedded(self, dataset: RetrievalDataset, z: np.ndarray, *, model: str) -> EmbeddedDataset:
        vectors = self.new(z) if model == "new" else self.old(z)
        return EmbeddedDataset(dataset, list(dataset.queries), vectors, self.doc_ids, self.old(self.z), "old")


@pytest.fixture(scope="module")
def space() -> Space:
    return Space()


@pytest.fixture(scope="module")
def pseudo(space: Space) -> EmbeddedDataset:
    dataset, z = space.queries(3, 0.3, "pseudo")
    return space.embedded(dataset, z, model="new")


def _ndcg(vectors: np.ndarray, data: EmbeddedDataset) -> float:
    result = evaluate_retrieval(
        vectors,
        data.query_ids,
        data.document_vectors,
        data.document_ids,
        data.dataset.qrels,
        metrics=("ndcg@10",),
    )
    return result.metrics["ndcg@10"]


def test_closed_form_map_recovers_a_linear_map_and_says_how_it_chose():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, D_NEW)).astype(np.float32)
    w = rng.normal(size=(D_OLD, D_NEW)).astype(np.float32)
    fitted = fit_closed_form_map(x, x @ w.T + 0.5)
    assert fitted.method == "least_squares" and fitted.ridge == 1e-3  # the least-regularised fits best
    np.testing.assert_allclose(fitted.raw(x), x @ w.T + 0.5, atol=0.05)
    assert set(fitted.heldout) == {f"least_squares(ridge={r:g})" for r in (1e-3, 1e-2, 1e-1, 1)} | {
        "procrustes"
    }
    with pytest.raises(ValueError, match="at least 10 documents"):
        fit_closed_form_map(x[:5], x[:5])
    with pytest.raises(ValueError, match="rows of the same documents"):
        fit_closed_form_map(x, x[:70])


def test_pseudo_queries_of_held_out_documents_choose_the_closed_form_map():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, D_NEW)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(D_NEW, D_OLD))).astype(np.float32)
    by_documents = fit_closed_form_map(x, y)
    # A query that is its document's own vector scores exactly as that document does.
    as_queries = fit_closed_form_map(x, y, queries=x, query_rows=np.arange(80))
    assert (by_documents.chosen_on, as_queries.chosen_on) == ("documents", "pseudo-queries")
    assert as_queries.heldout == by_documents.heldout
    # Queries pointing at the wrong documents are what is scored, not the documents.
    wrong = fit_closed_form_map(x, y, queries=x, query_rows=np.roll(np.arange(80), 1))
    assert max(wrong.heldout.values()) < 0.2 < min(by_documents.heldout.values())
    # Too few queries on held-out documents (here: about 3 of the 16): the documents choose.
    few = fit_closed_form_map(x, y, queries=x[:15], query_rows=np.arange(15))
    assert few.chosen_on == "documents" and few.heldout == by_documents.heldout
    with pytest.raises(ValueError, match="rows of the documents they are about"):
        fit_closed_form_map(x, y, queries=x, query_rows=np.arange(70))


def test_document_ids_let_the_pseudo_queries_choose(space, pseudo):
    old, new = space.old(space.z), space.new(space.z)
    chosen = train_cross_model_adapter(old, new, FAST, pseudo=pseudo, document_ids=space.doc_ids)
    assert chosen.summary()["cross_model"]["closed_form"]["chosen_on"] == "pseudo-queries"
    assert train_cross_model_adapter(old, new, FAST, pseudo=pseudo).closed_form.chosen_on == "documents"
    with pytest.raises(ValueError, match="document_ids names 10 documents; stored_vectors has 64 rows"):
        train_cross_model_adapter(old, new, FAST, pseudo=pseudo, document_ids=space.doc_ids[:10])


def test_old_model_vectors_of_the_pseudo_queries_pull_queries_onto_them(space):
    dataset, z = space.queries(3, 0.3, "pseudo-t")
    pseudo_set = space.embedded(dataset, z, model="new")
    old, new, targets = space.old(space.z), space.new(space.z), space.old(z)  # targets: (192, 12)

    def closeness(result) -> float:  # how often a mapped pseudo-query's nearest target is its own
        mapped = result.adapter.apply(pseudo_set.query_vectors)  # (192, 12)
        return float(np.mean(np.argmax(_unit(mapped) @ targets.T, axis=1) == np.arange(len(targets))))

    kw = {"pseudo": pseudo_set, "document_ids": space.doc_ids}
    plain = train_cross_model_adapter(old, new, FAST, **kw)
    aimed = train_cross_model_adapter(old, new, FAST, pseudo_targets=targets, **kw)
    assert aimed.training.pseudo_queries == 192 and plain.training.pseudo_queries == 0
    assert closeness(aimed) > closeness(plain), (closeness(aimed), closeness(plain))
    labelled_set, z_train = space.queries(2, 0.3, "train-t")
    labelled = space.embedded(labelled_set, z_train, model="new")
    both = train_cross_model_adapter(old, new, FAST, labelled=labelled, pseudo_targets=targets, **kw)
    assert both.training.pseudo_queries == 2 * 192  # the pseudo pairs and the target pairs
    with pytest.raises(ValueError, match="pseudo_targets \\(10, 12\\) must be \\(192, 12\\)"):
        train_cross_model_adapter(old, new, FAST, pseudo_targets=targets[:10], **kw)
    with pytest.raises(ValueError, match="pass pseudo too"):
        train_cross_model_adapter(old, new, FAST, labelled=labelled, pseudo_targets=targets)


@pytest.mark.parametrize("kind", ["linear", "low_rank", "residual_mlp"])
def test_each_kind_folds_exactly_and_never_loses_to_the_closed_form_map(kind, space, pseudo):
    config = TrainingConfig(adapter=kind, rank=4, hidden_dim=16, epochs=4, hard_negatives=3, batch_size=32)
    result = train_cross_model_adapter(
        space.old(space.z), space.new(space.z), config, pseudo=pseudo, base_model="new", index_model="old"
    )
    adapter = result.adapter
    assert (adapter.input_dim, adapter.dim) == (D_NEW, D_OLD)
    assert (adapter.config.base_model, adapter.config.index_model) == ("new", "old")
    expected = {"linear": LinearAdapter, "low_rank": LinearAdapter, "residual_mlp": ResidualMLPAdapter}[kind]
    assert isinstance(
        adapter, expected if not result.kept_closed_form or kind != "residual_mlp" else LinearAdapter
    )
    if kind == "low_rank":
        assert adapter.config.kind == "low_rank" and adapter.u.shape == (D_OLD, 4)  # a thin map
    # One adapter equals the two stages: the trained same-space adapter after the closed-form map.
    start = result.closed_form
    if kind == "low_rank":
        p, q = start.truncated(4)
        stage_one = pseudo.query_vectors @ (p @ q.T).T + start.bias
    else:
        stage_one = start.raw(pseudo.query_vectors)
    np.testing.assert_allclose(
        adapter.apply(pseudo.query_vectors), result.training.adapter.apply(stage_one), atol=2e-5
    )
    for figures in result.training.validation.values():  # base = the closed-form map
        assert figures["adapted"]["ndcg@10"] >= figures["base"]["ndcg@10"] - 1e-9
    summary = result.summary()
    assert summary["cross_model"]["validation_base_is"].startswith("the closed-form")
    assert summary["cross_model"]["closed_form"]["method"] in ("least_squares", "procrustes")


def test_trained_map_serves_through_qdrant_close_to_the_old_models_own_queries(space, pseudo, tmp_path):
    from qdrant_client import QdrantClient, models

    labelled_set, z_train = space.queries(2, 0.3, "train")
    test_set, z_test = space.queries(1, 0.3, "test")
    labelled = space.embedded(labelled_set, z_train, model="new")
    result = train_cross_model_adapter(
        space.old(space.z),
        space.new(space.z),
        FAST,
        pseudo=pseudo,
        labelled=labelled,
        base_model="new",
        index_model="old",
    )
    folder = result.adapter.save(tmp_path / "cross")
    adapter = load_adapter(folder)
    test_new, test_old = (
        space.embedded(test_set, z_test, model="new"),
        space.embedded(test_set, z_test, model="old"),
    )
    through_map, own = (
        _ndcg(adapter.apply(test_new.query_vectors), test_new),
        _ndcg(test_old.query_vectors, test_old),
    )
    closed_form = _ndcg(result.closed_form.raw(test_new.query_vectors), test_new)
    # The new model sees the latent content through tanh: the ceiling is a full re-embed.
    reembed = dataclasses.replace(test_new, document_vectors=space.new(space.z))
    ceiling = _ndcg(test_new.query_vectors, reembed)
    assert own > ceiling > 0.5  # the old model is the better one here
    assert through_map >= 0.9 * ceiling and through_map >= closed_form - 0.02, (
        through_map,
        ceiling,
        closed_form,
    )

    client = QdrantClient(":memory:")
    client.create_collection(
        "old", vectors_config=models.VectorParams(size=D_OLD, distance=models.Distance.COSINE)
    )
    doc_vectors = space.old(space.z)
    client.upsert("old", [models.PointStruct(id=i, vector=doc_vectors[i].tolist()) for i in range(N_DOCS)])
    adapted = AdaptedQdrantClient(client, adapters={"old": adapter})
    for q in test_new.query_vectors[:5]:
        got = [p.id for p in adapted.query_points("old", query=q.tolist(), limit=5).points]
        assert got == [
            p.id for p in client.query_points("old", query=adapter.apply(q).tolist(), limit=5).points
        ]


def test_inputs_of_the_wrong_space_are_refused(space, pseudo):
    with pytest.raises(ValueError, match="got neither"):
        train_cross_model_adapter(space.old(space.z), space.new(space.z), FAST)
    with pytest.raises(ValueError, match="must be \\(n, input_dim\\) and \\(n, dim\\) rows"):
        train_cross_model_adapter(space.old(space.z), space.new(space.z)[:10], FAST, pseudo=pseudo)
    old_queries = space.embedded(
        pseudo.dataset, space.z[[i % N_DOCS for i in range(3 * N_DOCS)]], model="old"
    )
    with pytest.raises(Exception, match="query vectors must come from the new model \\(dim=8\\)"):
        train_cross_model_adapter(space.old(space.z), space.new(space.z), FAST, pseudo=old_queries)
