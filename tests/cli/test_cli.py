import json

import numpy as np
import pytest
from click.testing import CliRunner

from queryshift.cli import main

from ..conftest import COVIDQA, FINETUNE_DATA, toy_embedded  # noqa: TID252


def _toy_files(tmp_path):
    data = toy_embedded(n_docs=30, n_queries=240, noise=0.3)
    from queryshift.data import save_llamaindex_json

    save_llamaindex_json(data.dataset, tmp_path / "toy.json")
    np.save(tmp_path / "q.npy", data.query_vectors)
    (tmp_path / "q.ids.txt").write_text("\n".join(data.query_ids))
    np.save(tmp_path / "d.npy", data.document_vectors)
    (tmp_path / "d.ids.txt").write_text("\n".join(data.document_ids))
    return ["--query-vectors", str(tmp_path / "q.npy"), "--document-vectors", str(tmp_path / "d.npy")]


def test_train_evaluate_inspect_with_precomputed_vectors(tmp_path):
    vectors = _toy_files(tmp_path)
    runner = CliRunner()
    out = tmp_path / "adapter"
    res = runner.invoke(
        main,
        [
            "train",
            str(tmp_path / "toy.json"),
            "-o",
            str(out),
            "--holdout",
            "query",
            "--epochs",
            "5",
            "--model",
            "toy",
            *vectors,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "validation (query split" in res.output and "Regime: queries revisit known documents" in res.output
    assert "No pseudo-queries: query vectors come from --query-vectors" in res.output
    res = runner.invoke(
        main, ["evaluate", str(tmp_path / "toy.json"), "--adapter", str(out), "--json", *vectors]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    heldout = json.loads((out / "heldout_queries.json").read_text())
    assert report["num_queries"] == len(heldout) > 0
    assert set(report["base"]) == {"ndcg@10", "mrr@10", "hit@5", "recall@10"}
    assert report["training_queries_scored"] == 0 and "Warning" not in res.stderr
    res = runner.invoke(main, ["inspect", str(out)])
    assert res.exit_code == 0 and "split_regime: query" in res.output and "base_model: toy" in res.output
    # Scoring the training queries too (--queries all) is allowed, with a warning naming how many.
    res = runner.invoke(
        main,
        [
            "evaluate",
            str(tmp_path / "toy.json"),
            "--adapter",
            str(out),
            "--queries",
            "all",
            "--json",
            *vectors,
        ],
    )
    assert res.exit_code == 0, res.output
    trained = 240 - len(heldout)
    assert json.loads(res.stdout)["training_queries_scored"] == trained
    assert (
        f"Warning: {trained} of the 240 queries scored are the adapter's own training queries" in res.stderr
    )


def test_pairs_with_document_ids_train_with_their_corpus(tmp_path):
    vectors = _toy_files(tmp_path)
    data = toy_embedded(n_docs=30, n_queries=240, noise=0.3).dataset
    pairs, corpus = tmp_path / "pairs.jsonl", tmp_path / "corpus.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": q, "query": data.queries[q], "positive": next(iter(data.qrels[q]))}) + "\n"
            for q in sorted(data.queries)
        )
    )
    corpus.write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in data.documents.items()))
    train = ["train", str(pairs), "--epochs", "2", "--model", "toy", *vectors]
    res = CliRunner().invoke(main, [*train, "-o", str(tmp_path / "no-corpus")])
    assert res.exit_code != 0 and not (tmp_path / "no-corpus").exists()
    assert "pairs.jsonl, line 1, field 'positive': 'd000' looks like a document id" in res.output
    assert "--corpus" in res.output
    res = CliRunner().invoke(main, [*train, "--corpus", str(corpus), "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "Training on 240 queries over 30 documents" in res.output
    res = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(pairs),
            "--corpus",
            str(corpus),
            "--adapter",
            str(tmp_path / "a"),
            "--json",
            *vectors,
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["num_documents"] == 30
    assert (
        json.loads(res.stdout)["training_queries_scored"] == 240 and "Warning: 240 of the 240" in res.stderr
    )


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"queries": {"q": "x"}, "corpus": {"e": "text"}, "relevant_docs": {"q": ["d"]}}')
    res = CliRunner().invoke(main, ["train", str(bad), "-o", str(tmp_path / "a")])
    assert res.exit_code != 0
    assert "Error:" in res.output and "bad.json" in res.output and "unknown document ids" in res.output
    assert not (tmp_path / "a").exists()
    res = CliRunner().invoke(main, ["evaluate", str(bad), "--adapter", str(tmp_path)])
    assert res.exit_code != 0 and "adapter_config.json not found" in res.output


def _evaluate_json(runner, data, adapter, *extra):
    res = runner.invoke(main, ["evaluate", str(data), "--adapter", str(adapter), "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # progress bars go to stderr; stdout is clean JSON


@pytest.mark.slow
def test_cli_lyft_to_uber_and_uber_split(tmp_path):
    runner = CliRunner()
    lyft = ["train", str(FINETUNE_DATA / "train_dataset.json")]
    index = ["--index-data", str(FINETUNE_DATA / "val_dataset.json")]  # the corpus searched: Uber's chunks
    res = runner.invoke(main, [*lyft, *index, "-o", str(tmp_path / "lyft")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "lyft" / "adapter_config.json").read_text())["training"]
    assert summary["pseudo_queries"] > 1000  # sentences of both 10-Ks
    cross = _evaluate_json(runner, FINETUNE_DATA / "val_dataset.json", tmp_path / "lyft")
    assert cross["num_queries"] == 790
    assert cross["base"]["ndcg@10"] == pytest.approx(0.641, abs=0.002)
    for metric in ("ndcg@10", "mrr@10", "hit@5"):
        assert cross["adapted"][metric] >= cross["base"][metric]
    res = runner.invoke(
        main,
        [
            "train",
            str(FINETUNE_DATA / "val_dataset.json"),
            "--holdout",
            "query",
            "-o",
            str(tmp_path / "uber"),
        ],
    )
    assert res.exit_code == 0, res.output
    same = _evaluate_json(runner, FINETUNE_DATA / "val_dataset.json", tmp_path / "uber")
    assert same["num_queries"] == 395
    for metric in ("ndcg@10", "mrr@10", "hit@5"):
        assert same["adapted"][metric] >= same["base"][metric]


@pytest.mark.slow
def test_cli_covidqa_by_document_not_below_base(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(COVIDQA), "--split-name", "train", "-o", str(tmp_path / "covid")])
    assert res.exit_code == 0, res.output
    report = _evaluate_json(runner, COVIDQA, tmp_path / "covid", "--split-name", "test")
    assert report["num_queries"] == 215
    assert report["base"]["ndcg@10"] == pytest.approx(0.370, abs=0.002)
    assert report["adapted"]["ndcg@10"] >= report["base"]["ndcg@10"]


@pytest.mark.slow
def test_cli_trains_from_a_qdrant_collection(uber, tmp_path):
    from qdrant_client import QdrantClient, models

    storage = tmp_path / "qdrant"
    client = QdrantClient(path=str(storage))
    client.create_collection(
        "uber", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    client.upsert(
        "uber",
        [
            models.PointStruct(
                id=doc_id, vector=vector.tolist(), payload={"text": uber.dataset.documents[doc_id]}
            )
            for doc_id, vector in zip(uber.document_ids, uber.document_vectors, strict=True)
        ],
    )
    client.close()
    rows = [
        {"query": uber.dataset.queries[q], "point_ids": sorted(uber.dataset.qrels[q])} for q in uber.query_ids
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["train", "--qdrant-path", str(storage), "--collection", "uber", "--pairs", str(pairs)]
    res = CliRunner().invoke(main, [*args, "--holdout", "query", "--epochs", "5", "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "points of 'uber'" in res.output and (tmp_path / "a" / "heldout_queries.json").is_file()
    assert "No pseudo-queries" in res.output and "--text-field" in res.output
    res = CliRunner().invoke(
        main,
        [*args, "--text-field", "text", "--epochs", "2", "--validation", "none", "-o", str(tmp_path / "t")],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "t" / "adapter_config.json").read_text())["training"]
    assert (
        f"Adding {summary['pseudo_queries']} pseudo-queries" in res.output and summary["pseudo_queries"] > 300
    )
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"query": "x", "point_id": 123456}) + "\n")
    res = CliRunner().invoke(main, [*args[:5], "--pairs", str(missing), "-o", str(tmp_path / "b")])
    assert res.exit_code != 0 and "123456" in res.output and not (tmp_path / "b").exists()
    res = CliRunner().invoke(main, ["train", "--collection", "uber", "-o", str(tmp_path / "c")])
    assert res.exit_code != 0 and "--pairs" in res.output


@pytest.mark.slow
def test_cli_reindex_behind_an_alias(tmp_path):
    from qdrant_client import QdrantClient, models

    storage = tmp_path / "qdrant"
    client = QdrantClient(path=str(storage))
    client.create_collection(
        "v1", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    texts = [f"passage number {i} about topic {i % 3}" for i in range(25)]
    client.upsert(
        "v1",
        [
            models.PointStruct(id=i, vector=[1.0, 0, 0, float(i)], payload={"text": t})
            for i, t in enumerate(texts)
        ],
    )
    client.close()
    base = ["reindex", "--qdrant-path", str(storage), "--source", "v1", "--target", "v2", "--alias", "docs"]
    model = ["--model", "sentence-transformers/all-MiniLM-L6-v2", "--text-field", "text"]
    res = CliRunner().invoke(main, [*base, *model])
    assert res.exit_code != 0 and "dimension" in res.output.lower()  # 4 -> 384 only when asked
    res = CliRunner().invoke(main, [*base, *model, "--allow-dim-change", "--batch-size", "10"])
    assert res.exit_code == 0, res.output
    client = QdrantClient(path=str(storage))
    assert client.count("v2").count == 25 and client.count("v1").count == 25
    assert [a.collection_name for a in client.get_aliases().aliases if a.alias_name == "docs"] == ["v2"]
    client.close()
    res = CliRunner().invoke(
        main,
        [
            *base,
            "--model",
            "sentence-transformers/all-MiniLM-L6-v2",
            "--text-field",
            "nope",
            "--allow-dim-change",
            "--target",
            "v3",
        ],
    )
    assert res.exit_code != 0 and "nope" in res.output


def test_small_set_gets_one_consistent_account_of_what_was_held_out(tmp_path):
    import re

    data = toy_embedded(n_docs=30, n_queries=40, noise=0.3)
    from queryshift.data import save_llamaindex_json

    save_llamaindex_json(data.dataset, tmp_path / "small.json")
    for side, ids, vectors in (
        ("q", data.query_ids, data.query_vectors),
        ("d", data.document_ids, data.document_vectors),
    ):
        np.save(tmp_path / f"{side}.npy", vectors)
        (tmp_path / f"{side}.ids.txt").write_text("\n".join(ids))
    res = CliRunner().invoke(
        main,
        ["train", str(tmp_path / "small.json"), "-o", str(tmp_path / "a"), "--epochs", "3", "--model", "toy",
         "--query-vectors", str(tmp_path / "q.npy"), "--document-vectors", str(tmp_path / "d.npy")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (account,) = [line for line in res.output.splitlines() if line.startswith("Validation: ")]
    held = int(re.match(r"Validation: (\d+) of the 40 training queries were held out", account).group(1))
    per_split = [int(n) for n in re.findall(r"validation \(\w+ split, (\d+) queries\)", res.output)]
    assert held == sum(per_split) and 0 < held < 40
    if "query split, 0" not in account and len(per_split) == 1:
        # the query split was skipped: the account says how many queries were left, and that is 40 - held
        assert f"of the {40 - held} queries left" in account
    assert "no document has two training questions" not in res.output
