"""The on-disk embedding cache: each text is embedded at most once per model and side.

Vectors are stored in shards keyed by the model id, the side (query or document) and a sha256
of each text. A shard is verified on every read (a digest over its row hashes and vectors), so
a truncated, emptied or reordered file is recomputed instead of read as truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from queryshift.atomic import atomic_write_bytes, atomic_write_text, remove_abandoned_in

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$QUERYSHIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/queryshift``, else ``~/.cache/queryshift``."""
    if os.environ.get("QUERYSHIFT_CACHE_DIR"):
        return Path(os.environ["QUERYSHIFT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "queryshift"


class EmbeddingCache:
    """Vectors on disk, keyed by (model id, side, sha256 of the text), verified on every read.

    Each call that embeds new texts writes one shard, ``shard-<id>.npz``, atomically: the text
    hashes, the vectors ``(n, dim)`` and a sha256 digest over both, so a shard that was truncated,
    emptied, or had its rows reordered is detected when read. Such a shard is removed, its
    vectors are recomputed, and one warning names it. Shards of queryshift 0.1 (``.npy`` +
    ``.json``, no digest) cannot be verified and are treated the same way, once.

    Writing is best-effort: concurrent runs never corrupt the cache (at worst a text is embedded
    twice), and a full disk costs a warning, not the run.

    Args:
        directory: Root folder; one sub-folder per model and side.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir() / "embeddings"
        self._loaded: dict[Path, dict[str, np.ndarray]] = {}

    def _folder(self, model_id: str, side: str) -> Path:
        key = hashlib.sha256(model_id.encode()).hexdigest()[:16]
        return self.directory / key / side

    def _index(self, folder: Path) -> dict[str, np.ndarray]:
        if folder not in self._loaded:
            index: dict[str, np.ndarray] = {}
            if folder.is_dir():
                for shard in sorted(folder.glob("shard-*.npz")):
                    rows = _read_shard(shard)
                    if rows is not None:
                        index.update(rows)
                _drop_legacy_shards(folder)
            self._loaded[folder] = index
        return self._loaded[folder]

    def get_or_compute(self, model_id: str, side: str, texts: list[str], compute) -> np.ndarray:
        """Return vectors for ``texts``, calling ``compute(missing_texts)`` only for uncached ones."""
        folder = self._folder(model_id, side)
        index = self._index(folder)
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in index}.items())
        if missing:
            new = np.asarray(compute([t for _, t in missing]), dtype=np.float32)  # (n_missing, dim)
            new_hashes = [h for h, _ in missing]
            _write_shard(folder, new_hashes, new, model_id)
            index.update(zip(new_hashes, new, strict=True))
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.stack([index[h] for h in hashes]).astype(np.float32)  # (n, dim)


_SHARD_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def _shard_digest(hashes: np.ndarray, vectors: np.ndarray) -> str:
    """sha256 over the row hashes and the vectors, in row order: a reordered row changes it."""
    digest = hashlib.sha256("\n".join(hashes.tolist()).encode())
    digest.update(repr(vectors.shape).encode())
    digest.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return digest.hexdigest()


def _write_shard(folder: Path, hashes: list[str], vectors: np.ndarray, model_id: str) -> None:
    """Write one verified shard; a failure (disk full, read-only cache) is a warning, not an error."""
    keys = np.asarray(hashes, dtype="<U64")  # (n,)
    buffer = io.BytesIO()
    np.savez(buffer, hashes=keys, vectors=vectors, digest=np.asarray(_shard_digest(keys, vectors)))
    name = f"shard-{hashlib.sha256(''.join(hashes).encode()).hexdigest()[:16]}-{os.urandom(4).hex()}.npz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / name, buffer.getvalue())
        if not (folder.parent / "model.json").exists():
            atomic_write_text(folder.parent / "model.json", json.dumps({"model_id": model_id}))
    except OSError as exc:
        logger.warning(
            "embedding cache not written, %d vectors will be recomputed next time: %s", len(hashes), exc
        )
        return
    remove_abandoned_in(folder)


def _read_shard(path: Path) -> dict[str, np.ndarray] | None:
    """The rows of a shard that passes its digest check; ``None`` (and the shard removed) otherwise."""
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
            hashes, vectors, digest = data["hashes"], data["vectors"], str(data["digest"])
        problem = None
        if vectors.ndim != 2 or hashes.shape != (len(vectors),) or vectors.dtype != np.float32:
            problem = f"shape {vectors.shape} for {hashes.shape} rows"
        elif _shard_digest(hashes, vectors) != digest:
            problem = "its checksum does not match (rows changed or reordered)"
    except FileNotFoundError:  # removed by a concurrent run that found it bad
        return None
    except _SHARD_ERRORS as exc:
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem is None:
        return dict(zip(hashes.tolist(), vectors, strict=True))
    logger.warning(
        "embedding cache shard %s is corrupt: %s; removing it, its vectors will be recomputed", path, problem
    )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


def _drop_legacy_shards(folder: Path) -> None:
    """Remove queryshift 0.1 shards (``.npy`` + ``.json`` without a digest): they cannot be verified."""
    legacy = sorted(folder.glob("shard-*.json")) + sorted(folder.glob("shard-*.npy"))
    if not legacy:
        return
    logger.warning(
        "%d embedding cache files in %s predate checksums and cannot be verified; removing them, "
        "their vectors will be recomputed",
        len(legacy),
        folder,
    )
    for path in legacy:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
