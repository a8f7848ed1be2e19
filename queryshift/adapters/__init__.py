"""Query adapters: numpy-only transforms applied to query vectors at search time.

Importing this package never imports torch.
"""

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.config import AdapterConfig
from queryshift.adapters.io import load_adapter, save_adapter
from queryshift.adapters.linear import LinearAdapter
from queryshift.adapters.residual_mlp import ResidualMLPAdapter
from queryshift.adapters.two_layer import TwoLayerAdapter

__all__ = [
    # base.py
    "QueryAdapter",
    # config.py
    "AdapterConfig",
    # linear.py
    "LinearAdapter",
    # residual_mlp.py
    "ResidualMLPAdapter",
    # two_layer.py
    "TwoLayerAdapter",
    # io.py
    "load_adapter",
    "save_adapter",
]
