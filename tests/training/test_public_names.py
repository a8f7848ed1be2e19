"""queryshift.training's public names load on first access, and reading TrainingConfig needs no torch."""

from __future__ import annotations

import subprocess
import sys

import queryshift.training as training


def test_every_public_name_resolves_from_its_module():
    assert set(training.__all__) == set(training._WHERE)
    for name in training.__all__:
        value = getattr(training, name)
        assert value.__module__ == f"queryshift.training.{training._WHERE[name]}", name


def test_training_config_loads_without_torch():
    code = (
        "import sys\n"
        "from queryshift.training import TrainingConfig\n"
        "TrainingConfig()\n"
        "assert 'torch' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
