"""Cross-model adapters: query an index one model wrote with another model's queries, through the map.

Two directions on the Uber 10-K (``val_dataset.json``, the searched corpus of Lyft→Uber):

* index by all-mpnet-base-v2 (768-d), queries by all-MiniLM-L6-v2 (384-d) through the map: a
  smaller, faster query encoder over an index that stays as it is;
* index by MiniLM, queries by mpnet through the map: the old model retired, the new one upgraded.

Rows per direction: the old model's own queries (the reference), the closed-form map alone
(least squares / Procrustes), the trained adapter without labels (pseudo-queries only), with
labels, and a full re-embed with the new model (what re-indexing would give). nDCG@10 with a
paired bootstrap 95 % CI of the difference to the old model's own queries and to the re-embed.

Cost control (mpnet embeds ~4 s per Uber chunk on one shared core here): ``--docs N`` samples N
of the 395 chunks (seed 0) as the index, with every Uber question about them. Each chunk has
two questions: the first (by id) is the labelled training question, the others are the test
queries, so "with labels" is the same-corpus setting (labels about the indexed documents);
Lyft's questions are not used (embedding Lyft's chunks with mpnet as well did not fit the time).

Usage::

    python -m benchmarks.cross_model --mpnet "$(bash ../shared/models/fetch_all_mpnet_base_v2.sh | tail -1)" --docs 120
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import queryshift
from benchmarks.quality import machine
from queryshift.atomic import atomic_write_text
from queryshift.data import RetrievalDataset, load_dataset
from queryshift.embeddings import DEFAULT_MODEL, EmbeddedDataset, SentenceTransformerEncoder
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval
from queryshift.training import TrainingConfig
from queryshift.training.cross_model import train_cross_model_adapter
from queryshift.training.pseudo_queries import sample_pseudo_queries

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "finetune-embedding" / "val_dataset.json"
METRICS = ("ndcg@10", "mrr@10", "hit@5", "recall@10")


def build_setting(data: Path, docs: int, seed: int) -> tuple[RetrievalDataset, RetrievalDataset]:
    """``(labelled, test)`` over a seeded sample of ``docs`` chunks: first question per chunk labelled."""
    full = load_dataset(data)
    rng = np.random.default_rng(seed)
    order = rng.permutation(sorted(full.documents)).tolist()  # a prefix: smaller runs reuse the cache
    chosen = sorted(order[: min(docs, full.num_documents)])
    keep = set(chosen)
    documents = {d: full.documents[d] for d in chosen}
    by_doc: dict[str, list[str]] = {}
    for q in sorted(full.queries):
        relevant = full.qrels[q] & keep
        if relevant and relevant == full.qrels[q]:
            by_doc.setdefault(min(relevant), []).append(q)
    labelled = [qs[0] for qs in by_doc.values() if len(qs) > 1]
    test = [q for qs in by_doc.values() for q in (qs[1:] if len(qs) > 1 else qs)]

    def part(ids: list[str], name: str) -> RetrievalDataset:
        return RetrievalDataset(
            {q: full.queries[q] for q in ids}, documents, {q: full.qrels[q] for q in ids}, name=name
        )

    return part(labelled, "uber-labelled"), part(test, "uber-test")


def _run(queries: np.ndarray, ids: list[str], docs: np.ndarray, doc_ids: list[str], qrels) -> Any:
    return evaluate_retrieval(queries, ids, docs, doc_ids, qrels, metrics=METRICS)


def _per_query_seconds(encoder: SentenceTransformerEncoder, texts: list[str]) -> float:
    """Seconds per query to embed ``texts`` one at a time (uncached), median of the calls."""
    fresh = SentenceTransformerEncoder(encoder.model_name, cache=False)
    fresh.model  # load outside the timing  # noqa: B018
    times = []
    for text in texts:
        start = time.perf_counter()
        fresh.encode_queries([text])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _apply_microseconds(adapter, vector: np.ndarray, repeats: int = 2000) -> float:
    adapter.apply(vector)
    start = time.perf_counter()
    for _ in range(repeats):
        adapter.apply(vector)
    return (time.perf_counter() - start) / repeats * 1e6


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    labelled, test = build_setting(Path(args.data), args.docs, args.seed)
    doc_ids = sorted(test.documents)
    doc_texts = [test.documents[d] for d in doc_ids]
    sampled = sample_pseudo_queries(test.documents, per_document=args.pseudo_queries, seed=args.seed)
    pseudo_ids = sorted(sampled.queries)
    models = {"MiniLM": DEFAULT_MODEL, "mpnet": args.mpnet}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    embed_seconds = {}
    for short, name in models.items():
        encoder = SentenceTransformerEncoder(name)
        t = time.perf_counter()
        vectors[short] = {
            "docs": encoder.encode_documents(doc_texts),
            "test": encoder.encode_queries([test.queries[q] for q in sorted(test.queries)]),
            "labelled": encoder.encode_queries([labelled.queries[q] for q in sorted(labelled.queries)]),
            "pseudo": encoder.encode_queries([sampled.queries[q] for q in pseudo_ids]),
        }
        embed_seconds[short] = round(time.perf_counter() - t, 1)
        print(f"embedded with {short} in {embed_seconds[short]}s", file=sys.stderr, flush=True)
    timing_texts = [test.queries[q] for q in sorted(test.queries)[: args.timing_queries]]
    query_seconds = {
        short: _per_query_seconds(SentenceTransformerEncoder(name), timing_texts)
        for short, name in models.items()
    }
    test_ids, lab_ids = sorted(test.queries), sorted(labelled.queries)
    settings = {}
    for old, new in (("mpnet", "MiniLM"), ("MiniLM", "mpnet")):
        stored, fresh = vectors[old]["docs"], vectors[new]["docs"]
        pseudo = EmbeddedDataset(sampled, pseudo_ids, vectors[new]["pseudo"], doc_ids, stored, new)
        lab = EmbeddedDataset(labelled, lab_ids, vectors[new]["labelled"], doc_ids, stored, new)
        config = TrainingConfig(seed=args.seed)
        no_labels = train_cross_model_adapter(
            stored, fresh, config, pseudo=pseudo, base_model=models[new], index_model=models[old]
        )
        with_labels = train_cross_model_adapter(
            stored,
            fresh,
            config,
            pseudo=pseudo,
            labelled=lab,
            base_model=models[new],
            index_model=models[old],
        )
        q_new = vectors[new]["test"]
        closed = no_labels.closed_form.raw(q_new)
        runs = {
            f"old model ({old}) own queries": _run(
                vectors[old]["test"], test_ids, stored, doc_ids, test.qrels
            ),
            "closed-form map only": _run(closed, test_ids, stored, doc_ids, test.qrels),
            "adapter, no labels": _run(no_labels.adapter.apply(q_new), test_ids, stored, doc_ids, test.qrels),
            "adapter, with labels": _run(
                with_labels.adapter.apply(q_new), test_ids, stored, doc_ids, test.qrels
            ),
            f"full re-embed ({new})": _run(q_new, test_ids, fresh, doc_ids, test.qrels),
        }
        own, reembed = runs[f"old model ({old}) own queries"], runs[f"full re-embed ({new})"]
        rows = {}
        for name, result in runs.items():
            rows[name] = {
                "metrics": result.metrics,
                "share_of_old_ndcg@10": result.metrics["ndcg@10"] / own.metrics["ndcg@10"],
                "vs_old_ci95": dict(
                    zip(
                        ("diff", "low", "high"),
                        bootstrap_difference(own.per_query["ndcg@10"], result.per_query["ndcg@10"]),
                        strict=True,
                    )
                ),
                "vs_reembed_ci95": dict(
                    zip(
                        ("diff", "low", "high"),
                        bootstrap_difference(reembed.per_query["ndcg@10"], result.per_query["ndcg@10"]),
                        strict=True,
                    )
                ),
            }
        rows["adapter, no labels"].update(
            train_seconds=round(no_labels.seconds, 1),
            apply_us=round(_apply_microseconds(no_labels.adapter, q_new[0]), 1),
            closed_form=no_labels.closed_form.summary(),
            kept_closed_form=no_labels.kept_closed_form,
        )
        rows["adapter, with labels"].update(
            train_seconds=round(with_labels.seconds, 1),
            apply_us=round(_apply_microseconds(with_labels.adapter, q_new[0]), 1),
            kept_closed_form=with_labels.kept_closed_form,
        )
        settings[f"index {old}, queries {new}"] = {
            "old": old,
            "new": new,
            "rows": rows,
            "query_embed_ms": {
                old: round(1e3 * query_seconds[old], 1),
                new: round(1e3 * query_seconds[new], 1),
            },
            "validation_no_labels": no_labels.training.validation,
            "validation_with_labels": with_labels.training.validation,
        }
    return {
        "command": "python -m benchmarks.cross_model " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "config": vars(args),
        "data": {
            "corpus": str(args.data),
            "documents": len(doc_ids),
            "test_queries": len(test_ids),
            "labelled_queries": len(lab_ids),
            "pseudo_queries": len(pseudo_ids),
        },
        "embed_seconds": embed_seconds,
        "settings": settings,
        "machine": machine(),
        "queryshift_version": queryshift.__version__,
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def render(report: dict[str, Any]) -> str:
    d, m = report["data"], report["machine"]
    lines = [
        "# Cross-model adapters: new-model queries on an old-model index",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Setting: {d['documents']} of the 395 Uber 10-K chunks (`val_dataset.json`, seeded sample) as the index; "
        f"{d['test_queries']} test questions about them; {d['labelled_queries']} labelled questions (the first "
        f"question of each chunk) for the with-labels rows only; {d['pseudo_queries']} pseudo-queries (sentences of "
        "the chunks). Models: all-MiniLM-L6-v2 (384-d) and all-mpnet-base-v2 (768-d), cosine, brute force. "
        "Adapters: `train_cross_model_adapter` with `TrainingConfig()` (linear). CIs: paired bootstrap 95 % of the "
        "nDCG@10 difference over test queries (2,000 resamples).",
        "",
    ]
    for title, s in report["settings"].items():
        old, new = s["old"], s["new"]
        lines += [
            f"## {title}",
            "",
            "| queries | nDCG@10 | % of old | Δ vs old [95% CI] | Δ vs re-embed [95% CI] | MRR@10 | recall@10 | train s | apply µs/query |",
            "|---|---:|---:|---|---|---:|---:|---:|---:|",
        ]
        for name, row in s["rows"].items():
            a, b = row["vs_old_ci95"], row["vs_reembed_ci95"]
            lines.append(
                f"| {name} | {row['metrics']['ndcg@10']:.4f} | {100 * row['share_of_old_ndcg@10']:.1f} % | "
                f"{a['diff']:+.4f} [{a['low']:+.4f}, {a['high']:+.4f}] | {b['diff']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] | "
                f"{row['metrics']['mrr@10']:.4f} | {row['metrics']['recall@10']:.4f} | {row.get('train_seconds', '–')} | "
                f"{row.get('apply_us', '–')} |"
            )
        cf = s["rows"]["adapter, no labels"]["closed_form"]
        lines += [
            "",
            f"Embedding one query (uncached, median): {old} {s['query_embed_ms'][old]} ms, {new} {s['query_embed_ms'][new]} ms. "
            f"Closed-form map: {cf['method']} (ridge {cf['ridge']}). Kept the closed-form map: no labels "
            f"{s['rows']['adapter, no labels']['kept_closed_form']}, with labels {s['rows']['adapter, with labels']['kept_closed_form']}.",
            "",
        ]
    lines.append(
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['memory_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}; "
        f"load average {m['load_average_1_5_15']} at the end (1, 5, 15 min; above {m['usable_cpus']} means other work "
        f"shared the cores); Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, sentence-transformers "
        f"{m['sentence_transformers']}, queryshift {m['queryshift']}. Embedding: {report['embed_seconds']} s. "
        f"Total {report['total_seconds']} s."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mpnet", required=True, help="Folder of all-mpnet-base-v2 (fetch_all_mpnet_base_v2.sh prints it)."
    )
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--docs", type=int, default=120, help="Chunks sampled as the index (395 = all).")
    parser.add_argument("--pseudo-queries", type=int, default=3)
    parser.add_argument("--timing-queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    report = run(args)
    out = Path(args.output_dir)
    paths = {"json": out / "cross_model.json", "md": out / "cross_model.md"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    atomic_write_text(paths["md"], render(report))
    return paths


if __name__ == "__main__":
    main()
