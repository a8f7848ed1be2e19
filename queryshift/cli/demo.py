"""`queryshift demo`: train and evaluate adapters on the public 10-K example data."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from queryshift.cli.common import progress_encoder, user_errors
from queryshift.data import load_dataset
from queryshift.embeddings import DEFAULT_MODEL, embed_dataset


@click.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding train_dataset.json and val_dataset.json, i.e. a copy of run-llama/finetune-embedding's "
    "data/ (a folder with a finetune-embedding/ subfolder works too). Default: download them into the cache.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="sentence-transformers model name or local path.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the two demo adapters are saved (default: demo/ in the cache, $QUERYSHIFT_CACHE_DIR or "
    "~/.cache/queryshift).",
)
def demo(data_dir, model, output):
    """Train and evaluate adapters on public 10-K data: Lyft->Uber, and an Uber same-corpus split."""
    from queryshift.atomic import check_output_directory
    from queryshift.demo import default_demo_output, example_data_dir
    from queryshift.pipeline import compare_adapter, pseudo_queries_for, train_and_save
    from queryshift.splits import split_by_query
    from queryshift.training.config import TrainingConfig

    output = output if output is not None else default_demo_output()
    with user_errors():
        for index in (1, 2):  # both adapter directories, before anything is downloaded or trained
            check_output_directory(output / f"setting-{index}", protect=[data_dir] if data_dir else [])
        folder = example_data_dir(data_dir)
        lyft = load_dataset(folder / "train_dataset.json")
        uber = load_dataset(folder / "val_dataset.json")
        encoder = progress_encoder(model)
        config = TrainingConfig()
        split = split_by_query(uber, test_fraction=0.5, seed=config.seed)
        settings = [
            ("Lyft -> Uber (train on Lyft questions, test on all Uber questions)", lyft, uber, "cross", None),
            (
                "Uber same-corpus (train on one question per chunk, test on the rest)",
                uber.subset(split.train),
                uber.subset(split.test),
                "query",
                split.test,
            ),
        ]
        for index, (title, train_set, test_set, regime, heldout) in enumerate(settings, start=1):
            click.echo(f"\n== {title}")
            train_embedded = embed_dataset(train_set, encoder)
            test_embedded = embed_dataset(test_set, encoder)
            # Pseudo-queries come from the documents' text only: the test questions are never seen.
            pseudo = pseudo_queries_for(encoder, [train_embedded, test_embedded], config)
            n_pseudo = len(pseudo.query_ids) if pseudo is not None else 0
            click.echo(
                f"training on {len(train_embedded.query_ids)} questions and {n_pseudo} pseudo-queries "
                "(candidates on held-out training questions, then a refit on all of them)"
            )
            adapter, result = train_and_save(
                train_embedded,
                config,
                output / f"setting-{index}",
                base_model=model,
                heldout=heldout,
                split_regime=regime,
                pseudo=pseudo,
                show_progress_bar=True,
            )
            click.echo(
                f"trained in {result.seconds:.1f}s with {result.pseudo_queries} pseudo-queries from the documents; "
                f"chose epoch {result.chosen.epoch}, alpha {result.chosen.alpha}"
            )
            click.echo(compare_adapter(adapter, test_embedded).render())
    click.echo(f"\nAdapters saved under {output}/ (remove them with: rm -r {shlex.quote(str(output))})")
