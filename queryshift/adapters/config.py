"""What a saved adapter is: the frozen config stored in ``adapter_config.json``.

Kept apart from the math (``linear.py``, ``residual_mlp.py``) and from file handling
(``io.py``), as peft splits ``config`` / ``layer`` / ``model``: the config can be read,
validated and compared without touching any weights.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from queryshift.errors import AdapterFormatError

logger = logging.getLogger(__name__)

__all__ = ["AdapterConfig", "FORMAT_VERSION", "ADAPTER_KINDS", "DISTANCES"]

FORMAT_VERSION = 1
ADAPTER_KINDS = ("linear", "low_rank", "residual_mlp", "two_layer")
DISTANCES = ("cosine", "dot", "euclid")

AdapterKind = Literal["linear", "low_rank", "residual_mlp", "two_layer"]
Distance = Literal["cosine", "dot", "euclid"]


@dataclass(frozen=True)
class AdapterConfig:
    """Shape and provenance of a query adapter.

    Args:
        kind: ``"linear"`` (full d×d matrix plus bias), ``"low_rank"`` (I + U Vᵀ plus bias),
            ``"residual_mlp"`` (x + MLP(x)) or ``"two_layer"`` (LlamaIndex's ``TwoLayerNN``, imported).
        dim: Dimensionality of the embedding space the adapter maps (input and output).
        rank: Rank r of the low-rank update; only used by ``"low_rank"``.
        hidden_dim: Width of the hidden layer; only used by ``"residual_mlp"`` and ``"two_layer"``.
        base_model: Identifier of the embedding model whose vectors the adapter was trained on.
            Adapted queries only make sense against documents embedded by this model.
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
    dim: int = field(default=384, metadata={"help": "embedding dimensionality"})
    rank: int | None = field(default=None, metadata={"help": "rank of the low-rank update"})
    hidden_dim: int | None = field(default=None, metadata={"help": "hidden width of the residual MLP"})
    base_model: str | None = field(
        default=None, metadata={"help": "embedding model the adapter was trained on"}
    )
    distance: Distance = field(default="cosine", metadata={"help": "cosine, dot or euclid"})
    normalize: bool = field(default=True, metadata={"help": "re-normalise adapted vectors to unit length"})
    training: dict[str, Any] = field(default_factory=dict, metadata={"help": "training summary"})
    format_version: int = field(default=FORMAT_VERSION, metadata={"help": "on-disk format version"})

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise AdapterFormatError(f"kind must be one of {ADAPTER_KINDS}, got {self.kind!r}")
        if not isinstance(self.dim, int) or self.dim <= 0:
            raise AdapterFormatError(f"dim must be a positive integer, got {self.dim!r}")
        if self.distance not in DISTANCES:
            raise AdapterFormatError(f"distance must be one of {DISTANCES}, got {self.distance!r}")
        if self.kind == "low_rank":
            if not isinstance(self.rank, int) or not 0 < self.rank <= self.dim:
                raise AdapterFormatError(
                    f"rank must be an integer in 1..dim={self.dim} for a low_rank adapter, got {self.rank!r}"
                )
        elif self.rank is not None:
            raise AdapterFormatError(
                f"rank is only meaningful for kind='low_rank', got rank={self.rank} with kind={self.kind!r}"
            )
        if self.kind in ("residual_mlp", "two_layer"):
            if not isinstance(self.hidden_dim, int) or self.hidden_dim <= 0:
                raise AdapterFormatError(
                    f"hidden_dim must be a positive integer for {self.kind}, got {self.hidden_dim!r}"
                )
        elif self.hidden_dim is not None:
            raise AdapterFormatError(
                f"hidden_dim is only meaningful for kind='residual_mlp' or 'two_layer', got hidden_dim={self.hidden_dim} with kind={self.kind!r}"
            )
        if self.format_version != FORMAT_VERSION:
            raise AdapterFormatError(
                f"adapter format_version {self.format_version!r} is not supported by this queryshift "
                f"(supports {FORMAT_VERSION}); upgrade with `pip install -U queryshift`"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, written with sorted keys."""
        from queryshift import __version__

        data = dataclasses.asdict(self)
        data["queryshift_version"] = __version__
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True, source: object = None) -> AdapterConfig:
        """Build a config from JSON, rejecting unknown keys (or warning when ``strict=False``)."""
        if not isinstance(data, dict):
            raise AdapterFormatError(
                f"{source or 'adapter config'}: expected a JSON object, got {type(data).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        data = dict(data)
        data.pop("queryshift_version", None)
        unknown = sorted(set(data) - known)
        if unknown:
            msg = (
                f"{source or 'adapter config'}: unknown keys {unknown}; it was probably written by a newer "
                "queryshift (`pip install -U queryshift`)"
            )
            if strict:
                raise AdapterFormatError(msg + " or load with strict=False to ignore them")
            warnings.warn(msg, stacklevel=3)
            for key in unknown:
                data.pop(key)
        if "format_version" not in data:
            raise AdapterFormatError(f"{source or 'adapter config'}: missing field 'format_version'")
        try:
            return cls(**data)
        except TypeError as exc:
            raise AdapterFormatError(f"{source or 'adapter config'}: {exc}") from exc
