from queryshift.data import RetrievalDataset
from queryshift.splits import plan_validation, seen_document_rate, split_by_document, split_by_query


def _ds(n_docs=30, per_doc=3):
    queries, qrels = {}, {}
    for d in range(n_docs):
        for j in range(per_doc):
            q = f"q{d}_{j}"
            queries[q] = q
            qrels[q] = {f"d{d}"} if j else {f"d{d}", f"d{(d + 1) % n_docs}"}
    return RetrievalDataset(queries=queries, documents={f"d{d}": "" for d in range(n_docs)}, qrels=qrels)


def test_query_split_keeps_every_document_in_training():
    ds = _ds()
    split = split_by_query(ds, test_fraction=0.5, seed=1)
    assert set(split.train).isdisjoint(split.test) and len(split.train) + len(split.test) == ds.num_queries
    train_docs = {min(ds.qrels[q]) for q in split.train}
    assert all(min(ds.qrels[q]) in train_docs for q in split.test)
    assert split == split_by_query(ds, test_fraction=0.5, seed=1)  # deterministic


def test_document_split_never_leaks_positives():
    ds = _ds()
    split = split_by_document(ds, test_fraction=0.3, seed=2)
    train_pos = {d for q in split.train for d in ds.qrels[q]}
    test_pos = {d for q in split.test for d in ds.qrels[q]}
    assert train_pos.isdisjoint(test_pos)
    train, test = split.apply(ds)
    assert seen_document_rate(train, test) == 0.0
    q_train, q_test = split_by_query(ds, test_fraction=0.3).apply(ds)
    assert seen_document_rate(q_train, q_test) == 1.0


def _many_positives(n_queries=51, per_query=40, n_docs=200, topics=4, seed=0):
    """Few queries with many relevant documents each, every query's documents within its topic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pools = np.array_split(np.arange(n_docs), topics)
    qrels = {
        f"q{i:02d}": {f"d{d:03d}" for d in rng.choice(pools[i % topics], size=per_query, replace=False)}
        for i in range(n_queries)
    }
    documents = {f"d{d:03d}": "" for d in range(n_docs)}
    return RetrievalDataset(queries={q: q for q in qrels}, documents=documents, qrels=qrels)


def test_query_split_with_many_positives_anchors_each_heldout_query():
    ds = _many_positives()
    split = split_by_query(ds, test_fraction=0.2, seed=0)
    assert len(split.test) == round(0.2 * ds.num_queries)
    train_docs = {d for q in split.train for d in ds.qrels[q]}
    assert all(ds.qrels[q] & train_docs for q in split.test)


def test_document_split_with_many_positives_counts_whole_queries():
    ds = _many_positives()
    topic = {f"d{d:03d}": d // 50 for d in range(200)}
    # Counting qrels, the first topic (13 queries x 40 documents) overshoots the target of 10
    # queries before a query is wholly held out; counting whole queries holds out one topic.
    split = split_by_document(ds, test_fraction=0.2, seed=0, groups=topic)
    test_docs = {d for q in split.test for d in ds.qrels[q]}
    assert test_docs.isdisjoint(d for q in split.train for d in ds.qrels[q])
    assert len(split.test) >= 10 and len(split.train) >= 30


def test_document_split_passes_over_a_group_holding_most_queries():
    queries = {f"q{i}": "" for i in range(20)}
    qrels = {f"q{i}": {"big"} if i < 14 else {f"d{i}"} for i in range(20)}
    ds = RetrievalDataset(queries=queries, documents={d: "" for q in qrels.values() for d in q}, qrels=qrels)
    for seed in range(5):
        split = split_by_document(ds, test_fraction=0.2, seed=seed)
        assert 4 <= len(split.test) <= 6 and "q0" in split.train


def test_plan_validation_says_which_split_was_dropped_and_why():
    one_each = RetrievalDataset(
        queries={f"q{i}": "" for i in range(30)},
        documents={f"d{i}": "" for i in range(30)},
        qrels={f"q{i}": {f"d{i}"} for i in range(30)},
    )
    plan = plan_validation(one_each, seed=0)
    assert set(plan.splits) == {"document"} and set(plan.dropped) == {"query"}
    left = 30 - len(plan.splits["document"])
    assert plan.describe() == (
        f"validation: query split dropped (none of the {left} queries left shares its relevant document with "
        "another); choosing on the document split"
    )
    ds = _many_positives()
    crossing = {f"d{d:03d}": d % 7 for d in range(200)}  # every group cuts across every topic
    topic = {f"d{d:03d}": d // 50 for d in range(200)}
    plan = plan_validation(ds, seed=0, groupings=(crossing, topic))
    assert set(plan.splits) == {"document", "query"}
    assert plan.fallbacks == ["document split from 4 topic clusters (7 topic clusters left an empty side)"]
    plan = plan_validation(ds, seed=0, groupings=(crossing,))
    assert set(plan.splits) == {"query"} and "7 topic clusters left an empty side" in plan.dropped["document"]
    assert set(plan.train).isdisjoint(plan.splits["query"]) and len(plan.train) == 41


def test_plan_validation_without_any_split_keeps_nothing_held_out():
    ds = RetrievalDataset(
        queries={f"q{i}": "" for i in range(4)}, documents={"d": ""}, qrels={f"q{i}": {"d"} for i in range(4)}
    )
    plan = plan_validation(ds)
    assert plan.splits == {} and plan.train == sorted(ds.queries)
    assert plan.describe().endswith("no split left, so the identity is kept")
