"""Bad vectors: .npy files that are not float arrays, NaN/inf rows, and what ``apply`` does with
NaN, zero, huge and tiny queries. The table of cases is in docs/reliability.md ("## Input")."""

from __future__ import annotations

import numpy as np
import pytest

from queryshift.adapters import AdapterConfig, LinearAdapter, ResidualMLPAdapter, TwoLayerAdapter
from queryshift.data import RetrievalDataset
from queryshift.embeddings import embed_dataset, load_vectors
from queryshift.errors import DataFormatError
from queryshift.evaluation import evaluate_retrieval, rank_documents

DIM = 8


def _save(folder, array, ids=None, *, name="q"):
    path = folder / f"{name}.npy"
    np.save(path, array, allow_pickle=array.dtype == object)
    ids = ids if ids is not None else [f"id{i}" for i in range(len(array))]
    (folder / f"{name}.ids.txt").write_text("".join(f"{i}\n" for i in ids))
    return path


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        (np.arange(16).reshape(2, DIM), "int64"),
        (np.ones((2, DIM), bool), "bool"),
        (np.ones((2, DIM), np.complex64), "complex64"),
        (np.full((2, DIM), "0.5"), "<U3"),
    ],
)
def test_npy_of_a_non_float_dtype_is_refused_not_cast(tmp_path, array, dtype):
    path = _save(tmp_path, array)
    with pytest.raises(DataFormatError, match=rf"q\.npy: expected a floating-point array .* got {dtype}"):
        load_vectors(path)


def test_object_npz_and_text_files_passed_as_npy_are_named(tmp_path):
    path = _save(tmp_path, np.array([[1.0] * DIM, [2.0] * DIM], dtype=object))
    with pytest.raises(DataFormatError, match=r"q\.npy: holds an object array"):
        load_vectors(path)
    _save(tmp_path, np.ones((2, DIM), np.float32))
    np.savez(tmp_path / "archive.npz", vectors=np.ones((2, DIM), np.float32))
    (tmp_path / "q.npy").write_bytes((tmp_path / "archive.npz").read_bytes())
    with pytest.raises(DataFormatError, match=r"q\.npy: is an \.npz archive \(arrays \['vectors'\]\)"):
        load_vectors(tmp_path / "q.npy")
    (tmp_path / "q.npy").write_text("0.1 0.2 0.3\n")
    with pytest.raises(DataFormatError, match=r"q\.npy: is not a \.npy file \(it starts with b'0\.1 0\.2"):
        load_vectors(tmp_path / "q.npy")
    (tmp_path / "q.npy").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"q\.npy: cannot be read as \.npy"):
        load_vectors(tmp_path / "q.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_refused_with_row_and_id(tmp_path, bad):
    array = np.ones((4, DIM), np.float32)
    array[2, 5] = bad
    path = _save(tmp_path, array, ["a", "b", "c", "d"])
    with pytest.raises(
        DataFormatError, match=r"q\.npy: vectors: 1 row\(s\) hold NaN or inf: row 2 \(id 'c'\)"
    ):
        load_vectors(path)


def test_duplicate_and_non_utf8_ids_are_refused(tmp_path):
    path = _save(tmp_path, np.ones((3, DIM), np.float32), ["a", "b", "a"])
    with pytest.raises(DataFormatError, match=r"q\.ids\.txt, line 3: duplicate id 'a' \(first on row 1\)"):
        load_vectors(path)
    (tmp_path / "q.ids.txt").write_bytes(b"a\nb\xff\nc\n")
    with pytest.raises(DataFormatError, match=r"q\.ids\.txt, line 2: not UTF-8"):
        load_vectors(path)


def _tiny_dataset():
    return RetrievalDataset(
        queries={"q1": "cat?", "q2": "dog?"},
        documents={"d1": "cats", "d2": "dogs"},
        qrels={"q1": {"d1"}, "q2": {"d2"}},
    )


class _NaNEncoder:
    """A model whose output for one text is NaN (what a broken fp16 forward pass gives)."""

    model_id = "broken-model"

    def encode_queries(self, texts):
        out = np.ones((len(texts), DIM), np.float32)
        out[texts.index("dog?")] = np.nan
        return out

    def encode_documents(self, texts):
        return np.ones((len(texts), DIM), np.float32)


def test_model_output_and_precomputed_mappings_with_nan_are_refused():
    with pytest.raises(
        DataFormatError, match=r"query vectors \(model 'broken-model'\): 1 row\(s\) .* row 1 \(id 'q2'\)"
    ):
        embed_dataset(_tiny_dataset(), _NaNEncoder())
    docs = {"d1": np.ones(DIM, np.float32), "d2": np.full(DIM, np.inf, np.float32)}
    with pytest.raises(DataFormatError, match=r"document vectors \(precomputed\): .* row 1 \(id 'd2'\)"):
        queries = {"q1": np.ones(DIM, np.float32), "q2": np.ones(DIM, np.float32)}
        embed_dataset(_tiny_dataset(), query_vectors=queries, document_vectors=docs)


def _adapters():
    rng = np.random.default_rng(0)
    weight = (np.eye(DIM) + 0.1 * rng.normal(size=(DIM, DIM))).astype(np.float32)
    return [
        LinearAdapter(AdapterConfig(kind="linear", dim=DIM), weight=weight),
        LinearAdapter.identity(DIM, rank=2),
        ResidualMLPAdapter.identity(DIM, hidden_dim=4),
        TwoLayerAdapter.identity(DIM, hidden_dim=4),
    ]


@pytest.mark.parametrize("adapter", _adapters(), ids=repr)
def test_apply_refuses_nan_naming_the_row(adapter):
    x = np.ones((3, DIM), np.float32)
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"query vector row 1 holds NaN or inf"):
        adapter.apply(x)
    x[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"query vector rows \[1, 2\] \(2 in all\) hold NaN or inf"):
        adapter.apply(x)
    with pytest.raises(ValueError, match=r"query vector row 0 holds NaN or inf"):
        adapter.apply(np.full(DIM, np.nan))


@pytest.mark.parametrize("adapter", _adapters(), ids=repr)
def test_apply_refuses_a_zero_query_under_cosine(adapter):
    x = np.ones((3, DIM), np.float32)
    x[2] = 0.0
    with pytest.raises(
        ValueError, match=r"query vector row 2 holds all zeros: a zero vector has no direction"
    ):
        adapter.apply(x)


def test_apply_maps_a_zero_query_under_dot():
    bias = np.arange(DIM, dtype=np.float32)
    config = AdapterConfig(kind="linear", dim=DIM, distance="dot", normalize=False)
    adapter = LinearAdapter(config, weight=np.eye(DIM, dtype=np.float32), bias=bias)
    np.testing.assert_array_equal(adapter.apply(np.zeros(DIM, np.float32)), bias)  # a dot query may be 0


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("adapter", _adapters(), ids=repr)
@pytest.mark.parametrize("scale", [1e30, 1e-30, 3e38 / DIM])
def test_apply_on_huge_and_tiny_queries_gives_the_unit_result(adapter, scale):
    x = np.random.default_rng(1).normal(size=(2, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = adapter.apply((x * scale).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    if adapter.config.kind in ("linear", "low_rank"):  # no bias: scale-invariant up to normalisation
        np.testing.assert_allclose(out, adapter.apply(x), rtol=1e-4, atol=1e-6)


def test_apply_refuses_non_numeric_input():
    adapter = LinearAdapter.identity(DIM)
    for bad in (np.ones(DIM, bool), np.ones(DIM, np.complex64), np.full(DIM, "1.0")):
        with pytest.raises(TypeError, match=f"dtype {bad.dtype}"):
            adapter.apply(bad)
    assert adapter.apply(np.ones(DIM, np.int64)).dtype == np.float32  # integers are numbers


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_apply_without_normalisation_refuses_overflow():
    adapter = LinearAdapter(AdapterConfig(kind="linear", dim=DIM, normalize=False), weight=np.eye(DIM) * 1e10)
    with pytest.raises(ValueError, match=r"adapted vector row 0 holds .*overflowed float32"):
        adapter.apply(np.full(DIM, 1e30, np.float32))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_ranking_refuses_non_finite_and_survives_huge_vectors():
    docs = np.eye(4, DIM, dtype=np.float32)
    queries = docs[[2, 0]].copy()
    queries[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"query_vectors rows \[1\] \(1 in all\) hold NaN or inf"):
        rank_documents(queries, docs, k=2)
    # Documents and queries scaled by 1e30: cosine ranks them as the unit vectors.
    result = evaluate_retrieval(
        docs[[2, 0]] * 1e30,
        ["a", "b"],
        docs * 1e30,
        ["d0", "d1", "d2", "d3"],
        {"a": {"d2"}, "b": {"d0"}},
        metrics=["hit@1"],
    )
    assert result.metrics == {"hit@1": 1.0}
