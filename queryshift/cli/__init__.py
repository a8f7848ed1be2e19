"""The ``queryshift`` command line: parses flags, builds configs, calls the public API.

Layout: this module holds the ``click`` group :func:`main`; each command lives in a module of its own
(``evaluate``/``inspect`` in :mod:`~queryshift.cli.inspection`, ``demo`` in :mod:`~queryshift.cli.demo`,
``train`` in :mod:`~queryshift.cli.train`, ``migrate`` in :mod:`~queryshift.cli.migrate`, ``finetune``/``reindex``/``advise`` in
:mod:`~queryshift.cli.finetune`, ``export`` in :mod:`~queryshift.cli.export`, ``serve`` in
:mod:`~queryshift.cli.serve`), built on the flags and error handling of :mod:`~queryshift.cli.common`.
Command modules never import this one, so there is no import circle.
"""

from __future__ import annotations

import logging

import click

from queryshift.cli import demo, export, finetune, inspection, migrate, serve, train

__all__ = ["main"]


@click.group()
@click.version_option(package_name="queryshift")
@click.option("-v", "--verbose", count=True, help="-v for progress logs, -vv for debug logs.")
def main(verbose: int) -> None:
    """queryshift: better retrieval on your data without re-embedding the index."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _command in (
    inspection.evaluate,
    inspection.inspect,
    demo.demo,
    train.train,
    migrate.migrate,
    finetune.finetune,
    finetune.reindex,
    finetune.advise,
    export.export,
    serve.serve,
):
    main.add_command(_command)
