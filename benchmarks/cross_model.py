"""Cross-model adapters: query an index one model wrote with another model's queries, through the map.

Two directions per setting:

* index by all-mpnet-base-v2 (768-d), queries by all-MiniLM-L6-v2 (384-d) through the map: a
  smaller, faster query encoder over an index that stays as it is;
* index by MiniLM, queries by mpnet through the map: the old model retired, the new one upgraded.

Rows per direction: the old model's own queries (the reference), the closed-form map alone
(least squares / Procrustes), the trained adapter without labels (pseudo-queries of the indexed
documents only), with labels, and a full re-embed with the new model (what re-indexing would
give). nDCG@10 with a paired bootstrap 95 % CI of the difference to the old model's own queries
and to the re-embed.

Settings (``--setting``):

* ``lyft-uber``: the 395 Uber 10-K chunks (``val_dataset.json``) are the index, all 790 Uber
  questions the test; "with labels" adds the 668 Lyft training questions (``train_dataset.json``),
  whose targets are Lyft's 334 chunks as the old model embeds them.
* ``covidqa``: the BEIR folder's 2,295 chunks are the index, ``qrels/test.tsv`` (215 questions)
  the test, ``qrels/train.tsv`` (1,165 questions, other papers) the labels. ``--docs N`` keeps
  every chunk of the test papers plus a seeded sample of the others, N chunks in all.
* ``uber-sample``: ``--docs N`` seeded Uber chunks; the first question (by id) of each chunk is
  the labelled one, the others the test (same-corpus labels).

mpnet embeds a 10-K chunk in ~1.5-4 s on one shared core here; vectors go to the embedding
cache in slices, so an interrupted run keeps what it embedded and a re-run is cheap.

Usage::

    python -m benchmarks.cross_model --setting lyft-uber --mpnet "$(bash ../shared/models/fetch_all_mpnet_base_v2.sh | tail -1)"
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import queryshift
from benchmarks.quality import machine
from queryshift.atomic import atomic_write_text
from queryshift.data import RetrievalDataset, load_beir, load_dataset
from queryshift.embeddings import DEFAULT_MODEL, EmbeddedDataset, SentenceTransformerEncoder
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval
from queryshift.training import TrainingConfig
from queryshift.training.cross_model import train_cross_model_adapter
from queryshift.training.pseudo_queries import sample_pseudo_queries

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"
FINETUNE = SHARED / "finetune-embedding"
DATA = FINETUNE / "val_dataset.json"
COVIDQA = SHARED / "covidqa"
SETTINGS = ("lyft-uber", "covidqa", "uber-sample")
METRICS = ("ndcg@10", "mrr@10", "hit@5", "recall@10")
SLICE = 32  # texts per cache write: an interrupted run keeps what it embedded
AIMED = "adapter, old model at hand (no labels)"  # + the old model's vectors of the pseudo-queries


@dataclass
class Setting:
    """What one benchmark setting searches and trains on.

    ``index`` holds the indexed documents and the test questions; ``labelled`` the labelled
    training questions with the documents they point at (the index's, or another corpus's).
    """

    index: RetrievalDataset
    labelled: RetrievalDataset
    description: str


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
    return _restrict(full, labelled, documents, "uber-labelled"), _restrict(
        full, test, documents, "uber-test"
    )


def _restrict(
    full: RetrievalDataset, query_ids: list[str], documents: dict[str, str], name: str
) -> RetrievalDataset:
    return RetrievalDataset(
        {q: full.queries[q] for q in query_ids}, documents, {q: full.qrels[q] for q in query_ids}, name=name
    )


def _answerable(part: RetrievalDataset, documents: dict[str, str], name: str) -> RetrievalDataset:
    """``part``'s questions whose relevant documents are all in ``documents``, over those documents."""
    keep = [q for q in sorted(part.queries) if part.qrels[q] <= documents.keys()]
    return _restrict(part, keep, documents, name)


def covidqa_subset(
    documents: dict[str, str], test: RetrievalDataset, docs: int | None, seed: int
) -> list[str]:
    """Every chunk of the papers the test questions are about, then a seeded sample of the others.

    Chunk ids are ``{paper}_{chunk}``; ``docs=None`` (or at least the corpus) keeps them all.
    """
    paper = {d: d.rsplit("_", 1)[0] for d in documents}
    test_papers = {paper[d] for q in test.qrels for d in test.qrels[q]}
    first = sorted(d for d in documents if paper[d] in test_papers)
    others = np.random.default_rng(seed).permutation(
        sorted(d for d in documents if paper[d] not in test_papers)
    )
    if docs is None or docs >= len(documents):
        return sorted(documents)
    if docs < len(first):
        raise ValueError(f"--docs {docs}: covidqa needs at least the {len(first)} chunks of its test papers")
    return sorted(first + others[: docs - len(first)].tolist())


def load_setting(name: str, *, docs: int | None, seed: int, data: Path | None = None) -> Setting:
    """The index, test and labelled questions of setting ``name`` (one of :data:`SETTINGS`)."""
    if name == "uber-sample":
        labelled, test = build_setting(data or DATA, docs or 120, seed)
        return Setting(
            test,
            labelled,
            f"{test.num_documents} of the 395 Uber 10-K chunks (`val_dataset.json`, seeded sample) as the index; "
            f"{test.num_queries} test questions about them; {labelled.num_queries} labelled questions (the first "
            "question of each chunk, same-corpus labels) for the with-labels rows only.",
        )
    if name == "lyft-uber":
        base = data or FINETUNE
        test, lyft = load_dataset(base / "val_dataset.json"), load_dataset(base / "train_dataset.json")
        if docs is not None:
            raise ValueError(
                "--docs applies to uber-sample and covidqa; lyft-uber always indexes all Uber chunks"
            )
        return Setting(
            test,
            lyft,
            f"all {test.num_documents} Uber 10-K chunks (`val_dataset.json`) as the index, all {test.num_queries} "
            f"Uber questions as the test; with labels = the {lyft.num_queries} Lyft training questions "
            f"(`train_dataset.json`), their targets Lyft's {lyft.num_documents} chunks as the old model embeds them.",
        )
    if name == "covidqa":
        folder = data or COVIDQA
        test, train = load_beir(folder, split="test"), load_beir(folder, split="train")
        chosen = covidqa_subset(test.documents, test, docs, seed)
        documents = {d: test.documents[d] for d in chosen}
        test_part = _answerable(test, documents, "covidqa-test")
        train_part = _answerable(train, documents, "covidqa-train")
        scope = (
            f"all {len(documents)} chunks"
            if len(documents) == test.num_documents
            else f"{len(documents)} of the {test.num_documents} chunks (every chunk of the test papers plus a "
            f"seeded sample, seed {seed}, of the others)"
        )
        return Setting(
            test_part,
            train_part,
            f"covidqa (BEIR folder `{folder.name}`): {scope} as the index; test = `qrels/test.tsv` "
            f"({test_part.num_queries} questions); with labels = `qrels/train.tsv` ({train_part.num_queries} "
            "questions about other papers, those whose answer chunk is indexed).",
        )
    raise ValueError(f"--setting must be one of {', '.join(SETTINGS)}; got {name!r}")


def _embed(encoder: SentenceTransformerEncoder, side: str, texts: list[str]) -> np.ndarray:
    """Embed in slices so each slice reaches the cache before the next starts."""
    encode = encoder.encode_documents if side == "document" else encoder.encode_queries
    parts = [encode(texts[i : i + SLICE]) for i in range(0, len(texts), SLICE)]
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


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


def _ci(baseline: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    return dict(zip(("diff", "low", "high"), bootstrap_difference(baseline, candidate), strict=True))


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    load_at_start = machine()["load_average_1_5_15"]
    setting = load_setting(
        args.setting, docs=args.docs, seed=args.seed, data=Path(args.data) if args.data else None
    )
    test, labelled = setting.index, setting.labelled
    doc_ids = sorted(test.documents)
    lab_doc_ids = sorted(labelled.documents)
    sampled = sample_pseudo_queries(test.documents, per_document=args.pseudo_queries, seed=args.seed)
    pseudo_ids = sorted(sampled.queries)
    test_ids, lab_ids = sorted(test.queries), sorted(labelled.queries)
    models = {"MiniLM": DEFAULT_MODEL, "mpnet": args.mpnet}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    embed_seconds = {}
    for short, name in models.items():
        encoder = SentenceTransformerEncoder(name)
        t = time.perf_counter()
        vectors[short] = {
            "docs": _embed(encoder, "document", [test.documents[d] for d in doc_ids]),
            "test": _embed(encoder, "query", [test.queries[q] for q in test_ids]),
            "labelled": _embed(encoder, "query", [labelled.queries[q] for q in lab_ids]),
            "labelled_docs": _embed(encoder, "document", [labelled.documents[d] for d in lab_doc_ids]),
            "pseudo": _embed(encoder, "query", [sampled.queries[q] for q in pseudo_ids]),
        }
        embed_seconds[short] = round(time.perf_counter() - t, 1)
        print(f"embedded with {short} in {embed_seconds[short]}s", file=sys.stderr, flush=True)
    timing_texts = [test.queries[q] for q in test_ids[: args.timing_queries]]
    query_seconds = {
        short: _per_query_seconds(SentenceTransformerEncoder(name), timing_texts)
        for short, name in models.items()
    }
    directions = {}
    for old, new in (("mpnet", "MiniLM"), ("MiniLM", "mpnet")):
        stored, fresh = vectors[old]["docs"], vectors[new]["docs"]
        pseudo = EmbeddedDataset(sampled, pseudo_ids, vectors[new]["pseudo"], doc_ids, stored, new)
        lab = EmbeddedDataset(
            labelled, lab_ids, vectors[new]["labelled"], lab_doc_ids, vectors[old]["labelled_docs"], new
        )
        config = TrainingConfig(seed=args.seed)
        common = {
            "pseudo": pseudo,
            "document_ids": doc_ids,
            "base_model": models[new],
            "index_model": models[old],
        }
        no_labels = train_cross_model_adapter(stored, fresh, config, **common)
        with_labels = train_cross_model_adapter(stored, fresh, config, labelled=lab, **common)
        # Only when the old model is at hand: its vectors of the pseudo-queries' text as extra targets.
        aimed = train_cross_model_adapter(
            stored, fresh, config, pseudo_targets=vectors[old]["pseudo"], **common
        )
        q_new = vectors[new]["test"]
        own_name, reembed_name = f"old model ({old}) own queries", f"full re-embed ({new})"
        runs = {
            own_name: _run(vectors[old]["test"], test_ids, stored, doc_ids, test.qrels),
            "closed-form map only": _run(
                no_labels.closed_form.raw(q_new), test_ids, stored, doc_ids, test.qrels
            ),
            "adapter, no labels": _run(no_labels.adapter.apply(q_new), test_ids, stored, doc_ids, test.qrels),
            "adapter, with labels": _run(
                with_labels.adapter.apply(q_new), test_ids, stored, doc_ids, test.qrels
            ),
            AIMED: _run(aimed.adapter.apply(q_new), test_ids, stored, doc_ids, test.qrels),
            reembed_name: _run(q_new, test_ids, fresh, doc_ids, test.qrels),
        }
        own, reembed = runs[own_name].per_query["ndcg@10"], runs[reembed_name].per_query["ndcg@10"]
        rows = {
            name: {
                "metrics": result.metrics,
                "share_of_old_ndcg@10": result.metrics["ndcg@10"] / runs[own_name].metrics["ndcg@10"],
                "vs_old_ci95": _ci(own, result.per_query["ndcg@10"]),
                "vs_reembed_ci95": _ci(reembed, result.per_query["ndcg@10"]),
            }
            for name, result in runs.items()
        }
        trained_rows = (
            ("adapter, no labels", no_labels),
            ("adapter, with labels", with_labels),
            (AIMED, aimed),
        )
        for row_name, trained in trained_rows:
            rows[row_name].update(
                train_seconds=round(trained.seconds, 1),
                apply_us=round(_apply_microseconds(trained.adapter, q_new[0]), 1),
                closed_form=trained.closed_form.summary(),
                kept_closed_form=trained.kept_closed_form,
            )
        directions[f"index {old}, queries {new}"] = {
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
            "setting": args.setting,
            "description": setting.description,
            "documents": len(doc_ids),
            "test_queries": len(test_ids),
            "labelled_queries": len(lab_ids),
            "labelled_documents": len(lab_doc_ids),
            "pseudo_queries": len(pseudo_ids),
        },
        "embed_seconds": embed_seconds,
        "settings": directions,
        "machine": machine(),
        "load_average_at_start": load_at_start,
        "queryshift_version": queryshift.__version__,
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def render(report: dict[str, Any]) -> str:
    d, m = report["data"], report["machine"]
    lines = [
        f"# Cross-model adapters: new-model queries on an old-model index ({d['setting']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Setting: {d['description']} {d['pseudo_queries']} pseudo-queries (up to "
        f"{report['config']['pseudo_queries']} sentences of each indexed chunk) train the no-labels adapter and add "
        "pairs to the with-labels one. Models: all-MiniLM-L6-v2 (384-d) and all-mpnet-base-v2 (768-d), cosine, "
        "brute force. Adapters: `train_cross_model_adapter` with `TrainingConfig()` (linear), the closed-form "
        "map chosen on the held-out documents' pseudo-queries (`document_ids`). *Old model at hand*: no labels, "
        "plus the old model's own vectors of the pseudo-queries as extra targets (`pseudo_targets`); it needs the "
        "old model at training time, so it is for the cheaper-query-encoder case, not for a retired model. CIs: "
        "paired bootstrap 95 % of the nDCG@10 difference over test queries (2,000 resamples).",
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
            f"Closed-form map: {cf['method']} (ridge {cf['ridge']}, chosen on held-out {cf.get('chosen_on', 'documents')}). "
            "Kept the closed-form map: no labels "
            f"{s['rows']['adapter, no labels']['kept_closed_form']}, with labels {s['rows']['adapter, with labels']['kept_closed_form']}.",
            "",
        ]
    lines.append(
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['memory_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}; "
        f"load average {report.get('load_average_at_start', '?')} at the start and {m['load_average_1_5_15']} at "
        f"the end (1, 5, 15 min; above {m['usable_cpus']} means other work shared the cores); Python {m['python']}, "
        f"torch {m['torch']}, numpy {m['numpy']}, sentence-transformers {m['sentence_transformers']}, queryshift "
        f"{m['queryshift']}. Embedding (seconds, vectors the shared cache already held cost nothing): "
        f"{report['embed_seconds']}. Total {report['total_seconds']} s."
    )
    return "\n".join(lines) + "\n"


ROW_ORDER = (
    "old model",
    "closed-form",
    "adapter, no labels",
    "adapter, with labels",
    "adapter, old",
    "full re-embed",
)


def _row_rank(name: str) -> int:
    """Rows in reading order (JSON sorts its keys): old model, map, adapters, re-embed."""
    return next(i for i, prefix in enumerate(ROW_ORDER) if name.startswith(prefix))


def summary(reports: dict[str, dict[str, Any]]) -> str:
    """One table over several settings' reports (name -> report), the rows the README quotes."""
    lines = [
        "| setting | direction | queries | nDCG@10 | % of old model | Δ vs old model [95% CI] | Δ vs full re-embed [95% CI] | train / apply per query |",
        "|---|---|---|---:|---:|---|---|---|",
    ]
    for setting, report in reports.items():
        for title, s in sorted(report["settings"].items(), key=lambda item: item[1]["old"] != "mpnet"):
            for name, row in sorted(s["rows"].items(), key=lambda item: _row_rank(item[0])):
                a, b = row["vs_old_ci95"], row["vs_reembed_ci95"]
                cost = f"{row['train_seconds']} s / {row['apply_us']} µs" if "train_seconds" in row else "–"
                lines.append(
                    f"| {setting} | {title} | {name} | {row['metrics']['ndcg@10']:.4f} | "
                    f"{100 * row['share_of_old_ndcg@10']:.1f} % | {a['diff']:+.4f} [{a['low']:+.4f}, {a['high']:+.4f}] | "
                    f"{b['diff']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] | {cost} |"
                )
    return "\n".join(lines) + "\n"


def output_paths(out: Path, setting: str, docs: int | None = None) -> dict[str, Path]:
    """``cross_model.{json,md}`` for ``uber-sample`` (the first run's files), else ``cross_model-SETTING.*``.

    A covidqa run on a subset (``--docs N``) writes ``cross_model-covidqa-docsN.*``, so it never
    overwrites the full run's files; ``--summary covidqa-docsN`` reads it.
    """
    if setting == "uber-sample":
        stem = "cross_model"
    else:
        stem = f"cross_model-{setting}" + (f"-docs{docs}" if setting == "covidqa" and docs else "")
    return {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mpnet", help="Folder of all-mpnet-base-v2 (fetch_all_mpnet_base_v2.sh prints it).")
    parser.add_argument("--setting", choices=SETTINGS, default="uber-sample")
    parser.add_argument(
        "--data",
        default=None,
        help="Override the setting's data (a file, a folder of Lyft/Uber JSON, a BEIR folder).",
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=None,
        help="Chunks indexed (uber-sample: default 120; covidqa: default all).",
    )
    parser.add_argument("--pseudo-queries", type=int, default=3)
    parser.add_argument("--timing-queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument(
        "--summary",
        nargs="+",
        metavar="SETTING",
        help="Run nothing: print one table over these settings' JSON results in --output-dir "
        "(covidqa-docsN: a covidqa run with --docs N).",
    )
    args = parser.parse_args(argv)
    if args.summary:
        out = Path(args.output_dir)
        reports = {s: json.loads(output_paths(out, s)["json"].read_text()) for s in args.summary}
        print(summary(reports), end="")
        return {}
    if not args.mpnet:
        parser.error("--mpnet is required to run a setting")
    report = run(args)
    paths = output_paths(Path(args.output_dir), args.setting, args.docs)
    atomic_write_text(paths["json"], json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    atomic_write_text(paths["md"], render(report))
    return paths


if __name__ == "__main__":
    main()
