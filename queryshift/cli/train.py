"""`queryshift train`: its flags; the job itself is :func:`queryshift.pipeline.run_training`.

Registered on :func:`queryshift.cli.main` by the group's module.
"""

from __future__ import annotations

from pathlib import Path

import click

from queryshift.cli.common import (
    corpus_option,
    format_option,
    progress_encoder,
    training_config,
    training_options,
    user_errors,
)
from queryshift.embeddings import DEFAULT_MODEL


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path), required=False)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Adapter directory to write."
)
@click.option(
    "--qdrant-path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Local Qdrant storage folder (QdrantClient(path=...)).",
)
@click.option(
    "--qdrant-url", default=None, help="Qdrant URL, e.g. http://localhost:6333; API key from $QDRANT_API_KEY."
)
@click.option(
    "--collection", default=None, help="Train on the stored vectors of this collection (needs --pairs)."
)
@click.option(
    "--using", "vector_name", default=None, help="Named vector of the collection (default: unnamed vector)."
)
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL: {"query": text, "point_id": id} or {"query": text, "point_ids": [ids]}.',
)
@click.option(
    "--text-field",
    default=None,
    help="Payload key holding each point's text; pseudo-queries are sampled from it (without it: labels only).",
)
@click.option(
    "--in-memory",
    is_flag=True,
    help="Scroll the collection's vectors into memory (negatives and validation over what was read) "
    "instead of searching the collection (the default: only labelled and mined points are fetched).",
)
@click.option(
    "--max-documents", type=int, default=None, help="With --in-memory: scroll at most this many points."
)
@click.option(
    "--exact", is_flag=True, help="With --collection: exact search (no HNSW) for mining and validation."
)
@format_option
@corpus_option
@click.option(
    "--index-data",
    type=click.Path(exists=True, path_type=Path),
    help="Data whose documents are the corpus the adapter will search, when it is not DATA's "
    "(same formats; its documents are embedded, cached): pseudo-queries are sampled from both corpora.",
)
@click.option("--split-name", default="train", show_default=True, help="BEIR qrels split to train on.")
@click.option(
    "--holdout",
    type=click.Choice(["none", "query", "document"]),
    default="none",
    show_default=True,
    help="Hold out test queries (saved with the adapter; `evaluate` uses them).",
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of queries held out by --holdout.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="sentence-transformers model name or local path.",
)
@click.option(
    "--query-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="Precomputed query vectors (.npy + .ids.txt).",
)
@click.option(
    "--document-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="Precomputed document vectors (.npy + .ids.txt).",
)
@training_options
def train(
    data,
    output,
    qdrant_path,
    qdrant_url,
    collection,
    vector_name,
    pairs_path,
    text_field,
    in_memory,
    max_documents,
    exact,
    data_format,
    corpus,
    index_data,
    split_name,
    holdout,
    test_fraction,
    model,
    query_vectors,
    document_vectors,
    **params,
):
    """Train a query adapter on DATA (or on a Qdrant collection's stored vectors) and save it to --output."""
    from queryshift.atomic import check_output_directory
    from queryshift.pipeline import run_training

    with user_errors():
        inputs = (data, qdrant_path, pairs_path, index_data, query_vectors, document_vectors)
        check_output_directory(output, protect=[p for p in inputs if p is not None])  # before any work
        config = training_config(params)
        qdrant = None
        if collection is not None:
            if data is not None:
                raise click.UsageError("give DATA or --collection with --pairs, not both")
            if max_documents is not None and not in_memory:
                raise click.BadParameter("--max-documents needs --in-memory", param_hint="--max-documents")
            qdrant = _qdrant_client(qdrant_path, qdrant_url, pairs_path)
        elif data is None:
            raise click.UsageError("give DATA, or --collection with --pairs and --qdrant-path/--qdrant-url")
        run = run_training(
            output,
            data,
            config=config,
            model=model,
            encoder=progress_encoder(model, device=config.device),
            data_format=data_format,
            corpus=corpus,
            split_name=split_name,
            holdout=holdout,
            test_fraction=test_fraction,
            query_vectors=query_vectors,
            document_vectors=document_vectors,
            index_data=index_data,
            qdrant=qdrant,
            collection=collection,
            pairs=pairs_path,
            using=vector_name,
            text_field=text_field,
            max_documents=max_documents,
            in_memory=in_memory,
            exact=exact,
            close_qdrant=True,
            echo=click.echo,
            show_progress_bar=True,
        )
        for line in run.report():
            click.echo(line)


def _qdrant_client(qdrant_path: Path | None, qdrant_url: str | None, pairs_path: Path | None):
    """The client ``--qdrant-path`` / ``--qdrant-url`` name (API key from ``$QDRANT_API_KEY``)."""
    import os

    from qdrant_client import QdrantClient

    if pairs_path is None:
        raise click.BadParameter("--collection needs --pairs", param_hint="--pairs")
    if (qdrant_path is None) == (qdrant_url is None):
        raise click.BadParameter(
            "give exactly one of --qdrant-path or --qdrant-url", param_hint="--qdrant-path"
        )
    if qdrant_path:
        return QdrantClient(path=str(qdrant_path))
    return QdrantClient(url=qdrant_url, api_key=os.environ.get("QDRANT_API_KEY"))
