from queryshift.data import RetrievalDataset
from queryshift.splits import seen_document_rate, split_by_document, split_by_query


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
