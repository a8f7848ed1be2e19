"""The embeddings server over loopback: httpx and the openai client, concurrency, bad input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.serve import MicroBatcher, ServeConfig, ServerBusyError, create_app

DIM = 8


class FakeEncoder:
    """Seeded vectors per text (documents differ from queries), slow enough for requests to pile up."""

    model_id = "fake-encoder"

    def __init__(self, seconds_per_call: float = 0.03) -> None:
        self.seconds_per_call = seconds_per_call
        self.calls: list[tuple[str, int]] = []

    def _vectors(self, side: str, texts: list[str]) -> np.ndarray:
        self.calls.append((side, len(texts)))
        time.sleep(self.seconds_per_call)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{side}:{text}".encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).normal(size=DIM))
        return np.asarray(rows, dtype=np.float32)  # (n, DIM)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._vectors("query", texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._vectors("document", texts)


ADAPTER = LinearAdapter(
    AdapterConfig(dim=DIM),
    weight=np.eye(DIM, dtype=np.float32) + 0.5 * np.random.default_rng(0).normal(size=(DIM, DIM)),
)
CONFIG = ServeConfig(
    max_batch_size=32, max_wait_ms=5, max_inputs=16, max_input_chars=200, max_body_bytes=4096, max_pending=64
)


class LoopbackServer:
    """uvicorn on 127.0.0.1 and a free port, in a thread, for the tests of one module."""

    def __init__(self, app) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@pytest.fixture(scope="module")
def encoder():
    return FakeEncoder()


@pytest.fixture(scope="module")
def server(encoder):
    with LoopbackServer(create_app(encoder, ADAPTER, config=CONFIG, model_name="tiny")) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def expected(task: str, texts: list[str]) -> np.ndarray:
    fake = FakeEncoder(seconds_per_call=0)
    return ADAPTER.apply(fake.encode_queries(texts)) if task == "query" else fake.encode_documents(texts)


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "tiny"
    assert [row["index"] for row in body["data"]] == list(range(len(body["data"])))
    return np.array([row["embedding"] for row in body["data"]], dtype=np.float32)


def test_a_string_gets_the_adapted_query_vector(http):
    got = vectors(http.post("/v1/embeddings", json={"input": "what is covid", "model": "tiny"}))
    assert got.shape == (1, DIM)
    np.testing.assert_allclose(got, expected("query", ["what is covid"]), atol=1e-6)


@pytest.mark.parametrize(
    ("fields", "task"),
    [
        ({"task": "document"}, "document"),
        ({"input_type": "search_document"}, "document"),
        ({"input_type": "passage"}, "document"),
        ({"input_type": "query"}, "query"),
        ({"task": "query", "input_type": "search_query"}, "query"),
    ],
)
def test_task_and_input_type_choose_the_side(http, fields, task):
    texts = ["covid vaccine", "ride price"]
    got = vectors(http.post("/v1/embeddings", json={"input": texts, "model": "tiny", **fields}))
    np.testing.assert_allclose(got, expected(task, texts), atol=1e-6)


def test_base64_encoding(http):
    body = http.post(
        "/v1/embeddings", json={"input": ["a", "b"], "model": "tiny", "encoding_format": "base64"}
    ).json()
    got = np.array([np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in body["data"]])
    np.testing.assert_allclose(got, expected("query", ["a", "b"]), atol=1e-6)


def test_openai_client(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0)
    texts = ["how is the virus spread", "fever"]
    response = client.embeddings.create(model="tiny", input=texts)  # the client asks for base64
    got = np.array([row.embedding for row in response.data], dtype=np.float32)
    np.testing.assert_allclose(got, expected("query", texts), atol=1e-6)
    documents = client.embeddings.create(model="tiny", input=texts, extra_body={"task": "document"})
    np.testing.assert_allclose(
        [row.embedding for row in documents.data], expected("document", texts), atol=1e-6
    )
    floats = client.embeddings.create(model="tiny", input="fever", encoding_format="float")
    np.testing.assert_allclose([floats.data[0].embedding], expected("query", ["fever"]), atol=1e-6)


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(server, encoder):
    texts = [f"query number {i}" for i in range(40)]
    tasks = ["document" if i % 4 == 0 else "query" for i in range(40)]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/embeddings", json={"input": text, "model": "tiny", "task": task})
                    for text, task in zip(texts, tasks, strict=True)
                )
            )

    calls_before = len(encoder.calls)
    responses = asyncio.run(fire())
    for response, text, task in zip(responses, texts, tasks, strict=True):
        np.testing.assert_allclose(vectors(response), expected(task, [text]), atol=1e-6)
    calls = encoder.calls[calls_before:]
    assert sum(n for _, n in calls) == 40
    assert len(calls) < 30 and max(n for _, n in calls) >= 2  # 40 requests shared forward passes
    assert max(n for _, n in calls) <= CONFIG.max_batch_size


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"model": "tiny"}', 400, "missing field 'input'"),
        (b'{"input": [], "model": "tiny"}', 400, "non-empty list"),
        (b'{"input": [[1, 2, 3]], "model": "tiny"}', 400, "no token arrays"),
        (b'{"input": ["ok", 5], "model": "tiny"}', 400, "input[1] is int"),
        (b'{"input": "", "model": "tiny"}', 400, "input[0] is an empty string"),
        (b'{"input": "x", "model": 3}', 400, "'model' must be a string"),
        (b'{"input": "x", "temperature": 1}', 400, "unknown fields ['temperature']"),
        (b'{"input": "x", "task": "summarise"}', 400, "'task' must be one of"),
        (b'{"input": "x", "task": "query", "input_type": "passage"}', 400, "disagree"),
        (b'{"input": "x", "encoding_format": "int8"}', 400, "'encoding_format' must be"),
        (b'{"input": "x", "dimensions": 4}', 400, "this model returns 8 dimensions"),
        (
            b'{"input": ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]}',
            413,
            "limit is 16 per request",
        ),
        (b'{"input": "' + b"y" * 201 + b'"}', 413, "201 characters"),
        (b'{"input": "' + b"y" * 5000 + b'"}', 413, "exceeds the limit of 4096 bytes"),
        (b"\xff\xfe", 400, "not valid JSON"),
    ],
)
def test_bad_requests_get_a_clear_4xx(http, body, status, message):
    response = http.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"


def test_wrong_method_and_path(http):
    assert http.get("/v1/embeddings").status_code == 405
    assert http.post("/v2/embeddings", json={"input": "x"}).status_code == 404


def test_health_models_and_metrics(http):
    assert http.get("/health").json() == {"status": "ok", "model": "tiny", "dim": DIM, "adapter": "linear"}
    assert http.get("/v1/models").json()["data"][0]["id"] == "tiny"
    http.post("/v1/embeddings", json={"input": "x", "model": "tiny"})
    http.post("/v1/embeddings", content=b"{bad")
    text = http.get("/metrics").text
    assert 'queryshift_http_requests_total{path="/v1/embeddings",status="200"}' in text
    assert 'queryshift_http_requests_total{path="/v1/embeddings",status="400"}' in text
    assert 'queryshift_http_request_duration_seconds_bucket{le="0.1",path="/v1/embeddings"}' in text
    assert 'queryshift_embedded_texts_total{task="query"}' in text
    assert "queryshift_batch_texts_bucket" in text


def test_batcher_refuses_beyond_max_pending_and_reports_failures():
    release = threading.Event()

    def embed(task, texts):
        release.wait(10)
        if "boom" in texts:
            raise RuntimeError("model exploded")
        return np.zeros((len(texts), 2), np.float32)

    async def main():
        async with MicroBatcher(embed, max_batch_size=4, max_wait_ms=0, max_pending=3) as batcher:
            first = asyncio.ensure_future(batcher.submit("query", ["a", "b"]))
            await asyncio.sleep(0.05)
            with pytest.raises(ServerBusyError, match="2 texts are already pending"):
                await batcher.submit("query", ["c", "d"])
            failing = asyncio.ensure_future(batcher.submit("document", ["boom"]))
            release.set()
            assert (await first).shape == (2, 2)
            with pytest.raises(RuntimeError, match="model exploded"):
                await failing
            assert batcher.pending == 0

    asyncio.run(main())


def test_serve_config_validates():
    with pytest.raises(ValueError, match="max_batch_size must be a positive integer, got 0"):
        ServeConfig(max_batch_size=0)
    with pytest.raises(ValueError, match="max_pending=8 must be at least max_inputs=16"):
        ServeConfig(max_inputs=16, max_pending=8)


def test_batcher_never_exceeds_max_batch_size_and_keeps_arrival_order():
    seen: list[list[str]] = []

    def embed(task, texts):
        seen.append(list(texts))
        return np.array([[float(t[1:]), 0.0] for t in texts], np.float32)

    async def main():
        async with MicroBatcher(embed, max_batch_size=4, max_wait_ms=50, max_pending=100) as batcher:
            jobs = [["q0", "q1", "q2"], ["q3", "q4"], ["q5"], ["q6", "q7", "q8", "q9", "q10"]]
            results = await asyncio.gather(*(batcher.submit("query", texts) for texts in jobs))
        for texts, rows in zip(jobs, results, strict=True):
            assert rows[:, 0].tolist() == [float(t[1:]) for t in texts]  # each request its own rows

    asyncio.run(main())
    assert seen == [["q0", "q1", "q2"], ["q3", "q4", "q5"], ["q6", "q7", "q8", "q9", "q10"]]
