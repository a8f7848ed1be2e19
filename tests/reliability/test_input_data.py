"""Bad data files: each case fails with one line naming the file (and line or field), or is a
documented, logged behaviour. The table of cases is in docs/reliability.md ("## Input")."""

from __future__ import annotations

import json
import logging

import pytest

from queryshift.data import load_beir, load_llamaindex_json, load_pairs_jsonl, read_json
from queryshift.errors import DataFormatError

QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _beir(root, *, corpus=None, queries=None, qrels=None):
    """A two-query BEIR folder; any of its three files can be replaced (str or bytes)."""
    (root / "qrels").mkdir(parents=True)
    files = {
        "corpus.jsonl": corpus
        if corpus is not None
        else _jsonl({"_id": "d1", "text": "cats purr"}, {"_id": "d2", "text": "dogs bark"}),
        "queries.jsonl": queries
        if queries is not None
        else _jsonl({"_id": "q1", "text": "cat?"}, {"_id": "q2", "text": "dog?"}),
        "qrels/test.tsv": qrels if qrels is not None else QRELS_HEADER + "q1\td1\t1\nq2\td2\t1\n",
    }
    for name, content in files.items():
        target = root / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _llamaindex(path, **overrides):
    raw = {
        "queries": {"q1": "cat?", "q2": "dog?"},
        "corpus": {"d1": "cats purr", "d2": "dogs bark"},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"]},
    }
    raw.update(overrides)
    path.write_text(json.dumps(raw))
    return path


def test_duplicate_key_in_llamaindex_json_names_file_and_section(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(
        '{"queries": {"q1": "cat?", "q1": "other"}, "corpus": {"d1": "cats"}, "relevant_docs": {"q1": ["d1"]}}'
    )
    with pytest.raises(DataFormatError, match=r"data\.json, field 'queries': duplicate key 'q1'"):
        load_llamaindex_json(path)


def test_duplicate_key_in_a_jsonl_line_names_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        _jsonl({"query": "a?", "positive": "a passage"})
        + '{"query": "x?", "query": "y?", "positive": "another passage"}\n'
    )
    with pytest.raises(DataFormatError, match=r"pairs\.jsonl, line 2: duplicate key 'query'"):
        load_pairs_jsonl(path)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_duplicate_beir_id_names_file_line_and_first_line(tmp_path, name):
    extra = {"corpus.jsonl": {"_id": "d1", "text": "again"}, "queries.jsonl": {"_id": "q1", "text": "again?"}}
    base = {
        "corpus.jsonl": [{"_id": "d1", "text": "cats purr"}, {"_id": "d2", "text": "dogs bark"}],
        "queries.jsonl": [{"_id": "q1", "text": "cat?"}, {"_id": "q2", "text": "dog?"}],
    }
    key = name.split(".")[0]
    root = _beir(tmp_path / "b", **{key: _jsonl(*base[name], extra[name])})
    with pytest.raises(
        DataFormatError, match=rf"{name}, line 3, field '_id': duplicate _id .*first on line 1"
    ):
        load_beir(root)


def test_empty_query_text_is_refused(tmp_path):
    with pytest.raises(DataFormatError, match=r"field 'queries.q2': empty query text"):
        load_llamaindex_json(_llamaindex(tmp_path / "x.json", queries={"q1": "cat?", "q2": "  "}))
    root = _beir(tmp_path / "b", queries=_jsonl({"_id": "q1", "text": "cat?"}, {"_id": "q2", "text": ""}))
    with pytest.raises(
        DataFormatError, match=r"queries\.jsonl, line 2, field 'text': query 'q2' has empty text"
    ):
        load_beir(root)
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(_jsonl({"query": "", "positive": "text"}))
    with pytest.raises(DataFormatError, match=r"p\.jsonl, line 1, field 'query': empty query text"):
        load_pairs_jsonl(pairs)


def test_empty_documents_are_left_out_with_a_warning(tmp_path, caplog):
    corpus = _jsonl(
        {"_id": "d1", "text": "cats purr"},
        {"_id": "d2", "text": "dogs bark"},
        {"_id": "d3", "title": "", "text": " "},
    )
    qrels = QRELS_HEADER + "q1\td1\t1\nq1\td3\t1\nq2\td3\t1\n"  # q2's only relevant document is empty
    with caplog.at_level(logging.WARNING, logger="queryshift.data"):
        ds = load_beir(_beir(tmp_path / "b", corpus=corpus, qrels=qrels))
    assert set(ds.documents) == {"d1", "d2"} and ds.qrels == {"q1": {"d1"}}
    assert "left out 1 document(s) with empty text (line 3)" in caplog.text
    assert "['q2']" in caplog.text
    caplog.clear()
    path = _llamaindex(tmp_path / "x.json", corpus={"d1": "cats purr", "d2": ""})
    with caplog.at_level(logging.WARNING, logger="queryshift.data"):
        ds = load_llamaindex_json(path)
    assert set(ds.documents) == {"d1"} and set(ds.queries) == {"q1"}
    assert "field 'corpus.d2'" in caplog.text


@pytest.mark.parametrize("score", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_qrels_score_is_refused(tmp_path, score):
    root = _beir(tmp_path / "b", qrels=QRELS_HEADER + f"q1\td1\t1\nq2\td2\t{score}\n")
    with pytest.raises(
        DataFormatError,
        match=rf"test\.tsv, line 3, field 'score': score must be a finite number, got '{score}'",
    ):
        load_beir(root)


def test_bom_in_qrels_and_jsonl_is_accepted(tmp_path):
    bom = "\ufeff"
    root = _beir(
        tmp_path / "b",
        corpus=bom + _jsonl({"_id": "d1", "text": "cats purr"}, {"_id": "d2", "text": "dogs bark"}),
        qrels=bom + QRELS_HEADER + "q1\td1\t1\nq2\td2\t1\n",
    )
    assert load_beir(root).qrels == {"q1": {"d1"}, "q2": {"d2"}}
    path = tmp_path / "x.json"
    path.write_text(
        bom + json.dumps({"queries": {"q": "a?"}, "corpus": {"d": "b"}, "relevant_docs": {"q": ["d"]}})
    )
    assert load_llamaindex_json(path).qrels == {"q": {"d"}}


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_non_utf8_beir_file_names_file_and_line(tmp_path, name):
    root = _beir(tmp_path / "b")
    target = root / name
    lines = target.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"d", b"\xff", 1)
    target.write_bytes(b"".join(lines))
    with pytest.raises(DataFormatError, match=rf"{target.name}, line 2: not UTF-8 text \(byte 0xff"):
        load_beir(root)


def test_non_utf8_json_and_pairs_name_file_and_line(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"queries": {"q": "a?"},\n "corpus": {"d": "caf\xe9"}, "relevant_docs": {"q": ["d"]}}')
    with pytest.raises(DataFormatError, match=r"x\.json, line 2: not UTF-8 text \(byte 0xe9"):
        load_llamaindex_json(path)
    pairs = tmp_path / "p.jsonl"
    pairs.write_bytes(
        b'{"query": "a?", "positive": "a passage"}\n{"query": "\xff", "positive": "another passage"}\n'
    )
    with pytest.raises(DataFormatError, match=r"p\.jsonl, line 2: not UTF-8 text"):
        load_pairs_jsonl(pairs)


def test_read_json_reports_syntax_errors_with_line(tmp_path):
    path = tmp_path / "h.json"
    path.write_text('[\n"q1",\n')
    with pytest.raises(DataFormatError, match=r"h\.json, line 3: invalid JSON"):
        read_json(path)
