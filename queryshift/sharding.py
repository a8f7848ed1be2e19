"""A deterministic split of Qdrant point ids into ``N`` disjoint shards of work.

Several machines re-index one collection in parallel by each taking one shard
(``queryshift reindex --shard I/N``). Which shard owns a point depends only on its id: a
BLAKE2b hash of the id's canonical text (an unsigned integer in decimal, a UUID in lowercase
hyphenated form) modulo ``N``. Python's ``hash()`` is salted per process, so it would give every
machine a different split; a cryptographic hash gives the same answer everywhere and spreads
sequential ids evenly.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

__all__ = ["Shard"]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``).

    Example:
        >>> shards = [Shard.parse(f"{i}/3") for i in range(3)]
        >>> [sum(s.owns(p) for p in range(300)) for s in shards]
        [103, 114, 83]
        >>> [s.index for s in shards if s.owns("D193A4CE-E62B-415C-A2E4-91DBC65BA284")]
        [0]
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"shard count must be a positive integer, got {self.count!r}")
        if not isinstance(self.index, int) or not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, {self.count}), got {self.index!r}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` → ``Shard(I, N)``.

        Raises:
            ValueError: ``text`` is not two integers separated by ``/`` with ``0 <= I < N``.
        """
        index, sep, count = text.partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"expected a shard as I/N (e.g. 0/4), got {text!r}")
        return cls(int(index), int(count))

    def owns(self, point_id: int | str) -> bool:
        """Whether this shard re-indexes ``point_id`` (an unsigned int or a UUID string)."""
        if isinstance(point_id, str):
            try:
                key = str(uuid.UUID(point_id))
            except ValueError:
                key = point_id
        else:
            key = str(int(point_id))
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
