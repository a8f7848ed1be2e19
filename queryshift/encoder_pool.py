"""Embed with several processes: sentence-transformers' multi-process pool behind the Encoder protocol.

Re-indexing a large collection is bound by the encoder. One process uses one GPU, or the CPU
threads torch gives it; a pool runs one model copy per worker (one per GPU, or several CPU
workers) and splits each batch of texts between them. :class:`EncoderPool` keeps the wrapped
encoder's ``model_id``, so a re-index resumed with another worker count is the same re-index.
"""

from __future__ import annotations

import logging
from types import TracebackType

import numpy as np

from queryshift.embeddings import SentenceTransformerEncoder

logger = logging.getLogger(__name__)

__all__ = ["EncoderPool", "pool_devices"]


def pool_devices(workers: int, device: str | None = None) -> list[str]:
    """The devices of ``workers`` pool processes: ``device`` each, else one CUDA device each when present, else CPU.

    Example:
        >>> pool_devices(2, "cpu")
        ['cpu', 'cpu']
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if device is not None:
        return [device] * workers
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    return ["cpu"] * workers


class EncoderPool:
    """A :class:`~queryshift.embeddings.SentenceTransformerEncoder` whose documents are embedded by a process pool.

    Use it as a context manager: the workers start on entry (each loads the model) and stop on
    exit. Embeddings are those of the wrapped encoder (same model, prompts, normalisation),
    without its cache: a re-index embeds each text once.

    Args:
        encoder: The model to run in every worker.
        devices: One entry per worker (see :func:`pool_devices`).
        chunk_size: Texts per job sent to a worker (``None``: sentence-transformers' default,
            about a tenth of a batch per worker).

    Example:
        Re-index with two CPU workers::

            with EncoderPool(SentenceTransformerEncoder("my-model", cache=False), pool_devices(2, "cpu")) as enc:
                reindex_collection(client, ..., encoder=enc)
    """

    def __init__(
        self, encoder: SentenceTransformerEncoder, devices: list[str], *, chunk_size: int | None = None
    ) -> None:
        if not devices:
            raise ValueError("devices must name at least one worker device")
        self.encoder, self.devices, self.chunk_size = encoder, list(devices), chunk_size
        self.model_id = encoder.model_id
        self._pool = None

    def __enter__(self) -> EncoderPool:
        logger.info("starting %d embedding workers on %s", len(self.devices), ", ".join(self.devices))
        self._pool = self.encoder.model.start_multi_process_pool(self.devices)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self.encoder.model.stop_multi_process_pool(self._pool)
            self._pool = None

    def _encode(self, side: str, texts: list[str]) -> np.ndarray:
        if self._pool is None:
            raise RuntimeError("EncoderPool is not started: use it as `with EncoderPool(...) as encoder:`")
        model = self.encoder.model
        fn = model.encode_query if side == "query" else model.encode_document
        vectors = fn(
            list(texts),
            pool=self._pool,
            chunk_size=self.chunk_size,
            batch_size=self.encoder.batch_size,
            normalize_embeddings=self.encoder.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)  # (n, dim)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """``(n, dim)`` float32 query vectors, embedded by the workers."""
        return self._encode("query", texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """``(n, dim)`` float32 document vectors, embedded by the workers."""
        return self._encode("document", texts)
