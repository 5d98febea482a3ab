"""The README's blocks run as written.

Blocks marked `<!-- readme-test: NAME -->` (the bundled sample's: clean, read, load with
`datasets`, clean as WebDataset, export, the quality scorecard) run for real, in order, twice,
in one copy of the repository that shares this `.venv`: the second walk meets what the first
left behind (runs, exports, the score cache), as a user following the README again does.
Nothing is written outside the test's folder. Blocks marked `<!-- readme-gpu -->` need a GPU
and downloads; their `make` lines are dry-run (`make -n`), so a target or variable the Makefile
does not know fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"<!-- (readme-test: (?P<name>[\w-]+)|readme-gpu) -->\s*```(?P<lang>\w+)\n(?P<code>.*?)```",
    re.S,
)
COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".engines",
    ".git",
    "data",
    "out",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
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


def _sample_blocks() -> list[tuple[str, str, str]]:
    """The sample's blocks for the default runner (the engine block has its own test)."""
    return [block for block in _blocks("sample") if block[0] != "engines"]


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


def _installed_stamp(folder: str = ".venv", target: str = "install") -> Path:
    """The stamp `make <target>` left in `folder`, newer than pyproject.toml: a pasted `make`
    in the copy is told it is current (`-o`), so it never reinstalls the shared environment.

    Without one (never installed, or pyproject.toml changed since), the test skips saying so,
    or fails where RMCLEAN_REQUIRE_README=1 (CI sets it): there the README must be walked.
    """
    stamps = sorted((REPO / folder).glob(".installed-*"))
    pyproject = (REPO / "pyproject.toml").stat().st_mtime
    fresh = [s for s in stamps if s.stat().st_mtime >= pyproject]
    if len(fresh) == 1:
        return fresh[0]
    found = ", ".join(s.name for s in stamps) or "none"
    reason = (
        f"run `make {target}` first: the README's blocks run against {folder}, which needs one "
        f"install stamp newer than pyproject.toml (stamps: {found}; newer: {len(fresh)})"
    )
    if os.environ.get("RMCLEAN_REQUIRE_README") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def test_python_snippets_and_commands_name_the_projects_python():
    """`python` or `hf` on a fresh machine is not the one with the project's packages."""
    text = (REPO / "README.md").read_text()
    for match in re.finditer(r"```python\n", text):
        before = text[max(0, match.start() - 400) : match.start()]
        assert ".venv/bin/python" in before, before[-200:]
    bare = re.findall(r"(?<![/\w.-])(?:python3?|hf|pip) (?:-m |bench/|download )", text)
    assert bare == [], bare


def test_the_readme_quotes_no_test_time_without_its_machine():
    """Test times depend on the machine and its load: `make test` measures and says its own."""
    text = (REPO / "README.md").read_text()
    development = text[text.index("## Development") :]
    quoted = re.findall(r"\d+(?:\.\d+)? ?(?:min|minutes?|s|seconds?)\b(?! on <)", development)
    assert quoted == [], quoted
    assert "cores, load average" in development


def _walk(copy: Path, stamp: Path, env: dict) -> None:
    for name, lang, code in _sample_blocks():
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


@pytest.mark.slow
def test_the_sample_blocks_run_as_written_twice_in_one_copy(tmp_path):
    stamp = _installed_stamp()
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=COPY_IGNORE)  # copy2 keeps mtimes: make sees it current
    (copy / ".venv").symlink_to(REPO / ".venv")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1"}
    names = [name for name, _, _ in _sample_blocks()]
    assert names == ["sample", "read", "datasets", "webdataset", "export", "repair", "quality"]
    runs = copy / "out" / "sample"
    _walk(copy, stamp, env)
    first = sorted(p.name for p in runs.iterdir())
    _walk(copy, stamp, env)  # sees the first walk's runs, export and cache
    made = sorted(p.name for p in runs.iterdir())
    run_names = [n for n in made if (runs / n / "_SUCCESS").exists() and n[0].isdigit()]
    # Each walk: the sample run, the WebDataset run, the repair run.
    assert len(run_names) == 6 and sorted(runs.glob("2*")) == [runs / n for n in run_names]
    assert (runs / "LATEST").read_text().strip() == run_names[-1]  # the second repair run
    exports = [n for n in made if n.startswith("export-")]
    assert exports == [f"export-{run_names[1]}", f"export-{run_names[4]}"]
    assert set(first) < set(made)
    assert list((runs / run_names[4] / "clean").glob("*.tar"))
    assert list((runs / run_names[3] / "clean").glob("*.parquet"))
    exported = runs / exports[1] / "ALLaVA-4V" / "allava_laion" / "ALLaVA-Caption-LAION-4V.json"
    assert exported.exists() and (exported.parent / "images").is_dir()
    # The second walk's runs scored nothing again: every score came from the cache.
    second = json.loads((runs / run_names[3] / "report" / "summary.json").read_text())
    assert second["scoring"]["scored"] == 0 and second["scoring"]["from_cache"] > 300
    # The repair runs show what the README says they show.
    shown = _documented("repair-summary")
    for repaired in (run_names[2], run_names[5]):
        summary = json.loads((runs / repaired / "report" / "summary.json").read_text())
        assert summary["repair"] == shown["repair"]
        assert summary["counts"]["total"] == shown["counts"]["total"]


@pytest.mark.slow
@pytest.mark.engines
@pytest.mark.timeout(2400)  # above its block's own 1800 s limit, so that limit reports first
def test_the_engine_block_runs_as_written(tmp_path):
    """`make clean ... RUNNER=spark` and `RUNNER=flink`, pasted: each starts its engine on
    loopback, runs the sample on it and stops it."""
    from tests.engines import require_engines

    require_engines()
    stamp, engines_stamp = _installed_stamp(), _installed_stamp(".engines", "engines")
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=COPY_IGNORE)
    (copy / ".venv").symlink_to(REPO / ".venv")
    (copy / ".engines").symlink_to(REPO / ".engines")
    [(_, _, code)] = [block for block in _blocks("sample") if block[0] == "engines"]
    command = [
        "bash",
        "-euo",
        "pipefail",
        "-c",
        f'make() {{ command make -o .venv/{stamp.name} -o .engines/{engines_stamp.name} "$@"; }}'
        f"\n{code}",
    ]
    result = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    runs = sorted((copy / "out" / "sample").glob("2*"))
    assert len(runs) == 2 and all((run / "_SUCCESS").exists() for run in runs)
    summaries = [json.loads((run / "report" / "summary.json").read_text()) for run in runs]
    assert [s["runner"] for s in summaries] == ["PortableRunner", "PortableRunner"]
    assert summaries[0]["counts"] == summaries[1]["counts"]
    # Each engine was stopped after its run: nothing listens on the presets' ports.
    for port in (8099, 8199):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_scale_table_quotes_the_benchmark_results():
    """Each row of the README's scale table is a run in bench/results/scale*.json, as written
    there (rounded to the table's precision)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Scale: memory as the dataset grows") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| ([\d,]+) \| (first|rerun, \+1%) \| (.+) \|$", section, re.M)
    assert len(rows) >= 4, rows
    measured = {}
    for path in (REPO / "bench" / "results").glob("scale*.json"):
        for size, runs in json.loads(path.read_text())["sizes"].items():
            for run, figures in runs.items():
                if run in ("first_run", "rerun"):
                    measured[int(size), run] = figures
    for size, run, cells in rows:
        figures = measured[int(size.replace(",", "")), "first_run" if run == "first" else "rerun"]
        scoring = figures["scoring"]
        expected = [
            f"{figures['wall_seconds']:.0f} s",
            f"{figures['samples_per_s']:.0f}",
            f"{figures['peak_rss_mib']:.0f} MiB",
            f"{figures['peak_pss_mib']:.0f} MiB",
            f"{scoring['scored']:,} / {scoring['from_cache']:,}",
        ]
        assert cells.split(" | ") == expected, (size, run)
