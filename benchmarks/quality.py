"""Retrieval quality: base vs queryshift adapters vs LlamaIndex's adapter engine vs a full fine-tune.

Run from the repository root, e.g.::

    python -m benchmarks.quality --data ../shared/data/finetune-embedding/train_dataset.json \\
        --regime cross --test-data ../shared/data/finetune-embedding/val_dataset.json --name lyft-to-uber
    python -m benchmarks.quality --data ../shared/data/finetune-embedding/val_dataset.json --regime query
    python -m benchmarks.quality --data ../shared/data/covidqa --regime document

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
) -> dict[str, Any]:
    """Train every system on ``train``, score it on ``test``; returns the JSON-ready results.

    ``results[system]`` holds ``metrics``, ``difference_ci95`` (vs base), ``train_seconds`` and
    notes; a system that could not run has ``status: "not run"`` and the ``reason``.
    ``llamaindex_budget_s``: skip ``llamaindex-2layer`` when its time, extrapolated from the
    measured seconds per epoch of ``llamaindex-linear`` in the same run, exceeds this budget.
    ``not_run``: systems recorded as not run, with the reason given (e.g. a time limit).
    """
    from queryshift.training import TrainingConfig, train_adapter

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
    # configs differ only in the adapter kind), embedded before any training clock starts.
    tick = time.perf_counter()
    pseudo = (
        pseudo_queries_for(encoder, [train_emb, test_emb], TrainingConfig(seed=seed))
        if any(system in ADAPTER_SYSTEMS for system in systems)
        else None
    )
    pseudo_seconds = time.perf_counter() - tick
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
            results[system] = {"status": "ok", "scores": base, "train_seconds": 0.0}
        elif system in ADAPTER_SYSTEMS:
            config = TrainingConfig(seed=seed, **ADAPTER_SYSTEMS[system])
            t0 = time.perf_counter()
            result = train_adapter(train_emb, config, base_model=encoder.model_name, pseudo=pseudo)
            seconds = time.perf_counter() - t0
            vectors = result.adapter.apply(test_emb.query_vectors)  # (n_test, dim)
            results[system] = {
                "status": "ok",
                "scores": _score(vectors, test_emb),
                "train_seconds": round(seconds, 2),
                "config": {k: v for k, v in vars(config).items()},
                "identity_chosen": result.is_identity,
                "chosen_epoch": result.chosen.epoch,
                "chosen_alpha": result.chosen.alpha,
                "pseudo_queries": result.pseudo_queries,
                "pseudo_embed_seconds": round(pseudo_seconds, 2),
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
    merged["results"] = {k: rows[k] for k in ALL_SYSTEMS if k in rows}
    merged["config"] = {**report["config"], "systems": list(merged["results"])}
    merged["command"] = "; ".join(dict.fromkeys(e["command"] for e in merged["results"].values()))
    merged["total_s"] = round(previous.get("total_s", 0.0) + report["total_s"], 1)
    return merged


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


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="LlamaIndex JSON or BEIR folder to train on")
    parser.add_argument("--format", default="auto", choices=("auto", "llamaindex", "beir"))
    parser.add_argument("--regime", required=True, choices=("query", "document", "cross"))
    parser.add_argument("--test-data", help="data to test on (--regime cross)")
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated, from {','.join(ALL_SYSTEMS)}; or all",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", help="setting name in the output file names (default: from the data path)")
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
        "--merge",
        action="store_true",
        help="keep the other systems' rows of an existing quality-<name>.json of the same setting; "
        "the systems run now replace theirs (each row records the command and load that produced it)",
    )
    parser.add_argument(
        "--not-run",
        action="append",
        default=[],
        metavar="SYSTEM=REASON",
        help="record SYSTEM as not run with REASON (repeatable)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    started = time.perf_counter()
    train, test, how = load_setting(
        args.data, format=args.format, regime=args.regime, test_data=args.test_data, seed=args.seed
    )
    if args.max_test_queries:
        test = test.subset(sorted(test.queries)[: args.max_test_queries])
    systems = (
        ALL_SYSTEMS
        if args.systems.strip() == "all"
        else tuple(s.strip() for s in args.systems.split(",") if s.strip())
    )
    name = args.name or f"{Path(args.data).stem}-{args.regime}"
    report: dict[str, Any] = {
        "name": name,
        "command": "python -m benchmarks.quality " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "how": how,
        "config": {
            "data": args.data,
            "format": args.format,
            "regime": args.regime,
            "test_data": args.test_data,
            "systems": list(systems),
            "seed": args.seed,
            "metrics": list(METRICS),
            "max_test_queries": args.max_test_queries,
            "llamaindex": {k: LLAMAINDEX_SYSTEMS[k] for k in systems if k in LLAMAINDEX_SYSTEMS},
        },
        "queryshift_version": queryshift.__version__,
    }
    not_run = dict(item.split("=", 1) for item in args.not_run)
    report["config"]["not_run"] = not_run
    report["config"]["llamaindex_budget_s"] = args.llamaindex_budget_s
    report.update(
        run_quality(
            train,
            test,
            systems=systems,
            seed=args.seed,
            llamaindex_python=args.llamaindex_python,
            llamaindex_budget_s=args.llamaindex_budget_s,
            not_run=not_run,
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
        report = merge_reports(Path(args.output_dir) / f"quality-{name}.json", report)
    paths = write_report(report, Path(args.output_dir))
    print(render(report))
    return paths


if __name__ == "__main__":
    main()
