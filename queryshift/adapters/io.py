"""Saving and loading adapter directories: ``adapter_config.json`` + ``adapter.safetensors``.

Weights are only ever read with safetensors, which cannot execute code; pickled files
(``*.bin``, ``*.pt``) in an adapter directory are refused rather than guessed at. A directory is
written whole and read from one version (:mod:`queryshift.atomic`), so a save running beside a
load never hands it a config of one adapter and the weights of another.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load, save

from queryshift.adapters.base import QueryAdapter, adapter_class
from queryshift.adapters.config import parse_adapter_config
from queryshift.atomic import atomic_directory, read_directory
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
    """Write ``adapter`` to the directory ``path``, swapped in whole (see :mod:`queryshift.atomic`).

    An existing ``path`` is replaced only if queryshift wrote it (an adapter, a fine-tuned model,
    an empty directory); a directory holding anything else is refused before anything is touched.

    Args:
        adapter: Any queryshift adapter.
        path: Target directory.
        extra_files: Small text files to store beside the adapter (e.g. the held-out query ids).

    Returns:
        The directory written.

    Raises:
        OutputPathError: ``path`` holds files queryshift did not write, is the current directory, ...
        ArtifactWriteError: The disk filled up; the previous version, if any, is untouched.

    Example:
        >>> import tempfile, numpy as np
        >>> from queryshift.adapters import LinearAdapter
        >>> out = save_adapter(LinearAdapter.identity(dim=4), tempfile.mkdtemp() + "/adapter")
        >>> load_adapter(out).apply(np.ones(4, np.float32)).shape
        (4,)
    """
    path = Path(path)
    for name in extra_files or {}:
        if "/" in name or name.startswith(".") or name in (CONFIG_NAME, WEIGHTS_NAME):
            raise ValueError(
                f"extra file name {name!r} must be a plain file name other than the adapter's own"
            )
    config_text = json.dumps(adapter.config.to_dict(), indent=2, sort_keys=True) + "\n"
    tensors = {name: np.ascontiguousarray(t, dtype=np.float32) for name, t in adapter.tensors().items()}
    weights = save(tensors, metadata={"format": "queryshift", "kind": adapter.config.kind})
    with atomic_directory(path, what="adapter") as tmp:
        (tmp / CONFIG_NAME).write_bytes(config_text.encode("utf-8"))
        (tmp / WEIGHTS_NAME).write_bytes(weights)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    logger.info("saved %r to %s", adapter, path)
    return path


def load_adapter(
    path: str | Path, *, strict: bool = True
) -> LinearAdapter | ResidualMLPAdapter | TwoLayerAdapter:
    """Load an adapter directory written by :func:`save_adapter`.

    Both files are read from the same version of the directory, so a save running meanwhile
    gives the old adapter or the new one, never a mix.

    Args:
        path: Directory holding ``adapter_config.json`` and ``adapter.safetensors``.
        strict: Refuse unknown config keys (``True``) or warn and ignore them (``False``).

    Raises:
        FileNotFoundError: ``path`` or one of the two files is missing.
        AdapterFormatError: Unknown format version, a field missing or of the wrong type, shape/dim
            mismatch, or weights that are not safetensors.
    """
    path = Path(path)
    snapshot = read_directory(path, [CONFIG_NAME, WEIGHTS_NAME], what="adapter directory")
    config_path = path / CONFIG_NAME
    weights_path = path / WEIGHTS_NAME
    if CONFIG_NAME not in snapshot.files:
        hint = ""
        if "config.json" in snapshot.names:
            hint = " (this looks like a LlamaIndex adapter: use queryshift.integrations.llamaindex.load_llamaindex_adapter)"
        raise FileNotFoundError(f"{config_path} not found{hint}")
    if WEIGHTS_NAME not in snapshot.files:
        pickled = [n for n in _PICKLE_NAMES if n in snapshot.names]
        if pickled:
            raise AdapterFormatError(
                f"{path} holds pickled weights {pickled}, which queryshift never loads; "
                f"it needs {WEIGHTS_NAME} (safetensors)"
            )
        raise FileNotFoundError(f"{weights_path} not found")
    config = parse_adapter_config(snapshot.files[CONFIG_NAME], source=config_path, strict=strict)
    try:
        tensors = load(snapshot.files[WEIGHTS_NAME])
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise AdapterFormatError(f"{weights_path} is not a valid safetensors file: {exc}") from exc
    try:
        return adapter_class(config.kind).from_tensors(config, tensors)
    except AdapterFormatError as exc:
        source = f", input_dim={config.in_dim}" if config.in_dim != config.dim else ""
        raise AdapterFormatError(
            f"{weights_path}: {exc} (config says kind={config.kind!r}, dim={config.dim}{source})"
        ) from exc


class SavesToDirectory:
    """Mixin giving an adapter class ``save(path)``, i.e. :func:`save_adapter` on itself."""

    def save(self, path: str | Path) -> Path:
        """Write ``adapter_config.json`` + ``adapter.safetensors`` to ``path`` atomically."""
        return save_adapter(self, path)  # type: ignore[arg-type]
