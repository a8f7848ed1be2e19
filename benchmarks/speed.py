"""Speed: training time (queryshift vs LlamaIndex's engine), training at scale, query path, memory.

Run from the repository root::

    python -m benchmarks.speed            # full run
    python -m benchmarks.speed --quick    # smaller scale rows only (100k pairs at d=384), fewer repeats

Measures on this machine (CPU; the GPU rows are absent when torch sees no GPU):

* **Training time on the 668 Lyft pairs** (``finetune-embedding/train_dataset.json``): queryshift's
  ``train_adapter(TrainingConfig())`` end to end in a fresh process with an empty
  ``QUERYSHIFT_CACHE_DIR`` (model load + embedding + pseudo-queries + training, as ``queryshift train``
  runs it), and again with the vectors cached.
  LlamaIndex's ``EmbeddingAdapterFinetuneEngine`` times are read from
  ``benchmarks/results/quality-lyft-to-uber.json`` (measured by ``benchmarks/llamaindex_engine.py``;
  that engine embeds every batch with the base model, every epoch).
* **Scale**: one epoch of ``queryshift.training.fit`` on synthetic pairs (100k at d=384 and d=768, only
  d=384 with ``--quick``; 1M at d=384 and d=768 with ``--million``), each in a subprocess that reports its peak RSS
  (``resource.getrusage``).
* **Query path**: ``adapter.apply`` for one query and for a batch of 1,000 (linear, low-rank r=32,
  residual MLP h=512, d=384), next to the Qdrant figures in ``benchmarks/results/qdrant_latency.json``
  (quoted, not re-run).

Writes ``benchmarks/results/speed.{md,json,png}``.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The real data: $QUERYSHIFT_DATA_DIR, as for the tests (tests/conftest.py), default ../shared/data.
LYFT = (
    Path(os.environ.get("QUERYSHIFT_DATA_DIR") or ROOT / ".." / "shared" / "data")
    / "finetune-embedding"
    / "train_dataset.json"
)
CONFIG = {
    "lyft_data": "../shared/data/finetune-embedding/train_dataset.json",
    # (pairs, dim). --million adds [1_000_000, 384] and [1_000_000, 768] (about 10x the 100k epoch time).
    "scale_runs": [[100_000, 384], [100_000, 768]],
    "scale_documents_per_pair": 0.5,
    "scale_negatives_per_query": 8,
    "apply_dim": 384,
    "apply_repeats_single": 3000,
    "apply_repeats_batch": 50,
    "apply_batch": 1000,
    "seed": 0,
    # Sized like issue 15's scientific-abstracts set (809 labelled questions, 5,183 abstracts).
    "abstracts_set": {
        "documents": 5183,
        "dim": 384,
        "topics": 64,
        "labelled": 809,
        "asked_documents": 700,
        "pseudo_per_document": 3,
        "pseudo_documents": 5000,
        "document_spread": 0.3,
        "question_distortion": 1.5,
        "question_noise": 1.5,
        "pseudo_noise": 1.2,
    },
}

# Figures before issue 15's training and apply speed-ups (commit b97801d), for the targets table:
# benchmarks/results/speed.json of that commit (idle machine, load ≈ 2 = the benchmark itself),
# and the old code's run of the abstracts-sized set, measured on a shared machine.
BEFORE = {
    "lyft_cached_train_s": 6.91,
    "abstracts_sized_train_s": 373.3,
    "abstracts_sized_note": "old code (b97801d) on abstracts_sized_set(), 53.8 CPU s, load average 11 on 2 cores; "
    "issue 15 measured about 10 min on the real 5,183-abstract set at load 6",
    "epoch_1m_384_s": 64.81,
    "bare_steps_1m_384_s": 22.0,
    "peak_rss_1m_384_mib": 3786.6,
    "apply_single_us": {"linear 384×384": 23.56, "low_rank r=32": 16.1, "residual_mlp h=512": 59.69},
    "first_run_s": 54.0,  # issue 15's figure (27 s model + pairs, 19 s pseudo-queries)
}
TARGETS = {"lyft_cached_train_s": 1.0, "abstracts_sized_train_s": 20.0, "epoch_over_bare": 1.3,
           "peak_rss_over_pairs": 1.5, "apply_linear_single_us": 8.0, "first_run_s": 25.0}  # fmt: skip

# ----------------------------------------------------------------------------- child processes


def _child_e2e(data: str) -> dict[str, Any]:
    """Train on ``data`` in this process: embedding (honouring QUERYSHIFT_CACHE_DIR) plus training."""
    started = time.perf_counter()
    from queryshift.data import load_dataset
    from queryshift.embeddings import SentenceTransformerEncoder, embed_dataset
    from queryshift.pipeline import pseudo_queries_for
    from queryshift.training import TrainingConfig, train_adapter

    imported = time.perf_counter()
    dataset = load_dataset(data)
    encoder = SentenceTransformerEncoder()
    embedded = embed_dataset(dataset, encoder)
    embedded_at = time.perf_counter()
    config = TrainingConfig()
    pseudo = pseudo_queries_for(encoder, [embedded], config)  # as `queryshift train` does
    pseudo_at, cpu = time.perf_counter(), time.process_time()
    with _StepCounter() as counter:
        result = train_adapter(embedded, config, base_model=encoder.model_name, pseudo=pseudo)
    done, cpu = time.perf_counter(), time.process_time() - cpu
    return {
        "import_s": round(imported - started, 2),
        "load_model_and_embed_s": round(embedded_at - imported, 2),
        "pseudo_queries": result.pseudo_queries,
        "embed_pseudo_queries_s": round(pseudo_at - embedded_at, 2),
        "train_s": round(done - pseudo_at, 2),
        "train_cpu_s": round(cpu, 2),
        "total_s": round(done - started, 2),
        "queries": dataset.num_queries,
        "documents": dataset.num_documents,
        "identity_chosen": result.is_identity,
        "chosen_epoch": result.chosen.epoch,
        "chosen_alpha": result.chosen.alpha,
        "epochs": config.epochs,
        **_steps_report(counter, embedded.dim),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _child_scale(pairs: int, dim: int, doc_ratio: float, negatives: int, seed: int) -> dict[str, Any]:
    """One epoch of ``fit`` on synthetic pairs next to the bare steps of the same shapes; peak RSS.

    The bare steps (loss, gradients, AdamW on fixed tensors: no batch assembly) run half
    before and half after the epoch, so a change of load during the run weighs on both alike.
    """
    import resource

    import torch

    from queryshift.training import TrainingConfig, TrainingPairs, build_module, fit

    rng = np.random.default_rng(seed)
    n_docs = max(1, int(pairs * doc_ratio))
    docs = rng.standard_normal((n_docs, dim), dtype=np.float32)  # (n_docs, dim)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    targets = np.arange(pairs) % n_docs
    queries = docs[targets]  # (pairs, dim)
    for start in range(0, pairs, 65_536):  # noise in chunks: no pairs×dim temporary inflates the peak
        block = queries[start : start + 65_536]
        block += 0.3 * rng.standard_normal(block.shape, dtype=np.float32)
    positives = targets[:, None].astype(np.int64)  # (pairs, 1)
    negs = rng.integers(0, n_docs, size=(pairs, negatives))  # (pairs, negatives) int64
    pairs_bytes = queries.nbytes + docs.nbytes + positives.nbytes + negs.nbytes
    data = TrainingPairs(queries=queries, documents=docs, positives=positives, negatives=negs)
    config = TrainingConfig(device="cpu")
    # The first fit() in a process pays one-off costs (lazy torch initialisation):
    # pay them on 256 pairs first so the timed epoch measures throughput.
    warm = TrainingPairs(
        queries=queries[:256], documents=docs, positives=positives[:256], negatives=negs[:256]
    )
    started = time.perf_counter()
    fit(build_module("linear", dim), warm, config, epochs=1)
    first_call_s = time.perf_counter() - started
    steps = -(-pairs // config.batch_size)
    n_candidates = config.batch_size * (1 + negatives)
    bare = [_bare_steps(dim, config, steps // 2, n_candidates)]
    module = build_module("linear", dim)
    rss_before = _current_rss_kib()
    started, cpu = time.perf_counter(), time.process_time()
    losses = fit(module, data, config, epochs=1)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _current_rss_kib(), rss_before)
    bare.append(_bare_steps(dim, config, steps - steps // 2, n_candidates))
    bare_s, bare_cpu_s = sum(b[0] for b in bare), sum(b[1] for b in bare)
    assembly_s = _assembly_alone(data, config, steps)
    return {
        "pairs": pairs,
        "dim": dim,
        "documents": n_docs,
        "epoch_s": round(seconds, 2),
        "epoch_cpu_s": round(cpu_seconds, 2),
        "bare_steps_s": round(bare_s, 2),
        "bare_steps_cpu_s": round(bare_cpu_s, 2),
        "epoch_over_bare": round(seconds / bare_s, 3),
        "epoch_over_bare_cpu": round(cpu_seconds / bare_cpu_s, 3),
        # the batch assembly alone (gathers from the pairs' tables, unique, normalisation), same steps:
        # bare steps + this is what the epoch cannot go below with this layout
        "assembly_alone_s": round(assembly_s, 2),
        "floor_over_bare": round((bare_s + assembly_s) / bare_s, 3),
        "bare_candidates": n_candidates,
        "steps": steps,
        "batch_size": config.batch_size,
        "loss": round(losses[0], 4),
        "first_call_overhead_s": round(first_call_s, 2),
        "pairs_mib": round(pairs_bytes / 2**20, 1),
        # ru_maxrss lags /proc's VmRSS by a few pages; the peak is at least what is resident now.
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "peak_rss_over_pairs": round(peak_kib * 1024 / pairs_bytes, 3),
        "rss_before_training_mib": round(rss_before / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _assembly_alone(pairs: Any, config: Any, steps: int) -> float:
    """Wall seconds of ``fit``'s batch assembly alone (its :class:`BatchAssembler`) over one epoch's batches."""
    import torch

    from queryshift.training.loop import BatchAssembler

    batches = BatchAssembler(pairs, config, torch.device("cpu"))
    order = torch.randperm(batches.n_queries, generator=torch.Generator().manual_seed(1))
    b = config.batch_size
    started = time.perf_counter()
    for step in range(steps):
        batches(order[step * b : (step + 1) * b])
    return time.perf_counter() - started


def _bare_steps(dim: int, config: Any, steps: int, n_candidates: int) -> tuple[float, float]:
    """``(wall s, CPU s)`` of ``steps`` optimisation steps of fit's shapes on fixed tensors.

    The same loss and gradient call as ``fit`` makes for the linear adapter (its closed form; one
    positive per query: the synthetic pairs have one) and the same AdamW, so *epoch / bare* is
    what batch assembly adds, not a difference of kernels.
    """
    import torch

    from queryshift.training import build_module
    from queryshift.training.losses import linear_loss_and_gradients
    from queryshift.training.optimizer import AdamW

    generator = torch.Generator().manual_seed(0)
    module = build_module("linear", dim)
    optimizer = AdamW(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    pool = torch.randn(4096, dim, generator=generator)  # (4096, dim) query rows, sliced per step
    candidates = torch.nn.functional.normalize(torch.randn(n_candidates, dim, generator=generator), dim=-1)
    b = config.batch_size
    columns = (torch.arange(b) % n_candidates)[:, None]  # (b, 1) each query's positive candidate
    scale = torch.ones(n_candidates)  # fit passes the candidates' inverse norms
    started, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        offset = (step * b) % (len(pool) - b)
        _, module.delta.grad, _ = linear_loss_and_gradients(
            module.delta,
            None,
            pool[offset : offset + b],
            candidates,
            columns,
            temperature=config.temperature,
            candidate_scale=scale,
        )
        optimizer.step()
    return time.perf_counter() - started, time.process_time() - cpu


class _StepCounter:
    """Counts the recipe's optimisation steps per thread (selection run, refit) and their candidates.

    Wraps the closed-form step ``fit`` calls for the linear adapter, so the recipe's own steps can be
    timed again bare (:func:`_bare_side_by_side`): what the recipe would take if a step cost only
    its arithmetic, with nothing else between the steps.
    """

    def __init__(self) -> None:
        self.runs: dict[int, list[int]] = {}  # thread id -> [steps, candidate rows over all steps]

    def __enter__(self) -> _StepCounter:
        from queryshift.training import loop

        self._loop, self._step = loop, loop.linear_loss_and_gradients

        def counted(delta, bias, queries, candidates, *args, **kwargs):
            row = self.runs.setdefault(threading.get_ident(), [0, 0])
            row[0] += 1
            row[1] += len(candidates)
            return self._step(delta, bias, queries, candidates, *args, **kwargs)

        loop.linear_loss_and_gradients = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.linear_loss_and_gradients = self._step

    def shapes(self) -> list[tuple[int, int]]:
        """``(steps, mean candidates a step)`` of each thread, the calling thread's first.

        The calling thread runs the selection (and the refit after it when torch has one thread);
        a second entry is the refit trained beside it.
        """
        main = threading.get_ident()
        order = sorted(self.runs, key=lambda ident: ident != main)
        return [(self.runs[i][0], round(self.runs[i][1] / self.runs[i][0])) for i in order]


def _bare_side_by_side(runs: list[tuple[int, int]], dim: int) -> float:
    """Wall seconds of each run's steps done bare (:func:`_bare_steps`), the runs side by side.

    Each run gets its share of torch's threads, as the recipe's selection run and refit do on the
    CPU (``queryshift.training.refit.thread_split``).
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from queryshift.training import TrainingConfig

    config, threads = TrainingConfig(), torch.get_num_threads()
    torch.set_num_threads(max(1, threads // len(runs)))
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(len(runs)) as pool:
            for future in [pool.submit(_bare_steps, dim, config, n, c) for n, c in runs]:
                future.result()  # a failed run raises here, not a figure without its steps
    finally:
        torch.set_num_threads(threads)
    return round(time.perf_counter() - started, 2)


def _steps_report(counter: _StepCounter, dim: int) -> dict[str, Any]:
    shapes = counter.shapes()
    return {
        "steps": [n for n, _ in shapes],
        "candidates_per_step": [c for _, c in shapes],
        "bare_steps_side_by_side_s": _bare_side_by_side(shapes, dim),
    }


def abstracts_sized_set(seed: int = 0) -> tuple[Any, Any]:
    """Synthetic stand-in for issue 15's scientific-abstracts set: ``(labelled, pseudo)`` embedded sets.

    5,183 documents in 64 topics, 809 labelled questions (some documents asked about twice, so
    both validation splits exist), and 3 pseudo-queries for each of 5,000 documents (15,000),
    d=384 unit vectors. Questions are a fixed linear distortion of their document plus noise, so
    there is something for an adapter to learn; pseudo-queries are their document plus noise.
    """
    from queryshift.data import RetrievalDataset
    from queryshift.embeddings import EmbeddedDataset

    cfg = CONFIG["abstracts_set"]
    n_docs, dim = cfg["documents"], cfg["dim"]
    rng = np.random.default_rng(seed)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def noise(n: int, scale: float) -> np.ndarray:
        return scale * rng.standard_normal((n, dim)) / np.sqrt(dim)  # (n, dim), norm ≈ scale

    centers = unit(rng.standard_normal((cfg["topics"], dim)))  # (topics, dim)
    docs = unit(
        centers[rng.integers(0, cfg["topics"], n_docs)] + noise(n_docs, cfg["document_spread"])
    )  # (n_docs, dim)
    distortion = np.eye(dim) + cfg["question_distortion"] * rng.standard_normal((dim, dim)) / np.sqrt(dim)
    targets = rng.integers(0, cfg["asked_documents"], cfg["labelled"])  # (n_labelled,) with repeats
    questions = unit(
        docs[targets] @ distortion.T + noise(len(targets), cfg["question_noise"])
    )  # (n_labelled, dim)
    doc_ids = [f"doc{i:05d}" for i in range(n_docs)]
    qids = [f"q{i:04d}" for i in range(len(targets))]
    documents = dict.fromkeys(doc_ids, "")
    labelled = EmbeddedDataset(
        RetrievalDataset(
            queries=dict.fromkeys(qids, ""),
            documents=documents,
            qrels={q: {doc_ids[t]} for q, t in zip(qids, targets, strict=True)},
            name="abstracts-sized",
        ),
        qids,
        questions,
        doc_ids,
        docs,
        "synthetic",
    )
    per_doc, sampled = cfg["pseudo_per_document"], cfg["pseudo_documents"]
    sources = np.repeat(np.sort(rng.choice(n_docs, size=sampled, replace=False)), per_doc)  # (15000,)
    pids = [f"pseudo:{doc_ids[d]}:{i % per_doc}" for i, d in enumerate(sources)]
    pseudo = EmbeddedDataset(
        RetrievalDataset(
            queries=dict.fromkeys(pids, ""),
            documents=documents,
            qrels={p: {doc_ids[d]} for p, d in zip(pids, sources, strict=True)},
            name="abstracts-sized-pseudo",
        ),
        pids,
        unit(docs[sources] + noise(len(sources), cfg["pseudo_noise"])),
        doc_ids,
        docs,
        "synthetic",
    )
    return labelled, pseudo


def _child_recipe() -> dict[str, Any]:
    """The default recipe on :func:`abstracts_sized_set`, after a warm-up fit of 256 pairs."""
    from queryshift.training import TrainingConfig, train_adapter

    labelled, pseudo = abstracts_sized_set(CONFIG["seed"])
    train_adapter(labelled.subset(labelled.query_ids[:200]), TrainingConfig(epochs=1, pseudo_queries=0))
    started = time.perf_counter()
    cpu = time.process_time()
    with _StepCounter() as counter:
        result = train_adapter(labelled, TrainingConfig(), pseudo=pseudo)
    train_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {
        "labelled": len(labelled.query_ids),
        "pseudo_queries": result.pseudo_queries,
        "documents": len(labelled.document_ids),
        "train_s": round(train_s, 2),
        "cpu_s": round(cpu_s, 2),
        **_steps_report(counter, labelled.dim),
        "chosen_epoch": result.chosen.epoch,
        "chosen_alpha": result.chosen.alpha,
        "validation_ndcg@10": {k: v["adapted"]["ndcg@10"] for k, v in result.validation.items()},
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _current_rss_kib() -> int:
    """Resident memory now (not the peak), from /proc; 0 where /proc is missing."""
    try:
        fields = Path("/proc/self/status").read_text().split("VmRSS:", 1)[1].split()
        return int(fields[0])
    except (OSError, IndexError, ValueError):
        return 0


def _run_child(
    args: list[str], env: dict[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.speed", *args]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- measurements


CACHED_RUNS = 5
"""Processes timed for the cached Lyft recipe: one run of it varies by ±25 % on this VM even with the
machine otherwise idle, so the row is the median run (each a first call in a fresh process, as
``queryshift train`` is), with the fastest and slowest beside it."""


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median training time, with every run's training seconds added."""
    ordered = sorted(runs, key=lambda r: r["train_s"])
    return {**ordered[len(ordered) // 2], "train_s_runs": [r["train_s"] for r in runs]}


def training_time(cached_only: bool = False) -> dict[str, Any]:
    data = str(LYFT.resolve())
    child = ["--child", "e2e", "--data", data]
    if cached_only:  # the caller's QUERYSHIFT_CACHE_DIR, already holding the Lyft vectors
        cached = _median_run([_run_child(child) for _ in range(CACHED_RUNS)])
        return {"queryshift_fresh_cache": None, "queryshift_cached": cached}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, QUERYSHIFT_CACHE_DIR=cache, HF_HUB_OFFLINE="1")
        fresh = _run_child(child, env=env)
        cached = _median_run([_run_child(child, env=env) for _ in range(CACHED_RUNS)])
    return {"queryshift_fresh_cache": fresh, "queryshift_cached": cached}


def llamaindex_training() -> dict[str, Any]:
    """The engine's training times on the same Lyft pairs, as the quality benchmark recorded them."""
    out: dict[str, Any] = {}
    quality = RESULTS / "quality-lyft-to-uber.json"
    if quality.is_file():
        report = json.loads(quality.read_text())
        for name in ("llamaindex-linear", "llamaindex-2layer"):
            entry = report["results"].get(name)
            if entry is None:
                continue
            if entry["status"] == "ok":
                out[name] = {
                    "train_s": entry["train_seconds"],
                    "epochs": entry["engine"]["epochs"],
                    "batch_size": entry["engine"]["batch_size"],
                    "source": "benchmarks/results/quality-lyft-to-uber.json",
                }
            else:
                out[name] = {"status": "not run", "reason": entry["reason"]}
    else:
        out["llamaindex_note"] = "quality-lyft-to-uber.json missing: run the quality benchmark first"
    return out


def scale(
    quick: bool, million: bool = False, million_dims: tuple[int, ...] = (384, 768)
) -> list[dict[str, Any]]:
    rows = []
    combos = [tuple(c) for c in CONFIG["scale_runs"]]
    if quick:
        combos = [(100_000, 384)]
    if million:
        combos += [(1_000_000, dim) for dim in million_dims]
    for pairs, dim in combos:
        print(f"[speed] scale {pairs:,} pairs d={dim} ...", file=sys.stderr, flush=True)
        args = ["--child", "scale", "--pairs", str(pairs), "--dim", str(dim)]
        try:
            rows.append({"status": "ok", **_run_child(args, timeout=3600)})
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            rows.append({"status": "not run", "pairs": pairs, "dim": dim, "reason": str(exc).splitlines()[0]})
    return rows


def query_path(quick: bool) -> dict[str, Any]:
    from benchmarks.qdrant_latency import linear_adapter, low_rank_adapter
    from queryshift.adapters import ResidualMLPAdapter

    dim = CONFIG["apply_dim"]
    rng = np.random.default_rng(CONFIG["seed"])
    batch = rng.standard_normal((CONFIG["apply_batch"], dim), dtype=np.float32)  # (1000, dim)
    batch /= np.linalg.norm(batch, axis=1, keepdims=True)
    single = batch[0]
    adapters = {
        f"linear {dim}×{dim}": linear_adapter(dim, seed=1),
        "low_rank r=32": low_rank_adapter(dim, 32, seed=2),
        "residual_mlp h=512": ResidualMLPAdapter.identity(dim, hidden_dim=512, seed=3),
    }
    reps_single = CONFIG["apply_repeats_single"] // (3 if quick else 1)
    reps_batch = CONFIG["apply_repeats_batch"] // (3 if quick else 1)
    weight = adapters[f"linear {dim}×{dim}"].weight  # (dim, dim) float32
    out: dict[str, Any] = {}
    for name, adapter in adapters.items():
        out[name] = {
            "single_us": _median_us(lambda a=adapter: a.apply(single), reps_single),
            "batch_1000_ms": round(_median_us(lambda a=adapter: a.apply(batch), reps_batch) / 1e3, 3),
        }
        out[name]["batch_per_query_us"] = round(out[name]["batch_1000_ms"] * 1e3 / CONFIG["apply_batch"], 2)
    # The floor under apply's linear row: numpy's matrix-vector product alone, same run.
    out[f"linear {dim}×{dim}"]["matvec_us"] = _median_us(lambda: weight @ single, reps_single)
    return out


def _median_us(fn, repeats: int) -> float:
    for _ in range(min(50, repeats)):
        fn()
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - start
    return round(float(np.median(samples)) / 1e3, 2)


def qdrant_figures() -> dict[str, Any] | None:
    path = RESULTS / "qdrant_latency.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    rows = {}
    for name, r in report["backends"].items():
        rows[name] = {
            "plain_raw_median_us": r["plain_raw"]["median_us"],
            "wrapper_median_us": r["wrapper"]["median_us"],
            "wrapper_cost_us": r["wrapper_minus"].get(
                "plain_adapted_beforehand", r["wrapper_minus"].get("plain_raw")
            ),
        }
    return {
        "source": "benchmarks/results/qdrant_latency.json",
        "command": report["command"],
        "backends": rows,
    }


# ----------------------------------------------------------------------------- report


def _targets_table(report: dict[str, Any]) -> list[str]:
    """Issue 15's targets: before, now and the target, each "now" measured in this run."""
    before, targets, t = report["before"], report["targets"], report["training"]
    cached, abstracts = t["queryshift_cached"], report["abstracts_sized"]
    million = next(
        (
            r
            for r in report["scale"]
            if r.get("status") == "ok" and r["pairs"] == 1_000_000 and r["dim"] == 384
        ),
        None,
    )
    linear = next(iter(report["query_path"].values()))

    def met(value: float | None, target: float) -> str:
        return "–" if value is None else ("yes" if value <= target else "no")

    def bare(run: dict[str, Any]) -> str:
        if "bare_steps_side_by_side_s" not in run:
            return ""
        steps = " + ".join(f"{n:,}" for n in run["steps"])
        runs = "selection run + the refit beside it" if len(run["steps"]) > 1 else "selection run, then refit"
        return (
            f"; its {steps} steps ({runs}, about {max(run['candidates_per_step'])} candidates "
            f"each) done bare, side by side: {run['bare_steps_side_by_side_s']} s"
        )

    rows = [
        (
            f"default recipe, {cached['queries']} Lyft pairs + {cached['pseudo_queries']} pseudo-queries, vectors cached",
            f"{before['lyft_cached_train_s']} s",
            f"{cached['train_s']} s, median of {len(cached.get('train_s_runs', [0]))} processes "
            f"({min(cached.get('train_s_runs', [cached['train_s']]))}–{max(cached.get('train_s_runs', [cached['train_s']]))} s; "
            f"{cached['train_cpu_s']} CPU s, load {cached['load_average_1_5_15'][0]}){bare(cached)}",
            f"≤ {targets['lyft_cached_train_s']} s",
            met(cached["train_s"], targets["lyft_cached_train_s"]),
        ),
        (
            f"default recipe, abstracts-sized synthetic set ({abstracts['labelled']} labels + "
            f"{abstracts['pseudo_queries']:,} pseudo-queries, {abstracts['documents']:,} documents)",
            f"{before['abstracts_sized_train_s']} s",
            f"{abstracts['train_s']} s ({abstracts['cpu_s']} CPU s, load {abstracts['load_average_1_5_15'][0]})"
            f"{bare(abstracts)}",
            f"≤ {targets['abstracts_sized_train_s']} s",
            met(abstracts["train_s"], targets["abstracts_sized_train_s"]),
        ),
    ]
    if million is not None:
        rows += [
            (
                "one epoch of `fit`, 1M pairs, d=384, over the bare steps of the same shapes (same run)",
                f"{before['epoch_1m_384_s']} s / {before['bare_steps_1m_384_s']} s = "
                f"{before['epoch_1m_384_s'] / before['bare_steps_1m_384_s']:.2f}",
                f"{million['epoch_s']} s / {million['bare_steps_s']} s = {million['epoch_over_bare']} "
                f"(CPU {million['epoch_over_bare_cpu']}, load {million['load_average_1_5_15'][0]}); "
                + (
                    f"the batch assembly alone takes {million['assembly_alone_s']} s of the same batches, "
                    f"so bare + assembly = {million['floor_over_bare']} × bare"
                    if "floor_over_bare" in million
                    else ""
                ),
                f"≤ {targets['epoch_over_bare']}",
                met(million["epoch_over_bare"], targets["epoch_over_bare"]),
            ),
            (
                "peak RSS of that run over the pairs' own size",
                f"{before['peak_rss_1m_384_mib']} MiB (pairs held as Python lists)",
                f"{million['peak_rss_mib']} / {million['pairs_mib']} MiB = {million['peak_rss_over_pairs']}",
                f"≤ {targets['peak_rss_over_pairs']}",
                met(million["peak_rss_over_pairs"], targets["peak_rss_over_pairs"]),
            ),
        ]
    else:
        rows.append(("one epoch of `fit`, 1M pairs, d=384", "–", "not run (pass --million)", "–", "–"))
    name = next(iter(report["query_path"]))
    floor = f"; `weight @ q` alone: {linear['matvec_us']} µs" if "matvec_us" in linear else ""
    rows.append(
        (
            f"`adapter.apply`, one query, {name}",
            f"{before['apply_single_us'].get(name, '–')} µs",
            f"{linear['single_us']} µs{floor}",
            f"≤ {targets['apply_linear_single_us']} µs",
            met(linear["single_us"], targets["apply_linear_single_us"]),
        )
    )
    fresh = t.get("queryshift_fresh_cache")
    rows.append(
        (
            "first run on the 668 Lyft pairs from an empty cache (model, pairs, pseudo-queries, training)",
            f"{before['first_run_s']} s",
            "not run (`--cached-only`)"
            if fresh is None
            else f"{fresh['total_s']} s (model + pairs {fresh['load_model_and_embed_s']} s, "
            f"{fresh['pseudo_queries']} pseudo-queries {fresh['embed_pseudo_queries_s']} s, training {fresh['train_s']} s); "
            f"imports, model and the labelled pairs alone: {fresh['import_s'] + fresh['load_model_and_embed_s']:.1f} s, "
            "the floor of this encoder before any pseudo-query (benchmarks/README.md, third pass)",
            f"≤ {targets['first_run_s']} s",
            "–" if fresh is None else met(fresh["total_s"], targets["first_run_s"]),
        )
    )
    lines = [
        "## Issue 15 targets",
        "",
        "| what | before | now | target | met |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(str(c) for c in row)} |" for row in rows),
        "",
        f"Before: {before['abstracts_sized_note']}; the other figures are this file at commit b97801d (idle "
        "machine). Wall seconds depend on what else runs on the 2 cores: each row records the load average "
        "(1 min) it ran at, and the CPU seconds beside it. *Done bare*: the recipe's own optimisation steps, "
        "counted per run as it trained (the selection run's and the refit's, which train side by side on "
        "their share of the threads), timed again on fixed tensors of the same shapes with nothing between "
        "them (no batch assembly, validation or mining): what those steps' arithmetic costs on this machine, "
        "so a recipe row cannot go below it without fewer steps.",
        "",
    ]
    return lines


def render(report: dict[str, Any]) -> str:
    m, t = report["machine"], report["training"]
    fresh, cached = t["queryshift_fresh_cache"], t["queryshift_cached"]
    lines = [
        "# queryshift speed",
        "",
        f"Command: `{report['command']}` ({report['total_s']} s).",
        "",
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['memory_gib']} GiB RAM, GPU: "
        f"{m['gpu'] or 'none (no GPU was lent to this session; every figure is CPU)'}; load average "
        f"{m['load_average_1_5_15']} at the end (1, 5, 15 min; above {m['usable_cpus']} means other work shared the "
        f"cores); Python {m['python']}, torch {m['torch']}, "
        f"numpy {m['numpy']}, sentence-transformers {m['sentence_transformers']}, queryshift {m['queryshift']}.",
        "",
        *_targets_table(report),
        f"## Training time, {cached['queries']} Lyft pairs (all-MiniLM-L6-v2)",
        "",
        "| system | what is timed | seconds |",
        "|---|---|---:|",
        *(
            [
                "| queryshift `train_adapter(TrainingConfig())`, empty cache | not run (`--cached-only`) | – |",
            ]
            if fresh is None
            else [
                f"| queryshift `train_adapter(TrainingConfig())`, empty cache | whole process: imports, model load, "
                f"embedding {fresh['queries']} queries + {fresh['documents']} chunks, pseudo-queries, training | "
                f"{fresh['total_s']} |",
                f"| (of which) | model load + embedding | {fresh['load_model_and_embed_s']} |",
                f"| (of which) | sampling + embedding {fresh.get('pseudo_queries', 0)} pseudo-queries (sentences of "
                f"the chunks) | {fresh.get('embed_pseudo_queries_s', '–')} |",
                f"| (of which) | training ({fresh.get('epochs', '–')} epochs, validation, refit) | {fresh['train_s']} |",
            ]
        ),
        f"| queryshift, vectors cached | whole process | {cached['total_s']} |",
        f"| (of which) | training | {cached['train_s']} |",
    ]
    for name in ("llamaindex-linear", "llamaindex-2layer"):
        r = t.get(name)
        if r is None:
            lines.append(f"| LlamaIndex `{name}` | not run (no quality-lyft-to-uber.json) | – |")
        elif r.get("status") == "not run":
            lines.append(f"| LlamaIndex `{name}` | not run ({r['reason'][:120]}) | – |")
        else:
            lines.append(
                f"| LlamaIndex `EmbeddingAdapterFinetuneEngine` ({name.split('-')[1]}, epochs={r['epochs']}, "
                f"batch {r['batch_size']}) | engine construction + `finetune()` (embeds every batch, every epoch) "
                f"| {r['train_s']} |"
            )
    lines += [
        "",
        "## Training at scale (synthetic pairs, one epoch of `queryshift.training.fit`, linear adapter, CPU)",
        "",
        "| pairs | d | documents | steps (batch) | epoch s (CPU s) | bare steps s (CPU s) | epoch / bare "
        "(CPU) | assembly alone s | pairs MiB | RSS before training MiB | peak RSS MiB | peak / pairs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["scale"]:
        if r["status"] != "ok":
            lines.append(f"| {r['pairs']:,} | {r['dim']} | not run ({r['reason'][:100]}) |" + " – |" * 9)
            continue
        lines.append(
            f"| {r['pairs']:,} | {r['dim']} | {r['documents']:,} | {r['steps']:,} ({r.get('batch_size', '–')}) | "
            f"{r['epoch_s']} ({r.get('epoch_cpu_s', '–')}) | {r.get('bare_steps_s', '–')} "
            f"({r.get('bare_steps_cpu_s', '–')}) | {r.get('epoch_over_bare', '–')} ({r.get('epoch_over_bare_cpu', '–')}) | "
            f"{r.get('assembly_alone_s', '–')} | {r.get('pairs_mib', '–')} | "
            f"{r['rss_before_training_mib']} | {r['peak_rss_mib']} | {r.get('peak_rss_over_pairs', '–')} |"
        )
    lines += [
        "",
        "Each row runs in its own process. *Bare steps*: the same number of loss-and-gradient + AdamW steps "
        "(the closed-form gradients `fit` uses for the linear adapter, `linear_loss_and_gradients`) on fixed tensors of the same shapes (batch 64, 576 candidates, linear adapter), no batch assembly, timed "
        "in the same process, half before and half after the epoch; *epoch / bare* is what batch assembly "
        "(index gather, `torch.unique`, label scatter, candidate normalisation) adds; *assembly alone*: fit's "
        "`BatchAssembler` over the same number of batches, nothing else (its gathers from the pairs' tables "
        "are memory-bound: bare + assembly is the floor of this layout). CPU s is the process's CPU "
        "time, less disturbed than wall time when other work shares the cores. *Pairs MiB*: the pairs' own "
        "arrays (query and document vectors, positive and negative index arrays); *RSS before training* is "
        "the process once they exist (Python, torch and the pairs); *peak RSS* is its `ru_maxrss` over the "
        "whole run. Candidates per step are the batch's positives plus 8 random negatives per query (the recipe "
        "mines them from the base ranking; mining and per-epoch validation scoring are extra and not in this "
        "figure). " + (report.get("scale_note") or ""),
        "",
        f"## Query path: `adapter.apply` (d={CONFIG['apply_dim']}, numpy)",
        "",
        "| adapter | one query µs (median) | batch of 1,000 ms (median) | per query in the batch µs |",
        "|---|---:|---:|---:|",
    ]
    for name, r in report["query_path"].items():
        lines.append(f"| {name} | {r['single_us']} | {r['batch_1000_ms']} | {r['batch_per_query_us']} |")
    q = report.get("qdrant")
    if q:
        lines += [
            "",
            f"For scale, Qdrant query latency measured earlier (`{q['command']}`, quoted from {q['source']}, "
            "d=384, linear adapter; the collection size is in the backend's name):",
            "",
            "| backend | plain query median µs | through the wrapper median µs | wrapper cost µs |",
            "|---|---:|---:|---:|",
        ]
        for name, r in q["backends"].items():
            lines.append(
                f"| {name} | {r['plain_raw_median_us']} | {r['wrapper_median_us']} | {r['wrapper_cost_us']} |"
            )
    lines.append("")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = report["training"]
    names = ["queryshift\n(empty cache)", "queryshift\n(cached)"]
    values = [(t["queryshift_fresh_cache"] or {"total_s": 0.0})["total_s"], t["queryshift_cached"]["total_s"]]
    for name in ("llamaindex-linear", "llamaindex-2layer"):
        r = t.get(name)
        if r and r.get("status") != "not run":
            names.append(f"LlamaIndex engine\n{name.split('-')[1]} ({r['epochs']} ep)")
            values.append(r["train_s"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar(names, values, color=["#3b7dd8", "#3b7dd8"] + ["#d8883b"] * (len(names) - 2))
    axes[0].set_ylabel("seconds (lower is better)")
    axes[0].set_title(f"Train on {t['queryshift_cached']['queries']} Lyft pairs (CPU)")
    for i, v in enumerate(values):
        axes[0].text(i, v, f"{v:.0f}s", ha="center", va="bottom")
    plt.setp(axes[0].get_xticklabels(), fontsize=8)
    rows = [r for r in report["scale"] if r["status"] == "ok"]
    labels = [f"{r['pairs'] // 1000:,}k\nd={r['dim']}" for r in rows]
    axes[1].bar(labels, [r["epoch_s"] for r in rows], color="#3b7dd8")
    axes[1].set_ylabel("seconds per epoch")
    axes[1].set_title("fit(), one epoch, synthetic pairs (CPU)")
    for i, r in enumerate(rows):
        axes[1].text(
            i,
            r["epoch_s"],
            f"{r['epoch_s']:.0f}s\n{r['peak_rss_mib'] / 1024:.1f} GiB",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes[1].margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only 100k pairs at d=384; fewer repeats")
    parser.add_argument("--million", action="store_true", help="also one epoch at 1M pairs, d=384 and d=768")
    parser.add_argument(
        "--million-dims", default="384,768", help="dims of the --million rows (comma-separated)"
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="time the Lyft recipe on the vectors in QUERYSHIFT_CACHE_DIR only (no empty-cache run)",
    )
    parser.add_argument("--output-dir", default=str(RESULTS))
    parser.add_argument("--child", choices=("e2e", "scale", "recipe"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "e2e":
        print(json.dumps(_child_e2e(args.data)))
        return
    if args.child == "recipe":
        print(json.dumps(_child_recipe()))
        return
    if args.child == "scale":
        print(
            json.dumps(
                _child_scale(
                    args.pairs,
                    args.dim,
                    CONFIG["scale_documents_per_pair"],
                    CONFIG["scale_negatives_per_query"],
                    CONFIG["seed"],
                )
            )
        )
        return

    from benchmarks.quality import machine

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    print("[speed] training time on Lyft ...", file=sys.stderr, flush=True)
    training = training_time(args.cached_only)
    print("[speed] default recipe on the abstracts-sized set ...", file=sys.stderr, flush=True)
    abstracts = _run_child(["--child", "recipe"])
    print("[speed] query path ...", file=sys.stderr, flush=True)
    query = query_path(args.quick)
    scale_rows = scale(args.quick, args.million, tuple(int(d) for d in args.million_dims.split(",")))
    report = {
        "command": "python -m benchmarks.speed"
        + (" " + shlex.join(argv if argv is not None else sys.argv[1:]) if (argv or sys.argv[1:]) else ""),
        "config": {**CONFIG, "quick": args.quick},
        "queryshift_version": queryshift.__version__,
        "training": training,
        "abstracts_sized": abstracts,
        "before": BEFORE,
        "targets": TARGETS,
        "scale": scale_rows,
        "scale_note": None
        if args.million
        else "1M pairs were not run (pass --million; an epoch at 1M pairs takes about 10x the 100k row).",
        "query_path": query,
        "qdrant": qdrant_figures(),
        "machine": machine(),
    }
    # Read last, so a quality run finishing meanwhile is picked up.
    report["training"].update(llamaindex_training())
    report["total_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "speed.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "speed.md", render(report))
    plot(report, out / "speed.png")
    print(render(report))


if __name__ == "__main__":
    main()
