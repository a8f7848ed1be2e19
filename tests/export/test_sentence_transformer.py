"""The sentence-transformers export: adapted queries, bit-for-bit base documents, no queryshift needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from queryshift.adapters import AdapterConfig, LinearAdapter, ResidualMLPAdapter, TwoLayerAdapter
from queryshift.errors import DimensionMismatchError
from queryshift.export import needs_trust_remote_code, to_sentence_transformer

from ..tiny_models import TEXTS, tiny_sentence_transformer  # noqa: TID252

DIM = 8


def make_adapter(kind: str, *, normalize: bool = True, seed: int = 1):
    """A seeded adapter of each kind, far from the identity so a wrong export shows."""
    rng = np.random.default_rng(seed)
    r = lambda *shape: (0.4 * rng.normal(size=shape)).astype(np.float32)  # noqa: E731
    if kind == "linear":
        config = AdapterConfig(kind="linear", dim=DIM, normalize=normalize)
        return LinearAdapter(config, weight=np.eye(DIM, dtype=np.float32) + r(DIM, DIM), bias=r(DIM))
    if kind == "low_rank":
        config = AdapterConfig(kind="low_rank", dim=DIM, rank=2, normalize=normalize)
        return LinearAdapter(config, u=r(DIM, 2), v=r(DIM, 2), bias=r(DIM))
    if kind == "residual_mlp":
        config = AdapterConfig(kind="residual_mlp", dim=DIM, hidden_dim=16, normalize=normalize)
        return ResidualMLPAdapter(config, w1=r(16, DIM), b1=r(16), w2=r(DIM, 16), b2=r(DIM))
    config = AdapterConfig(kind="two_layer", dim=DIM, hidden_dim=16, normalize=normalize)
    residual = np.array([0.7], np.float32) if kind == "two_layer" else None
    return TwoLayerAdapter(
        config, w1=r(16, DIM), b1=r(16), w2=r(DIM, 16), b2=r(DIM), residual_weight=residual
    )


KINDS = ["linear", "low_rank", "residual_mlp", "two_layer", "two_layer_plain"]


@pytest.fixture(scope="module")
def base():
    """No Normalize module, and a query prompt: both must survive the export."""
    return tiny_sentence_transformer(dim=DIM, prompts={"query": "query ", "document": "passage "})


def load(path, adapter):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", trust_remote_code=needs_trust_remote_code(adapter))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [True, False])
def test_export_round_trip_matches_adapter_and_base(kind, normalize, base, tmp_path):
    adapter = make_adapter(kind, normalize=normalize)
    model = load(to_sentence_transformer(adapter, base, tmp_path / "model"), adapter)

    expected = adapter.apply(base.encode_query(TEXTS, normalize_embeddings=True))  # (n, dim)
    got = model.encode_query(TEXTS)
    assert np.abs(got - expected).max() <= 1e-5
    assert np.abs(got - base.encode_query(TEXTS)).max() > 0.05  # the adapter really acts
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(model.encode_document(TEXTS), base.encode_document(TEXTS))
    assert np.array_equal(model.encode(TEXTS), base.encode(TEXTS))  # no task: the document route
    routed = model.encode(TEXTS, task="query")  # what callers of plain encode() ask for
    assert np.abs(routed - adapter.apply(base.encode(TEXTS, normalize_embeddings=True))).max() <= 1e-5


def test_base_ending_in_normalize_gets_no_second_normalize(tmp_path):
    base = tiny_sentence_transformer(dim=DIM, normalize=True)
    adapter = make_adapter("linear")
    path = to_sentence_transformer(adapter, base, tmp_path / "model")
    (router_config,) = path.glob("*_Router/router_config.json")
    structure = json.loads(router_config.read_text())["structure"]
    assert [m.split("_", 2)[-1] for m in structure["query"]] == ["Dense", "Normalize"]
    assert structure["document"] == []
    model = load(path, adapter)
    expected = adapter.apply(base.encode_query(TEXTS))
    assert np.abs(model.encode_query(TEXTS) - expected).max() <= 1e-5
    assert np.array_equal(model.encode_document(TEXTS), base.encode_document(TEXTS))


def test_residual_mlp_export_says_it_needs_trust_remote_code(base, tmp_path):
    from sentence_transformers import SentenceTransformer

    path = to_sentence_transformer(make_adapter("residual_mlp"), base, tmp_path / "model")
    assert (path / "modeling_queryshift.py").is_file()
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        SentenceTransformer(str(path), device="cpu")
    assert "trust_remote_code=True" in (path / "README.md").read_text()


def test_export_refuses_a_base_model_of_another_dimension(tmp_path):
    with pytest.raises(
        DimensionMismatchError, match="adapter expects dim=8, but the base model's embeddings have dim=4"
    ):
        to_sentence_transformer(make_adapter("linear"), tiny_sentence_transformer(dim=4), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_export_needs_a_base_model(tmp_path):
    with pytest.raises(ValueError, match="no base model"):
        to_sentence_transformer(make_adapter("linear"), None, tmp_path / "m")


_FRESH_PROCESS = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import numpy as np

    class NoQueryshift(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "queryshift":
                raise ImportError("queryshift is not installed here")

    sys.meta_path.insert(0, NoQueryshift())
    from sentence_transformers import SentenceTransformer

    jobs, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for path, trust in jobs:
        model = SentenceTransformer(path, device="cpu", trust_remote_code=trust)
        np.save(path + ".query.npy", model.encode_query(texts))
        np.save(path + ".document.npy", model.encode_document(texts))
    assert not [m for m in sys.modules if m.split(".")[0] == "queryshift"], "queryshift was imported"
    print("ok")
    """
)


def run_fresh(jobs: list[tuple[str, bool]], texts: list[str]) -> None:
    """Load and encode each exported model in a new interpreter that cannot import queryshift."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, json.dumps(jobs), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


@pytest.mark.slow
def test_exports_load_in_a_fresh_process_without_queryshift(base, encoder, tmp_path):
    """Every kind on the tiny model, and all-MiniLM-L6-v2 with a low-rank adapter, in one new process."""
    rng = np.random.default_rng(3)
    config = AdapterConfig(
        kind="low_rank", dim=384, rank=8, base_model="sentence-transformers/all-MiniLM-L6-v2"
    )
    minilm_adapter = LinearAdapter(
        config, u=0.3 * rng.normal(size=(384, 8)), v=0.3 * rng.normal(size=(384, 8))
    )
    minilm = to_sentence_transformer(minilm_adapter, None, tmp_path / "minilm")  # base from the config
    weights = sorted(p.relative_to(minilm).as_posix() for p in minilm.rglob("*.safetensors"))
    assert weights == [
        "3_Router/query_0_Dense/model.safetensors",
        "model.safetensors",
    ]  # one transformer copy

    cases = [(minilm_adapter, encoder.model, minilm)]
    for kind in ("low_rank", "residual_mlp", "two_layer"):
        adapter = make_adapter(kind)
        cases.append((adapter, base, to_sentence_transformer(adapter, base, tmp_path / kind)))
    run_fresh([(str(path), needs_trust_remote_code(adapter)) for adapter, _, path in cases], TEXTS)

    for adapter, base_model, path in cases:
        expected = adapter.apply(base_model.encode_query(TEXTS, normalize_embeddings=True))
        assert np.abs(np.load(f"{path}.query.npy") - expected).max() <= 1e-5, path.name
        assert np.array_equal(np.load(f"{path}.document.npy"), base_model.encode_document(TEXTS)), path.name
