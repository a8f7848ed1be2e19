"""Reading and writing adapters in LlamaIndex's ``EmbeddingAdapterFinetuneEngine`` file layout.

LlamaIndex (``llama_index.embeddings.adapter.utils``) saves an adapter as a folder with
``config.json`` (the constructor arguments) and ``pytorch_model.bin`` (a pickled torch
``state_dict``). Two classes are understood, told apart by the keys of ``config.json``:

* ``LinearLayer`` (``in_features``, ``out_features``, ``bias``): ``nn.Linear``, i.e.
  ``y = x Wᵀ (+ b)``, state dict ``linear.weight`` / ``linear.bias`` → :class:`LinearAdapter`
  (kind ``"linear"``);
* ``TwoLayerNN`` (``in_features``, ``hidden_features``, ``out_features``, ``bias``,
  ``activation_fn_str``, ``add_residual``): ``linear1`` → ReLU → ``linear2``, plus
  ``residual_weight · (…) + x`` when ``add_residual`` → :class:`TwoLayerAdapter` (kind
  ``"two_layer"``), which reproduces it exactly.

LlamaIndex applies its adapter without re-normalising the output, so an imported adapter
has ``normalize=False`` unless told otherwise: its ``apply`` returns exactly what
LlamaIndex's ``AdapterEmbeddingModel`` returns. For cosine collections this does not change
any ranking.

The pickle is read with ``torch.load(..., weights_only=True)``, which refuses anything but
tensors and plain containers. torch is imported inside the two functions only; nothing here
needs llama-index, and the adapters they return are numpy-only.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.config import AdapterConfig, Distance, parse_json_bytes
from queryshift.adapters.io import CONFIG_NAME, load_adapter
from queryshift.adapters.linear import LinearAdapter
from queryshift.adapters.two_layer import TwoLayerAdapter
from queryshift.atomic import atomic_directory, read_directory
from queryshift.errors import AdapterFormatError, MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = [
    "load_llamaindex_adapter",
    "export_llamaindex_adapter",
    "LLAMAINDEX_CONFIG_NAME",
    "LLAMAINDEX_WEIGHTS_NAME",
    "PROVENANCE_NAME",
    "resolve_adapter",
]

LLAMAINDEX_CONFIG_NAME = "config.json"
LLAMAINDEX_WEIGHTS_NAME = "pytorch_model.bin"
PROVENANCE_NAME = "queryshift_adapter.json"
"""Side file written by :func:`export_llamaindex_adapter` (LlamaIndex ignores it): ``normalize``,
``distance`` and ``base_model`` of the exported adapter, so that a round trip is exact."""

_LINEAR_KEYS = {"in_features", "out_features", "bias"}
_TWO_LAYER_KEYS = {
    "in_features",
    "hidden_features",
    "out_features",
    "bias",
    "activation_fn_str",
    "add_residual",
}
_TWO_LAYER_TENSORS = {"linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "residual_weight"}


def load_llamaindex_adapter(
    path: str | Path,
    *,
    normalize: bool | None = None,
    base_model: str | None = None,
    distance: Distance | None = None,
) -> LinearAdapter | TwoLayerAdapter:
    """Import an adapter saved by LlamaIndex's ``EmbeddingAdapterFinetuneEngine`` as a numpy adapter.

    Args:
        path: Folder with ``config.json`` and ``pytorch_model.bin`` (what ``adapter.save(path)``
            and the finetune engine's ``model_output_path`` hold).
        normalize: Re-normalise adapted queries to unit length. ``None`` takes the value recorded
            by :func:`export_llamaindex_adapter` when the folder has its side file, else ``False``
            (LlamaIndex does not normalise, so outputs equal its torch forward pass).
        base_model: Embedding model the adapter was trained on, recorded in its config so a
            dimension mismatch names it. ``None``: from the side file when present.
        distance: Distance of the collection it is for. ``None``: from the side file, else ``"cosine"``.

    Returns:
        A :class:`~queryshift.adapters.LinearAdapter` (kind ``"linear"``) for ``LinearLayer``, or
        a :class:`~queryshift.adapters.two_layer.TwoLayerAdapter` for ``TwoLayerNN``. Save it with
        ``adapter.save(dir)`` to get a queryshift adapter folder (safetensors, no pickle).

    Raises:
        FileNotFoundError: ``path`` or one of its two files is missing.
        AdapterFormatError: Unknown config keys (another adapter class), a residual map whose
            ``in_features`` differ from ``out_features``,
            an activation other than ReLU, tensors that do not match the config, or a pickle
            holding anything but tensors (refused by ``weights_only=True``).
        MissingDependencyError: torch is not installed.

    Example:
        >>> import tempfile, numpy as np
        >>> from queryshift.adapters import LinearAdapter
        >>> folder = export_llamaindex_adapter(LinearAdapter.identity(dim=4), tempfile.mkdtemp() + "/li")
        >>> sorted(p.name for p in folder.iterdir())
        ['.queryshift-manifest.json', 'config.json', 'pytorch_model.bin', 'queryshift_adapter.json']
        >>> adapter = load_llamaindex_adapter(folder)
        >>> adapter
        LinearAdapter(kind='linear', dim=4)
        >>> bool(np.allclose(adapter.apply(np.array([0.6, 0.8, 0.0, 0.0])), [0.6, 0.8, 0.0, 0.0]))
        True
    """
    path = Path(path)
    wanted = (LLAMAINDEX_CONFIG_NAME, LLAMAINDEX_WEIGHTS_NAME, PROVENANCE_NAME)
    snapshot = read_directory(path, wanted, what="LlamaIndex adapter folder")  # one version of each file
    config_path, weights_path = path / LLAMAINDEX_CONFIG_NAME, path / LLAMAINDEX_WEIGHTS_NAME
    for needed in (config_path, weights_path):
        if needed.name not in snapshot.files:
            raise FileNotFoundError(
                f"{needed} not found; a LlamaIndex adapter folder holds {LLAMAINDEX_CONFIG_NAME} and "
                f"{LLAMAINDEX_WEIGHTS_NAME} (as written by BaseAdapter.save)"
            )
    raw = _read_json(config_path, snapshot.files[LLAMAINDEX_CONFIG_NAME])
    provenance = {}
    if PROVENANCE_NAME in snapshot.files:
        provenance = _read_json(path / PROVENANCE_NAME, snapshot.files[PROVENANCE_NAME])
    state = _load_state_dict(weights_path, snapshot.files[LLAMAINDEX_WEIGHTS_NAME])  # name → float32 array

    fields: dict[str, Any] = {
        "normalize": normalize if normalize is not None else bool(provenance.get("normalize", False)),
        "base_model": base_model if base_model is not None else provenance.get("base_model"),
        "distance": distance if distance is not None else provenance.get("distance", "cosine"),
        "index_model": provenance.get("index_model"),
    }
    keys = set(raw)
    if "hidden_features" in keys:
        adapter: LinearAdapter | TwoLayerAdapter = _two_layer(raw, state, fields, config_path, weights_path)
    else:
        adapter = _linear(raw, state, fields, config_path, weights_path)
    logger.info("imported %r from LlamaIndex adapter folder %s", adapter, path)
    return adapter


def export_llamaindex_adapter(adapter: QueryAdapter, path: str | Path) -> Path:
    """Write ``adapter`` in LlamaIndex's adapter layout, loadable by its ``AdapterEmbeddingModel``.

    * kinds ``"linear"`` and ``"low_rank"`` → ``LinearLayer`` (``config.json`` with
      ``in_features`` / ``out_features`` / ``bias``; state dict ``linear.weight`` and, when the
      bias is non-zero, ``linear.bias``); a low-rank adapter is written as its full matrix;
    * kind ``"two_layer"`` → ``TwoLayerNN`` with ``activation_fn_str="relu"``.

    ``"residual_mlp"`` adapters use GELU, which LlamaIndex's ``TwoLayerNN`` cannot express, and
    are refused. A cross-model adapter (``input_dim`` differs from ``dim``) exports as a linear
    map with ``in_features=input_dim``, ``out_features=dim``; the model that embedded the index
    is recorded in the side file as ``index_model``. A side file ``queryshift_adapter.json`` records ``normalize``, ``distance`` and
    ``base_model`` so :func:`load_llamaindex_adapter` gives back the same adapter; LlamaIndex
    itself never normalises adapted queries, which leaves cosine rankings unchanged.

    Args:
        adapter: A queryshift adapter.
        path: Target folder; an existing folder is replaced atomically.

    Returns:
        The folder written.

    Raises:
        AdapterFormatError: ``adapter`` is a ``residual_mlp`` (or another kind with no LlamaIndex twin).
        MissingDependencyError: torch is not installed.

    Example:
        >>> import tempfile, numpy as np
        >>> from queryshift.adapters import LinearAdapter
        >>> adapter = LinearAdapter.identity(dim=4, rank=2)
        >>> folder = export_llamaindex_adapter(adapter, tempfile.mkdtemp() + "/li")
        >>> import json; json.loads((folder / "config.json").read_text())
        {'in_features': 4, 'out_features': 4, 'bias': False}
    """
    torch = _import_torch()
    path = Path(path)
    kind = adapter.config.kind
    if isinstance(adapter, LinearAdapter):
        weight = adapter.matrix()  # (dim, input_dim)
        has_bias = bool(np.any(adapter.bias != 0))
        config: dict[str, Any] = {
            "in_features": adapter.input_dim,
            "out_features": adapter.dim,
            "bias": has_bias,
        }
        state = {"linear.weight": weight}
        if has_bias:
            state["linear.bias"] = adapter.bias
    elif isinstance(adapter, TwoLayerAdapter):
        config = {
            "in_features": adapter.input_dim,
            "hidden_features": adapter.config.hidden_dim,
            "out_features": adapter.dim,
            "bias": True,
            "activation_fn_str": "relu",
            "add_residual": adapter.residual,
        }
        residual_weight = adapter.residual_weight if adapter.residual else np.zeros(1, np.float32)
        state = {
            "linear1.weight": adapter.w1,
            "linear1.bias": adapter.b1,
            "linear2.weight": adapter.w2,
            "linear2.bias": adapter.b2,
            "residual_weight": residual_weight,
        }
    else:
        raise AdapterFormatError(
            f"cannot export a {kind!r} adapter to LlamaIndex: its TwoLayerNN supports relu, sigmoid, tanh "
            "and leaky_relu, while queryshift's residual_mlp uses GELU. Train a 'linear' or 'low_rank' "
            "adapter (TrainingConfig(adapter='linear')) to export it, or serve it with queryshift's "
            "AdaptedEmbedding / AdaptedRetriever"
        )
    tensors = {name: torch.from_numpy(np.array(t, dtype=np.float32, copy=True)) for name, t in state.items()}
    provenance = {
        "kind": kind,
        "normalize": adapter.config.normalize,
        "distance": adapter.config.distance,
        "base_model": adapter.config.base_model,
    }
    if adapter.config.index_model is not None:
        provenance["index_model"] = adapter.config.index_model
    with atomic_directory(path, what="LlamaIndex adapter") as tmp:
        (tmp / LLAMAINDEX_CONFIG_NAME).write_text(json.dumps(config), encoding="utf-8")
        torch.save(tensors, tmp / LLAMAINDEX_WEIGHTS_NAME)
        (tmp / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n", "utf-8")
    logger.info("exported %r to LlamaIndex layout at %s", adapter, path)
    return path


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency today
        raise MissingDependencyError(
            "reading and writing LlamaIndex adapter files needs torch (its weights are a torch pickle): "
            "`pip install torch`"
        ) from exc
    return torch


def _read_json(path: Path, data: bytes) -> dict[str, Any]:
    raw = parse_json_bytes(data, source=path)
    if not isinstance(raw, dict):
        raise AdapterFormatError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return raw


def _load_state_dict(path: Path, data: bytes) -> dict[str, np.ndarray]:
    torch = _import_torch()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise AdapterFormatError(
            f"{path} was refused by torch.load(weights_only=True): it holds something other than tensors "
            f"(a pickled object that could run code, or a file that is not a torch checkpoint). queryshift "
            f"only loads LlamaIndex adapters whose pytorch_model.bin is a plain state_dict. ({exc})"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:  # torch's errors for truncated or non-zip files
        raise AdapterFormatError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(state, dict):
        raise AdapterFormatError(f"{path}: expected a state_dict (name → tensor), got {type(state).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise AdapterFormatError(
                f"{path}: state_dict entry {name!r} is a {type(value).__name__}, expected a tensor"
            )
        if value.layout != torch.strided:  # LlamaIndex saves dense tensors; a sparse one was made elsewhere
            raise AdapterFormatError(
                f"{path}: tensor {name!r} is sparse ({value.layout}); expected dense tensors, "
                "e.g. save state_dict values with .to_dense()"
            )
        out[str(name)] = value.detach().to(torch.float32).cpu().numpy()
    return out


def _check_keys(
    raw: dict[str, Any], allowed: set[str], required: set[str], cls: str, config_path: Path
) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise AdapterFormatError(
            f"{config_path}: keys {unknown} belong to no LlamaIndex adapter class queryshift knows; it reads "
            f"LinearLayer ({sorted(_LINEAR_KEYS)}) and TwoLayerNN ({sorted(_TWO_LAYER_KEYS)}). A custom "
            "BaseAdapter subclass has to be converted by hand"
        )
    missing = sorted(required - set(raw))
    if missing:
        raise AdapterFormatError(f"{config_path}: {cls} config is missing keys {missing}")
    for key in ("in_features", "out_features", "hidden_features"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] <= 0):
            raise AdapterFormatError(f"{config_path}: {key} must be a positive integer, got {raw[key]!r}")
    if raw["in_features"] != raw["out_features"] and raw.get("add_residual", False):
        raise AdapterFormatError(
            f"{config_path}: in_features={raw['in_features']} but out_features={raw['out_features']} with "
            "add_residual=true; a residual TwoLayerNN adds its input to its output, so it needs "
            "in_features == out_features"
        )


def _check_tensor_names(
    state: dict[str, np.ndarray], expected: set[str], cls: str, weights_path: Path, config_path: Path
) -> None:
    if set(state) != expected:
        raise AdapterFormatError(
            f"{weights_path}: a {cls} with the settings in {config_path.name} has tensors {sorted(expected)}, "
            f"found {sorted(state)}"
        )


def _linear(
    raw: dict[str, Any],
    state: dict[str, np.ndarray],
    fields: dict[str, Any],
    config_path: Path,
    weights_path: Path,
) -> LinearAdapter:
    _check_keys(raw, _LINEAR_KEYS, {"in_features", "out_features"}, "LinearLayer", config_path)
    bias = bool(raw.get("bias", False))
    expected = {"linear.weight", "linear.bias"} if bias else {"linear.weight"}
    _check_tensor_names(state, expected, "LinearLayer", weights_path, config_path)
    dim, input_dim = int(raw["out_features"]), int(raw["in_features"])
    config = AdapterConfig(
        kind="linear",
        dim=dim,
        input_dim=None if input_dim == dim else input_dim,
        training={"imported_from": "llama_index LinearLayer"},
        **fields,
    )
    try:
        return LinearAdapter(config, weight=state["linear.weight"], bias=state.get("linear.bias"))
    except AdapterFormatError as exc:
        raise AdapterFormatError(f"{weights_path}: {exc} (config.json says dim={dim})") from exc


def _two_layer(
    raw: dict[str, Any],
    state: dict[str, np.ndarray],
    fields: dict[str, Any],
    config_path: Path,
    weights_path: Path,
) -> TwoLayerAdapter:
    _check_keys(
        raw, _TWO_LAYER_KEYS, {"in_features", "hidden_features", "out_features"}, "TwoLayerNN", config_path
    )
    activation = raw.get("activation_fn_str", "relu")
    if activation != "relu":
        raise AdapterFormatError(
            f"{config_path}: activation_fn_str={activation!r}; queryshift reproduces TwoLayerNN with its "
            "default 'relu' activation only"
        )
    # TwoLayerNN always builds both layers with a bias (its `bias` flag is ignored) and always
    # has `residual_weight`, which forward() only uses when add_residual is true.
    _check_tensor_names(state, _TWO_LAYER_TENSORS, "TwoLayerNN", weights_path, config_path)
    residual = bool(raw.get("add_residual", False))
    dim, hidden, input_dim = int(raw["out_features"]), int(raw["hidden_features"]), int(raw["in_features"])
    config = AdapterConfig(
        kind="two_layer",
        dim=dim,
        input_dim=None if input_dim == dim else input_dim,
        hidden_dim=hidden,
        training={"imported_from": "llama_index TwoLayerNN"},
        **fields,
    )
    try:
        return TwoLayerAdapter(
            config,
            w1=state["linear1.weight"],
            b1=state["linear1.bias"],
            w2=state["linear2.weight"],
            b2=state["linear2.bias"],
            residual_weight=state["residual_weight"] if residual else None,
        )
    except AdapterFormatError as exc:
        raise AdapterFormatError(
            f"{weights_path}: {exc} (config.json says dim={dim}, hidden_features={hidden})"
        ) from exc


def resolve_adapter(adapter: QueryAdapter | str | Path) -> QueryAdapter:
    """Return ``adapter`` itself, or load it from a folder in either layout.

    A folder with ``adapter_config.json`` is a queryshift adapter (:func:`~queryshift.adapters.load_adapter`);
    one with only ``config.json`` + ``pytorch_model.bin`` is a LlamaIndex adapter
    (:func:`load_llamaindex_adapter`).

    Example:
        >>> from queryshift.adapters import LinearAdapter
        >>> resolve_adapter(LinearAdapter.identity(dim=4))
        LinearAdapter(kind='linear', dim=4)
    """
    if isinstance(adapter, (str, Path)):
        folder = Path(adapter)
        if not (folder / CONFIG_NAME).is_file() and (folder / LLAMAINDEX_CONFIG_NAME).is_file():
            return load_llamaindex_adapter(folder)
        return load_adapter(folder)
    if not isinstance(adapter, QueryAdapter):
        raise TypeError(
            f"adapter must be a queryshift adapter or a folder path, got {type(adapter).__name__}; "
            "load one with queryshift.load_adapter(path)"
        )
    return adapter
