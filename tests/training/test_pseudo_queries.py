import numpy as np
import pytest

from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset
from queryshift.errors import DataFormatError
from queryshift.evaluation import evaluate_retrieval
from queryshift.training import TrainingConfig, train_adapter
from queryshift.training.pseudo_queries import embed_pseudo_queries, sample_pseudo_queries
from queryshift.training.recipe import _all_pairs, _extra_pairs

from ..conftest import toy_embedded  # noqa: TID252

LONG = "This sentence has exactly seven plain words."


class _QueryOnlyEncoder:
    """Embeds queries as a fixed function of their text; fails if asked to embed documents."""

    def __init__(self, dim: int = 4) -> None:
        self.dim = dim
        self.seen: list[str] = []

    def encode_queries(self, texts):
        self.seen.extend(texts)
        return np.stack([np.random.default_rng(len(t)).normal(size=self.dim) for t in texts]).astype(
            np.float32
        )

    def encode_documents(self, texts):
        raise AssertionError("pseudo-queries must never re-embed documents")


def _corpus(texts: dict[str, str], dim: int = 4, seed: int = 0) -> EmbeddedDataset:
    ids = sorted(texts)
    ds = RetrievalDataset(queries={"q": "question?"}, documents=texts, qrels={"q": {ids[0]}}, name="c")
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(ids), dim)).astype(np.float32)
    return EmbeddedDataset(ds, ["q"], rng.normal(size=(1, dim)).astype(np.float32), ids, vectors, "toy")


def test_sampling_skips_short_sentences_and_caps_per_document():
    docs = {
        "a": f"Revenue. {LONG} {LONG.replace('seven', 'eight')} {LONG.replace('plain', 'short')}",
        "b": "Table 3. 2021 2020",
        "c": "",
    }
    pseudo = sample_pseudo_queries(docs, per_document=2, min_words=6)
    assert set(pseudo.queries) <= {"pseudo:a:0", "pseudo:a:1", "pseudo:a:2"} and len(pseudo.queries) == 2
    assert all(pseudo.qrels[q] == {"a"} for q in pseudo.queries)
    assert all(len(text.split()) >= 6 for text in pseudo.queries.values())
    assert (
        sample_pseudo_queries(docs, per_document=2, seed=5).queries
        == sample_pseudo_queries(docs, per_document=2, seed=5).queries
    )
    assert sample_pseudo_queries({"b": "Table 3.", "c": ""}) is None
    with pytest.raises(ValueError, match="per_document must be >= 1"):
        sample_pseudo_queries(docs, per_document=0)


def test_sampling_bounds_the_number_of_documents():
    docs = {f"d{i:03d}": LONG for i in range(50)}
    pseudo = sample_pseudo_queries(docs, per_document=1, max_documents=7)
    assert len(pseudo.queries) == 7 and len({next(iter(d)) for d in pseudo.qrels.values()}) == 7


def test_embedding_keeps_document_vectors_and_merges_corpora_by_id():
    first = _corpus({"a": LONG, "b": "short"})
    second = _corpus({"a": "other text, ignored: the first corpus holding an id wins", "c": LONG}, seed=1)
    encoder = _QueryOnlyEncoder()
    pseudo = embed_pseudo_queries(encoder, [first, second], per_document=1)
    assert pseudo.document_ids == ["a", "b", "c"]
    np.testing.assert_array_equal(pseudo.document_vectors[:2], first.document_vectors)
    np.testing.assert_array_equal(pseudo.document_vectors[2], second.document_vectors[1])
    assert sorted(next(iter(pseudo.dataset.qrels[q])) for q in pseudo.query_ids) == ["a", "c"]
    assert encoder.seen == [LONG, LONG] and pseudo.query_vectors.shape == (2, 4)
    assert embed_pseudo_queries(encoder, [_corpus({"x": "", "y": "Too short."})]) is None


def test_non_finite_model_output_for_pseudo_queries_is_refused_with_the_sentence_id():
    class _NaNEncoder(_QueryOnlyEncoder):
        def encode_queries(self, texts):
            vectors = super().encode_queries(texts)
            vectors[-1, 0] = np.nan
            return vectors

    with pytest.raises(DataFormatError, match="pseudo-query vectors.*1 row"):
        embed_pseudo_queries(_NaNEncoder(), [_corpus({"a": LONG, "b": LONG})], per_document=1)


def test_pairs_share_documents_by_id_and_append_new_ones():
    labelled = toy_embedded(n_docs=5, n_queries=10, dim=4)
    extra_ids = ["d001", "new"]
    vectors = np.vstack([labelled.document_vectors[1], np.ones(4, np.float32)])
    ds = RetrievalDataset(
        queries={"p1": "s", "p2": "t"},
        documents=dict.fromkeys(extra_ids, LONG),
        qrels={"p1": {"d001"}, "p2": {"new"}},
    )
    pseudo = EmbeddedDataset(ds, ["p1", "p2"], np.ones((2, 4), np.float32), extra_ids, vectors, "toy")
    config = TrainingConfig(hard_negatives=0)
    pairs = _all_pairs(labelled, config, _extra_pairs(pseudo, config))
    assert pairs.documents.shape == (6, 4) and pairs.queries.shape == (12, 4)
    assert pairs.positives[-2:] == [[1], [5]]
    np.testing.assert_array_equal(pairs.documents[5], np.ones(4))
    # A second set shares "new" by id and adds "other"; each set mines negatives in its own corpus.
    second = EmbeddedDataset(
        RetrievalDataset({"s1": "u"}, dict.fromkeys(["new", "other"], LONG), {"s1": {"other"}}),
        ["s1"],
        np.ones((1, 4), np.float32),
        ["new", "other"],
        np.vstack([np.ones(4, np.float32), np.full(4, 2.0, np.float32)]),
        "toy",
    )
    mined = TrainingConfig(hard_negatives=1)
    both = _all_pairs(labelled, mined, _extra_pairs([pseudo, second], mined))
    assert both.documents.shape == (7, 4) and both.queries.shape == (13, 4)
    assert both.positives[-3:] == [[1], [5], [6]] and both.negatives[-1] == [5]  # "new", mined in its set
    assert _extra_pairs([], config) is None


def test_pseudo_pairs_are_trained_on_and_recorded():
    data = toy_embedded(n_docs=20, n_queries=60, dim=8)
    pseudo = data.subset(data.query_ids[:20])
    result = train_adapter(data, TrainingConfig(epochs=2, validation="none"), pseudo=pseudo)
    without = train_adapter(data, TrainingConfig(epochs=2, validation="none"))
    assert result.pseudo_queries == 20 and result.summary()["pseudo_queries"] == 20
    assert without.pseudo_queries == 0
    assert not np.allclose(result.adapter.tensors()["weight"], without.adapter.tensors()["weight"])


@pytest.mark.slow
def test_pseudo_queries_lift_lyft_to_uber(lyft, uber, encoder):
    """The default recipe with sentences of both 10-Ks beats base and labels-only on Uber's questions."""

    def ndcg(vectors):
        return evaluate_retrieval(
            vectors, uber.query_ids, uber.document_vectors, uber.document_ids, uber.dataset.qrels
        ).metrics["ndcg@10"]

    config = TrainingConfig()
    pseudo = embed_pseudo_queries(
        encoder, [lyft, uber], per_document=config.pseudo_queries, max_words=config.pseudo_max_words
    )
    assert pseudo is not None and not set(pseudo.dataset.queries.values()) & set(
        uber.dataset.queries.values()
    )
    labels_only = ndcg(train_adapter(lyft, config).adapter.apply(uber.query_vectors))
    with_pseudo = ndcg(train_adapter(lyft, config, pseudo=pseudo).adapter.apply(uber.query_vectors))
    base = ndcg(uber.query_vectors)
    assert with_pseudo >= base + 0.015
    assert with_pseudo > labels_only


def test_max_queries_caps_the_total_in_whole_rounds_one_sentence_per_document_first():
    sentence = "This sentence has more than six plain words in it number {}."
    docs = {f"d{i}": " ".join(sentence.format(j) for j in range(3)) for i in range(10)}
    full = sample_pseudo_queries(docs, per_document=3)
    assert len(full.queries) == 30
    assert sample_pseudo_queries(docs, per_document=3, max_queries=30).queries == full.queries
    # A cap that cuts into a round keeps the whole rounds before it: the sample of fewer per document.
    capped = sample_pseudo_queries(docs, per_document=3, max_queries=25)
    assert capped.queries == sample_pseudo_queries(docs, per_document=2).queries
    # Not even one each fits: documents go without, one sentence for each of the others.
    few = sample_pseudo_queries(docs, per_document=3, max_queries=7)
    per_doc = {}
    for qid in few.queries:
        per_doc[qid.split(":")[1]] = per_doc.get(qid.split(":")[1], 0) + 1
    assert set(few.queries) <= set(full.queries) and sorted(per_doc.values()) == [1] * 7


def test_pseudo_max_queries_must_be_positive():
    with pytest.raises(ValueError, match="pseudo_max_queries must be a positive integer or None, got 0"):
        TrainingConfig(pseudo_max_queries=0)


def test_a_long_sentence_keeps_its_first_max_words():
    long = " ".join(f"word{i}" for i in range(80)) + "."
    short = "A short sentence of\nseven plain words."
    docs = {"d1": long, "d2": short}
    pseudo = sample_pseudo_queries(docs, per_document=1, max_words=TrainingConfig().pseudo_max_words)  # 48
    assert pseudo.queries["pseudo:d1:0"] == " ".join(f"word{i}" for i in range(48))
    assert pseudo.queries["pseudo:d2:0"] == short  # shorter ones keep their text as it is
    assert sample_pseudo_queries(docs, per_document=1).queries["pseudo:d1:0"] == long  # no cap by default
    assert len(sample_pseudo_queries(docs, per_document=1, max_words=10).queries["pseudo:d1:0"].split()) == 10
    with pytest.raises(ValueError, match="pseudo_max_words must be a positive integer or None, got 0"):
        TrainingConfig(pseudo_max_words=0)
