"""Export an adapter as a sentence-transformers model: adapted queries, untouched documents.

Most RAG stacks embed queries with sentence-transformers' ``encode_query`` (directly or
through LangChain's and Haystack's HuggingFace embedders), not with queryshift. An exported
model puts the adapter where they already look:

* the base model's modules (transformer, pooling, normalisation) come first, unchanged;
* a sentence-transformers ``Router`` follows, with a ``"query"`` route holding the adapter and an
  empty ``"document"`` route, so ``encode_document`` runs exactly the base model's computation
  and returns bit-for-bit the vectors the index already holds.

Because the shared base modules sit before the ``Router`` rather than inside both routes,
the directory holds the transformer weights once (``Router.save`` would also de-duplicate a
module shared by two routes, by object identity, but this layout leaves the base model's files
where sentence-transformers and the Hub expect them).

Linear and low-rank adapters become a ``Dense`` layer (the low-rank form ``I + U Vᵀ`` is merged
into its ``dim × dim`` matrix); LlamaIndex ``two_layer`` adapters become two ``Dense`` layers
(ReLU, with the residual carried through the hidden layer as ``relu(x) - relu(-x)``). These load
with a plain ``SentenceTransformer(path)``. A ``residual_mlp`` adapter needs the tanh
approximation of GELU, which ``Dense`` cannot restore, so its model ships a 60-line module file
(``modeling_queryshift.py``, torch and sentence-transformers only) and loads with
``SentenceTransformer(path, trust_remote_code=True)``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from queryshift.adapters import LinearAdapter, QueryAdapter, ResidualMLPAdapter, TwoLayerAdapter, load_adapter
from queryshift.atomic import atomic_directory
from queryshift.embeddings import model_name_from_config, resolve_model_name
from queryshift.errors import DimensionMismatchError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

__all__ = ["to_sentence_transformer", "CUSTOM_MODULE_FILE", "needs_trust_remote_code"]

CUSTOM_MODULE_FILE = "modeling_queryshift.py"
"""The module file a ``residual_mlp`` export carries (see :mod:`queryshift.export.modeling_queryshift`)."""

_CUSTOM_CLASS_REF = "modeling_queryshift.QueryshiftResidualMLP"
_HIDDEN_KEY = "queryshift_hidden"


def needs_trust_remote_code(adapter: QueryAdapter) -> bool:
    """Whether the exported model must be loaded with ``trust_remote_code=True`` (residual MLPs only).

    Example:
        >>> from queryshift import LinearAdapter, ResidualMLPAdapter
        >>> mlp = ResidualMLPAdapter.identity(dim=4, hidden_dim=8)
        >>> needs_trust_remote_code(LinearAdapter.identity(dim=4)), needs_trust_remote_code(mlp)
        (False, True)
    """
    return adapter.config.kind == "residual_mlp"


def to_sentence_transformer(
    adapter: QueryAdapter | str | Path,
    base_model: str | Path | SentenceTransformer | None,
    out: str | Path,
    *,
    normalize_input: bool = True,
) -> Path:
    """Write a sentence-transformers model whose ``encode_query`` applies ``adapter``.

    ``encode_document`` (and ``encode`` without a task, sentence-transformers' default route)
    returns the base model's vectors bit-for-bit, so an index embedded with the base model
    stays valid. ``encode_query`` returns ``adapter.apply(base.encode_query(texts,
    normalize_embeddings=normalize_input))`` to within float32 rounding, re-normalised when the
    adapter's config says ``normalize``.

    Args:
        adapter: An adapter, or the directory of a saved one.
        base_model: The model the adapter was trained on: a name, a local path, or a loaded
            ``SentenceTransformer``. ``None`` takes ``adapter.config.base_model``, read as a model
            name, never a path (:func:`~queryshift.embeddings.model_name_from_config`), and
            resolved to the bundled offline copy when that is installed.
        out: Directory to write; an existing one is replaced atomically.
        normalize_input: L2-normalise the base query vector before the adapter. ``True``
            matches how queryshift trains (``SentenceTransformerEncoder(normalize=True)``); a
            base model that already ends in ``Normalize`` gets no second one.

    Returns:
        ``out``. Load it with ``SentenceTransformer(out)``, or with ``trust_remote_code=True``
        when :func:`needs_trust_remote_code` says so.

    Raises:
        DimensionMismatchError: The base model's embeddings do not have ``adapter.dim`` dimensions.
        ValueError: No base model given or recorded, or the base model cannot take a query route
            (it truncates its output or already routes queries and documents).

    Example:
        >>> import tempfile, numpy as np
        >>> from sentence_transformers import SentenceTransformer
        >>> from queryshift import LinearAdapter
        >>> from queryshift.export import to_sentence_transformer
        >>> base = _tiny_model_for_doctest()
        >>> adapter = LinearAdapter.identity(dim=4)
        >>> path = to_sentence_transformer(adapter, base, tempfile.mkdtemp() + "/model")
        >>> model = SentenceTransformer(str(path), device="cpu")
        >>> bool(np.array_equal(model.encode_document(["a b"]), base.encode_document(["a b"])))
        True
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Router

    if isinstance(adapter, (str, Path)):
        adapter = load_adapter(adapter)
    if adapter.config.cross_model:
        raise ValueError(
            f"a cross-model adapter (queries of dim={adapter.input_dim} into an index of dim={adapter.dim}) "
            "cannot be exported as one sentence-transformers model: its documents come from another model. "
            "Serve it with the Qdrant or LlamaIndex wrappers, or `queryshift serve` (queries only)"
        )
    base = _load_base(base_model, adapter)
    base_modules = list(base.children())
    if any(isinstance(module, Router) for module in base_modules):
        raise ValueError(
            "base model already has a Router (separate query and document modules); "
            "export needs a symmetric base model"
        )
    if base.truncate_dim is not None:
        raise ValueError(
            f"base model truncates its embeddings to truncate_dim={base.truncate_dim}; "
            "load it without truncate_dim, then export"
        )
    base_dim = base.get_embedding_dimension()
    if base_dim != adapter.dim:
        trained = f" (it was trained for {adapter.config.base_model!r})" if adapter.config.base_model else ""
        raise DimensionMismatchError(
            f"adapter expects dim={adapter.dim}, but the base model's embeddings have dim={base_dim}{trained}"
        )

    query_modules = []
    if normalize_input and not isinstance(base_modules[-1], Normalize):
        query_modules.append(Normalize())
    query_modules.extend(_adapter_modules(adapter))
    if adapter.config.normalize:
        query_modules.append(Normalize())
    router = Router({"query": query_modules, "document": []}, default_route="document", allow_empty_key=False)
    model = SentenceTransformer(
        modules=[*base_modules, router],
        device=str(base.device),
        prompts=dict(base.prompts),
        default_prompt_name=base.default_prompt_name,
        similarity_fn_name=base.similarity_fn_name,
    )

    out = Path(out)
    with atomic_directory(out) as tmp:
        model.save(str(tmp), create_model_card=False)
        if needs_trust_remote_code(adapter):
            _ship_custom_module(tmp)
        (tmp / "queryshift_adapter.json").write_text(
            json.dumps(adapter.config.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        (tmp / "README.md").write_text(_model_card(adapter), encoding="utf-8")
    logger.info("exported %r on %s to %s", adapter, base_model, out)
    return out


def _load_base(base_model: object, adapter: QueryAdapter) -> SentenceTransformer:
    name = base_model
    if name is None and adapter.config.base_model:  # a recorded name, never a path to load from
        name = model_name_from_config(adapter.config.base_model, source="the adapter's config")
    if name is None:
        raise ValueError(
            "no base model: the adapter config records none, so pass base_model (a name or local path)"
        )
    from sentence_transformers import SentenceTransformer

    if isinstance(name, SentenceTransformer):
        return name
    return SentenceTransformer(resolve_model_name(str(name)), device="cpu")


def _adapter_modules(adapter: QueryAdapter) -> list:
    """The adapter as sentence-transformers modules over ``features["sentence_embedding"]``."""
    import torch
    from sentence_transformers.base.modules import Dense

    def dense(in_dim: int, out_dim: int, weight: np.ndarray, bias: np.ndarray, activation, **names) -> Dense:
        return Dense(
            in_dim,
            out_dim,
            bias=True,
            activation_function=activation,
            init_weight=torch.from_numpy(np.ascontiguousarray(weight, np.float32)),
            init_bias=torch.from_numpy(np.ascontiguousarray(bias, np.float32)),
            **names,
        )

    d = adapter.dim
    if isinstance(adapter, LinearAdapter):
        return [dense(d, d, adapter.matrix(), adapter.bias, torch.nn.Identity())]  # y = x Wᵀ + b
    if isinstance(adapter, TwoLayerAdapter):
        h = adapter.config.hidden_dim
        hidden = {"module_output_name": _HIDDEN_KEY}
        output = {"module_input_name": _HIDDEN_KEY, "module_output_name": "sentence_embedding"}
        if not adapter.residual:
            return [
                dense(d, h, adapter.w1, adapter.b1, torch.nn.ReLU(), **hidden),
                dense(h, d, adapter.w2, adapter.b2, torch.nn.Identity(), **output),
            ]
        # The hidden layer also carries relu(x) and relu(-x), whose difference is x exactly.
        eye = np.eye(d, dtype=np.float32)
        r = adapter.residual_weight[0]
        w1 = np.concatenate([adapter.w1, eye, -eye])  # (h + 2d, d)
        b1 = np.concatenate([adapter.b1, np.zeros(2 * d, np.float32)])  # (h + 2d,)
        w2 = np.concatenate([r * adapter.w2, eye, -eye], axis=1)  # (d, h + 2d)
        return [
            dense(d, h + 2 * d, w1, b1, torch.nn.ReLU(), **hidden),
            dense(h + 2 * d, d, w2, r * adapter.b2, torch.nn.Identity(), **output),
        ]
    if isinstance(adapter, ResidualMLPAdapter):
        from queryshift.export.modeling_queryshift import QueryshiftResidualMLP

        module = QueryshiftResidualMLP(dim=d, hidden_dim=adapter.config.hidden_dim)
        with torch.no_grad():
            module.linear1.weight.copy_(torch.from_numpy(adapter.w1))
            module.linear1.bias.copy_(torch.from_numpy(adapter.b1))
            module.linear2.weight.copy_(torch.from_numpy(adapter.w2))
            module.linear2.bias.copy_(torch.from_numpy(adapter.b2))
        return [module]
    raise TypeError(f"cannot export adapters of type {type(adapter).__name__} (kind={adapter.config.kind!r})")


def _ship_custom_module(model_dir: Path) -> None:
    """Copy the module file beside ``modules.json`` and point the Router at it, not at queryshift."""
    source = Path(__file__).with_name(CUSTOM_MODULE_FILE)
    shutil.copyfile(source, model_dir / CUSTOM_MODULE_FILE)
    (router_config,) = model_dir.glob("*_Router/router_config.json")
    config = json.loads(router_config.read_text(encoding="utf-8"))
    for module_id, class_ref in config["types"].items():
        if class_ref.endswith(".QueryshiftResidualMLP"):
            config["types"][module_id] = _CUSTOM_CLASS_REF
    router_config.write_text(json.dumps(config, indent=4), encoding="utf-8")


def _model_card(adapter: QueryAdapter) -> str:
    trust = ", trust_remote_code=True" if needs_trust_remote_code(adapter) else ""
    return f"""# {adapter.config.base_model or "base model"} + queryshift {adapter.config.kind} query adapter

A sentence-transformers model exported by queryshift. Documents are embedded exactly as by the
base model (`{adapter.config.base_model}`); queries additionally pass through a
{adapter.config.kind} adapter (dim={adapter.dim}) trained to move them toward their documents.
An index built with the base model stays valid: only queries change.

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("path/to/this/folder"{trust})
query_vectors = model.encode_query(["..."])  # adapted
document_vectors = model.encode_document(["..."])  # the base model's vectors
```

`model.encode(...)` without a task takes the document route (sentence-transformers' default
for query/document routers). The adapter's config is in `queryshift_adapter.json`.
"""


def _tiny_model_for_doctest() -> SentenceTransformer:
    """A 4-dimensional static-embedding model over a five-word vocabulary (doctests only)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = torch.from_numpy(np.random.default_rng(0).normal(size=(len(vocab), 4)).astype(np.float32))
    return SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)], device="cpu")
