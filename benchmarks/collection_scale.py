"""Collection scale: ``train --collection`` memory and time, index-side vs scroll-everything; re-index throughput.

Run from the repository root (each part can run alone; results are merged into one file)::

    python -m benchmarks.collection_scale --part train     # 200k synthetic points, both paths
    python -m benchmarks.collection_scale --part quality   # Uber 10-K chunks, seeds 0-2, both paths
    python -m benchmarks.collection_scale --part reindex   # all-MiniLM-L6-v2, 1 and 2 workers

* **train**: a synthetic collection (``points`` seeded unit vectors of ``dim``, a sentence of
  text each) in ``QdrantClient(":memory:")``; labelled questions on a few hundred points, their
  vectors a fixed distortion of their point's plus noise (a synthetic encoder, so no model time).
  Each path runs in its own child process: ``run_training`` index-side (the default) and with
  ``in_memory=True`` (today's scroll of every vector). Peak RSS is sampled every 20 ms during
  ``run_training``; the store's own memory (RSS just before) is reported apart, because with a
  Qdrant server (``--qdrant-url``) it lives in the server, not in this process. Vectors
  fetched into the process are counted with a wrapper around the client.
* **quality**: the Uber chunks (``../shared/data/finetune-embedding/val_dataset.json``) with
  all-MiniLM-L6-v2 vectors in a local collection; 30% of the questions held out (query split,
  seed 0); the adapter trained by each path on the rest (default recipe) and scored on the
  held-out questions by searching the collection (nDCG@10), per seed.
* **reindex**: ``reindex_collection`` of ``reindex_points`` synthetic passages with
  all-MiniLM-L6-v2 in-process (1 worker) and with an :class:`~queryshift.encoder_pool.EncoderPool`
  of 2 CPU workers; points/s over the copy, the pool's start-up apart.

Writes ``benchmarks/results/collection_scale.json`` and ``.md`` (command, machine, load).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import queryshift
from queryshift.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "finetune-embedding" / "val_dataset.json"
)
CONFIG: dict[str, Any] = {
    "points": 200_000,
    "dim": 128,
    "labelled_points": 60,
    "questions_per_point": 2,
    # Few questions and epochs: local mode searches by brute force in numpy (~0.4 s per search at
    # 200k x 128 on this loaded machine), and index-side validation is one search per question,
    # candidate and epoch; a server's HNSW answers in about a millisecond.
    "train": {"epochs": 2, "hard_negatives": 8, "pseudo_queries": 1, "pseudo_max_documents": 2000},
    "quality_seeds": [0, 1, 2],
    "reindex_points": 1500,
    "reindex_workers": [1, 2],
    "seed": 0,
}
WORDS = "revenue cost growth market driver rider trip city fare tax loss income share platform".split()


class PeakRSS:
    """Samples this process's RSS every 20 ms in a thread; ``peak`` is the largest seen (bytes)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


class FetchCounter:
    """Forwards to a client; counts calls and the vectors each answer carries into the process."""

    def __init__(self, client: Any) -> None:
        self.client, self.vectors, self.calls = client, 0, {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            result = method(*args, **kwargs)
            records = result[0] if name == "scroll" else getattr(result, "points", result)
            if isinstance(records, list):
                self.vectors += sum(getattr(r, "vector", None) is not None for r in records)
            return result

        return counted


class SyntheticEncoder:
    """ "about N vK" → point N's vector through a fixed distortion plus noise; other texts → a hash vector."""

    model_id = "synthetic"

    def __init__(self, labelled: dict[int, np.ndarray], dim: int, seed: int) -> None:
        self.labelled, self.dim = labelled, dim
        self.distortion = np.eye(dim) + np.random.default_rng(seed).normal(
            scale=0.3 / np.sqrt(dim), size=(dim, dim)
        )

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = text.split()
            rng = np.random.default_rng(abs(hash(text)) % 2**32)
            if words[0] == "about":
                rows.append(
                    self.labelled[int(words[1])] @ self.distortion + rng.normal(scale=0.05, size=self.dim)
                )
            else:
                rows.append(rng.normal(size=self.dim))
        return np.asarray(rows, dtype=np.float32)

    encode_documents = encode_queries


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _child_train(mode: str, points: int, dim: int, out: Path) -> None:
    """One path of the train part, in its own process (its RSS is the measurement)."""
    from qdrant_client import QdrantClient, models

    from queryshift.pipeline import run_training
    from queryshift.training import TrainingConfig

    rng = np.random.default_rng(CONFIG["seed"])
    client = QdrantClient(":memory:")
    client.create_collection("bench", vectors_config=models.VectorParams(size=dim, distance="Cosine"))
    started = time.perf_counter()
    chunk = 20_000
    labelled_ids = list(range(0, points, points // CONFIG["labelled_points"]))[: CONFIG["labelled_points"]]
    labelled: dict[int, np.ndarray] = {}
    for start in range(
        0, points, chunk
    ):  # built in chunks: the benchmark itself never holds the corpus twice
        vectors = _unit(rng, min(chunk, points - start), dim)
        for i in labelled_ids:
            if start <= i < start + len(vectors):
                labelled[i] = vectors[i - start]
        texts = [
            " ".join(rng.choice(WORDS, size=9)).capitalize() + f" in market {i % 97}."
            for i in range(start, start + len(vectors))
        ]
        client.upload_collection(
            "bench",
            vectors=vectors,
            payload=[{"text": t} for t in texts],
            ids=list(range(start, start + len(vectors))),
        )
    build_s = time.perf_counter() - started
    tmp = Path(tempfile.mkdtemp())
    pairs = tmp / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"query": f"about {i} v{k}", "point_id": i}) + "\n"
            for i in labelled_ids
            for k in range(CONFIG["questions_per_point"])
        )
    )
    del vectors, texts
    gc.collect()
    import psutil

    store_rss = psutil.Process().memory_info().rss
    counter = FetchCounter(client)
    config = TrainingConfig(**CONFIG["train"], seed=CONFIG["seed"])
    tick = time.perf_counter()
    with PeakRSS() as peak:
        run = run_training(
            tmp / "adapter",
            qdrant=counter,
            collection="bench",
            pairs=pairs,
            encoder=SyntheticEncoder(labelled, dim, CONFIG["seed"]),
            config=config,
            text_field="text",
            holdout="query",
            test_fraction=0.3,
            in_memory=mode == "in_memory",
        )
    seconds = time.perf_counter() - tick
    summary = run.adapter.config.training
    row = {
        "mode": mode,
        "points": points,
        "dim": dim,
        "build_s": round(build_s, 1),
        "train_s": round(seconds, 3),  # ms: a small run trains in well under 0.1 s
        "store_rss_mib": round(store_rss / 2**20, 1),
        "peak_rss_mib": round(peak.peak / 2**20, 1),
        "peak_over_store_mib": round((peak.peak - store_rss) / 2**20, 1),
        "vectors_fetched": counter.vectors,
        "calls": counter.calls,
        "train_queries": summary["train_queries"],
        "pseudo_queries": summary["pseudo_queries"],
        "chosen": [summary["chosen_epoch"], summary["chosen_alpha"]],
        "validation_ndcg@10": {k: v["adapted"]["ndcg@10"] for k, v in summary["validation"].items()},
    }
    out.write_text(json.dumps(row))


def _quality() -> list[dict[str, Any]]:
    """Held-out nDCG@10 of index-side and in-memory training on the Uber chunks, per seed."""
    from qdrant_client import QdrantClient, models

    from queryshift.data import load_llamaindex_json
    from queryshift.embeddings import SentenceTransformerEncoder
    from queryshift.evaluation import score_rankings
    from queryshift.pipeline import run_training
    from queryshift.splits import split_by_query
    from queryshift.training import TrainingConfig

    dataset = load_llamaindex_json(DATA)
    encoder = SentenceTransformerEncoder()
    doc_ids = sorted(dataset.documents)
    vectors = encoder.encode_documents([dataset.documents[d] for d in doc_ids])  # (395, 384), cached
    client = QdrantClient(":memory:")
    client.create_collection(
        "uber", vectors_config=models.VectorParams(size=vectors.shape[1], distance="Cosine")
    )
    client.upload_collection(
        "uber", vectors=vectors, ids=doc_ids, payload=[{"text": dataset.documents[d]} for d in doc_ids]
    )
    split = split_by_query(dataset, test_fraction=0.3, seed=0)
    tmp = Path(tempfile.mkdtemp())
    pairs = tmp / "pairs.jsonl"
    rows_ = [
        {"query": dataset.queries[q], "point_ids": sorted(dataset.qrels[q]), "id": q} for q in split.train
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows_))
    test_vectors = encoder.encode_queries([dataset.queries[q] for q in split.test])  # (n_test, 384)
    qrels = [dataset.qrels[q] for q in split.test]

    def ndcg(query_vectors: np.ndarray) -> float:
        requests = [models.QueryRequest(query=v.tolist(), limit=10) for v in query_vectors]
        rankings = [[str(p.id) for p in r.points] for r in client.query_batch_points("uber", requests)]
        return float(score_rankings(rankings, qrels, metrics=["ndcg@10"])["ndcg@10"].mean())

    rows = [{"mode": "base", "seed": None, "ndcg@10": round(ndcg(test_vectors), 4), "train_s": 0.0}]
    for seed in CONFIG["quality_seeds"]:
        for mode in ("index_side", "in_memory"):
            tick = time.perf_counter()
            run = run_training(
                tmp / f"{mode}-{seed}",
                qdrant=client,
                collection="uber",
                pairs=pairs,
                encoder=encoder,
                config=TrainingConfig(seed=seed),
                text_field="text",
                in_memory=mode == "in_memory",
            )
            seconds = time.perf_counter() - tick
            rows.append(
                {
                    "mode": mode,
                    "seed": seed,
                    "ndcg@10": round(ndcg(run.adapter.apply(test_vectors)), 4),
                    "train_s": round(seconds, 3),  # ms: a small run trains in well under 0.1 s
                    "chosen": [run.result.chosen.epoch, run.result.chosen.alpha],
                }
            )
            print(rows[-1], flush=True)  # noqa: T201 - progress of a long benchmark
    return rows


def _reindex() -> list[dict[str, Any]]:
    """Re-index throughput with all-MiniLM-L6-v2, in-process and with a 2-worker pool."""
    from qdrant_client import QdrantClient, models

    from queryshift.embeddings import SentenceTransformerEncoder
    from queryshift.encoder_pool import EncoderPool, pool_devices
    from queryshift.reindex import reindex_collection

    n = CONFIG["reindex_points"]
    rng = np.random.default_rng(CONFIG["seed"])
    texts = [" ".join(rng.choice(WORDS, size=24)).capitalize() + f" (passage {i})." for i in range(n)]
    rows = []
    for workers in CONFIG["reindex_workers"]:
        client = QdrantClient(":memory:")
        client.create_collection("v1", vectors_config=models.VectorParams(size=8, distance="Cosine"))
        client.upload_collection(
            "v1", vectors=_unit(rng, n, 8), ids=list(range(n)), payload=[{"text": t} for t in texts]
        )
        encoder = SentenceTransformerEncoder(cache=False, device="cpu")
        _ = encoder.model  # loaded before timing, as in both variants
        kwargs = dict(
            source_collection="v1",
            target_collection="v2",
            alias="docs",
            text_field="text",
            batch_size=256,
            allow_dim_change=True,
        )
        tick = time.perf_counter()
        if workers == 1:
            startup = 0.0
            report = reindex_collection(client, encoder=encoder, **kwargs)
        else:
            with EncoderPool(encoder, pool_devices(workers, "cpu")) as pooled:
                pooled.encode_documents(["warm-up"] * workers * 4)  # every worker has loaded the model
                startup = time.perf_counter() - tick
                tick = time.perf_counter()
                report = reindex_collection(client, encoder=pooled, **kwargs)
        seconds = time.perf_counter() - tick
        rows.append(
            {
                "workers": workers,
                "points": report.points,
                "copy_s": round(seconds, 1),
                "points_per_s": round(report.points / seconds, 1),
                "embed_points_per_s": round(report.docs_per_second, 1),
                "pool_startup_s": round(startup, 1),
                "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            }
        )
        print(rows[-1], flush=True)  # noqa: T201 - progress of a long benchmark
        client.close()
    return rows


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# Collection scale", "", f"Command: `{report.get('command', '')}`", ""]
    lines += [f"- {note}" for note in report.get("notes", [])] + ([""] if report.get("notes") else [])
    m = report["machine"]
    lines += [
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, shared with other jobs; load average at "
        f"the end {m['load_average_1_5_15']}. queryshift {report['queryshift_version']}.",
        "",
    ]
    if "train" in report:
        lines += [
            "## `train --collection`: memory and time",
            "",
            "| path | points × dim | train s | peak RSS MiB | store RSS MiB | peak over store MiB | vectors fetched | searches (batches) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in report["train"]:
            searches = r["calls"].get("query_batch_points", 0)
            lines.append(
                f"| {r['mode']} | {r['points']:,} × {r['dim']} | {r['train_s']} | {r['peak_rss_mib']} | "
                f"{r['store_rss_mib']} | {r['peak_over_store_mib']} | {r['vectors_fetched']:,} | {searches} |"
            )
        lines.append("")
    if "quality" in report:
        lines += [
            "## Quality: Uber chunks, held-out questions (nDCG@10, searching the collection)",
            "",
            "| path | seed | nDCG@10 | train s | chosen (epoch, alpha) |",
            "|---|---|---|---|---|",
        ]
        for r in report["quality"]:
            lines.append(
                f"| {r['mode']} | {r['seed']} | {r['ndcg@10']:.4f} | {r['train_s']} | {r.get('chosen', '')} |"
            )
        by_mode: dict[str, list[float]] = {}
        for r in report["quality"]:
            if r["seed"] is not None:
                by_mode.setdefault(r["mode"], []).append(r["ndcg@10"])
        for mode, values in by_mode.items():
            lines.append(
                f"\n{mode}: mean {np.mean(values):.4f}, seed range {min(values):.4f}–{max(values):.4f}"
            )
        lines.append("")
    if "reindex" in report:
        lines += [
            "## Re-index throughput (all-MiniLM-L6-v2, CPU)",
            "",
            "| workers | points | copy s | points/s | embedding points/s | pool start-up s | load 1/5/15 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["reindex"]:
            lines.append(
                f"| {r['workers']} | {r['points']} | {r['copy_s']} | {r['points_per_s']} | "
                f"{r['embed_points_per_s']} | {r['pool_startup_s']} | {r['load_average_1_5_15']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["train", "quality", "reindex"], action="append", default=[])
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=[],
        help="collection_scale.json files of parts run apart (e.g. at once, into other --output-dir): merged",
    )
    parser.add_argument("--points", type=int, default=CONFIG["points"])
    parser.add_argument("--dim", type=int, default=CONFIG["dim"])
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["index_side", "in_memory"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_train(args.child, args.points, args.dim, args.child_out)
        return {}
    from benchmarks.qdrant_latency import machine

    json_path = args.output_dir / "collection_scale.json"
    report: dict[str, Any] = json.loads(json_path.read_text()) if json_path.is_file() else {}
    commands = report.get("commands", {})
    notes = report.get("notes", [])
    for other in args.merge:
        merged = json.loads(other.read_text())
        for part in ("train", "quality", "reindex"):
            if part in merged:
                report[part] = merged[part]
                commands[part] = merged["commands"][part]
                notes.append(
                    f"{part}: run with `{commands[part]}`, load at its end {merged['machine']['load_average_1_5_15']}"
                )
    for part in args.part:
        if part == "train":
            rows = []
            for mode in ("index_side", "in_memory"):
                out = Path(tempfile.mkdtemp()) / "row.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.collection_scale",
                    "--part",
                    "train",
                    "--points",
                    str(args.points),
                    "--dim",
                    str(args.dim),
                    "--child",
                    mode,
                    "--child-out",
                    str(out),
                ]
                subprocess.run(cmd, check=True)
                rows.append(json.loads(out.read_text()))
                print(rows[-1], flush=True)  # noqa: T201 - progress of a long benchmark
            report["train"] = rows
        elif part == "quality":
            report["quality"] = _quality()
        else:
            report["reindex"] = _reindex()
        commands[part] = "python -m benchmarks.collection_scale " + shlex.join(
            argv if argv is not None else sys.argv[1:]
        )
    report.update(
        notes=notes,
        commands=commands,
        command="; ".join(commands.values()),
        config=CONFIG,
        machine=machine(),
        queryshift_version=queryshift.__version__,
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    md_path = args.output_dir / "collection_scale.md"
    atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    atomic_write_text(md_path, _markdown(report) + "\n")
    return {"json": json_path, "md": md_path}


if __name__ == "__main__":
    main()
