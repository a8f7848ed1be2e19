import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from queryshift.adapters import AdapterConfig, LinearAdapter, ResidualMLPAdapter, load_adapter, save_adapter
from queryshift.atomic import MANIFEST_NAME
from queryshift.errors import AdapterFormatError

REPO = Path(__file__).resolve().parents[2]


def _random_linear(rng, dim=8):
    return LinearAdapter(
        AdapterConfig(kind="linear", dim=dim, base_model="m", training={"note": "x"}),
        weight=rng.normal(size=(dim, dim)),
        bias=rng.normal(size=dim),
    )


@pytest.mark.parametrize(
    "make",
    [
        _random_linear,
        lambda rng: LinearAdapter(
            AdapterConfig(kind="low_rank", dim=8, rank=2),
            u=rng.normal(size=(8, 2)),
            v=rng.normal(size=(8, 2)),
        ),
        lambda rng: ResidualMLPAdapter.identity(8, hidden_dim=4),
    ],
)
def test_save_then_load_is_identical(make, rng, tmp_path):
    adapter = make(rng)
    save_adapter(adapter, tmp_path / "a")
    loaded = load_adapter(tmp_path / "a")
    assert loaded.config == adapter.config
    for name, tensor in adapter.tensors().items():
        np.testing.assert_array_equal(loaded.tensors()[name], tensor)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        MANIFEST_NAME,  # the files queryshift wrote, so a later save knows it may replace them
        "adapter.safetensors",
        "adapter_config.json",
    ]


def test_overwrite_is_atomic_and_failed_save_keeps_old(rng, tmp_path, monkeypatch):
    target = tmp_path / "a"
    first = _random_linear(rng)
    save_adapter(first, target)

    def boom(*args, **kwargs):
        raise RuntimeError("the weights could not be written")

    monkeypatch.setattr(Path, "write_bytes", boom)
    with pytest.raises(RuntimeError):
        save_adapter(_random_linear(rng), target)
    np.testing.assert_array_equal(load_adapter(target).weight, first.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temp dirs left behind


def test_unknown_version_and_keys_are_refused(rng, tmp_path):
    save_adapter(_random_linear(rng), tmp_path / "a")
    path = tmp_path / "a" / "adapter_config.json"
    raw = json.loads(path.read_text())
    raw["format_version"] = 2
    path.write_text(json.dumps(raw))
    with pytest.raises(AdapterFormatError, match="format_version 2"):
        load_adapter(tmp_path / "a")
    raw["format_version"] = 1
    raw["surprise"] = True
    path.write_text(json.dumps(raw))
    with pytest.raises(AdapterFormatError, match="surprise"):
        load_adapter(tmp_path / "a")
    with pytest.warns(UserWarning, match="surprise"):
        load_adapter(tmp_path / "a", strict=False)


def test_shape_mismatch_and_pickles_are_refused(rng, tmp_path):
    save_adapter(_random_linear(rng), tmp_path / "a")
    path = tmp_path / "a" / "adapter_config.json"
    raw = json.loads(path.read_text())
    raw["dim"] = 16
    path.write_text(json.dumps(raw))
    with pytest.raises(AdapterFormatError, match="shape"):
        load_adapter(tmp_path / "a")
    pickled = tmp_path / "p"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text(path.read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(AdapterFormatError, match="pickled"):
        load_adapter(pickled)


def test_checked_in_v01_adapter_still_reproduces_outputs():
    fixture = REPO / "tests" / "data" / "adapter_v0_1"
    adapter = load_adapter(fixture)
    io = np.load(fixture / "expected_io.npz")
    np.testing.assert_allclose(adapter.apply(io["inputs"]), io["outputs"], rtol=1e-6, atol=1e-6)


def test_adapters_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, queryshift, queryshift.adapters\n"
        "from queryshift.adapters import LinearAdapter\n"
        "print(LinearAdapter.identity(4).apply(np.ones(4)).shape)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(4,)"
