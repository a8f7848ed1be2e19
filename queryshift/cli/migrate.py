"""`queryshift migrate`: its flags; the job itself is :func:`queryshift.migrate.run_migration`."""

from __future__ import annotations

from pathlib import Path

import click

from queryshift.cli.common import (
    format_option,
    progress_encoder,
    training_config,
    training_options,
    user_errors,
)
from queryshift.training.config import MIGRATION_RECIPE


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path), required=False)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Adapter directory to write."
)
@click.option(
    "--model", required=True, help="The NEW model that will embed the queries (name or local path)."
)
@click.option(
    "--index-model",
    default=None,
    help="The OLD model that embedded the index. With DATA it embeds the documents (unless "
    "--document-vectors holds them); with --collection it is only recorded.",
)
@click.option(
    "--document-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="The index's stored vectors of DATA's documents (.npy + .ids.txt), instead of embedding them with --index-model.",
)
@click.option(
    "--labelled",
    type=click.Path(exists=True, path_type=Path),
    help="Labelled questions (any format) added as training pairs and used for validation "
    "(their documents' stored vectors: the index's, or embedded by --index-model). Default: no labels.",
)
@format_option
@click.option("--split-name", default="train", show_default=True, help="BEIR qrels split of --labelled.")
@click.option(
    "--qdrant-path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Local Qdrant storage folder (QdrantClient(path=...)).",
)
@click.option("--qdrant-url", default=None, help="Qdrant URL; API key from $QDRANT_API_KEY.")
@click.option(
    "--collection",
    default=None,
    help="Migrate the stored vectors of this collection (read, never re-embedded).",
)
@click.option("--using", "vector_name", default=None, help="Named vector of the collection.")
@click.option(
    "--text-field", default=None, help="Payload key holding each point's text (needed with --collection)."
)
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='Labelled pairs for --collection, JSONL {"query": text, "point_id": id}.',
)
@click.option("--max-documents", type=int, default=None, help="Scroll at most this many points.")
@click.option(
    "--old-model-queries",
    is_flag=True,
    help="Also embed the pseudo-queries with --index-model and train each to land on its old-model "
    "vector: only while the old model is at hand (a cheaper query encoder over an index it serves).",
)
@training_options(**MIGRATION_RECIPE)
def migrate(
    data,
    output,
    model,
    index_model,
    document_vectors,
    labelled,
    data_format,
    split_name,
    qdrant_path,
    qdrant_url,
    collection,
    vector_name,
    text_field,
    pairs_path,
    max_documents,
    old_model_queries,
    **params,
):
    """Carry the NEW model's queries into an index the OLD model embedded: no re-indexing, no labels needed.

    DATA is the index (its documents' text; their stored vectors from --document-vectors or
    embedded by --index-model). Or give --collection with --qdrant-path/--qdrant-url and
    --text-field: the stored vectors are read as they are. The documents' text is embedded by
    --model; the adapter starts at the least-squares / Procrustes map and is trained on
    sentences of the documents (and --labelled / --pairs questions when given).
    """
    from queryshift.atomic import check_output_directory
    from queryshift.migrate import run_migration

    with user_errors():
        inputs = (data, qdrant_path, pairs_path, document_vectors, labelled)
        check_output_directory(output, protect=[p for p in inputs if p is not None])
        config = training_config(params)
        qdrant = None
        if collection is not None:
            if data is not None:
                raise click.UsageError("give DATA or --collection, not both")
            if (qdrant_path is None) == (qdrant_url is None):
                raise click.BadParameter(
                    "give exactly one of --qdrant-path or --qdrant-url", param_hint="--qdrant-path"
                )
            if text_field is None:
                raise click.BadParameter(
                    "--collection needs --text-field: the map is fitted on the points' text",
                    param_hint="--text-field",
                )
            qdrant = _client(qdrant_path, qdrant_url)
        elif data is None:
            raise click.UsageError("give DATA (the index), or --collection with --qdrant-path/--qdrant-url")
        elif index_model is None and document_vectors is None:
            raise click.BadParameter(
                "the index's vectors are needed: --index-model (the old model) or --document-vectors",
                param_hint="--index-model",
            )
        run = run_migration(
            output,
            data,
            model=model,
            index_model=index_model,
            config=config,
            new_encoder=progress_encoder(model, device=config.device),
            old_encoder=progress_encoder(index_model, device=config.device)
            if index_model and (collection is None or old_model_queries)
            else None,
            document_vectors=document_vectors,
            labelled=labelled,
            data_format=data_format,
            split_name=split_name,
            qdrant=qdrant,
            collection=collection,
            using=vector_name,
            text_field=text_field,
            pairs=pairs_path,
            max_documents=max_documents,
            old_model_queries=old_model_queries,
            close_qdrant=True,
            echo=click.echo,
            show_progress_bar=True,
        )
        for line in run.report():
            click.echo(line)


def _client(qdrant_path: Path | None, qdrant_url: str | None):
    import os

    from qdrant_client import QdrantClient

    if qdrant_path:
        return QdrantClient(path=str(qdrant_path))
    return QdrantClient(url=qdrant_url, api_key=os.environ.get("QDRANT_API_KEY"))
