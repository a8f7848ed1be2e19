"""Sharded re-index: two processes fill one target, each resumable after a kill; one final switch.

A local storage folder admits one process at a time, so here the shard processes run one after
the other; against a Qdrant server (``--qdrant-url``) the same processes run at once.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from qdrant_client import QdrantClient, models

from queryshift.cli import main
from queryshift.reindex import ReindexError, WriteOptions, reindex_collection, verify_and_switch
from queryshift.sharding import Shard

DIM = 8
N_POINTS = 60
UUIDS = [
    "d193a4ce-e62b-415c-a2e4-91dbc65ba284",
    "0b6c2f3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
    "7f1e2d3c-4b5a-4968-8776-655443322110",
]


class CountingEncoder:
    """Hash vectors; after ``stop_after`` calls it raises, or SIGKILLs its own process (``kill=True``)."""

    model_id = "hash-v2"

    def __init__(self, stop_after: int | None = None, *, kill: bool = False) -> None:
        self.stop_after, self.kill, self.calls = stop_after, kill, 0

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        if self.stop_after is not None and self.calls >= self.stop_after:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handlers: a real kill
            raise RuntimeError("encoder crashed mid-copy (injected)")
        self.calls += 1
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).normal(size=DIM))
        return np.asarray(rows, dtype=np.float32)

    encode_queries = encode_documents


def _ids() -> list[int | str]:
    return [*range(N_POINTS - len(UUIDS)), *UUIDS]


def _shard_process(storage: str, shard: str, out: str, stop_after: int | None, kill: bool) -> None:
    """One re-index worker: what `queryshift reindex --shard I/N` runs on one machine."""
    client = QdrantClient(path=storage)
    try:
        report = reindex_collection(
            client,
            source_collection="v1",
            target_collection="v2",
            alias="docs",
            encoder=CountingEncoder(stop_after, kill=kill),
            text_field="text",
            batch_size=8,
            shard=Shard.parse(shard),
            write=WriteOptions(wait=False, ordering=models.WriteOrdering.MEDIUM, settle_seconds=5),
        )
    finally:
        client.close()
    Path(out).write_text(json.dumps(report.to_dict()))


def _run(storage: Path, shard: str, tmp_path: Path, stop_after: int | None = None, kill: bool = False):
    """Run one shard in its own process (forked: no re-import); returns (exit code, report or None)."""
    out = tmp_path / f"report-{shard.replace('/', '_')}-{stop_after}.json"
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_shard_process, args=(str(storage), shard, str(out), stop_after, kill))
    proc.start()
    proc.join(60)
    return proc.exitcode, json.loads(out.read_text()) if out.is_file() else None


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "qdrant"
    client = QdrantClient(path=str(path))
    client.create_collection("v1", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    client.upsert(
        "v1",
        [
            models.PointStruct(id=i, vector=[1.0] * DIM, payload={"text": f"passage {i}", "n": k})
            for k, i in enumerate(_ids())
        ],
    )
    client.close()
    return path


def test_shards_are_disjoint_cover_every_id_and_do_not_depend_on_the_process() -> None:
    ids = [*range(1000), *UUIDS, UUIDS[0].upper()]
    owners = [[s for s in range(4) if Shard(s, 4).owns(i)] for i in ids]
    assert all(len(o) == 1 for o in owners)  # exactly one shard per id
    sizes = np.bincount([o[0] for o in owners])
    assert sizes.min() > 200  # balanced: 1000 sequential ids, no shard starved
    assert owners[-1] == owners[1000]  # a UUID in any case is the same point
    assert Shard.parse(" 3/4") == Shard(3, 4) and str(Shard(3, 4)) == "3/4"
    for bad in ("4/4", "1", "a/2", "-1/2", "0/0"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_two_shard_processes_fill_one_target_resume_after_a_kill_and_switch_once(
    storage: Path, tmp_path: Path
) -> None:
    # Shard 0 is killed (SIGKILL) after its first batch, shard 1 crashes after its first batch
    # (encoder call 1 is the planning probe of one text, call 2 the first batch).
    code, _ = _run(storage, "0/2", tmp_path, stop_after=2, kill=True)
    assert code == -signal.SIGKILL
    code, _ = _run(storage, "1/2", tmp_path, stop_after=2)
    assert code == 1
    client = QdrantClient(path=str(storage))
    partial = client.count("v2", exact=True).count
    assert 0 < partial < N_POINTS
    with pytest.raises(ReindexError, match="missing from the target"):  # not all shards done: no switch
        verify_and_switch(client, source_collection="v1", target_collection="v2", alias="docs")
    assert client.get_aliases().aliases == []
    client.close()

    # Each shard resumes on its own: it embeds only its points the killed run did not write.
    code, first = _run(storage, "0/2", tmp_path)
    assert code == 0 and first["skipped"] > 0 and not first["alias_switched"]
    code, second = _run(storage, "1/2", tmp_path)
    assert code == 0 and second["skipped"] > 0 and not second["alias_switched"]
    own = [[i for i in _ids() if Shard(s, 2).owns(i)] for s in (0, 1)]
    assert first["points"] == len(own[0]) and second["points"] == len(own[1])
    assert first["written"] + first["skipped"] + second["written"] + second["skipped"] == N_POINTS

    client = QdrantClient(path=str(storage))
    assert client.get_aliases().aliases == []  # shards never switch
    client.close()
    args = ["reindex", "--qdrant-path", str(storage), "--source", "v1", "--target", "v2", "--alias", "docs"]
    res = CliRunner().invoke(main, [*args, "--verify-and-switch", "--json"])  # no model needed
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"target_collection": "v2", "alias": "docs", "alias_switched": True}
    client = QdrantClient(path=str(storage))
    assert verify_and_switch(client, source_collection="v1", target_collection="v2", alias="docs") is False
    assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [("docs", "v2")]
    records, _ = client.scroll("v2", limit=10 * N_POINTS, with_payload=True, with_vectors=True)
    assert client.count("v2", exact=True).count == N_POINTS
    assert sorted(map(str, (r.id for r in records))) == sorted(map(str, _ids()))  # every point once
    encoder = CountingEncoder()
    for r in records:  # each vector is the new model's, of the point's own text
        assert r.payload["text"] == f"passage {r.id}"
        want = encoder.encode_documents([r.payload["text"]])[0]
        got = np.asarray(r.vector)
        np.testing.assert_allclose(got / np.linalg.norm(got), want / np.linalg.norm(want), atol=1e-5)
    client.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "2/2", "--model", "m", "--text-field", "t"], "shard index must be in [0, 2)"),
        (["--shard", "half", "--model", "m", "--text-field", "t"], "expected a shard as I/N"),
        (["--shard", "0/2", "--verify-and-switch"], "drop --shard"),
        (["--text-field", "t"], "--model is required"),
    ],
)
def test_cli_shard_flags_are_checked_before_any_work(tmp_path: Path, extra: list[str], message: str) -> None:
    storage = tmp_path / "qdrant"
    args = ["reindex", "--qdrant-path", str(storage), "--source", "v1", "--target", "v2", "--alias", "docs"]
    res = CliRunner().invoke(main, [*args, *extra])
    assert res.exit_code != 0 and message in res.output
    assert not storage.exists()  # refused before the store was opened


class RecordingClient:
    """Forwards to a client and records the keyword arguments of every call."""

    def __init__(self, client: QdrantClient) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def recorded(*args, **kwargs):
            self.calls.append((name, kwargs))
            return method(*args, **kwargs)

        return recorded


def test_cluster_settings_reach_every_read_and_write() -> None:
    client = QdrantClient(":memory:")
    client.create_collection("v1", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    client.upsert(
        "v1", [models.PointStruct(id=i, vector=[1.0] * DIM, payload={"text": f"p {i}"}) for i in range(20)]
    )
    recording = RecordingClient(client)
    write = WriteOptions(shard_key_selector="tenant-a", ordering=models.WriteOrdering.STRONG, wait=False)
    report = reindex_collection(
        recording,
        source_collection="v1",
        target_collection="v2",
        alias="docs",
        encoder=CountingEncoder(),
        text_field="text",
        batch_size=6,
        write=write,
    )
    assert report.points == 20 and report.alias_switched
    upserts = [kw for name, kw in recording.calls if name == "upsert"]
    assert len(upserts) == 4 and all(
        kw["wait"] is False and kw["ordering"] == "strong" and kw["shard_key_selector"] == "tenant-a"
        for kw in upserts
    )
    copy_reads = [
        kw for name, kw in recording.calls if name in ("retrieve", "count") and kw.get("shard_key_selector")
    ]
    assert len(copy_reads) >= 4 + 4 + 2  # presence checks, verification, the two final counts
