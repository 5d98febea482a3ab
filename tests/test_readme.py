"""The README's blocks run as written.

Blocks marked `<!-- readme-test: NAME -->` (the bundled sample's: clean, read both formats, load
with `datasets`, export) run for real, in order, in a copy of the repository that shares this
`.venv`, so nothing is written outside the test's folder. Blocks marked `<!-- readme-gpu -->`
need a GPU and downloads; their `make` lines are dry-run (`make -n`), so a target or variable the
Makefile does not know fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"<!-- (readme-test: (?P<name>[\w-]+)|readme-gpu) -->\s*```(?P<lang>\w+)\n(?P<code>.*?)```",
    re.S,
)
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "data", "out", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"
)


def _documented(name: str) -> dict:
    """The JSON the README shows after `<!-- readme-check: NAME -->` (keys of one object)."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- readme-check: {name} -->\s*```json\n(.*?)```", text, re.S)
    return json.loads("{" + found.group(1) + "}")


def _blocks(kind: str) -> list[tuple[str, str, str]]:
    text = (REPO / "README.md").read_text()
    return [
        (m["name"] or "gpu", m["lang"], m["code"])
        for m in BLOCK.finditer(text)
        if (m["name"] is None) == (kind == "gpu")
    ]


def _make_lines(code: str) -> list[list[str]]:
    joined = code.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in joined.splitlines() if line.startswith("make ")]


def test_the_gpu_blocks_use_targets_and_variables_the_makefile_knows():
    blocks = _blocks("gpu")
    lines = [args for _, lang, code in blocks if lang == "bash" for args in _make_lines(code)]
    assert len(blocks) >= 5 and len(lines) >= 8
    for args in lines:
        args = [a if "$(" not in a else a.split("=", 1)[0] + "=out/x/run" for a in args]
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, (args, result.stderr)
    for _, lang, code in blocks:
        if lang == "bash":
            assert subprocess.run(["bash", "-n", "-c", code]).returncode == 0, code


def _installed_stamp() -> Path | None:
    stamps = sorted((REPO / ".venv").glob(".installed-*"))
    pyproject = (REPO / "pyproject.toml").stat().st_mtime
    fresh = [s for s in stamps if s.stat().st_mtime >= pyproject]
    return fresh[0] if len(fresh) == 1 else None


@pytest.mark.slow
def test_the_sample_blocks_run_as_written(tmp_path):
    stamp = _installed_stamp()
    if stamp is None:
        pytest.skip("run `make install` first: the copy must find .venv installed and current")
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=COPY_IGNORE)  # copy2 keeps mtimes: make sees it current
    (copy / ".venv").symlink_to(REPO / ".venv")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1"}
    blocks = _blocks("sample")
    names = [name for name, _, _ in blocks]
    assert names == ["sample", "read", "webdataset", "datasets", "export", "repair"]
    read = next(code for name, _, code in blocks if name == "read")
    # The read block runs after each run, so it is tried on both formats.
    for name, lang, code in [*blocks[:3], ("read", "python", read), *blocks[3:]]:
        if lang == "bash":
            # `-o` the install stamp: a pasted `make` must not reinstall the shared .venv here.
            command = [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                f'make() {{ command make -o .venv/{stamp.name} "$@"; }}\n{code}',
            ]
        else:
            command = [str(REPO / ".venv" / "bin" / "python"), "-c", code]
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stdout[-2000:], result.stderr[-3000:])
    runs = sorted((copy / "out" / "sample").glob("2*"))
    assert [r.name.endswith("-export") for r in runs] == [False, False, True, False]
    assert (runs[1] / "clean").glob("*.tar") and (runs[0] / "_SUCCESS").exists()
    exported = runs[2] / "ALLaVA-4V" / "allava_laion" / "ALLaVA-Caption-LAION-4V.json"
    assert exported.exists() and (runs[2] / "ALLaVA-4V" / "allava_laion" / "images").is_dir()
    # The repair run: what the README says it shows.
    summary = json.loads((runs[3] / "report" / "summary.json").read_text())
    shown = _documented("repair-summary")
    assert summary["repair"] == shown["repair"]
    assert summary["counts"]["total"] == shown["counts"]["total"]
