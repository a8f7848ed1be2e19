"""Old path of :mod:`queryshift.cli.finetune`, kept so existing imports keep working."""

from queryshift.cli.finetune import *  # noqa: F403
