"""The command line explains itself and starts fast: every option has help, no heavy import at start-up."""

from __future__ import annotations

import subprocess
import sys

import click

from queryshift.cli import main

HEAVY = ("torch", "sentence_transformers", "qdrant_client", "llama_index", "transformers")


def _commands(group: click.Group, prefix: str = "queryshift"):
    yield prefix, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_every_option_of_every_command_has_help():
    missing = [
        f"{where} {'/'.join(param.opts)}"
        for where, command in _commands(main)
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert not missing, f"options without help text: {missing}"
    undocumented = [where for where, command in _commands(main) if not (command.help or "").strip()]
    assert not undocumented, f"commands without a docstring: {undocumented}"


def test_importing_the_cli_imports_no_heavy_package():
    # `queryshift --help` and `inspect` must not pay for torch & co (seconds); commands import them inside.
    code = (
        "import sys, queryshift.cli\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, f'import queryshift.cli imported {heavy}'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
