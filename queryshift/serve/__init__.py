"""``queryshift serve``: adapted query embeddings over the OpenAI embeddings API, for any language.

Needs ``pip install queryshift[serve]`` (starlette, uvicorn, prometheus-client).
``import queryshift`` never imports this package.
"""

from queryshift.serve.app import RequestError, create_app, parse_request
from queryshift.serve.batcher import MicroBatcher, ServerBusyError
from queryshift.serve.config import ServeConfig
from queryshift.serve.run import load_service, serve

__all__ = [
    # app.py
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
