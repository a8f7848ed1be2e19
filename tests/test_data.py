import json

import pytest

from queryshift.data import (
    RetrievalDataset,
    load_beir,
    load_dataset,
    load_llamaindex_json,
    load_pairs_jsonl,
    save_llamaindex_json,
)
from queryshift.errors import DataFormatError


def _write_beir(root, *, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td1\t0\n"):
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T1", "text": "cats"})
        + "\n"
        + json.dumps({"_id": "d2", "text": "dogs"})
        + "\n"
    )
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "cat?"}) + "\n" + json.dumps({"_id": "q2", "text": "dog?"}) + "\n"
    )
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def test_beir_loader(tmp_path):
    ds = load_dataset(_write_beir(tmp_path / "b"))
    assert ds.queries == {"q1": "cat?", "q2": "dog?"}
    assert ds.documents["d1"] == "T1\ncats"
    assert ds.qrels == {"q1": {"d1"}, "q2": {"d2"}}  # score 0 is not relevant


def test_beir_errors_name_file_line_field(tmp_path):
    root = _write_beir(tmp_path / "b", qrels="query-id\tcorpus-id\tscore\nq1\tdX\t1\n")
    with pytest.raises(DataFormatError, match=r"test.tsv, line 2, field 'corpus-id'.*dX"):
        load_beir(root)
    with pytest.raises(FileNotFoundError, match="available splits"):
        load_beir(root, split="dev")
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2"\n')
    with pytest.raises(DataFormatError, match=r"corpus.jsonl, line 2: invalid JSON"):
        load_beir(root)


def test_llamaindex_roundtrip_and_errors(tmp_path):
    ds = RetrievalDataset(queries={"q": "what?"}, documents={"d": "text", "e": "other"}, qrels={"q": {"d"}})
    path = save_llamaindex_json(ds, tmp_path / "x.json")
    back = load_llamaindex_json(path)
    assert (back.queries, back.documents, back.qrels) == (ds.queries, ds.documents, ds.qrels)
    raw = json.loads(path.read_text())
    raw["relevant_docs"]["q"] = ["nope"]
    path.write_text(json.dumps(raw))
    with pytest.raises(DataFormatError, match="unknown document ids.*nope"):
        load_llamaindex_json(path)
    del raw["corpus"]
    path.write_text(json.dumps(raw))
    with pytest.raises(DataFormatError, match="field 'corpus'"):
        load_llamaindex_json(path)


def test_pairs_text_and_ids(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = [
        {"query": "cat?", "positive": "cats purr", "negatives": ["dogs bark"]},
        {"query": "dog?", "positive": "dogs bark"},
        {"query": "bird?", "positive": "b1"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    ds = load_pairs_jsonl(path, documents={"b1": "birds sing"})
    assert ds.num_queries == 3 and ds.num_documents == 3  # "dogs bark" is one document
    assert ds.qrels["q3"] == {"b1"}
    assert ds.negatives["q1"] == list(ds.qrels["q2"])


def test_pairs_errors(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"query": "a", "positive": "b"}) + "\n" + json.dumps({"query": "a"}) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2, field 'positive'"):
        load_pairs_jsonl(path)
    path.write_text("")
    with pytest.raises(DataFormatError, match="no queries"):
        load_pairs_jsonl(path)


def test_fingerprint_changes_with_content():
    a = RetrievalDataset(queries={"q": "x"}, documents={"d": "t"}, qrels={"q": {"d"}})
    b = RetrievalDataset(queries={"q": "y"}, documents={"d": "t"}, qrels={"q": {"d"}})
    assert a.fingerprint() != b.fingerprint() and a.fingerprint() == a.subset(["q"]).fingerprint()
