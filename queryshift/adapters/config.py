"""What a saved adapter is: the frozen config stored in ``adapter_config.json``.

Kept apart from the math (``linear.py``, ``residual_mlp.py``) and from file handling
(``io.py``), as peft splits ``config`` / ``layer`` / ``model``: the config can be read,
validated and compared without touching any weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from queryshift.errors import AdapterFormatError

logger = logging.getLogger(__name__)

__all__ = ["AdapterConfig", "parse_adapter_config", "FORMAT_VERSION", "ADAPTER_KINDS", "DISTANCES"]

FORMAT_VERSION = 1
ADAPTER_KINDS = ("linear", "low_rank", "residual_mlp", "two_layer")
DISTANCES = ("cosine", "dot", "euclid")

AdapterKind = Literal["linear", "low_rank", "residual_mlp", "two_layer"]
Distance = Literal["cosine", "dot", "euclid"]

# JSON type of every field, checked exactly: "false" is not a bool, true is not an integer.
_FIELD_TYPES: dict[str, tuple[type | None, ...]] = {
    "kind": (str,),
    "dim": (int,),
    "input_dim": (int, None),
    "rank": (int, None),
    "hidden_dim": (int, None),
    "base_model": (str, None),
    "index_model": (str, None),
    "distance": (str,),
    "normalize": (bool,),
    "training": (dict,),
    "format_version": (int,),
}
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", None: "null"}
# Written only when set: files of same-model adapters stay readable by earlier versions.
_OMITTED_WHEN_NONE = ("input_dim", "index_model")
# Saved by every queryshift; a config without them is damaged, and no default can stand in.
_REQUIRED = ("format_version", "kind", "dim", "distance", "normalize")


def _json_type(value: object) -> str:
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number", dict: "an object"}
    if value is None:
        return "null"
    return names.get(type(value), "an array" if isinstance(value, list) else type(value).__name__)


def _check_type(name: str, value: object) -> None:
    expected = _FIELD_TYPES[name]
    if value is None:
        ok = None in expected
    elif isinstance(value, bool):
        ok = bool in expected
    else:
        ok = any(t is not None and t is not bool and isinstance(value, t) for t in expected)
    if not ok:
        wanted = " or ".join(_TYPE_NAMES[t] for t in expected)
        raise AdapterFormatError(
            f"field '{name}' must be {wanted}, got {json.dumps(value, default=repr)} ({_json_type(value)})"
        )


@dataclass(frozen=True)
class AdapterConfig:
    """Shape and provenance of a query adapter.

    Args:
        kind: ``"linear"`` (full d×d matrix plus bias), ``"low_rank"`` (I + U Vᵀ plus bias),
            ``"residual_mlp"`` (x + MLP(x)) or ``"two_layer"`` (LlamaIndex's ``TwoLayerNN``, imported).
        dim: Dimensionality of the space the adapter maps into: the index's (document) vectors.
            It is also the input dimensionality unless ``input_dim`` says otherwise.
        input_dim: Dimensionality of the query vectors the adapter takes, for a cross-model
            adapter whose queries come from another model than the index's. ``None`` (every
            adapter saved before cross-model adapters existed) means ``dim``; see :attr:`in_dim`.
        rank: Rank r of the low-rank update; only used by ``"low_rank"``.
        hidden_dim: Width of the hidden layer; only used by ``"residual_mlp"`` and ``"two_layer"``.
        base_model: Identifier of the embedding model whose vectors the adapter was trained on.
            For a cross-model adapter, the model that embeds the *queries*. Adapted queries
            only make sense against documents embedded by this model, or by ``index_model``.
        index_model: For a cross-model adapter, the model that embedded the documents (the
            index the adapted queries search); ``None`` when that is ``base_model`` itself.
        distance: Distance of the collection the adapter is meant for.
        normalize: Whether ``apply`` re-normalises outputs to unit length. The default for
            cosine and for unit-norm documents with euclid is ``True``.
        training: Free-form training summary (data fingerprint, split regime, base vs adapted
            validation metrics). Informational; never used to compute anything.
        format_version: Version of the on-disk format; loading refuses versions it does not know.

    Example:
        >>> AdapterConfig(kind="low_rank", dim=8, rank=2).rank
        2
    """

    kind: AdapterKind = field(
        default="linear", metadata={"help": "linear, low_rank, residual_mlp or two_layer"}
    )
    dim: int = field(default=384, metadata={"help": "embedding dimensionality (the index's)"})
    input_dim: int | None = field(
        default=None, metadata={"help": "query vectors' dimensionality when it differs; None: dim"}
    )
    rank: int | None = field(default=None, metadata={"help": "rank of the low-rank update"})
    hidden_dim: int | None = field(default=None, metadata={"help": "hidden width of the residual MLP"})
    base_model: str | None = field(
        default=None, metadata={"help": "embedding model the adapter was trained on"}
    )
    index_model: str | None = field(
        default=None, metadata={"help": "model that embedded the documents, for a cross-model adapter"}
    )
    distance: Distance = field(default="cosine", metadata={"help": "cosine, dot or euclid"})
    normalize: bool = field(default=True, metadata={"help": "re-normalise adapted vectors to unit length"})
    training: dict[str, Any] = field(default_factory=dict, metadata={"help": "training summary"})
    format_version: int = field(default=FORMAT_VERSION, metadata={"help": "on-disk format version"})

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            _check_type(item.name, getattr(self, item.name))
        if self.kind not in ADAPTER_KINDS:
            raise AdapterFormatError(f"field 'kind' must be one of {ADAPTER_KINDS}, got {self.kind!r}")
        if self.dim <= 0:
            raise AdapterFormatError(f"field 'dim' must be a positive integer, got {self.dim!r}")
        if self.input_dim is not None and self.input_dim <= 0:
            raise AdapterFormatError(f"field 'input_dim' must be a positive integer, got {self.input_dim!r}")
        if self.distance not in DISTANCES:
            raise AdapterFormatError(f"field 'distance' must be one of {DISTANCES}, got {self.distance!r}")
        if self.kind == "low_rank":
            limit = min(self.dim, self.in_dim)
            if not isinstance(self.rank, int) or not 0 < self.rank <= limit:
                bound = f"dim={self.dim}" if self.in_dim == self.dim else f"min(dim, input_dim)={limit}"
                raise AdapterFormatError(
                    f"field 'rank' must be an integer in 1..{bound} for a low_rank adapter, got {self.rank!r}"
                )
        elif self.rank is not None:
            raise AdapterFormatError(
                f"field 'rank' is only meaningful for kind='low_rank', got rank={self.rank} with kind={self.kind!r}"
            )
        if self.kind in ("residual_mlp", "two_layer"):
            if not isinstance(self.hidden_dim, int) or self.hidden_dim <= 0:
                raise AdapterFormatError(
                    f"field 'hidden_dim' must be a positive integer for {self.kind}, got {self.hidden_dim!r}"
                )
        elif self.hidden_dim is not None:
            raise AdapterFormatError(
                f"field 'hidden_dim' is only meaningful for kind='residual_mlp' or 'two_layer', got hidden_dim={self.hidden_dim} with kind={self.kind!r}"
            )
        if self.format_version != FORMAT_VERSION:
            raise AdapterFormatError(
                f"adapter format_version {self.format_version!r} is not supported by this queryshift "
                f"(supports {FORMAT_VERSION}); upgrade with `pip install -U queryshift`"
            )

    @property
    def in_dim(self) -> int:
        """Dimensionality of the query vectors the adapter takes: ``input_dim``, or ``dim`` when unset.

        Example:
            >>> AdapterConfig(dim=12, input_dim=8).in_dim, AdapterConfig(dim=12).in_dim
            (8, 12)
        """
        return self.dim if self.input_dim is None else self.input_dim

    @property
    def cross_model(self) -> bool:
        """Whether queries come from another model than the index's (other dims, or ``index_model`` set)."""
        return self.in_dim != self.dim or self.index_model is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, written with sorted keys.

        ``input_dim`` and ``index_model`` are left out when unset, so a same-model adapter's file
        is what earlier versions wrote and read.
        """
        from queryshift import __version__

        data = dataclasses.asdict(self)
        for name in _OMITTED_WHEN_NONE:
            if data[name] is None:
                del data[name]
        data["queryshift_version"] = __version__
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True, source: object = None) -> AdapterConfig:
        """Build a config from JSON, checking every field's presence and type exactly.

        ``format_version``, ``kind``, ``dim``, ``distance`` and ``normalize`` must be present (no
        default is guessed for a damaged file); unknown keys are refused (or, with
        ``strict=False``, warned about and ignored). Errors name ``source`` and the field.
        """
        where = source or "adapter config"
        if not isinstance(data, dict):
            raise AdapterFormatError(f"{where}: expected a JSON object, got {_json_type(data)}")
        data = dict(data)
        data.pop("queryshift_version", None)
        if "format_version" not in data:
            raise AdapterFormatError(f"{where}: missing field 'format_version'")
        try:
            _check_type("format_version", data["format_version"])
        except AdapterFormatError as exc:
            raise AdapterFormatError(f"{where}: {exc}") from None
        if data["format_version"] != FORMAT_VERSION:  # checked first: a newer format may differ in anything
            raise AdapterFormatError(
                f"{where}: adapter format_version {data['format_version']!r} is not supported by this "
                f"queryshift (supports {FORMAT_VERSION}); upgrade with `pip install -U queryshift`"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = (
                f"{where}: unknown keys {unknown}; it was probably written by a newer "
                "queryshift (`pip install -U queryshift`)"
            )
            if strict:
                raise AdapterFormatError(msg + " or load with strict=False to ignore them")
            warnings.warn(msg, stacklevel=3)
            for key in unknown:
                data.pop(key)
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise AdapterFormatError(
                f"{where}: missing field '{missing[0]}' ({' or '.join(_TYPE_NAMES[t] for t in _FIELD_TYPES[missing[0]])})"
            )
        try:
            return cls(**data)
        except AdapterFormatError as exc:
            raise AdapterFormatError(f"{where}: {exc}") from None


def parse_adapter_config(data: bytes, *, source: object, strict: bool = True) -> AdapterConfig:
    """Parse the bytes of an ``adapter_config.json``: UTF-8 JSON, no duplicate keys, strict fields.

    Args:
        data: The file's bytes.
        source: The file, named in every error.
        strict: See :meth:`AdapterConfig.from_dict`.

    Raises:
        AdapterFormatError: One line naming ``source`` and what is wrong.

    Example:
        >>> text = b'{"format_version": 1, "kind": "linear", "dim": 4, "distance": "cosine", "normalize": true}'
        >>> parse_adapter_config(text, source="adapter_config.json").dim
        4
    """
    return AdapterConfig.from_dict(parse_json_bytes(data, source=source), strict=strict, source=source)


def parse_json_bytes(data: bytes, *, source: object) -> Any:
    """JSON from a file's bytes; not UTF-8, bad syntax or a key given twice raise naming ``source``.

    Shared by the adapter file readers (``adapter_config.json``, LlamaIndex ``config.json``).

    Example:
        >>> parse_json_bytes(b'{"a": 1, "a": 2}', source="x.json")
        Traceback (most recent call last):
        ...
        queryshift.errors.AdapterFormatError: x.json: key 'a' appears twice
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterFormatError(
            f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise AdapterFormatError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except _DuplicateKeyError as exc:
        raise AdapterFormatError(f"{source}: key {exc} appears twice") from None


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(repr(key))
        result[key] = value
    return result
