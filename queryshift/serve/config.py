"""What a query-embedding server may accept and how it batches: one frozen config."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of :func:`queryshift.serve.create_app`.

    Args:
        max_batch_size: Most texts embedded in one forward pass; concurrent requests are merged
            up to this many texts.
        max_wait_ms: How long the first request of a batch waits for others to join it. 0 still
            merges requests that are already queued.
        max_inputs: Most texts in one request (413 above).
        max_input_chars: Longest text accepted, in characters (413 above); the model truncates
            to its own token limit anyway, this bounds the work a request can ask for.
        max_body_bytes: Largest request body read (413 above).
        max_pending: Most texts queued or embedding at once; further requests get 503 until the
            queue drains, so a burst cannot grow memory without bound.

    Example:
        >>> ServeConfig(max_batch_size=32).max_wait_ms
        2.0
    """

    max_batch_size: int = field(default=64, metadata={"help": "most texts per forward pass"})
    max_wait_ms: float = field(default=2.0, metadata={"help": "how long a batch waits for more requests"})
    max_inputs: int = field(default=256, metadata={"help": "most texts per request"})
    max_input_chars: int = field(default=20_000, metadata={"help": "longest text accepted, in characters"})
    max_body_bytes: int = field(default=4 * 1024 * 1024, metadata={"help": "largest request body, in bytes"})
    max_pending: int = field(default=4096, metadata={"help": "most texts queued at once (503 above)"})

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_inputs", "max_input_chars", "max_body_bytes", "max_pending"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms!r}")
        if self.max_pending < self.max_inputs:
            raise ValueError(
                f"max_pending={self.max_pending} must be at least max_inputs={self.max_inputs}, "
                "or a full request could never be queued"
            )
