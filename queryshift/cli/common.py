"""What every ``queryshift`` command shares: data-format choice, training flags, encoders, errors.

The command modules import this one and nothing else from :mod:`queryshift.cli`; the group in
``queryshift/cli/__init__.py`` imports the command modules. Imports stay light (no torch,
sentence-transformers, qdrant-client or llama-index at module level) so ``queryshift --help`` is fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import click

from queryshift.embeddings import SentenceTransformerEncoder, embed_dataset, load_vectors
from queryshift.errors import QueryshiftError

__all__ = [
    "FORMATS",
    "corpus_option",
    "format_option",
    "USER_ERRORS",
    "embed",
    "progress_encoder",
    "training_config",
    "training_options",
    "user_errors",
]

FORMATS = click.Choice(["auto", "llamaindex", "beir", "pairs"])

format_option = click.option(
    "--format",
    "data_format",
    type=FORMATS,
    default="auto",
    show_default=True,
    help="How the data is read: llamaindex (.json), beir (a folder), pairs (.jsonl); auto guesses from the path.",
)
"""``--format``, the same on every command that reads data."""

corpus_option = click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='For JSONL pairs whose positives are document ids: the corpus.jsonl ({"_id": ..., "text": ...} '
    "lines) the ids come from.",
)
"""``--corpus``: the documents of JSONL pair files that name them by id."""

USER_ERRORS: tuple[type[Exception], ...] = (QueryshiftError, ValueError, FileNotFoundError, OSError)
"""Errors caused by the input (bad file, bad value): shown as a one-line ``Error: ...``, no traceback."""


@contextlib.contextmanager
def user_errors(*extra: type[Exception]) -> Iterator[None]:
    """Turn :data:`USER_ERRORS` (and ``extra``) raised inside into a ``click.ClickException``.

    Click's own exceptions (usage errors, bad parameters) pass through unchanged.
    """
    try:
        yield
    except click.ClickException:
        raise
    except (*USER_ERRORS, *extra) as exc:
        raise click.ClickException(str(exc)) from exc


def training_options(func=None, /, **overrides):
    """Flags mapping one-to-one onto :class:`~queryshift.training.TrainingConfig` fields.

    Each flag's name, default and (unless given here) help come from the field itself, so the
    CLI cannot drift from the config. ``@training_options(field=value)`` gives a command other
    defaults where its own path was measured with them (``migrate``'s pseudo-queries).
    """
    if func is None:
        return lambda f: training_options(f, **overrides)
    from queryshift.training.config import TrainingConfig

    defaults = TrainingConfig(**overrides)
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}

    def option(name: str, **extra):
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        if isinstance(default, bool):
            flag = f"{flag}/--no-{flag[2:]}"
        text = fields[name].metadata["help"]
        extra.setdefault("help", f"{text[0].upper()}{text[1:]}.")
        return click.option(flag, name, default=default, show_default=default is not None, **extra)

    options = [
        option("adapter", type=click.Choice(["linear", "low_rank", "residual_mlp"]), help="Adapter kind."),
        option("rank", type=int, help="Rank of a low_rank adapter."),
        option("hidden_dim", type=int, help="Hidden width of residual_mlp."),
        option("bias", help="Learn a bias (a prior for documents seen in training)."),
        option("epochs", type=int),
        option("batch_size", type=int),
        option("learning_rate", type=float),
        option("lr_schedule", type=click.Choice(["constant", "cosine"])),
        option("lr_min_ratio", type=float),
        option("lr_warmup_ratio", type=float),
        option("weight_decay", type=float),
        option("temperature", type=float),
        option(
            "negatives",
            type=click.Choice(["in_batch", "corpus"]),
            help="in_batch, or corpus (every document).",
        ),
        option("hard_negatives", type=int, help="Mined from the base ranking, per query."),
        option("pseudo_queries", type=int),
        option("pseudo_max_words", type=int),
        option("pseudo_max_documents", type=int),
        option("pseudo_max_queries", type=int),
        option(
            "validation",
            type=click.Choice(["both", "query", "document", "none"]),
            help="Held-out split(s) that choose the adapter.",
        ),
        option("validation_fraction", type=float),
        option("validation_repeats", type=int),
        option("gain_z", type=float),
        option("epoch_smoothing", type=float),
        option("refit", help="Retrain the chosen candidate on all training queries."),
        option(
            "distance", type=click.Choice(["cosine", "dot", "euclid"]), help="Distance of your collection."
        ),
        option("seed", type=int),
        option("device", help="torch device (default: cuda when available)."),
    ]
    for decorator in reversed(options):
        func = decorator(func)
    return func


def training_config(params: dict):
    from queryshift.training.config import TrainingConfig

    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    return TrainingConfig(**{k: v for k, v in params.items() if k in fields})


def progress_encoder(model: str, *, device: str | None = None) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(model, device=device, show_progress_bar=True)


def embed(dataset, encoder, query_vectors: Path | None, document_vectors: Path | None):
    return embed_dataset(
        dataset,
        encoder,
        query_vectors=load_vectors(query_vectors) if query_vectors else None,
        document_vectors=load_vectors(document_vectors) if document_vectors else None,
    )
