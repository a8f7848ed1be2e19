"""Retrieval data sets in memory, and loaders for the formats users already have.

Every loader produces one :class:`RetrievalDataset` (queries, documents, qrels), so the
trainer and the evaluator never care where data came from. Bad input raises a
:class:`~queryshift.errors.DataFormatError` naming file, line and field.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from queryshift.errors import DataFormatError

logger = logging.getLogger(__name__)

__all__ = [
    "RetrievalDataset",
    "DataFormat",
    "load_dataset",
    "guess_format",
    "corpus_for",
    "load_llamaindex_json",
    "load_beir",
    "load_pairs_jsonl",
    "load_corpus_jsonl",
    "save_llamaindex_json",
    "read_jsonl",
    "read_json",
    "read_lines",
]

DataFormat = Literal["auto", "llamaindex", "beir", "pairs"]


@dataclass(frozen=True)
class RetrievalDataset:
    """Queries, documents and which documents answer which query.

    Args:
        queries: query id → query text.
        documents: document id → document text (the whole corpus searched at evaluation).
        qrels: query id → set of relevant document ids. Every query has at least one.
        negatives: query id → document ids known to be wrong answers (optional, from pair files).
        name: Human-readable origin, used in reports.

    Example:
        >>> ds = RetrievalDataset(queries={"q1": "cat?"}, documents={"d1": "a cat"}, qrels={"q1": {"d1"}})
        >>> ds.num_queries, ds.num_documents
        (1, 1)
    """

    queries: dict[str, str]
    documents: dict[str, str]
    qrels: dict[str, set[str]]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        source = self.name or "dataset"
        if not self.queries:
            raise DataFormatError("no queries", path=source)
        if not self.documents:
            raise DataFormatError("no documents", path=source)
        for qid in self.queries:
            if not self.qrels.get(qid):
                raise DataFormatError(f"query {qid!r} has no relevant document", path=source, field="qrels")
        for qid, docs in self.qrels.items():
            if qid not in self.queries:
                raise DataFormatError(
                    f"relevance given for unknown query id {qid!r}", path=source, field="qrels"
                )
            unknown = sorted(d for d in docs if d not in self.documents)
            if unknown:
                raise DataFormatError(
                    f"query {qid!r} points at unknown document ids {unknown[:5]}", path=source, field="qrels"
                )
        for qid, docs in self.negatives.items():
            unknown = sorted(d for d in docs if d not in self.documents)
            if unknown:
                raise DataFormatError(
                    f"query {qid!r} lists unknown negative ids {unknown[:5]}", path=source, field="negatives"
                )

    @property
    def num_queries(self) -> int:
        return len(self.queries)

    @property
    def num_documents(self) -> int:
        return len(self.documents)

    def fingerprint(self) -> str:
        """A short content hash: two data sets with the same texts and qrels share it."""
        digest = hashlib.sha256()
        for qid in sorted(self.queries):
            digest.update(f"q\0{qid}\0{self.queries[qid]}\0{sorted(self.qrels[qid])}\n".encode())
        for did in sorted(self.documents):
            digest.update(f"d\0{did}\0{self.documents[did]}\n".encode())
        return digest.hexdigest()[:16]

    def subset(self, query_ids: Iterable[str], *, name: str | None = None) -> RetrievalDataset:
        """The same corpus with only ``query_ids`` as queries."""
        ids = list(query_ids)
        return RetrievalDataset(
            queries={q: self.queries[q] for q in ids},
            documents=self.documents,
            qrels={q: set(self.qrels[q]) for q in ids},
            negatives={q: self.negatives[q] for q in ids if q in self.negatives},
            name=name if name is not None else self.name,
        )


def load_dataset(
    path: str | Path,
    *,
    format: DataFormat = "auto",
    split: str = "test",
    corpus: str | Path | None = None,
) -> RetrievalDataset:
    """Load any supported data set, guessing the format from the path when ``format="auto"``.

    Args:
        path: A LlamaIndex ``EmbeddingQAFinetuneDataset`` ``.json`` file, a BEIR folder
            (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) or a ``.jsonl`` pair file.
        format: ``"llamaindex"``, ``"beir"``, ``"pairs"`` or ``"auto"``.
        split: For BEIR folders, which ``qrels/<split>.tsv`` to read.
        corpus: For pair files whose ``positive`` / ``negatives`` are document ids: the
            ``corpus.jsonl`` (``{"_id": ..., "text": ...}`` lines, BEIR's layout) the ids come
            from. The other formats carry their corpus and refuse this argument.

    Raises:
        DataFormatError: Malformed input (file, line and field named), or a pair file whose
            positives look like ids while no ``corpus`` is given.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data path {path} does not exist")
    if format == "auto":
        format = guess_format(path)
    if corpus is not None and format != "pairs":
        raise ValueError(
            f"a corpus file is only read for JSONL pairs; {path} is {format} data, which carries its own corpus"
        )
    if format == "llamaindex":
        return load_llamaindex_json(path)
    if format == "beir":
        return load_beir(path, split=split)
    if format == "pairs":
        return load_pairs_jsonl(path, corpus=corpus)
    raise ValueError(f"format must be one of auto, llamaindex, beir, pairs; got {format!r}")


def guess_format(path: str | Path) -> DataFormat:
    """The format ``load_dataset(format="auto")`` reads ``path`` as.

    Example:
        >>> guess_format("pairs.jsonl"), guess_format("train_dataset.json")
        ('pairs', 'llamaindex')
    """
    path = Path(path)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return "beir"
        raise DataFormatError(
            "cannot guess the format of this folder: a BEIR folder needs corpus.jsonl, queries.jsonl "
            "and qrels/<split>.tsv",
            path=path,
        )
    if path.suffix == ".json":
        return "llamaindex"
    if path.suffix == ".jsonl":
        return "pairs"
    raise DataFormatError(
        "cannot guess the format from the file name: expected .json (LlamaIndex), .jsonl (pairs) "
        "or a BEIR folder; pass format explicitly",
        path=path,
    )


def corpus_for(path: str | Path, corpus: str | Path | None, *, format: DataFormat = "auto") -> Path | None:
    """``corpus`` when ``path`` is a JSONL pair file, else ``None``.

    For the data a command reads besides its main data set (validation, test, index data): one
    ``--corpus`` serves every pair file among them, and the other formats carry their own corpus.
    """
    if corpus is None:
        return None
    return Path(corpus) if (format if format != "auto" else guess_format(path)) == "pairs" else None


def load_llamaindex_json(path: str | Path) -> RetrievalDataset:
    """Read LlamaIndex's ``EmbeddingQAFinetuneDataset`` JSON (``queries``, ``corpus``, ``relevant_docs``).

    A query with empty text is an error; a corpus entry with empty text is left out (with one
    warning), and so are the relevance labels pointing at it, as :func:`load_beir` does.
    """
    path = Path(path)
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataFormatError("expected a JSON object with queries, corpus, relevant_docs", path=path)
    for key in ("queries", "corpus", "relevant_docs"):
        if key not in raw:
            raise DataFormatError(
                "missing field (expected queries, corpus, relevant_docs)", path=path, field=key
            )
        if not isinstance(raw[key], dict):
            raise DataFormatError(f"expected an object, got {type(raw[key]).__name__}", path=path, field=key)
    queries = {str(k): _query_text(v, path, f"queries.{k}") for k, v in raw["queries"].items()}
    corpus = {str(k): _text(v, path, f"corpus.{k}") for k, v in raw["corpus"].items()}
    empty = {k: f"field 'corpus.{k}'" for k, v in corpus.items() if not v.strip()}
    qrels: dict[str, set[str]] = {}
    for qid, docs in raw["relevant_docs"].items():
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise DataFormatError("expected a list of document ids", path=path, field=f"relevant_docs.{qid}")
        qrels[str(qid)] = set(docs)
    if empty:
        qrels = _without_empty_documents(qrels, empty, path)
        queries = {q: t for q, t in queries.items() if q in qrels}
        corpus = {d: t for d, t in corpus.items() if d not in empty}
    return _build(queries, corpus, qrels, {}, name=str(path), path=path)


def load_beir(path: str | Path, *, split: str = "test") -> RetrievalDataset:
    """Read a BEIR folder; only queries that appear in ``qrels/<split>.tsv`` are kept.

    Relevance scores > 0 count as relevant; 0 or negative scores are ignored, as in BEIR's evaluation.
    """
    path = Path(path)
    corpus_path, queries_path, qrels_path = (
        path / "corpus.jsonl",
        path / "queries.jsonl",
        path / "qrels" / f"{split}.tsv",
    )
    for needed in (corpus_path, queries_path, qrels_path):
        if not needed.is_file():
            available = (
                sorted(p.stem for p in (path / "qrels").glob("*.tsv")) if (path / "qrels").is_dir() else []
            )
            hint = f" (available splits: {available})" if needed == qrels_path and available else ""
            raise FileNotFoundError(f"BEIR folder {path}: missing {needed.relative_to(path)}{hint}")
    documents, empty = _read_corpus(corpus_path)
    all_queries: dict[str, tuple[int, str]] = {}  # query id -> (line, text)
    for line_no, obj in _unique_records(queries_path):
        all_queries[str(obj["_id"])] = (line_no, _text(obj.get("text"), queries_path, "text", line_no))
    qrels: dict[str, set[str]] = {}
    for line_no, text in read_lines(qrels_path):
        row = next(csv.reader([text], delimiter="\t"), [])
        if not row or (line_no == 1 and row[0] in ("query-id", "query_id", "qid")):
            continue
        if len(row) < 3:
            raise DataFormatError(
                "expected 3 tab-separated columns query-id, corpus-id, score",
                path=qrels_path,
                line=line_no,
            )
        qid, did, score = row[0], row[1], row[2]
        try:
            value = float(score)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DataFormatError(
                f"score must be a finite number, got {score!r}", path=qrels_path, line=line_no, field="score"
            )
        if qid not in all_queries:
            raise DataFormatError(
                f"unknown query id {qid!r} (not in queries.jsonl)",
                path=qrels_path,
                line=line_no,
                field="query-id",
            )
        if did not in documents and did not in empty:
            raise DataFormatError(
                f"unknown corpus id {did!r} (not in corpus.jsonl)",
                path=qrels_path,
                line=line_no,
                field="corpus-id",
            )
        if value > 0:
            query_line, query_text = all_queries[qid]
            if not query_text.strip():
                raise DataFormatError(
                    f"query {qid!r} has empty text (it is used by {qrels_path.name} line {line_no})",
                    path=queries_path,
                    line=query_line,
                    field="text",
                )
            qrels.setdefault(qid, set()).add(did)
    if empty:
        qrels = _without_empty_documents(qrels, empty, corpus_path)
    queries = {q: all_queries[q][1] for q in qrels}
    return _build(queries, documents, qrels, {}, name=f"{path}[{split}]", path=qrels_path)


def load_corpus_jsonl(path: str | Path) -> dict[str, str]:
    """Document id → text from BEIR's ``corpus.jsonl`` layout: ``{"_id": ..., "title": ..., "text": ...}``.

    A title, when present, is prepended to the text on its own line, as BEIR's evaluation does.
    Records with no text are left out, with a warning (nothing can retrieve them for their content).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    documents, empty = _read_corpus(path)
    if empty:
        logger.warning(
            "%s: left out %d document(s) with empty text (%s)",
            path,
            len(empty),
            ", ".join(list(empty.values())[:5]),
        )
    return documents


def _read_corpus(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(id -> text, id -> "line N" of records with no text)`` of a BEIR ``corpus.jsonl``."""
    documents: dict[str, str] = {}
    empty: dict[str, str] = {}  # document id -> where, for documents with no text
    for line_no, obj in _unique_records(path):
        text = _text(obj.get("text"), path, "text", line_no)
        title = obj.get("title") or ""
        body = f"{title}\n{text}" if title else text
        if body.strip():
            documents[str(obj["_id"])] = body
        else:
            empty[str(obj["_id"])] = f"line {line_no}"
    return documents, empty


def load_pairs_jsonl(
    path: str | Path,
    *,
    documents: dict[str, str] | None = None,
    corpus: str | Path | None = None,
) -> RetrievalDataset:
    """Read ``{"query": ..., "positive": ..., "negatives": [...]}`` lines.

    ``positive`` and each negative are either document texts or, when ``documents`` (id → text)
    or a ``corpus`` file (see :func:`load_corpus_jsonl`) is given and the value is one of its
    ids, document ids. Texts get stable content-hash ids, so the same passage used twice is one
    document. Lines may carry an ``"id"`` for the query. A value that looks like an id (one
    word, no spaces) but names no document of the corpus is refused rather than embedded as if
    it were the document's text.

    Example:
        >>> import json, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "cats purr"}) + "\\n")
        >>> _ = (folder / "pairs.jsonl").write_text(json.dumps({"query": "cats?", "positive": "d1"}) + "\\n")
        >>> load_pairs_jsonl(folder / "pairs.jsonl", corpus=folder / "corpus.jsonl").qrels
        {'q1': {'d1'}}
    """
    path = Path(path)
    known = dict(documents or {})  # the ids a line may name
    if corpus is not None:
        known = {**load_corpus_jsonl(corpus), **known}
    all_documents: dict[str, str] = dict(known)
    text_ids: dict[str, str] = {text: did for did, text in all_documents.items()}
    queries: dict[str, str] = {}
    qrels: dict[str, set[str]] = {}
    negatives: dict[str, list[str]] = {}

    def doc_id(value: object, line_no: int, name: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(
                "expected a non-empty string (document text or id)", path=path, line=line_no, field=name
            )
        if value in known:
            return value
        if _looks_like_id(value):
            if corpus is not None:
                problem = f"{value[:60]!r} is not an id in {corpus} ({len(known)} documents)"
            elif known:
                problem = f"{value[:60]!r} is not an id of the given documents ({len(known)})"
            else:
                problem = (
                    f"{value[:60]!r} looks like a document id, not a document's text; pass the corpus the ids "
                    'come from (--corpus corpus.jsonl with {"_id": ..., "text": ...} lines; '
                    "load_dataset(..., corpus=...) in Python)"
                )
            raise DataFormatError(problem, path=path, line=line_no, field=name)
        if value not in text_ids:
            new_id = "doc-" + hashlib.sha256(value.encode()).hexdigest()[:12]
            text_ids[value] = new_id
            all_documents[new_id] = value
        return text_ids[value]

    for line_no, obj in read_jsonl(path):
        query = _query_text(_field(obj, "query", path, line_no), path, "query", line_no)
        positive = doc_id(_field(obj, "positive", path, line_no), line_no, "positive")
        qid = str(obj.get("id", f"q{line_no}"))
        if qid in queries and queries[qid] != query:
            raise DataFormatError(
                f"query id {qid!r} reused for a different query", path=path, line=line_no, field="id"
            )
        queries[qid] = query
        qrels.setdefault(qid, set()).add(positive)
        raw_negatives = obj.get("negatives", [])
        if not isinstance(raw_negatives, list):
            raise DataFormatError("expected a list", path=path, line=line_no, field="negatives")
        negatives.setdefault(qid, []).extend(doc_id(n, line_no, "negatives") for n in raw_negatives)
    negatives = {q: [d for d in n if d not in qrels[q]] for q, n in negatives.items() if n}
    return _build(queries, all_documents, qrels, negatives, name=str(path), path=path)


def _looks_like_id(value: str) -> bool:
    """One short token without spaces ("doc-17", "42", a UUID): no passage worth retrieving looks like that."""
    return len(value) <= 128 and not any(c.isspace() for c in value.strip())


def save_llamaindex_json(dataset: RetrievalDataset, path: str | Path) -> Path:
    """Write ``dataset`` in LlamaIndex's ``EmbeddingQAFinetuneDataset`` JSON layout, atomically."""
    from queryshift.atomic import atomic_write_text

    raw = {
        "queries": dataset.queries,
        "corpus": dataset.documents,
        "relevant_docs": {q: sorted(d) for q, d in dataset.qrels.items()},
        "mode": "text",
    }
    return atomic_write_text(path, json.dumps(raw, ensure_ascii=False))


def _build(queries, documents, qrels, negatives, *, name: str, path: Path) -> RetrievalDataset:
    if not queries:
        raise DataFormatError("no queries with relevant documents", path=path)
    if not documents:
        raise DataFormatError("no documents", path=path)
    return RetrievalDataset(queries=queries, documents=documents, qrels=qrels, negatives=negatives, name=name)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; malformed lines raise naming file and line.

    Lines must be UTF-8 (a leading byte-order mark is dropped), and an object that repeats a key
    is refused rather than silently keeping the last value.
    """
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        obj = _parse_json(line, path, line_no)
        if not isinstance(obj, dict):
            raise DataFormatError(
                f"expected a JSON object, got {type(obj).__name__}", path=path, line=line_no
            )
        yield line_no, obj


def read_json(path: str | Path) -> Any:
    """Parse a whole JSON file; bad bytes, bad syntax and repeated keys raise naming file and line.

    Example:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "x.json"
        >>> _ = bad.write_text('{"queries": {"q1": "a", "q1": "b"}}')
        >>> read_json(bad)
        Traceback (most recent call last):
        ...
        queryshift.errors.DataFormatError: ...x.json, field 'queries': duplicate key 'q1' ...
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc, data, path, line=data.count(b"\n", 0, exc.start) + 1) from None
    return _parse_json(text, path, None)


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (a leading byte-order mark dropped); bad bytes name the line.

    Lines keep their line ending, as ``open(path)`` yields them.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(exc, raw, path, line=line_no) from None


def _not_utf8(exc: UnicodeDecodeError, data: bytes, path: Path, *, line: int) -> DataFormatError:
    return DataFormatError(
        f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded); save the file as UTF-8",
        path=path,
        line=line,
    )


def _parse_json(text: str, path: Path, line_no: int | None) -> Any:
    duplicates: list[tuple[dict[str, Any], str]] = []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs) and not duplicates:
            keys = [k for k, _ in pairs]
            duplicates.append((obj, next(k for i, k in enumerate(keys) if k in keys[:i])))
        return obj

    try:
        value = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        line = line_no if line_no is not None else exc.lineno
        raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=line) from exc
    if duplicates:
        obj, key = duplicates[0]
        raise DataFormatError(
            f"duplicate key {key!r} (each key must appear once; JSON readers keep only the last)",
            path=path,
            line=line_no,
            field=_locate(value, obj),
        )
    return value


def _locate(root: Any, target: object, prefix: str = "") -> str | None:
    """Dotted path of ``target`` inside ``root`` (None for ``root`` itself), for error messages."""
    if root is target:
        return prefix or None
    children = root.items() if isinstance(root, dict) else enumerate(root) if isinstance(root, list) else ()
    for key, child in children:
        if isinstance(child, (dict, list)):
            found = _locate(child, target, f"{prefix}.{key}" if prefix else str(key))
            if found is not None:
                return found
    return None


def _unique_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """BEIR ``corpus.jsonl`` / ``queries.jsonl`` records, refusing an ``_id`` seen on an earlier line."""
    first_line: dict[str, int] = {}
    for line_no, obj in read_jsonl(path):
        record_id = str(_field(obj, "_id", path, line_no))
        if record_id in first_line:
            raise DataFormatError(
                f"duplicate _id {record_id!r} (first on line {first_line[record_id]}); ids must be unique",
                path=path,
                line=line_no,
                field="_id",
            )
        first_line[record_id] = line_no
        yield line_no, obj


def _without_empty_documents(
    qrels: dict[str, set[str]], empty: dict[str, str], path: Path
) -> dict[str, set[str]]:
    """Drop documents with no text from the qrels (and queries left without any), with one warning.

    An empty document cannot be retrieved for its content (every empty text embeds alike), so
    real corpora's blank records (BEIR cranfield has two) are left out instead of refused.
    """
    kept = {q: docs - empty.keys() for q, docs in qrels.items()}
    dropped_labels = sum(len(docs & empty.keys()) for docs in qrels.values())
    dropped_queries = sorted(q for q, docs in kept.items() if not docs)
    where = ", ".join(list(empty.values())[:5]) + (", ..." if len(empty) > 5 else "")
    lost = f"; {len(dropped_queries)} query(ies) had no other and were left out too: {dropped_queries[:5]}"
    logger.warning(
        "%s: left out %d document(s) with empty text (%s) and the %d relevance label(s) pointing at them%s",
        path,
        len(empty),
        where,
        dropped_labels,
        lost if dropped_queries else "",
    )
    return {q: docs for q, docs in kept.items() if docs}


def _field(obj: dict[str, Any], name: str, path: Path, line_no: int) -> Any:
    if name not in obj:
        raise DataFormatError("missing field", path=path, line=line_no, field=name)
    return obj[name]


def _text(value: object, path: Path, name: str, line_no: int | None = None) -> str:
    if not isinstance(value, str):
        raise DataFormatError(
            f"expected a string, got {type(value).__name__}", path=path, line=line_no, field=name
        )
    return value


def _query_text(value: object, path: Path, name: str, line_no: int | None = None) -> str:
    text = _text(value, path, name, line_no)
    if not text.strip():
        raise DataFormatError(
            "empty query text; every query needs words to embed", path=path, line=line_no, field=name
        )
    return text
