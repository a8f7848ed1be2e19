"""CLI commands for the full fine-tune path: `finetune`, `reindex`, `advise` (registered on :func:`queryshift.cli.main`)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import click

from queryshift.cli.common import (
    corpus_option,
    format_option,
    training_config,
    training_options,
    user_errors,
)
from queryshift.data import corpus_for, load_dataset
from queryshift.embeddings import SentenceTransformerEncoder, check_device


def _finetune_options(prefix: str = "", unprefixed: tuple[str, ...] = ()):
    """Flags mapping one-to-one onto :class:`FinetuneConfig` fields: ``--{prefix}{field-name}``.

    Values arrive as ``ft_<field>`` keyword arguments so they never collide with adapter flags.
    """
    from queryshift.training.finetune_config import FinetuneConfig

    defaults = FinetuneConfig()
    hints = typing.get_type_hints(FinetuneConfig)

    def decorate(func):
        for f in reversed(dataclasses.fields(FinetuneConfig)):
            name = f.name.replace("_", "-")
            flag = f"--{name}" if f.name in unprefixed else f"--{prefix}{name}"
            default = getattr(defaults, f.name)
            kwargs: dict = {"default": default, "show_default": True, "help": f.metadata["help"]}
            hint = hints[f.name]
            if typing.get_origin(hint) is typing.Literal:
                kwargs["type"] = click.Choice(typing.get_args(hint))
            elif f.name == "matryoshka_dims":
                kwargs.update(type=int, multiple=True, help=kwargs["help"] + " (repeat the flag per dim)")
            elif default is None:
                kwargs["type"] = int
            else:
                kwargs["type"] = type(default)
            func = click.option(flag, f"ft_{f.name}", **kwargs)(func)
        return func

    return decorate


def _finetune_config(params: dict):
    from queryshift.training.finetune_config import FinetuneConfig

    return FinetuneConfig(**{k[3:]: v for k, v in params.items() if k.startswith("ft_")})


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Model directory to write."
)
@format_option
@corpus_option
@click.option("--split-name", default="train", show_default=True, help="BEIR qrels split to train on.")
@click.option(
    "--validation-data",
    type=click.Path(exists=True, path_type=Path),
    help="Held-out queries that choose the checkpoint (default: carved from DATA by --validation-split).",
)
@_finetune_options()
def finetune(data, output, data_format, corpus, split_name, validation_data, **params):
    """Fine-tune the embedding model itself on DATA (every document must then be re-embedded)."""
    from queryshift.atomic import check_output_directory
    from queryshift.training.finetune import finetune_model, next_step

    with user_errors():
        inputs = [data] + ([validation_data] if validation_data else [])
        check_output_directory(output, protect=inputs)  # before any model is loaded or trained
        config = _finetune_config(params)
        dataset = load_dataset(data, format=data_format, split=split_name, corpus=corpus)
        validation = (
            load_dataset(
                validation_data,
                format=data_format,
                split=split_name,
                corpus=corpus_for(validation_data, corpus, format=data_format),
            )
            if validation_data
            else None
        )
        result = finetune_model(
            dataset, config, output_dir=output, validation=validation, show_progress_bar=True
        )
    v, best = result.validation, result.best_checkpoint
    click.echo(
        f"validation ({v['regime']}, {v['queries']} queries): ndcg@10 {v['base']['ndcg@10']:.4f} -> "
        f"{v['finetuned']['ndcg@10']:.4f}  mrr@10 {v['base']['mrr@10']:.4f} -> {v['finetuned']['mrr@10']:.4f}"
    )
    click.echo(
        f"kept the checkpoint of epoch {best['epoch']:g} (step {best['step']}); "
        f"{result.train_pairs} pairs trained in {result.seconds['train']:.0f}s on {result.device}"
    )
    click.echo(next_step(result))  # suggests `reindex` only for a model that beat the base model


@click.command()
@click.option("--qdrant-url", "url", default=None, help="Qdrant server URL, e.g. http://localhost:6333.")
@click.option(
    "--qdrant-path",
    "qdrant_path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local Qdrant folder.",
)
@click.option("--api-key", envvar="QDRANT_API_KEY", default=None, help="Qdrant API key (or $QDRANT_API_KEY).")
@click.option("--source", required=True, help="Collection (or alias) to re-embed; it is never modified.")
@click.option("--target", required=True, help="New collection to write (resumed if interrupted).")
@click.option("--alias", required=True, help="Alias switched atomically to --target once it is complete.")
@click.option("--model", default=None, help="New model: a name or the folder `queryshift finetune` wrote.")
@click.option(
    "--text-field", default=None, help="Payload field with the text ('_node_content.text' for LlamaIndex)."
)
@click.option(
    "--texts",
    "texts_data",
    type=click.Path(exists=True, path_type=Path),
    help="Instead of --text-field: a data set whose documents are the texts, by point id.",
)
@format_option
@click.option("--vector-name", default=None, help="Named vector to re-embed (default: the only dense one).")
@click.option(
    "--batch-size", type=int, default=128, show_default=True, help="Points embedded and written per batch."
)
@click.option("--expected-dim", type=int, default=None, help="Fail unless the new model has this dimension.")
@click.option(
    "--allow-dim-change", is_flag=True, help="Allow a new dimension (all queries need the new model)."
)
@click.option("--device", default=None, help="torch device (default: cuda when available).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Embedding processes (sentence-transformers pool: one per GPU, or CPU workers).",
)
@click.option(
    "--shard",
    "shard_text",
    default=None,
    metavar="I/N",
    help="Copy only shard I of N (a hash of the point id); run every shard, then --verify-and-switch.",
)
@click.option(
    "--verify-and-switch",
    is_flag=True,
    help="After all shards: verify every point is in --target and switch --alias (no model needed).",
)
@click.option("--no-wait", is_flag=True, help="Do not await upserts; the final check waits for them to land.")
@click.option(
    "--ordering",
    type=click.Choice(["weak", "medium", "strong"]),
    default=None,
    help="Write ordering of the upserts (Qdrant cluster).",
)
@click.option(
    "--shard-key",
    default=None,
    help="Custom-sharding shard key of the points read and written (Qdrant cluster).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def reindex(
    url,
    qdrant_path,
    api_key,
    source,
    target,
    alias,
    model,
    text_field,
    texts_data,
    data_format,
    vector_name,
    batch_size,
    expected_dim,
    allow_dim_change,
    device,
    workers,
    shard_text,
    verify_and_switch,
    no_wait,
    ordering,
    shard_key,
    as_json,
):
    """Re-embed collection --source with --model into --target, verify, and switch --alias to it.

    At scale, run `--shard I/N` for every I (on as many machines; each resumes on its own), then
    once `--verify-and-switch`.
    """
    from qdrant_client import QdrantClient, models

    from queryshift.reindex import WriteOptions

    if (url is None) == (qdrant_path is None):
        raise click.BadParameter(
            "pass exactly one of --qdrant-url or --qdrant-path", param_hint="--qdrant-url/--qdrant-path"
        )
    shard = _parse_shard(shard_text)
    write = WriteOptions(
        shard_key_selector=shard_key,
        ordering=models.WriteOrdering(ordering) if ordering else None,
        wait=not no_wait,
    )
    if verify_and_switch:
        if shard is not None:
            raise click.BadParameter(
                "--verify-and-switch checks every shard; drop --shard", param_hint="--shard"
            )
        _verify_and_switch(url, qdrant_path, api_key, source, target, alias, batch_size, write, as_json)
        return
    if model is None:
        raise click.BadParameter(
            "--model is required (except with --verify-and-switch)", param_hint="--model"
        )
    with user_errors():
        check_device(device)  # before any data is read or collection opened
    if (text_field is None) == (texts_data is None):
        raise click.BadParameter(
            "pass exactly one of --text-field or --texts", param_hint="--text-field/--texts"
        )
    with user_errors(RuntimeError):
        dataset = load_dataset(texts_data, format=data_format) if texts_data else None
        client = QdrantClient(url=url, api_key=api_key) if url else QdrantClient(path=str(qdrant_path))
    try:
        with user_errors():
            report = _reindex_with_workers(
                client,
                SentenceTransformerEncoder(model, device=device, cache=False),
                workers,
                device,
                source_collection=source,
                target_collection=target,
                alias=alias,
                text_field=text_field,
                dataset=dataset,
                vector_name=vector_name,
                batch_size=batch_size,
                expected_dim=expected_dim,
                allow_dim_change=allow_dim_change,
                show_progress_bar=True,
                shard=shard,
                write=write,
            )
    finally:
        client.close()  # releases a local folder's lock even when re-indexing failed
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    if shard is not None:
        click.echo(
            f"shard {shard}: {report.points} points in {report.target_collection} ({report.written} embedded "
            f"now, {report.skipped} from an earlier run; {report.docs_per_second:.1f} docs/s); alias not "
            "switched: run every shard, then `queryshift reindex ... --verify-and-switch`"
        )
        return
    click.echo(
        f"{report.points} points in {report.target_collection} ({report.written} embedded now, "
        f"{report.skipped} from an earlier run; {report.docs_per_second:.1f} docs/s, dim {report.dim})"
    )
    click.echo(
        f"alias {report.alias!r} -> {report.target_collection!r} (was {report.previous_alias_target!r}); "
        f"{report.source_collection!r} is untouched"
    )


def _parse_shard(text: str | None):
    from queryshift.sharding import Shard

    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None


def _reindex_with_workers(client, encoder, workers: int, device: str | None, **kwargs):
    """``reindex_collection`` with ``encoder`` in this process (1 worker) or in a pool of ``workers``."""
    from queryshift.reindex import reindex_collection

    if workers == 1:
        return reindex_collection(client, encoder=encoder, **kwargs)
    from queryshift.encoder_pool import EncoderPool, pool_devices

    with EncoderPool(encoder, pool_devices(workers, device)) as pooled:
        return reindex_collection(client, encoder=pooled, **kwargs)


def _verify_and_switch(url, qdrant_path, api_key, source, target, alias, batch_size, write, as_json) -> None:
    """`reindex --verify-and-switch`: the last step of a sharded re-index."""
    from qdrant_client import QdrantClient

    from queryshift.reindex import verify_and_switch

    with user_errors(RuntimeError):
        client = QdrantClient(url=url, api_key=api_key) if url else QdrantClient(path=str(qdrant_path))
    try:
        with user_errors(RuntimeError):
            switched = verify_and_switch(
                client,
                source_collection=source,
                target_collection=target,
                alias=alias,
                batch_size=batch_size,
                show_progress_bar=True,
                write=write,
            )
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps({"target_collection": target, "alias": alias, "alias_switched": switched}))
    else:
        state = "now points" if switched else "already pointed"
        click.echo(f"every point of {source!r} is in {target!r}; alias {alias!r} {state} at {target!r}")


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--test-data",
    type=click.Path(exists=True, path_type=Path),
    help="Held-out queries to score on (default: split DATA by --regime).",
)
@format_option
@corpus_option
@click.option("--split-name", default="train", show_default=True, help="BEIR qrels split of DATA.")
@click.option(
    "--regime",
    type=click.Choice(["document", "query"]),
    default="document",
    show_default=True,
    help="How DATA is split when --test-data is not given.",
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of DATA's queries held out for scoring when --test-data is not given.",
)
@click.option(
    "--collection-size",
    type=int,
    default=None,
    help="Vectors in your production collection, for the re-index estimate (default: test corpus size).",
)
@click.option(
    "--min-finetune-gain",
    type=float,
    default=0.01,
    show_default=True,
    help="nDCG@10 a fine-tune must gain over the adapter to be recommended (it costs a re-index).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the adapter, the fine-tuned model and advice.json here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@training_options
@_finetune_options(prefix="finetune-", unprefixed=("model",))
def advise(
    data,
    test_data,
    data_format,
    corpus,
    split_name,
    regime,
    test_fraction,
    collection_size,
    min_finetune_gain,
    output,
    as_json,
    **params,
):
    """Measure a query adapter and a full fine-tune on DATA, with their costs, and recommend one."""
    from queryshift.advise import advise as run_advise

    with user_errors():
        adapter_config = training_config(params)
        finetune_config = _finetune_config(params)
        dataset = load_dataset(data, format=data_format, split=split_name, corpus=corpus)
        test = (
            load_dataset(
                test_data,
                format=data_format,
                split="test",
                corpus=corpus_for(test_data, corpus, format=data_format),
            )
            if test_data
            else None
        )
        advice = run_advise(
            dataset,
            test,
            regime=regime,
            encoder=SentenceTransformerEncoder(finetune_config.model, device=adapter_config.device),
            adapter_config=adapter_config,
            finetune_config=finetune_config,
            collection_size=collection_size,
            test_fraction=test_fraction,
            min_finetune_gain=min_finetune_gain,
            seed=adapter_config.seed,
            output_dir=output,
            show_progress_bar=True,
        )
    click.echo(json.dumps(advice.to_dict(), indent=2) if as_json else advice.render())
