"""LlamaIndex adapter files: round trips, files written by LlamaIndex's torch classes, refusals.

``_LinearLayer`` and ``_TwoLayerNN`` below rebuild LlamaIndex's classes from
``llama_index/embeddings/adapter/utils.py`` (llama-index-embeddings-adapter 0.6.0): same module
names, so the same ``state_dict`` keys, and the same ``forward``. The regression test reads
files written by the real classes (``tests/data/llamaindex_adapter/generate.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from queryshift.adapters import AdapterConfig, LinearAdapter, ResidualMLPAdapter, load_adapter, save_adapter
from queryshift.adapters.two_layer import TwoLayerAdapter
from queryshift.errors import AdapterFormatError
from queryshift.integrations.llamaindex.files import export_llamaindex_adapter, load_llamaindex_adapter

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "data" / "llamaindex_adapter"
DIM = 8


class _LlamaIndexAdapter(nn.Module):
    """``BaseAdapter.save`` / ``load`` as LlamaIndex writes them."""

    def save(self, output_path: Path) -> None:
        os.makedirs(output_path, exist_ok=True)
        (Path(output_path) / "config.json").write_text(json.dumps(self.get_config_dict()))
        torch.save(self.state_dict(), Path(output_path) / "pytorch_model.bin")

    @classmethod
    def load(cls, input_path: Path) -> _LlamaIndexAdapter:
        model = cls(**json.loads((Path(input_path) / "config.json").read_text()))
        model.load_state_dict(torch.load(Path(input_path) / "pytorch_model.bin", weights_only=True))
        return model


class _LinearLayer(_LlamaIndexAdapter):
    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features, self.bias = in_features, out_features, bias
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.linear.weight.data.copy_(torch.eye(in_features, out_features))
        if bias:
            self.linear.bias.data.copy_(torch.zeros(out_features))

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        return self.linear(embed)

    def get_config_dict(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias}


class _TwoLayerNN(_LlamaIndexAdapter):
    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        bias: bool = False,
        activation_fn_str: str = "relu",
        add_residual: bool = False,
    ) -> None:
        super().__init__()
        self.in_features, self.hidden_features, self.out_features = in_features, hidden_features, out_features
        self.bias, self.activation_fn_str = bias, activation_fn_str
        self.linear1 = nn.Linear(in_features, hidden_features, bias=True)
        self.linear2 = nn.Linear(hidden_features, out_features, bias=True)
        self._activation_function = {"relu": F.relu, "tanh": torch.tanh}[activation_fn_str]
        self._add_residual = add_residual
        self.residual_weight = nn.Parameter(torch.zeros(1))

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        output2 = self.linear2(self._activation_function(self.linear1(embed)))
        if self._add_residual:
            output2 = self.residual_weight * output2 + embed
        return output2

    def get_config_dict(self) -> dict:
        return {
            "in_features": self.in_features,
            "hidden_features": self.hidden_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_fn_str": self.activation_fn_str,
            "add_residual": self._add_residual,
        }


@pytest.fixture
def queries(rng) -> np.ndarray:
    x = rng.normal(size=(6, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # (6, dim)


def _torch_forward(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


# --- files written by LlamaIndex's classes ----------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_linear_layer_files_give_the_torch_forward(bias, queries, tmp_path):
    torch.manual_seed(0)
    module = _LinearLayer(DIM, DIM, bias=bias)
    with torch.no_grad():
        module.linear.weight.add_(0.3 * torch.randn(DIM, DIM))
        if bias:
            module.linear.bias.copy_(0.2 * torch.randn(DIM))
    module.save(tmp_path / "li")

    adapter = load_llamaindex_adapter(tmp_path / "li")

    assert isinstance(adapter, LinearAdapter) and adapter.config.kind == "linear"
    assert adapter.config.normalize is False  # LlamaIndex does not normalise
    assert adapter.config.training == {"imported_from": "llama_index LinearLayer"}
    np.testing.assert_allclose(adapter.apply(queries), _torch_forward(module, queries), atol=1e-6)
    np.testing.assert_allclose(adapter.apply(queries[0]), _torch_forward(module, queries[0]), atol=1e-6)


@pytest.mark.parametrize("add_residual", [False, True])
def test_two_layer_nn_files_give_the_torch_forward(add_residual, queries, tmp_path):
    torch.manual_seed(1)
    module = _TwoLayerNN(DIM, 16, DIM, bias=True, add_residual=add_residual)
    with torch.no_grad():
        module.residual_weight.fill_(0.6)
    module.save(tmp_path / "li")

    adapter = load_llamaindex_adapter(tmp_path / "li", base_model="m")

    assert isinstance(adapter, TwoLayerAdapter) and adapter.residual is add_residual
    assert adapter.config.hidden_dim == 16 and adapter.config.base_model == "m"
    expected = _torch_forward(module, queries)
    np.testing.assert_allclose(adapter.apply(queries), expected, atol=1e-6)
    if add_residual:  # the residual branch is really used: r=0 would give back the input
        assert not np.allclose(expected, queries, atol=1e-3)


def test_normalize_option_renormalises(queries, tmp_path):
    torch.manual_seed(0)
    module = _LinearLayer(DIM, DIM, bias=True)
    with torch.no_grad():
        module.linear.weight.mul_(3.0)
    module.save(tmp_path / "li")
    out = load_llamaindex_adapter(tmp_path / "li", normalize=True).apply(queries)
    expected = _torch_forward(module, queries)
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)


def test_regression_files_written_by_llamaindex():
    """Files written by the real llama-index-embeddings-adapter 0.6.0 keep loading exactly."""
    expected = np.load(FIXTURE / "expected_io.npz", allow_pickle=False)
    for name, cls in (("linear", LinearAdapter), ("two_layer", TwoLayerAdapter)):
        adapter = load_llamaindex_adapter(FIXTURE / name)
        assert isinstance(adapter, cls)
        np.testing.assert_allclose(adapter.apply(expected["inputs"]), expected[name], atol=1e-6)
    assert load_llamaindex_adapter(FIXTURE / "two_layer").residual_weight.tolist() == pytest.approx([0.7])


# --- queryshift → LlamaIndex → queryshift ----------------------------------------------------


def _two_layer(rng, residual: bool) -> TwoLayerAdapter:
    config = AdapterConfig(kind="two_layer", dim=DIM, hidden_dim=16, base_model="m", distance="dot")
    return TwoLayerAdapter(
        config,
        w1=rng.normal(size=(16, DIM)),
        b1=rng.normal(size=16),
        w2=rng.normal(size=(DIM, 16)),
        b2=rng.normal(size=DIM),
        residual_weight=np.array([0.4]) if residual else None,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: LinearAdapter(
            AdapterConfig(kind="linear", dim=DIM, base_model="m"),
            weight=rng.normal(size=(DIM, DIM)),
            bias=rng.normal(size=DIM),
        ),
        lambda rng: LinearAdapter(AdapterConfig(kind="linear", dim=DIM), weight=rng.normal(size=(DIM, DIM))),
        lambda rng: LinearAdapter(
            AdapterConfig(kind="low_rank", dim=DIM, rank=2, normalize=False),
            u=rng.normal(size=(DIM, 2)),
            v=rng.normal(size=(DIM, 2)),
        ),
        lambda rng: _two_layer(rng, residual=True),
        lambda rng: _two_layer(rng, residual=False),
    ],
    ids=["linear-bias", "linear", "low_rank", "two_layer-residual", "two_layer-plain"],
)
def test_export_then_load_gives_identical_query_vectors(make, rng, queries, tmp_path):
    adapter = make(rng)
    folder = export_llamaindex_adapter(adapter, tmp_path / "li")
    loaded = load_llamaindex_adapter(folder)

    np.testing.assert_allclose(loaded.apply(queries), adapter.apply(queries), atol=1e-6)
    for field in ("normalize", "distance", "base_model", "dim"):
        assert getattr(loaded.config, field) == getattr(adapter.config, field)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".queryshift-manifest.json",  # what queryshift wrote, so a later export may replace it
        "config.json",
        "pytorch_model.bin",
        "queryshift_adapter.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["li"]  # written atomically, no temp dirs left


def test_exported_linear_loads_in_llamaindex_classes(rng, queries, tmp_path):
    """LlamaIndex's ``LinearLayer.load`` (strict ``load_state_dict``) accepts what we write."""
    adapter = LinearAdapter(
        AdapterConfig(kind="linear", dim=DIM, normalize=False),
        weight=rng.normal(size=(DIM, DIM)),
        bias=rng.normal(size=DIM),
    )
    export_llamaindex_adapter(adapter, tmp_path / "li")
    config = json.loads((tmp_path / "li" / "config.json").read_text())
    assert config == {"in_features": DIM, "out_features": DIM, "bias": True}
    state = torch.load(tmp_path / "li" / "pytorch_model.bin", weights_only=True)
    assert sorted(state) == ["linear.bias", "linear.weight"]

    module = _LinearLayer.load(tmp_path / "li")
    np.testing.assert_allclose(_torch_forward(module, queries), adapter.apply(queries), atol=1e-6)


def test_exported_two_layer_loads_in_llamaindex_classes(rng, queries, tmp_path):
    for residual in (True, False):
        adapter = _two_layer(rng, residual)
        adapter = TwoLayerAdapter(
            AdapterConfig(kind="two_layer", dim=DIM, hidden_dim=16, normalize=False),
            **adapter.tensors(),
        )
        export_llamaindex_adapter(adapter, tmp_path / "li")
        module = _TwoLayerNN.load(tmp_path / "li")
        np.testing.assert_allclose(_torch_forward(module, queries), adapter.apply(queries), atol=1e-5)


def test_exporting_over_an_existing_folder_replaces_it(rng, tmp_path):
    export_llamaindex_adapter(LinearAdapter.identity(DIM), tmp_path / "li")
    second = LinearAdapter(AdapterConfig(dim=DIM), weight=rng.normal(size=(DIM, DIM)))
    export_llamaindex_adapter(second, tmp_path / "li")
    np.testing.assert_allclose(load_llamaindex_adapter(tmp_path / "li").weight, second.weight)


def test_residual_mlp_export_is_refused(tmp_path):
    with pytest.raises(AdapterFormatError, match="GELU"):
        export_llamaindex_adapter(ResidualMLPAdapter.identity(DIM, hidden_dim=4), tmp_path / "li")
    assert not (tmp_path / "li").exists()


# --- refusals ---------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would create a file: the marker that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_non_tensor_content_is_refused(tmp_path):
    folder = tmp_path / "li"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"in_features": DIM, "out_features": DIM, "bias": False}))
    marker = tmp_path / "code-ran"
    torch.save({"linear.weight": torch.eye(DIM), "payload": _RunsCode(marker)}, folder / "pytorch_model.bin")

    with pytest.raises(AdapterFormatError, match=r"weights_only=True"):
        load_llamaindex_adapter(folder)
    assert not marker.exists()


def test_non_tensor_values_are_refused(tmp_path):
    folder = tmp_path / "li"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"in_features": DIM, "out_features": DIM, "bias": False}))
    torch.save({"linear.weight": [1.0, 2.0]}, folder / "pytorch_model.bin")  # allowed by weights_only
    with pytest.raises(AdapterFormatError, match="'linear.weight' is a list, expected a tensor"):
        load_llamaindex_adapter(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(AdapterFormatError, match="pytorch_model.bin"):
        load_llamaindex_adapter(folder)


def _save(folder: Path, config: dict, state: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(state, folder / "pytorch_model.bin")
    return folder


@pytest.mark.parametrize(
    ("config", "state", "message"),
    [
        (
            {"in_features": DIM, "out_features": DIM, "bias": False, "dropout": 0.1},
            {"linear.weight": torch.eye(DIM)},
            r"keys \['dropout'\] belong to no LlamaIndex adapter class",
        ),
        (
            {"in_features": DIM, "hidden_features": 4, "out_features": 4, "add_residual": True},
            _TwoLayerNN(DIM, 4, 4).state_dict(),
            "add_residual=true; a residual TwoLayerNN adds its input to its output",
        ),
        (
            {"in_features": DIM, "out_features": DIM, "bias": True},
            {"linear.weight": torch.eye(DIM)},
            r"has tensors \['linear.bias', 'linear.weight'\], found \['linear.weight'\]",
        ),
        (
            {"in_features": DIM, "out_features": DIM, "bias": False},
            {"linear.weight": torch.eye(4)},
            r"shape \(8, 8\), got \(4, 4\)",
        ),
        (
            {"in_features": DIM, "hidden_features": 4, "out_features": DIM, "activation_fn_str": "tanh"},
            _TwoLayerNN(DIM, 4, DIM, activation_fn_str="tanh").state_dict(),
            "activation_fn_str='tanh'",
        ),
        ({"out_features": DIM}, {"linear.weight": torch.eye(DIM)}, r"missing keys \['in_features'\]"),
    ],
    ids=["unknown-key", "not-square", "missing-bias", "wrong-shape", "tanh", "missing-key"],
)
def test_malformed_folders_are_refused_with_a_clear_error(config, state, message, tmp_path):
    folder = _save(tmp_path / "li", config, state)
    with pytest.raises(AdapterFormatError, match=message):
        load_llamaindex_adapter(folder)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_llamaindex_adapter(tmp_path / "nope")
    (tmp_path / "li").mkdir()
    (tmp_path / "li" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin not found"):
        load_llamaindex_adapter(tmp_path / "li")


# --- TwoLayerAdapter as a queryshift adapter ---------------------------------------------------


def test_two_layer_identity_and_save_load(rng, queries, tmp_path):
    fresh = TwoLayerAdapter.identity(DIM, hidden_dim=16)
    np.testing.assert_allclose(fresh.apply(queries), queries, atol=1e-7)
    for residual in (True, False):
        adapter = _two_layer(rng, residual)
        save_adapter(adapter, tmp_path / f"a{residual}")
        loaded = load_adapter(tmp_path / f"a{residual}")
        assert isinstance(loaded, TwoLayerAdapter) and loaded.config == adapter.config
        assert sorted(loaded.tensors()) == sorted(adapter.tensors())
        for name, tensor in adapter.tensors().items():
            np.testing.assert_array_equal(loaded.tensors()[name], tensor)


def test_file_interop_imports_neither_torch_nor_llama_index():
    code = (
        "import sys, queryshift.integrations.llamaindex_files; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'llama_index')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
