"""`queryshift train`: flags, training from files or a Qdrant collection, the report it prints.

Registered on :func:`queryshift.cli.main` by the group's module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from queryshift.cli.common import (
    FORMATS,
    embed,
    progress_encoder,
    training_config,
    training_options,
    user_errors,
)
from queryshift.data import load_dataset
from queryshift.embeddings import DEFAULT_MODEL, embed_dataset


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
    "--max-documents", type=int, default=None, help="Scroll at most this many points as the corpus."
)
@click.option("--format", "data_format", type=FORMATS, default="auto", show_default=True)
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
    max_documents,
    data_format,
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
    with user_errors():
        config = training_config(params)
        if collection is not None:
            if data is not None:
                raise click.UsageError("give DATA or --collection with --pairs, not both")
            _train_from_qdrant(
                config,
                output,
                qdrant_path=qdrant_path,
                qdrant_url=qdrant_url,
                collection=collection,
                vector_name=vector_name,
                pairs_path=pairs_path,
                text_field=text_field,
                max_documents=max_documents,
                holdout=holdout,
                test_fraction=test_fraction,
                model=model,
            )
            return
        if data is None:
            raise click.UsageError("give DATA, or --collection with --pairs and --qdrant-path/--qdrant-url")
        dataset = load_dataset(data, format=data_format, split=split_name)
        split, seen = _hold_out(dataset, holdout, test_fraction, config.seed)
        train_set = split.apply(dataset)[0] if split else dataset  # held-out queries are never embedded
        click.echo(
            f"Training on {train_set.num_queries} queries over {train_set.num_documents} documents ({dataset.name})"
        )
        encoder = progress_encoder(model, device=config.device)
        embedded = embed(train_set, encoder, query_vectors, document_vectors)
        if query_vectors is not None and config.pseudo_queries:
            # The sentences would have to be embedded by the model behind --query-vectors, not available here.
            click.echo("No pseudo-queries: query vectors come from --query-vectors, whose model is not here.")
            config = dataclasses.replace(config, pseudo_queries=0)
        index = None
        if index_data is not None and config.pseudo_queries:
            index = embed_dataset(load_dataset(index_data, format=data_format, split=split_name), encoder)
        _train_and_report(
            embedded,
            config,
            output,
            encoder=encoder,
            model=model,
            split=split,
            seen=seen,
            data=data,
            index=index,
        )


def _hold_out(dataset, holdout: str, test_fraction: float, seed: int):
    """The ``--holdout`` split and the share of its test queries whose documents training saw.

    ``(None, None)`` with ``--holdout none``.
    """
    from queryshift.splits import seen_document_rate, split_dataset

    if holdout == "none":
        return None, None
    split = split_dataset(dataset, regime=holdout, test_fraction=test_fraction, seed=seed)
    return split, seen_document_rate(*split.apply(dataset))


def _train_and_report(embedded, config, output, *, encoder, model, split, seen, data, index=None) -> None:
    """Train on ``embedded`` (training queries only), save with the held-out ids, print the report.

    Pseudo-queries are sampled from the text of all of ``embedded``'s documents (the corpus the
    adapter will search), held-out queries' documents included: their text is in the index; the
    held-out questions never are. ``index``: the searched corpus when it is not ``embedded``'s.
    """
    from queryshift.pipeline import pseudo_queries_for, train_and_save

    pseudo = pseudo_queries_for(encoder, [embedded] if index is None else [embedded, index], config)
    if config.pseudo_queries and pseudo is None:
        click.echo("No pseudo-queries: the documents carry no text (with --collection, pass --text-field).")
    elif pseudo is not None:
        click.echo(
            f"Adding {len(pseudo.query_ids)} pseudo-queries: sentences of the documents, paired with their document"
        )
    adapter, result = train_and_save(
        embedded,
        config,
        output,
        base_model=model,
        heldout=split.test if split else None,
        split_regime=split.regime if split else "none",
        pseudo=pseudo,
        show_progress_bar=True,
    )
    _report_training(adapter, result, seen, split, data, output)


def _report_training(adapter, result, seen, split, data, output) -> None:
    """What `train` prints after training: validation figures, choice, regime, where it was saved."""
    from queryshift.pipeline import describe_regime

    click.echo(f"Trained {adapter!r} in {result.seconds:.1f}s on {result.device}")
    for name, figures in result.validation.items():
        base, adapted = figures["base"], figures["adapted"]
        shown = "  ".join(f"{m} {base[m]:.4f} -> {adapted[m]:.4f}" for m in ("ndcg@10", "mrr@10", "hit@5"))
        click.echo(f"validation ({name} split, {figures['queries']} queries): {shown}")
    if result.is_identity:
        click.echo(
            "No candidate beat the identity on validation: the saved adapter is the identity (no change)."
        )
    else:
        click.echo(f"Chosen: epoch {result.chosen.epoch}, interpolation alpha {result.chosen.alpha}")
    if seen is not None:
        click.echo(describe_regime(seen, heldout=True))
    else:
        click.echo(describe_regime(result.revisit_rate, heldout=False))
    if split:
        click.echo(
            f"Held out {len(split.test)} queries ({split.regime} split); "
            f"run `queryshift evaluate {data or 'DATA'} --adapter {output}`."
        )
    click.echo(f"Saved to {output}")


def _train_from_qdrant(
    config,
    output,
    *,
    qdrant_path,
    qdrant_url,
    collection,
    vector_name,
    pairs_path,
    text_field,
    max_documents,
    holdout,
    test_fraction,
    model,
) -> None:
    """`train --collection`: document vectors come from Qdrant; only query texts are embedded."""
    import os

    from qdrant_client import QdrantClient

    from queryshift.integrations.qdrant.training_data import (
        collection_distance,
        load_training_data_from_qdrant,
    )

    if pairs_path is None:
        raise click.BadParameter("--collection needs --pairs", param_hint="--pairs")
    if (qdrant_path is None) == (qdrant_url is None):
        raise click.BadParameter(
            "give exactly one of --qdrant-path or --qdrant-url", param_hint="--qdrant-path"
        )
    if qdrant_path:
        client = QdrantClient(path=str(qdrant_path))
    else:
        client = QdrantClient(url=qdrant_url, api_key=os.environ.get("QDRANT_API_KEY"))
    try:
        config = dataclasses.replace(
            config, distance=collection_distance(client, collection, using=vector_name)
        )
        encoder = progress_encoder(model, device=config.device)
        embedded = load_training_data_from_qdrant(
            client,
            collection,
            pairs_path,
            encoder=encoder,
            using=vector_name,
            text_field=text_field,
            max_documents=max_documents,
        )
    finally:
        client.close()  # the vectors are in memory now; free a local store's lock before training
    split, seen = _hold_out(embedded.dataset, holdout, test_fraction, config.seed)
    if split:
        embedded = embedded.subset(split.train)
    click.echo(
        f"Training on {len(embedded.query_ids)} queries over {len(embedded.document_ids)} points of {collection!r}"
    )
    _train_and_report(
        embedded, config, output, encoder=encoder, model=model, split=split, seen=seen, data=None
    )
