"""Saving and loading adapter directories: ``adapter_config.json`` + ``adapter.safetensors``.

Weights are only ever read with safetensors, which cannot execute code; pickled files
(``*.bin``, ``*.pt``) in an adapter directory are refused rather than guessed at.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load_file, save_file

from queryshift.adapters.base import QueryAdapter, adapter_class
from queryshift.adapters.config import AdapterConfig
from queryshift.atomic import atomic_directory
from queryshift.errors import AdapterFormatError

if TYPE_CHECKING:  # the classes import this module to save themselves; loading goes through the registry
    from queryshift.adapters.linear import LinearAdapter
    from queryshift.adapters.residual_mlp import ResidualMLPAdapter
    from queryshift.adapters.two_layer import TwoLayerAdapter

logger = logging.getLogger(__name__)

__all__ = ["save_adapter", "load_adapter", "SavesToDirectory", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"
_PICKLE_NAMES = ("pytorch_model.bin", "adapter.bin", "adapter.pt", "model.pt")


def save_adapter(
    adapter: QueryAdapter, path: str | Path, *, extra_files: dict[str, str] | None = None
) -> Path:
    """Write ``adapter`` to the directory ``path``; an existing directory is replaced atomically.

    Args:
        adapter: Any queryshift adapter.
        path: Target directory.
        extra_files: Small text files to store beside the adapter (e.g. the held-out query ids).

    Returns:
        The directory written.

    Example:
        >>> import tempfile, numpy as np
        >>> from queryshift.adapters import LinearAdapter
        >>> out = save_adapter(LinearAdapter.identity(dim=4), tempfile.mkdtemp() + "/adapter")
        >>> load_adapter(out).apply(np.ones(4, np.float32)).shape
        (4,)
    """
    path = Path(path)
    with atomic_directory(path) as tmp:
        config_text = json.dumps(adapter.config.to_dict(), indent=2, sort_keys=True)
        (tmp / CONFIG_NAME).write_text(config_text + "\n", encoding="utf-8")
        tensors = {name: np.ascontiguousarray(t, dtype=np.float32) for name, t in adapter.tensors().items()}
        save_file(
            tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "queryshift", "kind": adapter.config.kind}
        )
        for name, text in (extra_files or {}).items():
            if "/" in name or name in (CONFIG_NAME, WEIGHTS_NAME):
                raise ValueError(
                    f"extra file name {name!r} must be a plain file name other than the adapter's own"
                )
            (tmp / name).write_text(text, encoding="utf-8")
    logger.info("saved %r to %s", adapter, path)
    return path


def load_adapter(
    path: str | Path, *, strict: bool = True
) -> LinearAdapter | ResidualMLPAdapter | TwoLayerAdapter:
    """Load an adapter directory written by :func:`save_adapter`.

    Args:
        path: Directory holding ``adapter_config.json`` and ``adapter.safetensors``.
        strict: Refuse unknown config keys (``True``) or warn and ignore them (``False``).

    Raises:
        FileNotFoundError: ``path`` or one of the two files is missing.
        AdapterFormatError: Unknown format version, shape/dim mismatch, or weights that are not safetensors.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"adapter directory {path} does not exist")
    config_path = path / CONFIG_NAME
    weights_path = path / WEIGHTS_NAME
    if not config_path.is_file():
        hint = ""
        if (path / "config.json").is_file():
            hint = " (this looks like a LlamaIndex adapter: use queryshift.integrations.llamaindex.load_llamaindex_adapter)"
        raise FileNotFoundError(f"{config_path} not found{hint}")
    if not weights_path.is_file():
        pickled = [n for n in _PICKLE_NAMES if (path / n).exists()]
        if pickled:
            raise AdapterFormatError(
                f"{path} holds pickled weights {pickled}, which queryshift never loads; "
                f"it needs {WEIGHTS_NAME} (safetensors)"
            )
        raise FileNotFoundError(f"{weights_path} not found")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterFormatError(f"{config_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    config = AdapterConfig.from_dict(raw, strict=strict, source=config_path)
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise AdapterFormatError(f"{weights_path} is not a valid safetensors file: {exc}") from exc
    try:
        return adapter_class(config.kind).from_tensors(config, tensors)
    except AdapterFormatError as exc:
        raise AdapterFormatError(
            f"{weights_path}: {exc} (config says kind={config.kind!r}, dim={config.dim})"
        ) from exc


class SavesToDirectory:
    """Mixin giving an adapter class ``save(path)``, i.e. :func:`save_adapter` on itself."""

    def save(self, path: str | Path) -> Path:
        """Write ``adapter_config.json`` + ``adapter.safetensors`` to ``path`` atomically."""
        return save_adapter(self, path)  # type: ignore[arg-type]
