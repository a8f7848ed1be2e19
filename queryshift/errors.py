"""Exception types raised by queryshift.

Every error subclasses a builtin (``ValueError``, ``FileNotFoundError``) so callers that
already catch those keep working, and every message names the offending file, line, field
or parameter together with what was expected.
"""

from __future__ import annotations

__all__ = [
    "QueryshiftError",
    "DataFormatError",
    "DimensionMismatchError",
    "DistanceMismatchError",
    "AdapterFormatError",
    "MissingDependencyError",
    "OutputPathError",
    "ArtifactWriteError",
]


class QueryshiftError(Exception):
    """Base class of every error queryshift raises on purpose."""


class DataFormatError(QueryshiftError, ValueError):
    """A data file is malformed: the message names file, line and field."""

    def __init__(
        self, message: str, *, path: object = None, line: int | None = None, field: str | None = None
    ):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.line = line
        self.field = field


class DimensionMismatchError(QueryshiftError, ValueError):
    """Vectors and adapter (or collection) disagree on dimensionality."""


class DistanceMismatchError(QueryshiftError, ValueError):
    """The adapter was trained for another distance than the collection uses."""


class AdapterFormatError(QueryshiftError, ValueError):
    """A saved adapter directory cannot be read: unknown version, wrong shapes, pickled weights."""


class MissingDependencyError(QueryshiftError, ImportError):
    """An optional extra is needed; the message gives the ``pip install`` command."""


class OutputPathError(QueryshiftError, ValueError):
    """An output directory may not be written: it holds the user's files, the input, or is read-only."""


class ArtifactWriteError(QueryshiftError, OSError):
    """Writing an artifact failed (e.g. the disk is full); nothing half-written was left behind."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()
