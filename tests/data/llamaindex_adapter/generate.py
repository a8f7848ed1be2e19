"""Regenerate the LlamaIndex adapter regression fixture in this folder.

The files are written by LlamaIndex's own adapter classes (``llama-index-embeddings-adapter``
0.6.0, torch 2.13), so the test checks the real format rather than our reading of it. That
package is not a queryshift dependency; to regenerate, from the repository root:

    pip download llama-index-embeddings-adapter==0.6.0 --no-deps -d /tmp/li-adapter
    python -m zipfile -e /tmp/li-adapter/*.whl /tmp/li-adapter/x
    PYTHONPATH=/tmp/li-adapter/x python tests/data/llamaindex_adapter/generate.py

It writes ``linear/`` (``LinearLayer(8, 8, bias=True)``), ``two_layer/``
(``TwoLayerNN(8, 16, 8, add_residual=True)``), each via ``BaseAdapter.save``, and
``expected_io.npz`` with five inputs and LlamaIndex's torch outputs for each adapter.
"""

from pathlib import Path

import numpy as np
import torch
from llama_index.embeddings.adapter.utils import LinearLayer, TwoLayerNN

HERE = Path(__file__).resolve().parent
DIM, HIDDEN = 8, 16


def main() -> None:
    torch.manual_seed(0)
    linear = LinearLayer(DIM, DIM, bias=True)
    with torch.no_grad():  # a "trained" adapter: identity init moved away from the identity
        linear.linear.weight.add_(0.3 * torch.randn(DIM, DIM))
        linear.linear.bias.copy_(0.1 * torch.randn(DIM))
    two_layer = TwoLayerNN(DIM, HIDDEN, DIM, bias=True, add_residual=True)
    with torch.no_grad():
        two_layer.residual_weight.fill_(0.7)
    inputs = torch.nn.functional.normalize(torch.randn(5, DIM), dim=1)  # (5, dim)
    linear.save(str(HERE / "linear"))
    two_layer.save(str(HERE / "two_layer"))
    with torch.no_grad():
        np.savez(
            HERE / "expected_io.npz",
            inputs=inputs.numpy(),
            linear=linear(inputs).numpy(),
            two_layer=two_layer(inputs).numpy(),
        )


if __name__ == "__main__":
    main()
