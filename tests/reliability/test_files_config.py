"""``adapter_config.json`` is read strictly: no guessed defaults, exact JSON types, errors naming file and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from queryshift.adapters import LinearAdapter, load_adapter, save_adapter
from queryshift.errors import AdapterFormatError

FIXTURE = Path(__file__).parent.parent / "data" / "adapter_v0_1"


@pytest.fixture
def saved(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    adapter = LinearAdapter(
        LinearAdapter.identity(dim=4, base_model="toy").config, weight=rng.normal(size=(4, 4))
    )
    return save_adapter(adapter, tmp_path / "a")


def _edit(path: Path, **changes) -> Path:
    config = path / "adapter_config.json"
    raw = json.loads(config.read_text())
    for key, value in changes.items():
        if value is _DROP:
            raw.pop(key)
        else:
            raw[key] = value
    config.write_text(json.dumps(raw))
    return config


_DROP = object()


@pytest.mark.parametrize("field", ["kind", "dim", "distance", "normalize", "format_version"])
def test_a_missing_field_is_an_error_not_a_default(saved, field):
    config = _edit(saved, **{field: _DROP})
    with pytest.raises(AdapterFormatError, match=f"{config}: missing field '{field}'"):
        load_adapter(saved)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("normalize", "false", 'true or false, got "false" \\(a string\\)'),
        ("normalize", 0, "true or false, got 0 \\(an integer\\)"),
        ("format_version", True, "an integer, got true \\(a boolean\\)"),
        ("format_version", 1.0, "an integer, got 1.0 \\(a number\\)"),
        ("dim", True, "an integer, got true"),
        ("dim", 4.0, "an integer, got 4.0"),
        ("dim", "4", 'an integer, got "4"'),
        ("kind", ["linear"], 'a string, got \\["linear"\\] \\(an array\\)'),
        ("distance", None, "a string, got null"),
        ("rank", "2", "an integer or null"),
        ("hidden_dim", False, "an integer or null, got false"),
        ("base_model", 5, "a string or null, got 5"),
        ("training", [], "an object, got \\[\\] \\(an array\\)"),
        ("training", "fine", 'an object, got "fine"'),
    ],
)
def test_every_field_has_its_exact_json_type(saved, field, value, expected):
    config = _edit(saved, **{field: value})
    with pytest.raises(AdapterFormatError, match=f"{config}: field '{field}' must be {expected}") as caught:
        load_adapter(saved)
    assert "\n" not in str(caught.value)


def test_range_errors_name_the_file_too(saved):
    config = _edit(saved, dim=0)
    with pytest.raises(AdapterFormatError, match=f"{config}: field 'dim' must be a positive integer, got 0"):
        load_adapter(saved)
    config = _edit(saved, dim=4, kind="cubic")
    with pytest.raises(AdapterFormatError, match=f"{config}: field 'kind' must be one of"):
        load_adapter(saved)


def test_a_non_utf8_config_is_one_line_naming_the_file(saved):
    config = saved / "adapter_config.json"
    config.write_bytes(b'{"kind": "lin\xffear"}')
    with pytest.raises(AdapterFormatError, match=f"{config}: not UTF-8 text \\(byte 0xff at offset 13\\)"):
        load_adapter(saved)


def test_a_duplicated_key_is_refused(saved):
    config = saved / "adapter_config.json"
    text = config.read_text()
    config.write_text(text.replace('"normalize": true', '"normalize": true, "normalize": false'))
    with pytest.raises(AdapterFormatError, match=f"{config}: key 'normalize' appears twice"):
        load_adapter(saved)


def test_the_0_1_fixture_still_loads_and_reproduces_its_outputs(tmp_path):
    expected = np.load(FIXTURE / "expected_io.npz")
    np.testing.assert_allclose(
        load_adapter(FIXTURE).apply(expected["inputs"]), expected["outputs"], atol=1e-6
    )
    copy = shutil.copytree(FIXTURE, tmp_path / "v0_1")
    (copy / "expected_io.npz").unlink()
    save_adapter(load_adapter(copy), copy)  # a 0.1 directory is recognised as queryshift's and replaced
    np.testing.assert_allclose(load_adapter(copy).apply(expected["inputs"]), expected["outputs"], atol=1e-6)
