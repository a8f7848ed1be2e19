"""The quality benchmark's core runs end to end on a small real setting and writes its table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.quality import main

from .conftest import FINETUNE_DATA  # noqa: TID252


@pytest.mark.slow  # embeds the real Uber data with the real model
def test_quality_benchmark_writes_table_json_and_chart(tmp_path):
    paths = main(
        [
            "--data", str(FINETUNE_DATA / "val_dataset.json"),
            "--regime", "query",
            "--systems", "base,linear",
            "--max-test-queries", "40",
            "--name", "toy",
            "--output-dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert {p.name for p in paths.values()} == {"quality-toy.json", "quality-toy.md", "quality-toy.png"}
    report = json.loads(paths["json"].read_text())
    assert report["data"]["test_queries"] == 40
    assert report["config"]["systems"] == ["base", "linear"]
    assert report["queryshift_version"]
    results = report["results"]
    assert set(results) == {"base", "linear"}
    assert all(r["status"] == "ok" for r in results.values())
    for metric in ("ndcg@10", "mrr@10", "hit@5", "recall@10"):
        assert 0.0 <= results["linear"]["metrics"][metric] <= 1.0
        ci = results["linear"]["difference_ci95"][metric]
        assert ci["low"] <= ci["diff"] <= ci["high"]
        # The difference is exactly linear minus base on the same 40 queries.
        diff = results["linear"]["metrics"][metric] - results["base"]["metrics"][metric]
        assert abs(ci["diff"] - diff) < 1e-3
    table = paths["md"].read_text()
    assert "| base |" in table and "| linear |" in table
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_qdrant_latency_benchmark_times_every_backend_at_every_size(tmp_path):
    from benchmarks.qdrant_latency import main as latency_main

    paths = latency_main(["--points", "300,600", "--queries", "12", "--output-dir", str(tmp_path)])
    report = json.loads(paths["json"].read_text())
    assert report["config"]["points"] == [300, 600]
    backends = report["backends"]
    for size in ("300 points", "600 points"):
        edge = backends[f"qdrant-edge HNSW, {size}"]
        assert edge["segments"] >= 1  # HNSW is built only past qdrant's indexing threshold (~10k vectors)
        local = backends[f"qdrant-client local (:memory:, exact), {size}"]
        for variant in ("plain_raw", "plain_adapted_beforehand", "wrapper"):
            assert local[variant]["median_us"] > 0 and edge[variant]["median_us"] > 0
        assert local["timed_queries"] == 12 - report["config"]["warmup"]
    one_point = backends["qdrant-client local, 1-point collection (wrapper cost alone)"]
    for backend in (one_point, backends["qdrant-edge HNSW, 600 points"]):
        assert backend["adapted_by_hand"]["median_us"] > 0
        assert isinstance(backend["by_hand_minus_beforehand"], float)
        assert isinstance(backend["wrapper_minus"]["adapted_by_hand"], float)
    table = paths["md"].read_text()
    assert "qdrant-edge HNSW, 600 points" in table and "| linear 384×384 |" in table
    assert "adapting by hand (floor), same run µs" in table


def test_paired_timing_warms_each_query_untimed_before_its_variants():
    from benchmarks.qdrant_latency import CONFIG, paired

    calls = []
    out = paired(
        {
            "plain_raw": lambda q: calls.append(("plain", q)),
            "wrapper": lambda q: calls.append(("wrapper", q)),
        },
        CONFIG["warmup"] + 3,
        warm=lambda q: calls.append(("warm", q)),
    )
    timed = calls[2 * CONFIG["warmup"] :]
    assert [c for c in timed if c[0] == "warm"] == [
        ("warm", q) for q in range(CONFIG["warmup"], CONFIG["warmup"] + 3)
    ]
    assert all(timed[i][0] == "warm" for i in range(0, len(timed), 3)) and out["timed_queries"] == 3


def test_speed_scale_child_trains_one_epoch_and_reports_memory():
    from benchmarks.speed import _child_scale

    row = _child_scale(pairs=3_000, dim=32, doc_ratio=0.5, negatives=4, seed=0)
    assert row["documents"] == 1_500 and row["steps"] == -(-3_000 // row["batch_size"])
    assert row["epoch_s"] > 0 and row["loss"] > 0
    assert 0 < row["rss_before_training_mib"] <= row["peak_rss_mib"]


def test_speed_counts_the_recipes_steps_per_run_and_times_them_bare():
    """The recipe rows' floor: the steps each run made, counted as it trained, then done bare."""
    from benchmarks.speed import _bare_side_by_side, _StepCounter
    from queryshift.data import RetrievalDataset
    from queryshift.embeddings import EmbeddedDataset
    from queryshift.training import TrainingConfig, loop, train_adapter

    rng = np.random.default_rng(0)
    docs = rng.normal(size=(20, 8)).astype(np.float32)
    ids, qids = [f"d{i:02d}" for i in range(20)], [f"q{i:02d}" for i in range(40)]
    ds = RetrievalDataset(
        dict.fromkeys(qids, ""), dict.fromkeys(ids, ""), {q: {ids[i % 20]} for i, q in enumerate(qids)}
    )
    queries = docs[[i % 20 for i in range(40)]] + rng.normal(scale=0.5, size=(40, 8)).astype(np.float32)
    data = EmbeddedDataset(ds, qids, queries, ids, docs, "toy")
    step = loop.linear_loss_and_gradients
    with _StepCounter() as counter:
        train_adapter(data, TrainingConfig(epochs=3, batch_size=16, validation="none", hard_negatives=2))
    assert loop.linear_loss_and_gradients is step  # unwrapped again
    ((steps, candidates),) = counter.shapes()
    assert steps == 3 * -(-40 // 16) and 2 <= candidates <= 20
    assert _bare_side_by_side([(steps, candidates), (4, candidates)], 8) > 0


@pytest.mark.slow  # embeds the real Uber data with the real model
def test_quality_merge_keeps_earlier_rows_of_the_same_setting_only(tmp_path):
    common = ["--data", str(FINETUNE_DATA / "val_dataset.json"), "--regime", "query", "--name", "toy",
              "--output-dir", str(tmp_path)]  # fmt: skip
    main([*common, "--systems", "base,linear", "--max-test-queries", "30"])
    paths = main([*common, "--systems", "base,low_rank", "--max-test-queries", "30", "--merge"])
    report = json.loads(paths["json"].read_text())
    assert list(report["results"]) == ["base", "linear", "low_rank"]
    assert "--systems base,linear " in report["results"]["linear"]["command"]
    assert "--merge" in report["results"]["low_rank"]["command"]
    assert "| linear |" in paths["md"].read_text() and "| low_rank |" in paths["md"].read_text()
    with pytest.raises(ValueError, match="another setting"):
        main([*common, "--systems", "base", "--max-test-queries", "20", "--merge"])


def test_cross_model_setting_splits_questions_about_the_sampled_chunks():
    from benchmarks.cross_model import build_setting

    labelled, test = build_setting(FINETUNE_DATA / "val_dataset.json", docs=30, seed=0)
    smaller, _ = build_setting(FINETUNE_DATA / "val_dataset.json", docs=10, seed=0)
    assert test.num_documents == 30 and set(smaller.documents) <= set(test.documents)  # a prefix: cache reuse
    assert not set(labelled.queries) & set(test.queries)
    for part in (labelled, test):
        assert all(part.qrels[q] <= set(test.documents) for q in part.queries)
    labelled_docs = [min(labelled.qrels[q]) for q in labelled.queries]
    assert len(labelled_docs) == len(set(labelled_docs))  # one labelled question per chunk


def test_cross_model_covidqa_subset_keeps_the_test_papers_and_a_seeded_prefix_of_the_others():
    from benchmarks.cross_model import covidqa_subset
    from queryshift.data import RetrievalDataset

    documents = {f"p{p}_{c}": "text" for p in range(6) for c in range(3)}
    test = RetrievalDataset({"q": "?"}, documents, {"q": {"p4_1"}})
    chosen = covidqa_subset(documents, test, 7, seed=0)
    assert len(chosen) == 7 and {"p4_0", "p4_1", "p4_2"} <= set(chosen)
    assert set(covidqa_subset(documents, test, 5, seed=0)) < set(chosen)  # a prefix: cache reuse
    assert covidqa_subset(documents, test, None, seed=0) == sorted(documents)
    with pytest.raises(ValueError, match="at least the 3 chunks of its test papers"):
        covidqa_subset(documents, test, 2, seed=0)


def test_cross_model_lyft_uber_indexes_all_uber_chunks_and_labels_with_lyft():
    from benchmarks.cross_model import load_setting, output_paths

    setting = load_setting("lyft-uber", docs=None, seed=0, data=FINETUNE_DATA)
    index, labelled = setting.index, setting.labelled
    assert (index.num_documents, index.num_queries) == (395, 790)
    assert (labelled.num_documents, labelled.num_queries) == (334, 668)
    assert not set(labelled.documents) & set(index.documents)
    with pytest.raises(ValueError, match="lyft-uber always indexes all Uber chunks"):
        load_setting("lyft-uber", docs=100, seed=0, data=FINETUNE_DATA)
    with pytest.raises(ValueError, match="--setting must be one of"):
        load_setting("uber", docs=None, seed=0)
    assert output_paths(FINETUNE_DATA, "covidqa")["md"].name == "cross_model-covidqa.md"
    assert output_paths(FINETUNE_DATA, "covidqa", 467)["md"].name == "cross_model-covidqa-docs467.md"
    assert output_paths(FINETUNE_DATA, "covidqa-docs467")["json"].name == "cross_model-covidqa-docs467.json"
    assert output_paths(FINETUNE_DATA, "uber-sample")["json"].name == "cross_model.json"


def test_quality_setting_specs_name_regime_and_test_data():
    import pytest

    from benchmarks.quality import parse_setting

    assert parse_setting("../d/covidqa", regime=None, test_data=None) == {
        "name": "covidqa-document", "data": "../d/covidqa", "regime": "document", "test_data": None,
    }  # fmt: skip
    spec = parse_setting("uber=query:../d/val.json", regime="document", test_data=None)
    assert (spec["name"], spec["regime"], spec["data"]) == ("uber", "query", "../d/val.json")
    cross = parse_setting("cross:a.json,b.json", regime=None, test_data=None)
    assert (cross["name"], cross["test_data"]) == ("a-cross", "b.json")
    with pytest.raises(ValueError, match="cross regime needs test data"):
        parse_setting("cross:a.json", regime=None, test_data=None)
    with pytest.raises(ValueError, match="only applies to the cross regime"):
        parse_setting("query:a.json,b.json", regime=None, test_data=None)


def test_quality_config_overrides_are_training_config_fields_checked_before_any_work():
    from benchmarks.quality import parse_overrides

    assert parse_overrides(["pseudo_max_queries=4000", "adapter=low_rank", "alphas=(0.5,)"]) == {
        "pseudo_max_queries": 4000, "adapter": "low_rank", "alphas": (0.5,),
    }  # fmt: skip
    for bad, message in (
        ("pseudo_max_queries", "expected FIELD=VALUE"),
        ("seed=3", "other than seed"),
        ("no_such_field=1", "TrainingConfig field"),
        ("pseudo_max_queries=0", "positive integer"),
        ("alphas=(0.5,", "must be a Python literal"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_overrides([bad])


@pytest.mark.slow
def test_quality_benchmark_runs_several_settings_into_one_summary(tmp_path):
    uber = str(FINETUNE_DATA / "val_dataset.json")
    paths = main(
        ["--data", f"by-query=query:{uber}", f"by-document=document:{uber}", "--systems", "base,linear",
         "--seeds", "0,1", "--max-test-queries", "30", "--summary", "both", "--output-dir", str(tmp_path)]
    )  # fmt: skip
    assert paths["md"].name == "quality-both.md" and paths["by-query:json"].name == "quality-by-query.json"
    summary = json.loads(paths["json"].read_text())
    assert [row["name"] for row in summary["settings"]] == ["by-query", "by-document"]
    for row in summary["settings"]:
        linear = row["systems"]["linear"]
        assert [run["seed"] for run in linear["seeds"]] == [0, 1]
        assert linear["seeds"][0]["ndcg@10"] == linear["ndcg@10"]
        per_setting = json.loads(paths[f"{row['name']}:json"].read_text())
        assert per_setting["results"]["base"]["metrics"]["ndcg@10"] == row["base"]
    table = paths["md"].read_text()
    assert "| by-query | " in table and "| by-document | " in table and "mean over seeds" in table
    assert all(row["systems"]["linear"]["seed_spread"]["seeds"] == [0, 1] for row in summary["settings"])


def _fake_report(name: str, base: list[float], seeds: dict[int, list[float]]) -> dict:
    """A quality report as `main` writes it, with per-query nDCG@10 for base and each seed."""
    mean = lambda xs: round(sum(xs) / len(xs), 4)  # noqa: E731
    runs = [
        {"seed": s, "ndcg@10": mean(q), "difference_ci95": {"diff": mean(q) - mean(base), "low": -1.0, "high": 1.0},
         "identity_chosen": q == base, "chosen_epoch": 1, "chosen_alpha": 1.0, "train_seconds": 0.1,
         "per_query_ndcg@10": q}
        for s, q in seeds.items()
    ]  # fmt: skip
    return {
        "name": name, "how": "toy split", "command": f"python -m benchmarks.quality --data {name}",
        "config": {"seed": next(iter(seeds))},
        "data": {"train_queries": 10, "test_queries": len(base), "test_seen_document_rate": 0.5},
        "machine": {"load_average_1_5_15": [0.1, 0.1, 0.1]},
        "results": {
            "base": {"status": "ok", "metrics": {"ndcg@10": mean(base)}, "per_query_ndcg@10": base},
            "linear": {"status": "ok", "metrics": {"ndcg@10": runs[0]["ndcg@10"]},
                       "difference_ci95": {"ndcg@10": runs[0]["difference_ci95"]}, "seeds": runs},
            "finetune": {"status": "not run", "reason": "time"},
        },
    }  # fmt: skip


def test_quality_summary_from_written_reports_gives_seed_spread_and_below_base_seeds(tmp_path):
    import numpy as np

    from queryshift.evaluation import bootstrap_difference

    base = [0.2, 0.4, 0.6, 0.8]
    up = _fake_report("up", base, {0: [0.3, 0.5, 0.6, 0.8], 1: [0.2, 0.6, 0.7, 0.8]})
    mixed = _fake_report("mixed", base, {0: [0.1, 0.4, 0.6, 0.8], 1: base})
    files = []
    for report in (up, mixed):
        files.append(tmp_path / f"quality-{report['name']}.json")
        files[-1].write_text(json.dumps(report))
    paths = main(["--from-results", *map(str, files), "--summary", "all", "--output-dir", str(tmp_path)])
    summary = json.loads(paths["json"].read_text())
    rows = {row["name"]: row for row in summary["settings"]}
    spread = rows["up"]["systems"]["linear"]["seed_spread"]
    assert (spread["min"], spread["max"], spread["below_base"]) == (0.55, 0.575, [])
    expected = bootstrap_difference(np.array(base), np.array([0.25, 0.55, 0.65, 0.8]), seed=0)
    assert spread["mean_difference_ci95"]["diff"] == pytest.approx(expected[0])
    assert rows["mixed"]["systems"]["linear"]["seed_spread"]["below_base"] == [0]
    assert rows["mixed"]["systems"]["linear"]["seed_spread"]["identity_kept"] == [1]
    assert "per_query_ndcg@10" not in rows["up"]["systems"]["linear"]["seeds"][0]  # kept in the reports only
    table = paths["md"].read_text()
    assert "| up | 10 / 4 | 50 % | 0.5000 |" in table and "Seeds below base: mixed seed 0." in table
    assert "finetune not run" in table and "`python -m benchmarks.quality --data up`" in table
    with pytest.raises(SystemExit):
        main(["--from-results", str(files[0]), "--data", "x"])


def test_quality_merge_adds_seeds_run_apart_and_keeps_the_first_seeds_row(tmp_path):
    from benchmarks.quality import merge_reports

    base = [0.2, 0.4, 0.6, 0.8]
    first = _fake_report("toy", base, {0: [0.3, 0.5, 0.6, 0.8]})
    later = {**_fake_report("toy", base, {1: [0.2, 0.6, 0.7, 0.8], 2: base}), "total_s": 1.0}
    for report, seed in ((first, 0), (later, 0)):  # later: --seed 0 --seeds 1,2 (same pseudo-queries)
        report["config"]["seed"] = seed
        report["results"]["linear"]["config"] = {"epochs": 20, "alphas": [0.5, 1.0], "seed": seed}
    later["results"]["linear"]["config"]["alphas"] = (0.5, 1.0)  # in memory a tuple, in the JSON a list
    path = tmp_path / "quality-toy.json"
    path.write_text(json.dumps(first))
    merged = merge_reports(path, later)
    linear = merged["results"]["linear"]
    assert [r["seed"] for r in linear["seeds"]] == [0, 1, 2]
    assert linear["metrics"] == first["results"]["linear"]["metrics"]  # the row is still seed 0's
    # Another recipe (or other pseudo-queries) is not the same row: the new run replaces it.
    later["results"]["linear"]["config"]["epochs"] = 5
    assert [r["seed"] for r in merge_reports(path, later)["results"]["linear"]["seeds"]] == [1, 2]
    later["results"]["linear"]["config"]["epochs"] = 20
    later["config"]["seed"] = 1
    assert [r["seed"] for r in merge_reports(path, later)["results"]["linear"]["seeds"]] == [1, 2]
    # Seeds that each drew their own pseudo-queries do not join seeds that shared one draw.
    later["config"]["seed"] = 0
    later["results"]["linear"]["pseudo_per_seed"] = True
    assert [r["seed"] for r in merge_reports(path, later)["results"]["linear"]["seeds"]] == [1, 2]


@pytest.mark.slow  # embeds the real Uber data with the real model
def test_quality_pseudo_per_seed_draws_each_seeds_sentences(tmp_path, monkeypatch):
    import dataclasses

    import benchmarks.quality as quality

    drawn, real = [], quality.pseudo_queries_for

    def few_documents(encoder, corpora, config):  # the sampler as it is, on 12 documents
        drawn.append(config.seed)
        return real(encoder, corpora, dataclasses.replace(config, pseudo_max_documents=12))

    monkeypatch.setattr(quality, "pseudo_queries_for", few_documents)
    common = ["--data", str(FINETUNE_DATA / "val_dataset.json"), "--regime", "query", "--systems", "base,linear",
              "--seeds", "3,4", "--max-test-queries", "20", "--config", "epochs=2", "--output-dir", str(tmp_path)]  # fmt: skip
    main([*common, "--name", "shared"])
    assert drawn == [3]  # every seed trains on the sentences of --seed (the first of --seeds)
    drawn.clear()
    paths = main([*common, "--name", "each", "--pseudo-per-seed"])
    assert drawn == [3, 4]
    report = json.loads(paths["json"].read_text())
    assert report["config"]["pseudo_per_seed"] and report["results"]["linear"]["pseudo_per_seed"]
    assert [r["seed"] for r in report["results"]["linear"]["seeds"]] == [3, 4]
    assert "each seed its own pseudo-queries" in paths["md"].read_text()
