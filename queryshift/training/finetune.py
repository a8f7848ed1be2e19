"""The full fine-tune path: retrain the embedding model itself with sentence-transformers.

Use it when re-embedding the corpus is affordable and a query adapter is not enough
(:func:`queryshift.advise.advise` measures both on your data). The recipe:

* training pairs (query, relevant document) from a :class:`~queryshift.data.RetrievalDataset`;
* ``MultipleNegativesRankingLoss`` (every other document in the batch is a negative) with
  batches that never hold the same text twice (``BatchSamplers.NO_DUPLICATES``: with several
  questions per chunk, a duplicate document in the batch would be a false negative), or
  ``CachedMultipleNegativesRankingLoss`` for large batches in little memory;
* optionally ``MatryoshkaLoss`` (vectors that can be truncated) and hard negatives mined with
  the base model (``sentence_transformers.util.mine_hard_negatives``);
* an ``InformationRetrievalEvaluator`` on validation queries carved from the *training* data
  (:mod:`queryshift.splits`), which picks the best checkpoint (``load_best_model_at_end``).
  A test set is never seen here, so it can never influence a choice.

The model directory is written atomically (built in a temporary sibling and renamed) and
holds a ``finetune_report.json`` with base vs fine-tuned validation metrics and the config.
Checkpoints go to a temporary directory that is removed whatever happens.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from queryshift.atomic import atomic_directory, check_output_directory
from queryshift.data import RetrievalDataset
from queryshift.embeddings import (
    SentenceTransformerEncoder,
    embed_dataset,
    encode_with_progress,
    resolve_model_name,
)
from queryshift.errors import MissingDependencyError
from queryshift.evaluation import evaluate_retrieval
from queryshift.splits import split_dataset
from queryshift.training.finetune_config import FinetuneConfig

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

__all__ = ["FinetuneResult", "finetune_model", "next_step", "REPORT_NAME", "load_finetune_report"]

REPORT_NAME = "finetune_report.json"
_REPORT_METRICS = ("ndcg@10", "mrr@10", "hit@1", "hit@5", "hit@10", "recall@10")
_EVALUATOR_NAME = "validation"
_DISTANCES = {"cosine": "cosine", "dot": "dot", "euclidean": "euclid"}


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune_model` returns: where the model is, and the evidence for it.

    Attributes:
        model_path: The sentence-transformers model directory (load it with ``SentenceTransformer(path)``).
        validation: ``{"base": metrics, "finetuned": metrics, "queries": n, "documents": n, "regime": ...}``
            measured on the held-out validation queries with :func:`~queryshift.evaluation.evaluate_retrieval`.
        best_checkpoint: ``{"step", "epoch", "metric", "value"}`` of the checkpoint kept.
        eval_history: One ``{"step", "epoch", "ndcg@10"}`` per validation run during training.
        train_pairs: Number of (query, document) pairs trained on.
        seconds: Wall-clock timings: ``base_eval``, ``train``, ``final_eval``, ``total``.
        device: Where training ran (``"cpu"``, ``"cuda:0"``, ...).
        config: The :class:`FinetuneConfig` used.
    """

    model_path: Path
    validation: dict[str, Any]
    best_checkpoint: dict[str, Any]
    eval_history: list[dict[str, float]]
    train_pairs: int
    seconds: dict[str, float]
    device: str
    config: FinetuneConfig = field(repr=False)

    @property
    def improved(self) -> bool:
        """Whether the fine-tuned model beats the base model on validation nDCG@10."""
        return self.validation["finetuned"]["ndcg@10"] > self.validation["base"]["ndcg@10"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``finetune_report.json`` holds, minus version stamps)."""
        return {
            "model_path": str(self.model_path),
            "validation": self.validation,
            "best_checkpoint": self.best_checkpoint,
            "eval_history": self.eval_history,
            "train_pairs": self.train_pairs,
            "seconds": self.seconds,
            "device": self.device,
            "config": self.config.to_dict(),
        }


def finetune_model(
    train: RetrievalDataset,
    config: FinetuneConfig | None = None,
    *,
    output_dir: str | Path,
    validation: RetrievalDataset | None = None,
    show_progress_bar: bool = False,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers model on ``train`` and save the best checkpoint.

    Args:
        train: Training queries, corpus and qrels; one training pair per (query, relevant document).
        config: The recipe; defaults to :class:`FinetuneConfig()`.
        output_dir: Model directory to write. An existing directory is replaced only once the
            new model is complete.
        validation: Held-out queries that choose the checkpoint. ``None`` carves them out of
            ``train`` with :func:`queryshift.splits.split_dataset` (``config.validation_split``,
            ``config.validation_fraction``, ``config.seed``). Never pass your test set here.
        show_progress_bar: tqdm bars for training and embedding.

    Returns:
        A :class:`FinetuneResult`; the model at ``result.model_path`` is the checkpoint with the
        best validation nDCG@10 (which can still be worse than the base model: check ``result.improved``).

    Raises:
        ValueError: ``config.matryoshka_dims`` larger than the model's dimension, or a model whose
            similarity function queryshift cannot evaluate.
        OutputPathError: ``output_dir`` holds files queryshift did not write (or cannot be
            written); raised before any training.

    Example:
        >>> from queryshift.data import RetrievalDataset
        >>> ds = RetrievalDataset(
        ...     queries={f"q{i}": f"what is item {i}?" for i in range(8)},
        ...     documents={f"d{i}": f"item {i} is a thing number {i}" for i in range(8)},
        ...     qrels={f"q{i}": {f"d{i}"} for i in range(8)})
        >>> val = ds.subset(["q0", "q1"])
        >>> import tempfile
        >>> result = finetune_model(ds.subset([f"q{i}" for i in range(2, 8)]),
        ...                         FinetuneConfig(epochs=1, batch_size=4, max_seq_length=16),
        ...                         output_dir=tempfile.mkdtemp() + "/model", validation=val)
        >>> (result.model_path / "finetune_report.json").is_file()
        True
    """
    config = config or FinetuneConfig()
    started = time.perf_counter()
    # Refuse a directory we may not replace before training, not after minutes of it.
    output_dir = check_output_directory(output_dir)
    if validation is None:
        split = split_dataset(
            train, regime=config.validation_split, test_fraction=config.validation_fraction, seed=config.seed
        )
        train, validation = split.apply(train)
        regime = config.validation_split
        logger.info(
            "validation: %d of %d queries held out (%s split)",
            validation.num_queries,
            train.num_queries + validation.num_queries,
            regime,
        )
    else:
        regime = "given"
    overlap = set(train.queries) & set(validation.queries)
    if overlap:
        raise ValueError(
            f"validation shares {len(overlap)} query ids with train (e.g. {sorted(overlap)[:3]}); "
            "validation queries must be held out of training"
        )

    _check_extras()
    from sentence_transformers import SentenceTransformer

    model_path = resolve_model_name(config.model)
    model = SentenceTransformer(model_path)
    distance = _distance_of(model)
    dim = int(model.get_embedding_dimension())
    if config.matryoshka_dims and max(config.matryoshka_dims) > dim:
        raise ValueError(
            f"matryoshka_dims {list(config.matryoshka_dims)} exceed the model's dim={dim}; use dims <= {dim}"
        )

    tick = time.perf_counter()
    if config.max_seq_length is not None and config.max_seq_length != model.max_seq_length:
        # The base model is scored at the length the tuned one trains and is scored at, so the
        # report compares models, not truncations. (The cache holds vectors at the model's own
        # length, so these are embedded afresh.)
        model.max_seq_length = config.max_seq_length
        base_encoder: Any = _ModelEncoder(model, show_progress_bar=show_progress_bar)
    else:
        base_encoder = SentenceTransformerEncoder(config.model, show_progress_bar=show_progress_bar)
    base_metrics = _validation_metrics(base_encoder, validation, distance)
    base_seconds = time.perf_counter() - tick
    logger.info(
        "base model validation ndcg@10=%.4f (max_seq_length %d)",
        base_metrics["ndcg@10"],
        model.max_seq_length,
    )

    pairs = _training_pairs(train, validation, model, config, show_progress_bar=show_progress_bar)

    tick = time.perf_counter()
    checkpoints = Path(
        tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".checkpoints", dir=_parent(output_dir))
    )
    try:
        trainer = _build_trainer(model, pairs, validation, config, checkpoints, show_progress_bar)
        trainer.train()
        best_model = trainer.model
        history, best = _selection(trainer)
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)
    train_seconds = time.perf_counter() - tick

    tick = time.perf_counter()
    tuned_metrics = _validation_metrics(
        _ModelEncoder(best_model, show_progress_bar=show_progress_bar), validation, distance
    )
    final_seconds = time.perf_counter() - tick
    logger.info(
        "fine-tuned validation ndcg@10=%.4f (base %.4f), best checkpoint at step %s",
        tuned_metrics["ndcg@10"],
        base_metrics["ndcg@10"],
        best["step"],
    )

    result = FinetuneResult(
        model_path=output_dir,
        validation={
            "base": base_metrics,
            "finetuned": tuned_metrics,
            "queries": validation.num_queries,
            "documents": validation.num_documents,
            "regime": regime,
            "max_seq_length": int(best_model.max_seq_length),
        },
        best_checkpoint=best,
        eval_history=history,
        train_pairs=len(pairs),
        seconds={
            "base_eval": round(base_seconds, 3),
            "train": round(train_seconds, 3),
            "final_eval": round(final_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        device=str(best_model.device),
        config=config,
    )
    with atomic_directory(output_dir) as tmp:
        best_model.save(str(tmp))
        (tmp / REPORT_NAME).write_text(json.dumps(_report(result), indent=2, sort_keys=True) + "\n")
    logger.info("saved fine-tuned model to %s", output_dir)
    return result


def next_step(result: FinetuneResult) -> str:
    """What to do with the model: re-index only when it beat the base model on validation.

    A model that lost (or tied) must not be deployed, so no ``reindex`` command is suggested for it.
    """
    if not result.improved:
        v = result.validation
        return (
            f"Saved to {result.model_path}, but the fine-tuned model does not beat the base model on "
            f"validation (ndcg@10 {v['finetuned']['ndcg@10']:.4f} vs {v['base']['ndcg@10']:.4f}): keep the "
            "base model and do not re-index; a query adapter (queryshift train) leaves the collection as it is."
        )
    return (
        f"Saved to {result.model_path}. Re-embed your collection with: queryshift reindex --model "
        f"{result.model_path} --source OLD --target NEW --alias ALIAS ..."
    )


def load_finetune_report(path: str | Path) -> dict[str, Any]:
    """Read the ``finetune_report.json`` of a model directory written by :func:`finetune_model`."""
    report = Path(path) / REPORT_NAME
    if not report.is_file():
        raise FileNotFoundError(f"{path} has no {REPORT_NAME}; was it written by queryshift finetune?")
    return json.loads(report.read_text(encoding="utf-8"))


def _check_extras() -> None:
    """The trainer needs ``datasets`` and ``accelerate``; say how to get them before any work."""
    import importlib.util

    missing = [name for name in ("datasets", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f'fine-tuning needs {", ".join(missing)}: `pip install ".[finetune]"` in a clone of queryshift'
        )


class _ModelEncoder:
    """The :class:`~queryshift.embeddings.Encoder` protocol over an in-memory model, without a cache."""

    def __init__(self, model: SentenceTransformer, *, show_progress_bar: bool = False) -> None:
        self.model = model
        self.model_id = "in-memory"
        self.show_progress_bar = show_progress_bar

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return encode_with_progress(
            self.model, list(texts), side="query", show_progress_bar=self.show_progress_bar
        )  # (n, dim)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return encode_with_progress(
            self.model, list(texts), side="document", show_progress_bar=self.show_progress_bar
        )  # (n, dim)


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def _distance_of(model: SentenceTransformer) -> str:
    name = str(model.similarity_fn_name or "cosine")
    if name not in _DISTANCES:
        raise ValueError(
            f"model similarity {name!r} is not supported for evaluation; expected one of {sorted(_DISTANCES)}"
        )
    return _DISTANCES[name]


def _validation_metrics(encoder: Any, validation: RetrievalDataset, distance: str) -> dict[str, float]:
    # Normalised vectors rank identically under cosine and dot, so only euclid needs raw ones.
    data = embed_dataset(validation, encoder)
    result = evaluate_retrieval(
        data.query_vectors,
        data.query_ids,
        data.document_vectors,
        data.document_ids,
        validation.qrels,
        distance=distance,
        metrics=_REPORT_METRICS,
    )
    return result.metrics


def _training_pairs(
    train: RetrievalDataset,
    validation: RetrievalDataset,
    model: SentenceTransformer,
    config: FinetuneConfig,
    *,
    show_progress_bar: bool,
):
    """A ``datasets.Dataset`` of (anchor, positive[, negative_1..n]) rows, one per relevant pair."""
    from datasets import Dataset

    anchors, positives = [], []
    for qid in sorted(train.queries):
        for did in sorted(train.qrels[qid]):
            anchors.append(train.queries[qid])
            positives.append(train.documents[did])
    pairs = Dataset.from_dict({"anchor": anchors, "positive": positives})
    if config.hard_negatives == 0:
        return pairs

    from sentence_transformers.util import mine_hard_negatives

    # Documents relevant to validation queries stay out of the negative pool, so validation
    # measures queries about documents training never pushed away.
    held_out = {d for docs in validation.qrels.values() for d in docs} - {
        d for docs in train.qrels.values() for d in docs
    }
    corpus = [text for did, text in sorted(train.documents.items()) if did not in held_out]
    mined = mine_hard_negatives(
        pairs,
        model,
        corpus=corpus,
        num_negatives=config.hard_negatives,
        relative_margin=config.hard_negatives_margin,
        sampling_strategy="top",
        output_format="n-tuple",
        verbose=False,
    )
    if len(mined) < len(pairs):
        logger.warning(
            "hard-negative mining kept %d of %d pairs (the others had fewer than %d admissible negatives)",
            len(mined),
            len(pairs),
            config.hard_negatives,
        )
    return mined


def _build_loss(model: SentenceTransformer, config: FinetuneConfig):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    if config.loss == "cached_mnrl":
        loss = CachedMultipleNegativesRankingLoss(
            model, scale=config.scale, mini_batch_size=config.mini_batch_size or 32
        )
    else:
        loss = MultipleNegativesRankingLoss(model, scale=config.scale)
    if config.matryoshka_dims:
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=list(config.matryoshka_dims))
    return loss


def _build_trainer(
    model: SentenceTransformer,
    pairs,
    validation: RetrievalDataset,
    config: FinetuneConfig,
    checkpoints: Path,
    show_progress_bar: bool,
):
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from torch.cuda import is_available as cuda_available
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    evaluator = InformationRetrievalEvaluator(
        queries=validation.queries,
        corpus=validation.documents,
        relevant_docs=validation.qrels,
        name=_EVALUATOR_NAME,
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1, 5, 10],
        precision_recall_at_k=[10],
        map_at_k=[100],
        write_csv=False,
        show_progress_bar=show_progress_bar,
    )
    if config.evaluations_per_epoch == 1:
        schedule: dict[str, Any] = {"eval_strategy": "epoch"}
    else:
        # A float below 1 is a fraction of all training steps.
        schedule = {
            "eval_strategy": "steps",
            "eval_steps": 1.0 / (config.epochs * config.evaluations_per_epoch),
        }
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="best",
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=_best_metric_key(model),
        greater_is_better=True,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not show_progress_bar,
        logging_strategy="no",
        dataloader_pin_memory=cuda_available(),
        **schedule,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        loss=_build_loss(model, config),
        evaluator=evaluator,
    )
    # The trainer prints every log dict to stdout (PrinterCallback without bars, tqdm.write with
    # them), which would corrupt `--json` output; the library never prints, so they go to the log.
    trainer.remove_callback(PrinterCallback)
    if show_progress_bar:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_logging_progress_callback())
    return trainer


def _logging_progress_callback():
    """A ``ProgressCallback`` (tqdm bars on stderr) whose log dicts go to ``logger.info``, not stdout."""
    from transformers.trainer_callback import ProgressCallback

    class LoggingProgressCallback(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                logger.info("trainer: %s", {k: v for k, v in logs.items() if k != "total_flos"})

    return LoggingProgressCallback()


def _best_metric_key(model: SentenceTransformer) -> str:
    return f"eval_{_EVALUATOR_NAME}_{model.similarity_fn_name or 'cosine'}_ndcg@10"


def _selection(trainer) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The validation history and the checkpoint the trainer kept."""
    key = trainer.args.metric_for_best_model
    history = [
        {"step": int(entry["step"]), "epoch": float(entry["epoch"]), "ndcg@10": float(entry[key])}
        for entry in trainer.state.log_history
        if key in entry
    ]
    if not history:
        raise RuntimeError(f"the trainer logged no {key!r}; validation never ran")
    checkpoint = trainer.state.best_model_checkpoint
    step = int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else history[-1]["step"]
    epoch = next((h["epoch"] for h in history if h["step"] == step), math.nan)
    value = trainer.state.best_metric
    return history, {
        "step": step,
        "epoch": epoch,
        "metric": "ndcg@10",
        "value": float(value) if value is not None else math.nan,
    }


def _report(result: FinetuneResult) -> dict[str, Any]:
    import sentence_transformers

    import queryshift

    out = result.to_dict()
    out.pop("model_path")
    out["queryshift_version"] = queryshift.__version__
    out["sentence_transformers_version"] = sentence_transformers.__version__
    return out
