"""How long the ``queryshift`` command takes to start: ``--help`` and ``inspect``.

Run from the repository root::

    python -m benchmarks.cli_startup

Each command runs ``--repeats`` times in a fresh interpreter (``python -c "from queryshift.cli import
main; main()" ...``, what the ``queryshift`` entry point runs), after one untimed warm-up run that fills the OS file cache;
the table gives the median and the slowest wall time. Alongside, one ``python -X importtime`` run
per command lists the heaviest imports and whether torch, sentence-transformers, qdrant-client or
llama-index were imported at all (they should not be, for these commands). Writes
``benchmarks/results/cli_startup.json`` and ``.md`` with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import queryshift
from queryshift.adapters import LinearAdapter
from queryshift.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
HEAVY = ("torch", "sentence_transformers", "qdrant_client", "llama_index", "transformers")
TARGET_S = 1.0


def _commands(adapter_dir: Path) -> dict[str, list[str]]:
    return {
        "queryshift --help": ["--help"],
        "queryshift train --help": ["train", "--help"],
        "queryshift inspect ADAPTER": ["inspect", str(adapter_dir)],
    }


ENTRY_POINT = "from queryshift.cli import main; main()"  # what the `queryshift` script runs


def _run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", ENTRY_POINT, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def _imports(args: list[str]) -> dict:
    """``-X importtime`` of one run: which heavy packages were imported, and what each cost (ms)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY_POINT, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    heavy: dict[str, float] = {}
    for line in run.stderr.splitlines():
        # "import time: self [us] | cumulative [us] | <indent>module"
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| +([\w.]+)$", line)
        if match and match.group(2) in HEAVY:
            heavy[match.group(2)] = round(int(match.group(1)) / 1000, 1)  # its whole subtree
    return {"heavy_imported_ms": heavy}


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        adapter_dir = Path(tmp) / "adapter"
        LinearAdapter.identity(dim=384, base_model="sentence-transformers/all-MiniLM-L6-v2").save(adapter_dir)
        rows = {}
        for name, cli_args in _commands(adapter_dir).items():
            _run(cli_args)  # warm the file cache
            times = [_run(cli_args) for _ in range(args.repeats)]
            rows[name] = {
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "runs": args.repeats,
                **_imports(cli_args),
            }
    report = {
        "command": "python -m benchmarks.cli_startup" + (f" {shlex.join(argv)}" if argv else ""),
        "total_s": round(time.perf_counter() - started, 1),
        "target_s": TARGET_S,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "usable_cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "queryshift": queryshift.__version__,
        },
        "results": rows,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": atomic_write_text(args.output_dir / "cli_startup.json", json.dumps(report, indent=2) + "\n"),
        "md": atomic_write_text(args.output_dir / "cli_startup.md", render(report)),
    }
    print(render(report))
    return paths


def render(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# CLI start-up time",
        "",
        f"Command: `{report['command']}` ({report['total_s']} s). Each row: a fresh interpreter running the "
        f"`queryshift` entry point, median and slowest of {next(iter(report['results'].values()))['runs']} runs after one warm-up; "
        f"target {report['target_s']} s.",
        "",
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, load average {m['load_average_1_5_15']} at the end "
        f"(1, 5, 15 min; above {m['usable_cpus']} means other work shared the cores); Python {m['python']}, "
        f"queryshift {m['queryshift']}.",
        "",
        "| command | median s | slowest s | heavy packages imported (ms each, one `-X importtime` run) |",
        "|---|---:|---:|---|",
    ]
    for name, r in report["results"].items():
        heavy = ", ".join(f"{k} {v}" for k, v in r["heavy_imported_ms"].items()) or "none"
        lines.append(f"| `{name}` | {r['median_s']} | {r['max_s']} | {heavy} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
