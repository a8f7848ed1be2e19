"""Retrieval quality: base vs queryshift adapters vs LlamaIndex's adapter engine vs a full fine-tune.

Run from the repository root, e.g.::

    python -m benchmarks.quality --data ../shared/data/finetune-embedding/train_dataset.json \\
        --regime cross --test-data ../shared/data/finetune-embedding/val_dataset.json --name lyft-to-uber
    python -m benchmarks.quality --data ../shared/data/finetune-embedding/val_dataset.json --regime query
    python -m benchmarks.quality --data ../shared/data/covidqa --regime document
    python -m benchmarks.quality --systems base,linear --seeds 0,1,2,3,4 --summary shared --data \\
        ../shared/data/covidqa ../shared/data/cranfield uber-query=query:../shared/data/finetune-embedding/val_dataset.json

Several ``--data`` values (``[NAME=][REGIME:]PATH[,TEST_PATH]``) run one after the other and add one
summary table across them, ``quality-<summary>.{md,json}``; ``--from-results quality-*.json`` writes
that summary from reports already written (settings run apart), without training::

    python -m benchmarks.quality --summary summary --from-results benchmarks/results/quality-{lyft-to-uber,\
        uber-query,covidqa-document,cranfield-document,medquad_liveqa-document}.json

Every system uses the same base model (the bundled all-MiniLM-L6-v2), the same train/test queries
and the same corpus. Adapters change only the test *query* vectors and are scored against the
base document vectors; the full fine-tune re-embeds queries and documents with the new model.
Metrics are nDCG@10, MRR@10, hit@5 and recall@10 with paired bootstrap 95 % intervals of the
difference to ``base``. Writes ``benchmarks/results/quality-<name>.{md,json,png}``.

Regimes:

* ``query``: :func:`queryshift.splits.split_by_query` of ``--data`` (``test_fraction=0.5``): test
  queries ask about documents that training queries also asked about.
* ``document``: BEIR folders with ``qrels/train.tsv`` and ``qrels/test.tsv`` train on the first and
  test on the second; otherwise :func:`queryshift.splits.split_by_document`.
* ``cross``: train on ``--data``, test on ``--test-data`` (another corpus).

LlamaIndex's ``EmbeddingAdapterFinetuneEngine`` runs in its own environment (see
``benchmarks/setup_llamaindex_env.sh``) through ``benchmarks/llamaindex_engine.py``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import queryshift
from queryshift.atomic import atomic_write_text
from queryshift.data import RetrievalDataset, load_beir, load_dataset, save_llamaindex_json
from queryshift.embeddings import EmbeddedDataset, SentenceTransformerEncoder, embed_dataset
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval
from queryshift.pipeline import pseudo_queries_for
from queryshift.splits import seen_document_rate, split_by_document, split_by_query

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LLAMAINDEX_PYTHON = ROOT / ".venv-llamaindex" / "bin" / "python"
METRICS = ("ndcg@10", "mrr@10", "hit@5", "recall@10")
ADAPTER_SYSTEMS = {"linear": {}, "low_rank": {"adapter": "low_rank"}, "mlp": {"adapter": "residual_mlp"}}
# As LlamaIndex's example notebook runs the engine (docs/docs/examples/finetuning/embeddings/
# finetune_embedding_adapter.ipynb): linear adapter with epochs=4; TwoLayerNN(384, 1024, 384,
# bias=True, add_residual=True) with epochs=25. Other arguments are the engine's defaults.
LLAMAINDEX_SYSTEMS = {
    "llamaindex-linear": {"kind": "linear", "epochs": 4},
    "llamaindex-2layer": {"kind": "2layer", "epochs": 25, "hidden_dim": 1024},
}
ALL_SYSTEMS = ("base", *ADAPTER_SYSTEMS, *LLAMAINDEX_SYSTEMS, "finetune")
DEFAULT_SYSTEMS = ("base", *ADAPTER_SYSTEMS, *LLAMAINDEX_SYSTEMS)


def load_setting(
    data: str | Path, *, format: str = "auto", regime: str, test_data: str | Path | None = None, seed: int = 0
) -> tuple[RetrievalDataset, RetrievalDataset, str]:
    """Training and test sets for one setting, and a sentence describing how they were made."""
    data = Path(data)
    if regime == "cross":
        if test_data is None:
            raise ValueError("--regime cross needs --test-data (the corpus and queries to test on)")
        train = load_dataset(data, format=format, split="train" if _has_split(data, "train") else "test")
        test = load_dataset(test_data, format=format, split="test")
        return train, test, f"train on all of {data.name}, test on all of {Path(test_data).name}"
    if test_data is not None:
        raise ValueError(f"--test-data only applies to --regime cross, not {regime!r}")
    if regime == "document" and _has_split(data, "train") and _has_split(data, "test"):
        train, test = load_beir(data, split="train"), load_beir(data, split="test")
        return train, test, "BEIR qrels/train.tsv trains, qrels/test.tsv tests (the data set's own split)"
    full = load_dataset(data, format=format, split="test")
    if regime == "query":
        split = split_by_query(full, test_fraction=0.5, seed=seed)
        how = f"split_by_query(test_fraction=0.5, seed={seed}) of {data.name}"
    elif regime == "document":
        split = split_by_document(full, test_fraction=0.5, seed=seed)
        how = f"split_by_document(test_fraction=0.5, seed={seed}) of {data.name}"
    else:
        raise ValueError(f"--regime must be query, document or cross, got {regime!r}")
    train, test = split.apply(full)
    return train, test, how


def _has_split(path: Path, split: str) -> bool:
    return path.is_dir() and (path / "qrels" / f"{split}.tsv").is_file()


def run_quality(
    train: RetrievalDataset,
    test: RetrievalDataset,
    *,
    systems: tuple[str, ...] = DEFAULT_SYSTEMS,
    seed: int = 0,
    llamaindex_python: str | Path = LLAMAINDEX_PYTHON,
    llamaindex_budget_s: float | None = None,
    not_run: dict[str, str] | None = None,
    workdir: str | Path | None = None,
    extra_seeds: tuple[int, ...] = (),
    adapter_seeds: tuple[int, ...] | None = None,
    overrides: dict[str, Any] | None = None,
    pseudo_per_seed: bool = False,
) -> dict[str, Any]:
    """Train every system on ``train``, score it on ``test``; returns the JSON-ready results.

    ``results[system]`` holds ``metrics``, ``difference_ci95`` (vs base), ``train_seconds`` and
    notes; a system that could not run has ``status: "not run"`` and the ``reason``.
    ``llamaindex_budget_s``: skip ``llamaindex-2layer`` when its time, extrapolated from the
    measured seconds per epoch of ``llamaindex-linear`` in the same run, exceeds this budget.
    ``not_run``: systems recorded as not run, with the reason given (e.g. a time limit).
    ``extra_seeds``: the adapter systems are trained again with each of these seeds (same splits,
    same pseudo-queries, those of ``seed``); ``results[system]["seeds"]`` lists every seed's
    nDCG@10, difference to base with its interval, and choice, ``seed`` first.
    ``adapter_seeds``: the seeds the adapter systems are trained with, in place of ``seed`` and
    ``extra_seeds`` (the splits, pseudo-queries and intervals still use ``seed``), so that seeds of
    one setting can run apart and be merged (``--merge``).
    ``overrides``: ``TrainingConfig`` fields set for the pseudo-queries and every adapter system
    (``--config``), to measure a change of the recipe before it becomes the default.
    ``pseudo_per_seed``: each adapter seed samples its own pseudo-queries (those of that seed, as a
    user running ``queryshift train --seed S`` gets), so the seed spread also covers which sentences
    were drawn; by default every seed trains on the sentences of ``seed``.
    """
    from queryshift.training import TrainingConfig, train_adapter

    overrides = overrides or {}

    unknown = sorted(set(systems) - set(ALL_SYSTEMS))
    if unknown:
        raise ValueError(f"unknown systems {unknown}; choose from {', '.join(ALL_SYSTEMS)}")
    encoder = SentenceTransformerEncoder()
    started = time.perf_counter()
    train_emb = embed_dataset(train, encoder)
    test_emb = embed_dataset(test, encoder)
    embed_s = time.perf_counter() - started

    base = _score(test_emb.query_vectors, test_emb)
    results: dict[str, Any] = {}
    not_run = not_run or {}
    # Pseudo-queries: sentences of the training corpus and of the searched corpus (the index);
    # document text only, never the test questions. One set serves every adapter system (their
    # configs differ only in the adapter kind), and every seed unless pseudo_per_seed; each set is
    # embedded before any training clock starts.
    drawn: dict[int, Any] = {}  # pseudo-query seed -> its embedded sentences
    pseudo_seconds = 0.0

    def pseudo_for(run_seed: int) -> Any:
        nonlocal pseudo_seconds
        key = run_seed if pseudo_per_seed else seed
        if key not in drawn:
            tick = time.perf_counter()
            drawn[key] = pseudo_queries_for(
                encoder, [train_emb, test_emb], TrainingConfig(seed=key, **overrides)
            )
            pseudo_seconds += time.perf_counter() - tick
        return drawn[key]

    if any(system in ADAPTER_SYSTEMS for system in systems):
        pseudo_for(seed)
    for system in systems:
        print(f"[quality] {system} ...", file=sys.stderr, flush=True)
        if system in not_run:
            results[system] = {"status": "not run", "reason": not_run[system]}
            continue
        linear_li = results.get("llamaindex-linear", {})
        if (
            system == "llamaindex-2layer"
            and llamaindex_budget_s is not None
            and linear_li.get("status") == "ok"
        ):
            per_epoch = linear_li["train_seconds"] / LLAMAINDEX_SYSTEMS["llamaindex-linear"]["epochs"]
            estimate = per_epoch * LLAMAINDEX_SYSTEMS[system]["epochs"]
            if estimate > llamaindex_budget_s:
                results[system] = {
                    "status": "not run",
                    "reason": f"~{estimate / 60:.0f} min estimated ({LLAMAINDEX_SYSTEMS[system]['epochs']} epochs at the "
                    f"measured {per_epoch:.0f} s/epoch of llamaindex-linear here), over the --llamaindex-budget-s "
                    f"{llamaindex_budget_s:.0f} s",
                    "estimated_train_seconds": round(estimate, 1),
                }
                continue
        if system == "base":
            results[system] = {
                "status": "ok",
                "scores": base,
                "train_seconds": 0.0,
                "per_query_ndcg@10": _per_query(base),
            }
        elif system in ADAPTER_SYSTEMS:
            runs = []
            for run_seed in dict.fromkeys(adapter_seeds or (seed, *extra_seeds)):
                config = TrainingConfig(seed=run_seed, **{**overrides, **ADAPTER_SYSTEMS[system]})
                pseudo = pseudo_for(run_seed)  # embedded before the training clock starts
                t0 = time.perf_counter()
                result = train_adapter(train_emb, config, base_model=encoder.model_name, pseudo=pseudo)
                seconds = time.perf_counter() - t0
                vectors = result.adapter.apply(test_emb.query_vectors)  # (n_test, dim)
                runs.append((run_seed, config, result, seconds, _score(vectors, test_emb)))
            _, config, result, seconds, scores = runs[0]
            results[system] = {
                "status": "ok",
                "scores": scores,
                "train_seconds": round(seconds, 2),
                "config": {k: v for k, v in vars(config).items()},
                "identity_chosen": result.is_identity,
                "chosen_epoch": result.chosen.epoch,
                "chosen_alpha": result.chosen.alpha,
                "validation": result.validation,
                "validation_note": getattr(result, "validation_note", None),
                "pseudo_queries": result.pseudo_queries,
                "pseudo_embed_seconds": round(pseudo_seconds, 2),
                "pseudo_per_seed": pseudo_per_seed,
                "seeds": [_seed_row(s, r, sec, sc, base, seed) for s, _, r, sec, sc in runs],
            }
        elif system in LLAMAINDEX_SYSTEMS:
            results[system] = _run_llamaindex(
                system, train, test_emb, encoder=encoder, python=Path(llamaindex_python), workdir=workdir
            )
        elif system == "finetune":
            results[system] = _run_finetune(train, test_emb, seed=seed, workdir=workdir)
    for name, entry in results.items():
        if entry["status"] != "ok":
            continue
        scores = entry.pop("scores")
        entry["metrics"] = scores["metrics"]
        if name != "base":
            entry["difference_ci95"] = {
                m: dict(
                    zip(
                        ("diff", "low", "high"),
                        bootstrap_difference(base["per_query"][m], scores["per_query"][m], seed=seed),
                        strict=True,
                    )
                )
                for m in METRICS
            }
    return {
        "data": {
            "train_queries": train.num_queries,
            "test_queries": test.num_queries,
            "test_documents": test.num_documents,
            "train_documents": train.num_documents,
            "test_seen_document_rate": round(seen_document_rate(train, test), 4),
        },
        "embedding_seconds_with_cache": round(embed_s, 2),
        "results": results,
    }


def _seed_row(
    seed: int, result: Any, seconds: float, scores: dict[str, Any], base: dict[str, Any], ci_seed: int
) -> dict[str, Any]:
    """One seed's nDCG@10, its difference to base with the paired-bootstrap interval, and its choice."""
    diff, low, high = bootstrap_difference(
        base["per_query"]["ndcg@10"], scores["per_query"]["ndcg@10"], seed=ci_seed
    )
    return {
        "seed": seed,
        "ndcg@10": scores["metrics"]["ndcg@10"],
        "difference_ci95": {"diff": diff, "low": low, "high": high},
        "identity_chosen": result.is_identity,
        "chosen_epoch": result.chosen.epoch,
        "chosen_alpha": result.chosen.alpha,
        "train_seconds": round(seconds, 2),
        "per_query_ndcg@10": _per_query(scores),
    }


def _per_query(scores: dict[str, Any]) -> list[float]:
    """nDCG@10 of each test query, in sorted query-id order: what a summary's seed-mean interval pairs."""
    return [round(float(v), 6) for v in scores["per_query"]["ndcg@10"]]


def _score(query_vectors: np.ndarray, data: EmbeddedDataset) -> dict[str, Any]:
    res = evaluate_retrieval(
        query_vectors,
        data.query_ids,
        data.document_vectors,
        data.document_ids,
        data.dataset.qrels,
        metrics=METRICS,
    )
    return {"metrics": {m: round(v, 4) for m, v in res.metrics.items()}, "per_query": res.per_query}


def _run_llamaindex(
    system: str,
    train: RetrievalDataset,
    test: EmbeddedDataset,
    *,
    encoder: SentenceTransformerEncoder,
    python: Path,
    workdir: str | Path | None,
) -> dict[str, Any]:
    spec = LLAMAINDEX_SYSTEMS[system]
    if not python.is_file():
        return {
            "status": "not run",
            "reason": f"{python} not found: create it with `bash benchmarks/setup_llamaindex_env.sh`",
        }
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp_path = Path(tmp)
        save_llamaindex_json(train, tmp_path / "train.json")
        atomic_write_text(
            tmp_path / "queries.json",
            json.dumps({"ids": test.query_ids, "texts": [test.dataset.queries[q] for q in test.query_ids]}),
        )
        command = [
            str(python),
            str(ROOT / "benchmarks" / "llamaindex_engine.py"),
            "--train", str(tmp_path / "train.json"),
            "--queries", str(tmp_path / "queries.json"),
            "--model", encoder.path,
            "--kind", spec["kind"],
            "--epochs", str(spec["epochs"]),
            "--out", str(tmp_path / "out"),
        ]  # fmt: skip
        if "hidden_dim" in spec:
            command += ["--hidden-dim", str(spec["hidden_dim"])]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
            return {
                "status": "not run",
                "reason": f"engine exited {proc.returncode}: {lines[-1]}",
                "stderr_tail": lines[-20:],
            }
        meta = json.loads((tmp_path / "out" / "meta.json").read_text())
        ids = json.loads((tmp_path / "out" / "ids.json").read_text())
        if ids != test.query_ids:
            raise RuntimeError("llamaindex_engine.py returned query vectors in another order")
        adapted = np.load(tmp_path / "out" / "adapted.npy")  # (n_test, dim)
        base_li = np.load(tmp_path / "out" / "base.npy")  # (n_test, dim), LlamaIndex's base embeddings
    base_li = base_li / np.linalg.norm(base_li, axis=1, keepdims=True)
    mismatch = float(np.abs(base_li - test.query_vectors).max())
    if mismatch > 1e-3:
        return {
            "status": "not run",
            "reason": f"LlamaIndex's base query vectors differ from queryshift's by up to {mismatch:.2e}",
        }
    return {
        "status": "ok",
        "scores": _score(adapted, test),
        "train_seconds": meta["train_seconds"],
        "engine": meta,
        "base_vector_max_abs_diff": mismatch,
    }


def _run_finetune(
    train: RetrievalDataset, test: EmbeddedDataset, *, seed: int, workdir: str | Path | None
) -> dict[str, Any]:
    from queryshift.training.finetune import FinetuneConfig, finetune_model

    config = FinetuneConfig(seed=seed)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t0 = time.perf_counter()
        result = finetune_model(train, config, output_dir=Path(tmp) / "model")
        seconds = time.perf_counter() - t0
        tuned = SentenceTransformerEncoder(str(result.model_path), cache=False)
        t1 = time.perf_counter()
        reembedded = embed_dataset(test.dataset, tuned)  # queries and the whole corpus, new model
        reembed_s = time.perf_counter() - t1
    return {
        "status": "ok",
        "scores": _score(reembedded.query_vectors, reembedded),
        "train_seconds": round(seconds, 2),
        "reembed_test_corpus_seconds": round(reembed_s, 2),
        "config": config.to_dict(),
        "best_checkpoint": result.best_checkpoint,
        "device": result.device,
    }


def machine() -> dict[str, Any]:
    """CPU, cores, memory and library versions of this machine."""
    import torch

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_gib = None
    if Path("/proc/meminfo").exists():
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem_gib = round(kib / 2**20, 1)
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": mem_gib,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sentence_transformers": version("sentence-transformers"),
        "queryshift": queryshift.__version__,
    }


def render(report: dict[str, Any]) -> str:
    """The Markdown table of one setting."""
    d, m = report["data"], report["machine"]
    lines = [
        f"# Retrieval quality: {report['name']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Setting: {report['how']}. {d['train_queries']} training queries; {d['test_queries']} test queries over "
        f"{d['test_documents']} documents; {100 * d['test_seen_document_rate']:.0f}% of test queries have a relevant "
        "document that a training query also had. Model: all-MiniLM-L6-v2 (bundled), cosine. Intervals: paired "
        "bootstrap 95 % CI of the difference to base over test queries (2,000 resamples).",
        "",
        "| system | nDCG@10 | Δ nDCG@10 [95% CI] | MRR@10 | hit@5 | recall@10 | train s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        if r["status"] != "ok":
            reason = r["reason"] if len(r["reason"]) <= 160 else r["reason"][:157] + "..."
            lines.append(f"| {name} | not run ({reason.replace('|', '/')}) | | | | | |")
            continue
        mt = r["metrics"]
        ci = r.get("difference_ci95", {}).get("ndcg@10")
        delta = f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]" if ci else "–"
        lines.append(
            f"| {name} | {mt['ndcg@10']:.4f} | {delta} | {mt['mrr@10']:.4f} | {mt['hit@5']:.4f} | "
            f"{mt['recall@10']:.4f} | {r['train_seconds']:.1f} |"
        )
    for name, r in report["results"].items():
        if r["status"] == "ok" and len(r.get("seeds") or []) > 1:
            runs = ", ".join(
                f"seed {x['seed']} {x['ndcg@10']:.4f} ({x['difference_ci95']['diff']:+.4f})"
                + (" identity" if x["identity_chosen"] else "")
                for x in r["seeds"]
            )
            own = r.get("pseudo_per_seed")
            same = (
                "same splits, each seed its own pseudo-queries" if own else "same splits and pseudo-queries"
            )
            lines += ["", f"`{name}` across seeds ({same}): {runs}."]
    overrides = report["config"].get("overrides")
    if overrides:
        lines += ["", f"Recipe changed for this run (`--config`): `TrainingConfig` fields {overrides}."]
    lines += [
        "",
        "Systems: `linear`, `low_rank`, `mlp` = queryshift `train_adapter` with `TrainingConfig()`, "
        '`TrainingConfig(adapter="low_rank")`, `TrainingConfig(adapter="residual_mlp")`, each with its '
        "pseudo-queries (sentences sampled from the documents of the training corpus and of the searched corpus, "
        "paired with their document; document text only, never the test questions); "
        "`llamaindex-linear` / `llamaindex-2layer` = LlamaIndex `EmbeddingAdapterFinetuneEngine` as its example "
        "notebook runs it (linear, epochs=4; `TwoLayerNN(384, 1024, 384, bias=True, add_residual=True)`, epochs=25), "
        "its adapted query vectors scored against the same base document vectors; `finetune` = "
        "`finetune_model` with `FinetuneConfig()` (the whole test corpus re-embedded with the new model). "
        "Train seconds: adapters on cached vectors (queryshift; embedding the pseudo-queries is recorded apart in the "
        "JSON) vs the engine's own loop, which embeds every batch with the base model; the fine-tune's time includes its checkpoint evaluations.",
        "",
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['memory_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}; "
        f"load average {m['load_average_1_5_15']} at the end (1, 5, 15 min; above {m['usable_cpus']} means "
        f"other work shared the cores); Python {m['python']}, torch "
        f"{m['torch']}, numpy {m['numpy']}, sentence-transformers {m['sentence_transformers']}, queryshift "
        f"{m['queryshift']}{', ' + report['llamaindex_versions'] if report.get('llamaindex_versions') else ''}. "
        f"Total {report['total_s']} s.",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Bar chart of nDCG@10 per system with the CI of the difference drawn around each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, r) for n, r in report["results"].items() if r["status"] == "ok"]
    names = [n for n, _ in rows]
    values = [r["metrics"]["ndcg@10"] for _, r in rows]
    base = report["results"].get("base", {}).get("metrics", {}).get("ndcg@10")
    low, high = [], []
    for (_, r), v in zip(rows, values, strict=True):
        ci = r.get("difference_ci95", {}).get("ndcg@10")
        low.append(v - (base + ci["low"]) if ci and base is not None else 0.0)
        high.append((base + ci["high"]) - v if ci and base is not None else 0.0)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 4))
    ax.bar(names, values, yerr=[low, high], capsize=4, color=["#888"] + ["#3b7dd8"] * (len(names) - 1))
    if base is not None:
        ax.axhline(base, color="#444", linestyle="--", linewidth=1)
    span = max(values) - min(values)
    ax.set_ylim(max(0.0, min(values) - max(0.05, span)), min(1.0, max(values) + max(0.03, span / 2)))
    ax.set_ylabel("nDCG@10 (bars: 95% CI of Δ vs base)")
    ax.set_title(f"queryshift quality: {report['name']} ({report['data']['test_queries']} test queries)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def llamaindex_versions(python: Path) -> str | None:
    if not python.is_file():
        return None
    code = (
        "from importlib.metadata import version as v; print(', '.join(f'{p} {v(p)}' for p in "
        "('llama-index-core', 'llama-index-finetuning', 'llama-index-embeddings-adapter', "
        "'llama-index-embeddings-huggingface', 'torch')))"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return "LlamaIndex venv: " + proc.stdout.strip() if proc.returncode == 0 else None


def _stamp_rows(rows: dict[str, Any], report: dict[str, Any]) -> None:
    """Record on each row (unless already there) the command and load of the run that produced it."""
    for entry in rows.values():
        entry.setdefault("command", report["command"])
        entry.setdefault("load_average_1_5_15", report["machine"]["load_average_1_5_15"])


def merge_reports(previous_path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with the rows of ``previous_path`` for systems it did not run.

    Refuses to merge a different setting (data, split, test queries): rows must share the same
    test queries and base for their intervals to be comparable.
    """
    if not previous_path.is_file():
        return report
    previous = json.loads(previous_path.read_text())
    same = ("how", "data")
    if any(previous.get(k) != report.get(k) for k in same):
        raise ValueError(
            f"--merge: {previous_path} holds another setting ({previous.get('how')!r}, {previous.get('data')}); "
            f"this run is {report['how']!r}, {report['data']}"
        )
    merged = {**report}
    kept = {k: v for k, v in previous["results"].items() if k not in report["results"]}
    _stamp_rows(kept, previous)
    rows = {**kept, **report["results"]}
    _stamp_rows(report["results"], report)
    if previous["config"].get("seed") == report["config"]["seed"]:
        for system, entry in report["results"].items():
            rows[system] = _merge_seeds(previous["results"].get(system), entry, previous)
    merged["results"] = {k: rows[k] for k in ALL_SYSTEMS if k in rows}
    merged["config"] = {**report["config"], "systems": list(merged["results"])}
    merged["command"] = "; ".join(dict.fromkeys(e["command"] for e in merged["results"].values()))
    merged["total_s"] = round(previous.get("total_s", 0.0) + report["total_s"], 1)
    return merged


def _merge_seeds(old: dict[str, Any] | None, new: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the seeds of ``old`` it did not run (same setting, splits and pseudo-queries).

    The row (metrics, interval) stays the earlier run's when that run holds the smallest seed, so
    seeds run one command at a time add up to the table a single ``--seeds`` command writes.
    """
    if not (old and old.get("seeds") and new.get("seeds")) or _recipe(old) != _recipe(new):
        return new
    ran = {r["seed"] for r in new["seeds"]}
    seeds = sorted([r for r in old["seeds"] if r["seed"] not in ran] + new["seeds"], key=lambda r: r["seed"])
    if seeds[0]["seed"] in ran:
        return {**new, "seeds": seeds}
    _stamp_rows({"old": old}, previous)
    return {**old, "seeds": seeds, "command": f"{old['command']}; {new['command']}"}


def _recipe(entry: dict[str, Any]) -> dict[str, Any]:
    """How a row's seeds were trained: its config as its JSON reads back, without the seed, and
    whether each seed drew its own pseudo-queries (seeds of one shared draw and seeds with a draw
    each do not mix)."""
    config = json.loads(json.dumps(entry.get("config") or {}, default=_jsonable))
    config.pop("seed", None)
    return {**config, "pseudo_per_seed": bool(entry.get("pseudo_per_seed"))}


def write_report(report: dict[str, Any], output_dir: Path) -> dict[str, Path]:
    """Write ``quality-<name>.{md,json,png}`` under ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = output_dir / f"quality-{report['name']}"
    paths = {
        "json": stem.with_suffix(".json"),
        "md": stem.with_suffix(".md"),
        "png": stem.with_suffix(".png"),
    }
    atomic_write_text(paths["json"], json.dumps(report, indent=2, default=_jsonable) + "\n")
    atomic_write_text(paths["md"], render(report))
    plot(report, paths["png"])
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (set, tuple, Path)):
        return list(value) if not isinstance(value, Path) else str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` strings as ``TrainingConfig`` keyword arguments, each value a Python literal.

    Example:
        >>> parse_overrides(["pseudo_max_queries=4000", "alphas=(0.5, 1.0)"])
        {'pseudo_max_queries': 4000, 'alphas': (0.5, 1.0)}
    """
    from queryshift.training import TrainingConfig

    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in fields or name == "seed":
            raise ValueError(
                f"--config {item!r}: expected FIELD=VALUE with FIELD a TrainingConfig field other than "
                f"seed ({', '.join(sorted(fields - {'seed'}))})"
            )
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            if not value.isidentifier():
                raise ValueError(
                    f"--config {item!r}: VALUE must be a Python literal (4000, 0.5, (0.5, 1.0), None) "
                    "or a bare word (low_rank)"
                ) from None
            out[name] = value  # a bare word: a string field such as adapter=low_rank
    try:
        TrainingConfig(**out)  # its own checks, before any work
    except TypeError as exc:
        raise ValueError(f"--config: {exc}") from exc
    return out


def parse_setting(spec: str, *, regime: str | None, test_data: str | None) -> dict[str, Any]:
    """One ``--data`` value: ``[NAME=][REGIME:]PATH[,TEST_PATH]``.

    ``REGIME`` (``query``, ``document``, ``cross``) defaults to ``--regime``, else ``document``;
    ``cross`` takes the test data after a comma (or ``--test-data``). ``NAME`` defaults to
    ``<stem of PATH>-<regime>``.

    Example:
        >>> parse_setting("lyft-to-uber=cross:a/train.json,a/val.json", regime=None, test_data=None)["test_data"]
        'a/val.json'
    """
    name, _, rest = spec.rpartition("=") if "=" in spec else ("", "", spec)
    head, sep, tail = rest.partition(":")
    if sep and head in ("query", "document", "cross"):
        regime, rest = head, tail
    regime = regime or "document"
    path, _, test = rest.partition(",")
    test = test or test_data
    if regime == "cross" and not test:
        raise ValueError(
            f"--data {spec!r}: the cross regime needs test data (cross:TRAIN,TEST or --test-data)"
        )
    if regime != "cross" and test:
        raise ValueError(f"--data {spec!r}: test data only applies to the cross regime, not {regime!r}")
    return {
        "name": name or f"{Path(path).stem}-{regime}",
        "data": path,
        "regime": regime,
        "test_data": test or None,
    }


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Run every ``--data`` setting; with several, also write one summary table across them.

    Returns the paths written: ``json``/``md``/``png`` of the setting with one ``--data``; with several,
    ``json``/``md`` of the summary and ``<name>:json``/``<name>:md``/``<name>:png`` of each setting.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        nargs="+",
        help="data to train on, one or more: LlamaIndex JSON or BEIR folder, as [NAME=][REGIME:]PATH[,TEST_PATH]",
    )
    parser.add_argument(
        "--from-results",
        nargs="+",
        metavar="JSON",
        help="instead of --data: write the summary of these quality-<setting>.json reports (no training)",
    )
    parser.add_argument("--format", default="auto", choices=("auto", "llamaindex", "beir"))
    parser.add_argument(
        "--regime",
        choices=("query", "document", "cross"),
        help="regime of --data values without one (document)",
    )
    parser.add_argument("--test-data", help="data to test on (--regime cross)")
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated, from {','.join(ALL_SYSTEMS)}; or all",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the splits, pseudo-queries and intervals (default: the first of --seeds, else 0)",
    )
    parser.add_argument(
        "--seeds",
        help="comma-separated seeds the adapter systems are trained with (e.g. 0,1,2,3,4); the first is the row",
    )
    parser.add_argument("--name", help="setting name in the output file names (one --data only)")
    parser.add_argument(
        "--summary", default="summary", help="with several --data: write quality-<SUMMARY>.{md,json}"
    )
    parser.add_argument("--output-dir", default=str(RESULTS))
    parser.add_argument(
        "--max-test-queries", type=int, help="score only the first N test queries (quick runs)"
    )
    parser.add_argument("--llamaindex-python", default=str(LLAMAINDEX_PYTHON))
    parser.add_argument(
        "--llamaindex-budget-s",
        type=float,
        help="skip llamaindex-2layer when its time extrapolated from llamaindex-linear exceeds this",
    )
    parser.add_argument(
        "--pseudo-per-seed",
        action="store_true",
        help="each of --seeds samples its own pseudo-queries (default: every seed trains on those of "
        "--seed), so the seed spread includes which sentences were drawn",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other systems' rows of an existing quality-<name>.json of the same setting; "
        "the systems run now replace theirs (each row records the command and load that produced it)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a TrainingConfig field for the pseudo-queries and every adapter system (repeatable), "
        "e.g. pseudo_max_queries=4000; recorded in the report",
    )
    parser.add_argument(
        "--not-run",
        action="append",
        default=[],
        metavar="SYSTEM=REASON",
        help="record SYSTEM as not run with REASON (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        args.config = parse_overrides(args.config)
    except ValueError as exc:
        parser.error(str(exc))
    if bool(args.data) == bool(args.from_results):
        parser.error("give either --data (run settings) or --from-results (summarise reports), not both")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "python -m benchmarks.quality " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.from_results:
        reports = [json.loads(Path(path).read_text()) for path in args.from_results]
        return write_summary(summarize(reports, command=command), Path(args.output_dir), args.summary)
    settings = [parse_setting(spec, regime=args.regime, test_data=args.test_data) for spec in args.data]
    if args.name:
        if len(settings) > 1:
            parser.error("--name applies to one --data; name several as NAME=PATH")
        settings[0]["name"] = args.name
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else [args.seed or 0]
    if args.seed is None:
        args.seed = seeds[0]
    reports, paths = [], {}
    for setting in settings:
        report = _run_setting(setting, args, seeds, command)
        reports.append(report)
        written = write_report(report, Path(args.output_dir))
        print(render(report))
        paths.update({f"{setting['name']}:{kind}": path for kind, path in written.items()})
        if len(settings) == 1:
            return written
    summary_paths = write_summary(summarize(reports, command=command), Path(args.output_dir), args.summary)
    return {**summary_paths, **paths}


def write_summary(summary: dict[str, Any], output_dir: Path, name: str) -> dict[str, Path]:
    """Write ``quality-<name>.{json,md}`` under ``output_dir`` and print the table."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / f"quality-{name}.json", "md": output_dir / f"quality-{name}.md"}
    atomic_write_text(paths["json"], json.dumps(summary, indent=2, default=_jsonable) + "\n")
    atomic_write_text(paths["md"], render_summary(summary))
    print(render_summary(summary))
    return paths


def _run_setting(
    setting: dict[str, Any], args: argparse.Namespace, seeds: list[int], command: str
) -> dict[str, Any]:
    """Load, run and describe one setting: the report :func:`write_report` writes."""
    started = time.perf_counter()
    train, test, how = load_setting(
        setting["data"],
        format=args.format,
        regime=setting["regime"],
        test_data=setting["test_data"],
        seed=args.seed,
    )
    if args.max_test_queries:
        test = test.subset(sorted(test.queries)[: args.max_test_queries])
    systems = (
        ALL_SYSTEMS
        if args.systems.strip() == "all"
        else tuple(s.strip() for s in args.systems.split(",") if s.strip())
    )
    not_run = dict(item.split("=", 1) for item in args.not_run)
    report: dict[str, Any] = {
        "name": setting["name"],
        "command": command,
        "how": how,
        "config": {
            "data": setting["data"],
            "format": args.format,
            "regime": setting["regime"],
            "test_data": setting["test_data"],
            "systems": list(systems),
            "seed": args.seed,
            "seeds": seeds,
            "metrics": list(METRICS),
            "max_test_queries": args.max_test_queries,
            "llamaindex": {k: LLAMAINDEX_SYSTEMS[k] for k in systems if k in LLAMAINDEX_SYSTEMS},
            "not_run": not_run,
            "llamaindex_budget_s": args.llamaindex_budget_s,
            "overrides": args.config,
            "pseudo_per_seed": args.pseudo_per_seed,
        },
        "queryshift_version": queryshift.__version__,
    }
    report.update(
        run_quality(
            train,
            test,
            systems=systems,
            seed=args.seed,
            llamaindex_python=args.llamaindex_python,
            llamaindex_budget_s=args.llamaindex_budget_s,
            not_run=not_run,
            adapter_seeds=tuple(seeds),
            overrides=args.config,
            pseudo_per_seed=args.pseudo_per_seed,
        )
    )
    report["llamaindex_versions"] = (
        llamaindex_versions(Path(args.llamaindex_python))
        if any(s in LLAMAINDEX_SYSTEMS for s in systems)
        else None
    )
    report["machine"] = machine()
    report["total_s"] = round(time.perf_counter() - started, 1)
    _stamp_rows(report["results"], report)
    if args.merge:
        report = merge_reports(Path(args.output_dir) / f"quality-{setting['name']}.json", report)
    return report


def summarize(reports: list[dict[str, Any]], *, command: str) -> dict[str, Any]:
    """One row per setting: base, each system with its interval, and for seeded systems the spread.

    ``seed_spread`` (systems run with several seeds): mean, min and max nDCG@10 over the seeds, the
    seeds whose adapter scored below base or kept the identity, and ``mean_difference_ci95``, the
    paired-bootstrap interval of the seed-averaged per-query nDCG@10 against base (``None`` for
    reports written before per-query scores were stored).
    """
    rows = []
    for report in reports:
        results = report["results"]
        base = results.get("base", {})
        row: dict[str, Any] = {
            "name": report["name"],
            "how": report["how"],
            "command": report["command"],
            "load_average_1_5_15": report["machine"]["load_average_1_5_15"],
            "train_queries": report["data"]["train_queries"],
            "test_queries": report["data"]["test_queries"],
            "test_seen_document_rate": report["data"]["test_seen_document_rate"],
            "base": base.get("metrics", {}).get("ndcg@10"),
            "systems": {},
        }
        for system, entry in results.items():
            if system == "base":
                continue
            if entry["status"] != "ok":
                row["systems"][system] = {"status": entry["status"], "reason": entry.get("reason")}
                continue
            runs = entry.get("seeds") or []
            row["systems"][system] = {
                "status": "ok",
                "ndcg@10": entry["metrics"]["ndcg@10"],
                "difference_ci95": entry.get("difference_ci95", {}).get("ndcg@10"),
                "seeds": [{k: v for k, v in r.items() if k != "per_query_ndcg@10"} for r in runs],
                "seed_spread": _seed_spread(runs, base.get("per_query_ndcg@10"), report["config"]["seed"])
                if runs
                else None,
                "identity_chosen": entry.get("identity_chosen"),
            }
        rows.append(row)
    return {
        "command": command,
        "settings": rows,
        "queryshift_version": queryshift.__version__,
        "machine": machine(),
    }


def _seed_spread(runs: list[dict[str, Any]], base: list[float] | None, ci_seed: int) -> dict[str, Any]:
    """Mean, min, max over seeds; seeds below base; the interval of the seed-mean adapter vs base."""
    values = [r["ndcg@10"] for r in runs]
    per_query = [r.get("per_query_ndcg@10") for r in runs]
    mean_ci = None
    if base is not None and all(q is not None and len(q) == len(base) for q in per_query):
        averaged = np.mean(np.asarray(per_query, dtype=np.float64), axis=0)  # (n_test,)
        diff, low, high = bootstrap_difference(np.asarray(base), averaged, seed=ci_seed)
        mean_ci = {"diff": diff, "low": low, "high": high}
    return {
        "seeds": [r["seed"] for r in runs],
        "mean": round(float(np.mean(values)), 4),
        "min": min(values),
        "max": max(values),
        "mean_difference_ci95": mean_ci,
        "below_base": [r["seed"] for r in runs if r["difference_ci95"]["diff"] < 0],
        "identity_kept": [r["seed"] for r in runs if r["identity_chosen"]],
    }


def render_summary(summary: dict[str, Any], *, system: str = "linear") -> str:
    """The Markdown summary: one row per setting for ``system`` (the default adapter), others in brief."""
    lines = [
        "# Retrieval quality across data sets",
        "",
        f"Command: `{summary['command']}`",
        "",
        f"nDCG@10 on each setting's test queries (never used for a choice), all-MiniLM-L6-v2, cosine. `{system}` is "
        "the default recipe (`TrainingConfig()`). Intervals: paired bootstrap 95 % over test queries of the "
        "difference to base; *mean over seeds* pairs the seed-averaged per-query nDCG@10 with base. "
        "Revisit: test queries with a relevant document that a training query also had. "
        "Per-setting tables: `quality-<setting>.md`.",
        "",
        f"| setting | train / test queries | revisit | base | {system}, first seed (Δ [95% CI]) | mean over seeds "
        "(Δ [95% CI]) | min / max over seeds | every seed: Δ [95% CI] | other systems, nDCG@10 |",
        "|---|---|---:|---:|---|---|---|---|---|",
    ]
    for row in summary["settings"]:
        entry = row["systems"].get(system)
        cells = [
            row["name"],
            f"{row['train_queries']:,} / {row['test_queries']:,}",
            f"{100 * row['test_seen_document_rate']:.0f} %",
            _num(row["base"]),
        ]
        if entry is None or entry["status"] != "ok":
            cells += [
                "–" if entry is None else f"not run ({(entry.get('reason') or '')[:60]})",
                "–",
                "–",
                "–",
            ]
        else:
            cells.append(f"{entry['ndcg@10']:.4f} ({_ci(entry['difference_ci95'])})")
            spread = entry.get("seed_spread")
            if spread and len(spread["seeds"]) > 1:
                mean_ci = spread["mean_difference_ci95"]
                cells.append(f"{spread['mean']:.4f}" + (f" ({_ci(mean_ci)})" if mean_ci else ""))
                cells.append(f"{spread['min']:.4f} / {spread['max']:.4f}")
                cells.append(
                    "<br>".join(
                        f"{r['seed']}: {_ci(r['difference_ci95'])}{' identity' if r['identity_chosen'] else ''}"
                        for r in entry["seeds"]
                    )
                )
            else:
                cells += ["one seed", "–", "–"]
        others = [
            f"{name} {e['ndcg@10']:.4f}" if e["status"] == "ok" else f"{name} not run"
            for name, e in row["systems"].items()
            if name != system
        ]
        cells.append(", ".join(others) or "–")
        lines.append("| " + " | ".join(cells) + " |")
    below = [
        f"{row['name']} seed {s}"
        for row in summary["settings"]
        for s in ((row["systems"].get(system) or {}).get("seed_spread") or {}).get("below_base", [])
    ]
    m = summary["machine"]
    lines += [
        "",
        f"Seeds below base: {', '.join(below) or 'none'}. Each setting was run by:",
        "",
        *(f"- {row['name']}: `{row['command']}` (load average {row['load_average_1_5_15']} at its end)"
          for row in summary["settings"]),
        "",
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, load average {m['load_average_1_5_15']} when the "
        f"summary was written; queryshift {summary['queryshift_version']}.",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def _ci(ci: dict[str, float]) -> str:
    return f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
