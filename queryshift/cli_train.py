"""Old path of :mod:`queryshift.cli.train`, kept so existing imports keep working."""

from queryshift.cli.train import *  # noqa: F403
