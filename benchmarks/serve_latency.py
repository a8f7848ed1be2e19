"""Throughput and latency of ``queryshift serve`` (OpenAI embeddings API), with and without batching.

Run from the repository root::

    python -m benchmarks.serve_latency

Starts the server in a subprocess (all-MiniLM-L6-v2 + a 384-d linear adapter, torch on
``--server-threads`` threads), then sends single-query ``POST /v1/embeddings`` requests from
``--concurrency`` concurrent httpx clients in this process, on the same machine: a request's
latency is measured by the client, from send to parsed response. Each concurrency level runs
against a server with the micro-batcher (``max_batch_size=64, max_wait_ms=2``) and one without
(``max_batch_size=1``: every request is its own forward pass). The query texts are the Uber
questions of the shared data, cycled. Writes ``benchmarks/results/serve_latency.{md,json}``
with the machine, its load average before and after, and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import queryshift
from benchmarks.quality import machine
from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.atomic import atomic_write_text
from queryshift.data import load_dataset

RESULTS = Path(__file__).resolve().parent / "results"
DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "finetune-embedding" / "val_dataset.json"
)
SERVERS = {
    "batched": {"max_batch_size": 64, "max_wait_ms": 2.0},
    "unbatched": {"max_batch_size": 1, "max_wait_ms": 0.0},
}

_SERVER = """
import sys
from queryshift.serve import ServeConfig, serve
serve(sys.argv[1], port=int(sys.argv[2]), config=ServeConfig(max_batch_size=int(sys.argv[3]),
      max_wait_ms=float(sys.argv[4])), device="cpu", log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, *, timeout_s: float = 300) -> None:
    """Poll ``url/health`` until it answers 200; fail if the server process exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{url} did not become healthy within {timeout_s:.0f} s")


def start_server(adapter_dir: Path, settings: dict, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args = [str(adapter_dir), str(port), str(settings["max_batch_size"]), str(settings["max_wait_ms"])]
    process = subprocess.Popen([sys.executable, "-c", _SERVER, *args], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process)
    return process, url


async def load(url: str, texts: list[str], *, requests: int, concurrency: int) -> dict:
    """``requests`` single-text requests from ``concurrency`` workers; per-request latency in ms."""
    import httpx

    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            start = time.perf_counter()
            response = await client.post(
                "/v1/embeddings", json={"input": texts[i % len(texts)], "model": "q"}
            )
            response.raise_for_status()
            assert len(response.json()["data"][0]["embedding"]) == 384
            latencies.append((time.perf_counter() - start) * 1000)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for i in range(min(20, requests)):  # warm-up, not measured
            await client.post("/v1/embeddings", json={"input": texts[i], "model": "q"})
        before = batch_totals(url)
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
        after = {name: value - before[name] for name, value in batch_totals(url).items()}
    values = np.array(latencies)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "seconds": round(wall, 3),
        "requests_per_s": round(requests / wall, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "forward_passes": int(after["queryshift_batch_texts_count"]),
        "mean_batch_texts": round(
            after["queryshift_batch_texts_sum"] / after["queryshift_batch_texts_count"], 2
        ),
        "mean_forward_ms": round(
            1000 * after["queryshift_batch_duration_seconds_sum"] / after["queryshift_batch_texts_count"], 2
        ),
        "model_share_of_wall": round(after["queryshift_batch_duration_seconds_sum"] / wall, 3),
    }


def batch_totals(url: str) -> dict[str, float]:
    """Texts, forward passes and their seconds for queries so far, from the server's ``/metrics``."""
    import httpx

    names = (
        "queryshift_batch_texts_sum",
        "queryshift_batch_texts_count",
        "queryshift_batch_duration_seconds_sum",
    )
    totals = dict.fromkeys(names, 0.0)
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name = line.split("{", 1)[0]
        if name in totals and '{task="query"}' in line:
            totals[name] = float(line.rsplit(" ", 1)[1])
    return totals


def render(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# queryshift serve: throughput and latency",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Server: `queryshift.serve.serve` in a subprocess, all-MiniLM-L6-v2 + linear adapter (d=384), "
        f"torch on {report['config']['server_threads']} threads, uvicorn, one worker. Client: httpx in the "
        "benchmark process on the same machine, one short query (an Uber question) per request, latency from "
        "send to parsed response; 20 warm-up requests first.",
        "",
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, shared with other jobs: load average "
        f"(1/5/15 min) {report['load_average_before']} before, {report['load_average_after']} after.",
        "",
        "| server | concurrency | requests | requests/s | p50 ms | p99 ms | texts per forward pass | ms per forward pass | model busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['server']} | {row['concurrency']} | {row['requests']} | {row['requests_per_s']} | "
            f"{row['p50_ms']} | {row['p99_ms']} | {row['mean_batch_texts']} | {row['mean_forward_ms']} | "
            f"{100 * row['model_share_of_wall']:.0f} % |"
        )
    lines += [
        "",
        "Texts per forward pass, ms per pass and model busy (the share of the wall time the worker thread spent in "
        "forward passes plus the adapter) come from the server's `/metrics`; the rest of the time is HTTP, JSON and "
        "the client, on the same cores.",
        "",
        f"queryshift {report['queryshift_version']}, sentence-transformers {m['sentence_transformers']}, "
        f"torch {m['torch']}, Python {m['python']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--server-threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--servers", default="batched,unbatched", help=f"subset of {sorted(SERVERS)}")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    texts = list(load_dataset(DATA).queries.values())

    load_before = [round(x, 2) for x in os.getloadavg()]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        weight = np.eye(384, dtype=np.float32) + 0.02 * rng.normal(size=(384, 384)).astype(np.float32)
        config = AdapterConfig(dim=384, base_model="sentence-transformers/all-MiniLM-L6-v2")
        adapter_dir = LinearAdapter(config, weight=weight).save(Path(tmp) / "adapter")
        for server in args.servers.split(","):
            process, url = start_server(adapter_dir, SERVERS[server], args.server_threads)
            try:
                for level in levels:
                    row = asyncio.run(load(url, texts, requests=args.requests, concurrency=level))
                    results.append({"server": server, **row})
                    print(results[-1], flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    report = {
        "command": " ".join(
            ["python -m benchmarks.serve_latency", shlex.join(argv if argv is not None else sys.argv[1:])]
        ).rstrip(),
        "config": {
            "requests": args.requests,
            "concurrency": levels,
            "server_threads": args.server_threads,
            "servers": {name: SERVERS[name] for name in args.servers.split(",")},
        },
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "queryshift_version": queryshift.__version__,
        "results": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": args.output_dir / "serve_latency.json", "md": args.output_dir / "serve_latency.md"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    atomic_write_text(paths["md"], render(report))
    return paths


if __name__ == "__main__":
    main()
