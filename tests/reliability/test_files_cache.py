"""The embedding cache verifies what it reads: a damaged shard is recomputed, with one warning naming it."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os

import numpy as np
import pytest

from queryshift.embeddings import EmbeddingCache

TEXTS = [f"text number {i}" for i in range(12)]


def _embed(texts: list[str]) -> np.ndarray:
    """A deterministic fake model: each text's vector is unique, so a swapped row is visible."""
    return np.array([[len(t), sum(map(ord, t)) % 97, i % 5, 1.0] for i, t in enumerate(texts)], np.float32)


class _Counter:
    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, texts):
        self.texts += texts
        return np.stack([_embed([t])[0] for t in texts])


def _expected() -> np.ndarray:
    return np.stack([_embed([t])[0] for t in TEXTS])  # (12, 4)


def _filled(tmp_path, suffix: str = ".npz") -> list:
    EmbeddingCache(tmp_path).get_or_compute("m", "query", TEXTS, _Counter())
    shards = sorted(p for p in tmp_path.rglob("shard-*") if p.suffix == suffix)
    assert len(shards) == 1
    return shards


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _reread(tmp_path, caplog):
    counter = _Counter()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="queryshift.embeddings"):
        vectors = EmbeddingCache(tmp_path).get_or_compute("m", "query", TEXTS, counter)
    np.testing.assert_array_equal(vectors, _expected())
    return counter.texts, _warnings(caplog)


@pytest.mark.parametrize("keep", [0, 0.5, 0.99])
def test_a_truncated_or_empty_shard_is_recomputed_with_one_warning(tmp_path, caplog, keep):
    (shard,) = _filled(tmp_path, ".npz")
    data = shard.read_bytes()
    shard.write_bytes(data[: int(len(data) * keep)])
    recomputed, warned = _reread(tmp_path, caplog)
    assert sorted(recomputed) == sorted(TEXTS)
    assert len(warned) == 1 and str(shard) in warned[0] and "\n" not in warned[0]
    again, warned = _reread(tmp_path, caplog)  # the damaged shard was replaced: silent and cached
    assert again == [] and warned == []


@pytest.mark.parametrize("what", ["vectors", "hashes"])
def test_a_shard_with_reordered_rows_is_detected(tmp_path, caplog, what):
    (shard,) = _filled(tmp_path)
    with np.load(shard) as data:
        arrays = {name: data[name] for name in data.files}
    arrays[what] = arrays[what][::-1].copy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    shard.write_bytes(buffer.getvalue())
    recomputed, warned = _reread(tmp_path, caplog)  # today: wrong vectors, no error
    assert sorted(recomputed) == sorted(TEXTS)
    assert len(warned) == 1 and str(shard) in warned[0] and "checksum" in warned[0]


def test_shards_without_checksums_from_0_1_are_recomputed_once(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    folder = cache._folder("m", "query")
    folder.mkdir(parents=True)
    np.save(folder / "shard-aaaa.npy", _expected()[::-1])  # rows in the wrong order, undetectable
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in TEXTS]
    (folder / "shard-aaaa.json").write_text(json.dumps(hashes))  # 0.1 read this as valid
    caplog.set_level(logging.WARNING, logger="queryshift.embeddings")
    vectors = cache.get_or_compute("m", "query", TEXTS, _Counter())
    np.testing.assert_array_equal(vectors, _expected())
    (warned,) = _warnings(caplog)
    assert str(folder) in warned and "cannot be verified" in warned
    assert sorted(p.suffix for p in folder.iterdir()) == [".npz"]


def test_disk_full_while_caching_warns_once_and_leaves_nothing_half_written(tmp_path, caplog, monkeypatch):
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    caplog.set_level(logging.WARNING, logger="queryshift.embeddings")
    vectors = EmbeddingCache(tmp_path).get_or_compute("m", "query", TEXTS, _Counter())
    np.testing.assert_array_equal(vectors, _expected())  # the run goes on with what it computed
    (warned,) = _warnings(caplog)
    assert "no space left" in warned and "shard-" in warned and str(tmp_path) in warned
    monkeypatch.setattr(os, "write", real_write)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    recomputed, warned = _reread(tmp_path, caplog)
    assert sorted(recomputed) == sorted(TEXTS) and warned == []


def test_cache_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        EmbeddingCache(tmp_path).get_or_compute("m", "query", TEXTS, _Counter())
        shards = list(tmp_path.rglob("shard-*"))
    finally:
        os.umask(old)
    assert shards and {shard.stat().st_mode & 0o777 for shard in shards} == {0o644}
    assert shards[0].parent.stat().st_mode & 0o777 == 0o755
