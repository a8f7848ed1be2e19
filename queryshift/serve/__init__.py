"""``queryshift serve``: adapted query embeddings over the OpenAI embeddings API, for any language.

Needs ``pip install queryshift[serve]`` (starlette, uvicorn, prometheus-client). ``import
queryshift`` never imports this package, and importing it imports starlette only when
:func:`create_app` (or another name from ``app.py``) is first used, so the CLI can read
:class:`ServeConfig` without the extra installed.
"""

from typing import Any

from queryshift.serve.batcher import MicroBatcher, ServerBusyError
from queryshift.serve.config import ServeConfig
from queryshift.serve.run import load_service, serve

__all__ = [
    # app.py (needs the serve extra; imported on first use)
    "create_app",
    "parse_request",
    "RequestError",
    # batcher.py
    "MicroBatcher",
    "ServerBusyError",
    # config.py
    "ServeConfig",
    # run.py
    "load_service",
    "serve",
]

_FROM_APP = ("create_app", "parse_request", "RequestError")


def __getattr__(name: str) -> Any:
    if name in _FROM_APP:
        from queryshift.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'queryshift.serve' has no attribute {name!r}")
