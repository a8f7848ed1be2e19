"""The OpenAI-compatible embeddings app: ``POST /v1/embeddings``, ``/health``, ``/metrics``.

Queries are embedded by the base encoder and adapted (numpy); documents are the base
encoder's vectors, unchanged, so one service feeds both the indexer and the query path of any
client that speaks the OpenAI embeddings API (LangChain JS, LlamaIndex TS, Go services, curl).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from queryshift.errors import MissingDependencyError

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "queryshift.serve needs starlette, uvicorn and prometheus-client: `pip install queryshift[serve]`"
    ) from exc

from queryshift.adapters.base import QueryAdapter
from queryshift.embeddings import Encoder
from queryshift.serve.batcher import MicroBatcher, ServerBusyError
from queryshift.serve.config import ServeConfig

logger = logging.getLogger(__name__)

__all__ = ["create_app", "RequestError"]

_FIELDS = {"input", "model", "encoding_format", "dimensions", "user", "task", "input_type"}
# `task` is ours; `input_type` is what Cohere, Voyage and NVIDIA clients send.
_TASK_NAMES = {
    "query": "query",
    "search_query": "query",
    "document": "document",
    "search_document": "document",
    "passage": "document",
}
_PATHS = ("/v1/embeddings", "/embeddings", "/v1/models", "/health", "/metrics")


class RequestError(ValueError):
    """A bad request: answered with ``status`` and an OpenAI-style error body naming ``param``."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


def _error(message: str, status: int, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


def parse_request(body: bytes, config: ServeConfig, *, dim: int) -> tuple[list[str], str, str]:
    """Validate an embeddings request body: ``(texts, task, encoding_format)``.

    Raises:
        RequestError: With the field at fault and what was expected.

    Example:
        >>> parse_request(b'{"input": "hi", "input_type": "passage"}', ServeConfig(), dim=8)
        (['hi'], 'document', 'float')
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise RequestError(f"unknown fields {unknown}; accepted: {sorted(_FIELDS)}", param=unknown[0])
    if "input" not in data:
        raise RequestError("missing field 'input': a string or a list of strings", param="input")
    if "model" in data and not isinstance(data["model"], str):
        raise RequestError(f"'model' must be a string, got {type(data['model']).__name__}", param="model")
    texts = [data["input"]] if isinstance(data["input"], str) else data["input"]
    if not isinstance(texts, list) or not texts:
        raise RequestError("'input' must be a string or a non-empty list of strings", param="input")
    if len(texts) > config.max_inputs:
        raise RequestError(
            f"'input' has {len(texts)} texts; the limit is {config.max_inputs} per request",
            status=413,
            param="input",
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(
                f"input[{i}] is {type(text).__name__}; only strings are accepted (no token arrays)",
                param="input",
            )
        if not text:
            raise RequestError(f"input[{i}] is an empty string", param="input")
        if len(text) > config.max_input_chars:
            raise RequestError(
                f"input[{i}] has {len(text)} characters; the limit is {config.max_input_chars}",
                status=413,
                param="input",
            )
    encoding = data.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise RequestError(
            f"'encoding_format' must be 'float' or 'base64', got {encoding!r}", param="encoding_format"
        )
    if data.get("dimensions") is not None and data["dimensions"] != dim:
        raise RequestError(
            f"'dimensions'={data['dimensions']!r} is not available: this model returns {dim} dimensions",
            param="dimensions",
        )
    task = "query"
    for name in ("input_type", "task"):
        if data.get(name) is not None:
            if data[name] not in _TASK_NAMES:
                raise RequestError(
                    f"'{name}' must be one of {sorted(_TASK_NAMES)}, got {data[name]!r}", param=name
                )
            task = _TASK_NAMES[data[name]]
    if data.get("task") is not None and data.get("input_type") is not None:
        if _TASK_NAMES[data["task"]] != _TASK_NAMES[data["input_type"]]:
            raise RequestError(
                f"'task'={data['task']!r} and 'input_type'={data['input_type']!r} disagree", param="task"
            )
    return texts, task, encoding


def _encode_vector(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


class _Metrics:
    """Prometheus metrics in a registry of the app's own (no process-global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "queryshift_http_requests",
            "HTTP requests by path and status",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "queryshift_http_request_duration_seconds",
            "Time from request to response, by path",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.texts = Counter(
            "queryshift_embedded_texts", "Texts embedded, by task", ["task"], registry=self.registry
        )
        self.batch_size = Histogram(
            "queryshift_batch_texts",
            "Texts per forward pass (concurrent requests merged), by task",
            ["task"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "queryshift_batch_duration_seconds",
            "Time of one forward pass plus adapter, by task",
            ["task"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.pending = Gauge(
            "queryshift_pending_texts", "Texts queued or embedding now", registry=self.registry
        )

    def on_batch(self, task: str, n_texts: int, seconds: float) -> None:
        self.texts.labels(task).inc(n_texts)
        self.batch_size.labels(task).observe(n_texts)
        self.batch_seconds.labels(task).observe(seconds)


class _MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response by path and status and times it."""

    def __init__(self, app: Any, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in _PATHS else "other"  # bounded label values
        status = {"code": 500}
        start = time.perf_counter()

        async def send_and_record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
            self.metrics.requests.labels(path, str(status["code"])).inc()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body of {declared} bytes exceeds the limit of {limit} bytes", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body exceeds the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    encoder: Encoder,
    adapter: QueryAdapter,
    *,
    config: ServeConfig | None = None,
    model_name: str | None = None,
) -> Starlette:
    """The ASGI app of ``queryshift serve``: adapted query vectors over the OpenAI embeddings API.

    ``POST /v1/embeddings`` (also ``/embeddings``) takes ``{"input": str | [str], "model": ...}``
    and returns ``adapter.apply(encoder.encode_queries(input))``; with ``"task": "document"``
    (or ``"input_type": "document"`` / ``"search_document"`` / ``"passage"``) it returns
    ``encoder.encode_documents(input)`` unchanged, for indexing. ``encoding_format`` may be
    ``"float"`` or ``"base64"`` (little-endian float32, what the ``openai`` client asks for).
    The server has one model: any ``model`` string is answered by it, and the response's
    ``model`` is ``model_name``. ``user`` is accepted (OpenAI clients may send it) and not used;
    ``usage`` reports 0 tokens (the encoder does not count them); ``dimensions`` is accepted
    only when it equals the adapter's dim. Other fields are refused with 400.

    ``GET /health`` says whether the model is ready, ``GET /metrics`` exposes Prometheus
    counters and histograms, ``GET /v1/models`` lists the one model.

    Args:
        encoder: Embeds texts (``encode_queries`` / ``encode_documents``), e.g.
            ``SentenceTransformerEncoder(model, cache=False)``. Called from one worker thread.
        adapter: Applied to query vectors.
        config: Batching and limits; the defaults of :class:`ServeConfig` when ``None``.
        model_name: Name reported to clients; the encoder's ``model_id`` when ``None``.

    Example:
        >>> import numpy as np
        >>> from starlette.testclient import TestClient
        >>> from queryshift.adapters import LinearAdapter
        >>> class Ones:
        ...     model_id = "ones"
        ...     def encode_queries(self, texts): return np.ones((len(texts), 2), np.float32)
        ...     def encode_documents(self, texts): return np.ones((len(texts), 2), np.float32)
        >>> with TestClient(create_app(Ones(), LinearAdapter.identity(dim=2))) as client:
        ...     client.post("/v1/embeddings", json={"input": "hi", "model": "ones"}).json()["data"][0]["embedding"]
        [0.7071067690849304, 0.7071067690849304]
    """
    config = config or ServeConfig()
    name = model_name or getattr(encoder, "model_id", "queryshift")
    dim = adapter.dim
    metrics = _Metrics()

    def embed(task: str, texts: list[str]) -> np.ndarray:
        if task == "query":
            return adapter.apply(encoder.encode_queries(texts))  # (n, dim)
        return np.asarray(encoder.encode_documents(texts), dtype=np.float32)  # (n, dim)

    batcher = MicroBatcher(
        embed,
        max_batch_size=config.max_batch_size,
        max_wait_ms=config.max_wait_ms,
        max_pending=config.max_pending,
        on_batch=metrics.on_batch,
    )
    state = {"ready": False}

    async def embeddings(request: Request) -> Response:
        try:
            texts, task, encoding = parse_request(
                await _read_body(request, config.max_body_bytes), config, dim=dim
            )
        except RequestError as exc:
            return _error(str(exc), exc.status, exc.param)
        if task != "query" and adapter.config.cross_model:
            index = adapter.config.index_model or "the model that embedded the index"
            return _error(
                f"this server's adapter maps queries of {name!r} into an index embedded by {index}; "
                "documents must be embedded by that model, so only input_type='query' is served",
                400,
                "input_type",
            )
        metrics.pending.inc(len(texts))
        try:
            vectors = await batcher.submit(task, texts)  # (n, dim)
        except ServerBusyError as exc:
            return _error(str(exc), 503)
        except Exception as exc:
            return _error(f"embedding failed: {type(exc).__name__}: {exc}", 500)
        finally:
            metrics.pending.dec(len(texts))
        data = [
            {"object": "embedding", "index": i, "embedding": _encode_vector(v, encoding)}
            for i, v in enumerate(vectors)
        ]
        return JSONResponse(
            {"object": "list", "data": data, "model": name, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "queryshift"}],
            }
        )

    async def health(request: Request) -> Response:
        body = {"status": "ok" if state["ready"] else "starting", "model": name, "dim": dim}
        body["adapter"] = adapter.config.kind
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with batcher:
            state["ready"] = True
            yield
            state["ready"] = False

    app = Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app
