"""Optional extras stay optional: importing queryshift, its CLI or its exporter loads none of them."""

from __future__ import annotations

import subprocess
import sys


def test_importing_queryshift_or_its_cli_never_imports_langchain_or_the_server_stack():
    code = (
        "import sys, queryshift, queryshift.integrations, queryshift.adapters, queryshift.cli, queryshift.export\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'langchain_qdrant', "
        "'langchain', 'starlette', 'uvicorn', 'prometheus_client', 'openai'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
