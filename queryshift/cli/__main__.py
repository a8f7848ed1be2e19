"""``python -m queryshift.cli``: the same as the ``queryshift`` command."""

from queryshift.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
