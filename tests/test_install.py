"""`make install` prints no warning a user has to decode: every extra the project asks of a
package is one that package provides, and building the editable install warns about nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def _requirements() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    named = list(project["dependencies"])
    named += [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in named]


def test_every_extra_asked_of_a_package_is_one_it_provides():
    """pip warns "s3fs 2026.x does not provide the extra 'boto3'" otherwise, on every install."""
    checked = 0
    for requirement in _requirements():
        if not requirement.extras:
            continue
        try:
            provided = metadata.metadata(requirement.name).get_all("Provides-Extra") or []
        except metadata.PackageNotFoundError:
            continue  # an extra of ours this environment does not install (gcs, ixc)
        provided = {canonicalize_name(e) for e in provided}
        for extra in requirement.extras:
            assert canonicalize_name(extra) in provided, (str(requirement), sorted(provided))
        checked += 1
    assert checked >= 2  # moto[server] and apache-beam[gcp] at least


def test_the_editable_build_warns_about_nothing(tmp_path):
    """What `pip install -e .` runs: setuptools' build_editable, in a copy of the project."""
    pytest.importorskip("setuptools")
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, copy / name)
    for package in ("pipelines", "transforms", "models", "synth"):
        shutil.copytree(
            REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    build = (
        "import warnings, setuptools.build_meta as backend\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    backend.build_editable({str(tmp_path / 'wheel')!r})\n"
        "for w in caught: print(f'WARNING {w.category.__name__}: {w.message}')\n"
    )
    (tmp_path / "wheel").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", build], cwd=copy, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING")]
    assert warnings == [], "\n".join(warnings)
    assert list((tmp_path / "wheel").glob("rmclean-*.whl"))
