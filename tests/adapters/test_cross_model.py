"""Cross-model adapters: query vectors of one model (dim 8) mapped into another model's index (dim 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from queryshift.adapters import AdapterConfig, LinearAdapter, ResidualMLPAdapter, load_adapter
from queryshift.adapters.two_layer import TwoLayerAdapter
from queryshift.errors import AdapterFormatError, DimensionMismatchError
from queryshift.integrations.llamaindex.files import export_llamaindex_adapter, load_llamaindex_adapter

D_IN, D_OUT = 8, 12
FIELDS = {"input_dim": D_IN, "base_model": "new-model", "index_model": "old-model"}


def _config(kind: str, **extra: object) -> AdapterConfig:
    return AdapterConfig(kind=kind, dim=D_OUT, **FIELDS, **extra)


@pytest.fixture
def queries(rng) -> np.ndarray:
    return rng.normal(size=(5, D_IN)).astype(np.float32)  # (5, input_dim)


def _adapters(rng) -> list:
    def f(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(np.float32)

    return [
        LinearAdapter(_config("linear"), weight=f(D_OUT, D_IN), bias=f(D_OUT)),
        LinearAdapter(_config("low_rank", rank=3), u=f(D_OUT, 3), v=f(D_IN, 3), bias=f(D_OUT)),
        ResidualMLPAdapter(
            _config("residual_mlp", hidden_dim=6),
            w1=f(6, D_IN),
            b1=f(6),
            w2=f(D_OUT, 6),
            b2=f(D_OUT),
            projection=f(D_OUT, D_IN),
        ),
        TwoLayerAdapter(
            _config("two_layer", hidden_dim=6), w1=f(6, D_IN), b1=f(6), w2=f(D_OUT, 6), b2=f(D_OUT)
        ),
    ]


def _by_hand(adapter, x: np.ndarray) -> np.ndarray:
    """The documented formula of each kind, in float64."""
    x = x.astype(np.float64)
    if isinstance(adapter, LinearAdapter) and adapter.config.kind == "linear":
        out = x @ adapter.weight.T + adapter.bias
    elif isinstance(adapter, LinearAdapter):
        out = (x @ adapter.v) @ adapter.u.T + adapter.bias  # thin map: no identity across models
    elif isinstance(adapter, ResidualMLPAdapter):
        h = x @ adapter.w1.T + adapter.b1
        gelu = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        out = x @ adapter.projection.T + gelu @ adapter.w2.T + adapter.b2
    else:
        out = np.maximum(x @ adapter.w1.T + adapter.b1, 0) @ adapter.w2.T + adapter.b2
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_every_kind_maps_input_dim_to_dim_and_round_trips(rng, queries, tmp_path):
    for adapter in _adapters(rng):
        out = adapter.apply(queries)
        assert out.shape == (5, D_OUT) and adapter.apply(queries[0]).shape == (D_OUT,)
        np.testing.assert_allclose(out, _by_hand(adapter, queries), atol=1e-5)
        assert (adapter.input_dim, adapter.dim) == (D_IN, D_OUT)
        assert adapter.matrix().shape == (D_OUT, D_IN) if isinstance(adapter, LinearAdapter) else True

        folder = adapter.save(tmp_path / adapter.config.kind)
        saved = json.loads((folder / "adapter_config.json").read_text())
        assert (saved["dim"], saved["input_dim"], saved["index_model"]) == (D_OUT, D_IN, "old-model")
        loaded = load_adapter(folder)
        assert loaded.config == adapter.config
        np.testing.assert_array_equal(loaded.apply(queries), out)


def test_same_model_configs_are_written_as_before(tmp_path):
    folder = LinearAdapter.identity(4).save(tmp_path / "a")
    saved = json.loads((folder / "adapter_config.json").read_text())
    assert "input_dim" not in saved and "index_model" not in saved  # older readers refuse unknown keys
    assert load_adapter(folder).config.in_dim == 4
    assert AdapterConfig(dim=4).cross_model is False
    assert AdapterConfig(dim=4, index_model="old").cross_model is True  # same dim, other model


def test_query_vectors_of_the_wrong_dim_name_both_models(rng):
    adapter = _adapters(rng)[0]
    with pytest.raises(
        DimensionMismatchError, match=r"dim=8 \(from 'new-model'\) into the dim=12 .*'old-model'"
    ):
        adapter.apply(np.ones((2, 5), np.float32))
    with pytest.raises(
        DimensionMismatchError, match="embed the queries with 'new-model', not with the index's model"
    ):
        adapter.apply(np.ones(D_OUT, np.float32))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "linear", "input_dim": 0}, "field 'input_dim' must be a positive integer"),
        ({"kind": "linear", "input_dim": "8"}, "field 'input_dim' must be an integer or null"),
        ({"kind": "linear", "input_dim": True}, "field 'input_dim' must be an integer or null"),
        ({"kind": "linear", "index_model": 3}, "field 'index_model' must be a string or null"),
        (
            {"kind": "low_rank", "input_dim": 2, "rank": 3},
            r"rank' must be an integer in 1..min\(dim, input_dim\)=2",
        ),
    ],
)
def test_bad_fields_are_one_line_errors(fields, message):
    with pytest.raises(AdapterFormatError, match=message):
        AdapterConfig(dim=D_OUT, **fields)


def test_weights_of_the_wrong_shape_are_refused(rng):
    with pytest.raises(AdapterFormatError, match=r"'weight' must have shape \(12, 8\), got \(12, 12\)"):
        LinearAdapter(_config("linear"), weight=np.eye(D_OUT))
    with pytest.raises(AdapterFormatError, match=r"needs 'projection' of shape \(12, 8\)"):
        ResidualMLPAdapter(
            _config("residual_mlp", hidden_dim=2),
            w1=np.zeros((2, D_IN)),
            b1=np.zeros(2),
            w2=np.zeros((D_OUT, 2)),
            b2=np.zeros(D_OUT),
        )
    with pytest.raises(AdapterFormatError, match="only the plain form"):
        TwoLayerAdapter(
            _config("two_layer", hidden_dim=2),
            w1=np.zeros((2, D_IN)),
            b1=np.zeros(2),
            w2=np.zeros((D_OUT, 2)),
            b2=np.zeros(D_OUT),
            residual_weight=np.zeros(1),
        )


def test_llamaindex_export_keeps_in_and_out_features(rng, queries, tmp_path):
    linear, low_rank, residual, two_layer = _adapters(rng)
    for adapter in (linear, low_rank, two_layer):
        folder = export_llamaindex_adapter(adapter, tmp_path / adapter.config.kind)
        config = json.loads((folder / "config.json").read_text())
        assert (config["in_features"], config["out_features"]) == (D_IN, D_OUT)
        state = torch.load(folder / "pytorch_model.bin", weights_only=True)
        if "linear.weight" in state:  # LlamaIndex's LinearLayer forward: nn.Linear(in, out)
            layer = torch.nn.Linear(D_IN, D_OUT)
            layer.load_state_dict({"weight": state["linear.weight"], "bias": state["linear.bias"]})
            with torch.no_grad():
                raw = layer(torch.from_numpy(queries)).numpy()
            np.testing.assert_allclose(
                raw / np.linalg.norm(raw, axis=1, keepdims=True), adapter.apply(queries), atol=1e-5
            )
        back = load_llamaindex_adapter(folder)
        assert (back.input_dim, back.dim, back.config.index_model) == (D_IN, D_OUT, "old-model")
        np.testing.assert_allclose(back.apply(queries), adapter.apply(queries), atol=1e-5)
    with pytest.raises(AdapterFormatError, match="cannot export a 'residual_mlp' adapter to LlamaIndex"):
        export_llamaindex_adapter(residual, tmp_path / "mlp")


def test_inspect_shows_both_dims_and_models(rng, tmp_path):
    from click.testing import CliRunner

    from queryshift.cli import main

    folder = _adapters(rng)[0].save(tmp_path / "cross")
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert "cross-model: queries of new-model (dim 8) -> index of old-model (dim 12)" in result.output
    assert "  input_dim: 8\n  dim: 12\n" in result.output
    shown = json.loads(CliRunner().invoke(main, ["inspect", str(folder), "--json"]).output)
    assert (shown["input_dim"], shown["dim"], shown["index_model"]) == (8, 12, "old-model")


def test_sentence_transformer_export_is_refused_clearly(rng, tmp_path):
    from queryshift.export import to_sentence_transformer

    with pytest.raises(ValueError, match="cannot be exported as one sentence-transformers model"):
        to_sentence_transformer(_adapters(rng)[0], "unused", tmp_path / "st")
