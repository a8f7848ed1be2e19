"""The public example data of the quickstart: fetched once into the cache, or read from a local copy."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

from queryshift.atomic import atomic_write_bytes
from queryshift.embeddings import default_cache_dir

logger = logging.getLogger(__name__)

__all__ = ["EXAMPLE_FILES", "EXAMPLE_URL", "default_demo_output", "example_data_dir"]

EXAMPLE_URL = "https://raw.githubusercontent.com/run-llama/finetune-embedding/main/data/"
EXAMPLE_FILES = ("train_dataset.json", "val_dataset.json")


def default_demo_output() -> Path:
    """Where ``queryshift demo`` saves its adapters by default: ``<cache>/demo``, not the working directory.

    Example:
        >>> default_demo_output().name
        'demo'
    """
    return default_cache_dir() / "demo"


def example_data_dir(data: str | Path | None = None, *, timeout: float = 30.0) -> Path:
    """A folder holding ``train_dataset.json`` (Lyft 10-K) and ``val_dataset.json`` (Uber 10-K).

    Args:
        data: A local folder with both files (nothing is downloaded; a folder holding
            ``finetune-embedding/`` with them is accepted too), or ``None`` to use
            ``<cache>/example-data``, downloading missing files from run-llama/finetune-embedding.
        timeout: Seconds per download before giving up.

    Raises:
        FileNotFoundError: ``data`` lacks a file, or a download failed (the message says how to pass ``--data``).
    """
    if data is not None:
        folder = Path(data)
        if (folder / "finetune-embedding").is_dir():
            folder = folder / "finetune-embedding"
        missing = [name for name in EXAMPLE_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} is missing {missing}; expected the files of run-llama/finetune-embedding data/"
            )
        return folder
    folder = default_cache_dir() / "example-data"
    for name in EXAMPLE_FILES:
        target = folder / name
        if target.is_file():
            continue
        url = EXAMPLE_URL + name
        logger.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL
                payload = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise FileNotFoundError(
                f"could not download {url} ({exc}); on an offline machine pass a local copy with --data DIR"
            ) from exc
        atomic_write_bytes(target, payload)
    return folder
