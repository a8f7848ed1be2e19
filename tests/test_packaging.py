"""The package metadata a build tool reads: an SPDX license string and a build backend that understands it."""

from __future__ import annotations

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement

from .conftest import REPO  # noqa: TID252

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_that_setuptools_reads():
    license = PYPROJECT["project"]["license"]
    assert isinstance(license, str), "the {text = ...} table is deprecated: use an SPDX string (PEP 639)"
    assert canonicalize_license_expression(license) == license == "Apache-2.0"
    (setuptools,) = [
        Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")
    ]
    # setuptools reads `project.license` as a string from 77.0 on; older ones fail the build.
    assert not setuptools.specifier.contains("76.9") and setuptools.specifier.contains("77.0")
