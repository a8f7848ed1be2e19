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
    path.write_text(json.dumps({"query": "a", "positive": "b c"}) + "\n" + json.dumps({"query": "a"}) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2, field 'positive'"):
        load_pairs_jsonl(path)
    path.write_text("")
    with pytest.raises(DataFormatError, match="no queries"):
        load_pairs_jsonl(path)


def test_pairs_with_id_positives_need_their_corpus(tmp_path):
    pairs, corpus = tmp_path / "pairs.jsonl", tmp_path / "corpus.jsonl"
    pairs.write_text(
        json.dumps({"query": "cat?", "positive": "cats purr"})
        + "\n"
        + json.dumps({"query": "dog?", "positive": "d-2", "negatives": ["d-1"]})
        + "\n"
    )
    # Without the corpus the id would be embedded as if it were the document's text: refused.
    with pytest.raises(
        DataFormatError,
        match=r"pairs.jsonl, line 2, field 'positive': 'd-2' looks like a document id.*--corpus",
    ):
        load_dataset(pairs)
    corpus.write_text(
        json.dumps({"_id": "d-1", "title": "Cats", "text": "cats purr"})
        + "\n"
        + json.dumps({"_id": "d-2", "text": "dogs bark"})
        + "\n"
        + json.dumps({"_id": "d-3", "text": "birds sing"})
        + "\n"
    )
    ds = load_dataset(pairs, corpus=corpus)
    assert ds.qrels["q2"] == {"d-2"} and ds.negatives["q2"] == ["d-1"]
    assert ds.documents["d-2"] == "dogs bark" and "d-3" in ds.documents  # the whole corpus is searched
    assert (
        len(ds.documents) == 4
    )  # "cats purr" (line 1, a text) is a document of its own beside "Cats\ncats purr"
    pairs.write_text(json.dumps({"query": "fish?", "positive": "d-9"}) + "\n")
    with pytest.raises(
        DataFormatError,
        match=r"line 1, field 'positive': 'd-9' is not an id in .*corpus.jsonl \(3 documents\)",
    ):
        load_dataset(pairs, corpus=corpus)
    with pytest.raises(ValueError, match="only read for JSONL pairs"):
        load_dataset(_write_beir(tmp_path / "b"), corpus=corpus)


def test_fingerprint_changes_with_content():
    a = RetrievalDataset(queries={"q": "x"}, documents={"d": "t"}, qrels={"q": {"d"}})
    b = RetrievalDataset(queries={"q": "y"}, documents={"d": "t"}, qrels={"q": {"d"}})
    assert a.fingerprint() != b.fingerprint() and a.fingerprint() == a.subset(["q"]).fingerprint()
