"""Every file, folder and module the docs and the code's comments name exists.

A doc or comment that names a moved or renamed file sends a newcomer looking for it; nothing
else checks those names. Read: README.md, ARCHITECTURE.md, every Python module's comments and
docstrings, and the `#` comments of the Makefile, CI script, shell scripts, Dockerfiles, YAML,
TOML and env files. Named there:

- a repository path (`pipelines/jobs/clean.py`, `deploy/engines/`, `bench/results/*.json`): it
  exists; `<placeholder>` and `*` parts match any name, and `pipelines/commands/{clean,export}.py`
  names both files;
- a name in a module given by its path (`tests/tiny_models.build_tiny_ixc`): it is defined
  there;
- a source file named by its tail (`shuffle/spill.py`, `decode_pool.py`, `engine.sh`): some file of
  the repository ends so;
- a module (`python -m bench.gpu_util_bench`, `bench.demo_model.train`,
  `tests.helpers:AnswerLengthModel`): it is a module of the repository, and a name after the
  module is defined in it.

Outputs and users' own paths are no part of the repository: `NOT_IN_THE_REPOSITORY` and
`NAMED_AS_EXAMPLES` list them.
"""

from __future__ import annotations

import ast
import io
import itertools
import os
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the repository holds: its files beside what setup, runs and tools make there.
GENERATED = {
    ".git",
    ".venv",
    ".engines",
    "data",
    "out",
    "build",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}
TOP_LEVEL = ("pipelines", "transforms", "models", "synth", "tests", "bench", "deploy", "configs")
TOP_LEVEL += ("docs", ".ci")
PACKAGES = ("pipelines", "transforms", "models", "synth", "tests", "bench", "deploy")
SOURCE_SUFFIXES = (".py", ".sh", ".md", ".yaml", ".yml", ".toml", ".env", ".pom.xml")
# Named in the docs, never in the repository: what runs, installs and users create, and
# examples of users' own files. A path starting with one of these is not checked.
NOT_IN_THE_REPOSITORY = (
    "out/",
    "data/",
    ".venv/",
    ".engines/",
    "s3://",
    "gs://",
    "hf://",
    "memory://",
    "file://",
    "http://",
    "https://",
    "/",
    "~/",
    "$",
)
# Names of files that are not the repository's, each with what it is.
NAMED_AS_EXAMPLES = {
    "read.py": "README: where a reader saves a snippet",
    "configs/alava.yaml": "pipelines/config.py: a mistyped config name, to show the hint",
    "config.yaml": "deploy/engines/engine.sh: Flink's own configuration file, written per run",
}
PATH = re.compile(r"(?<![\w/.:$<>*{}-])[\w.<>*{},$-]*[\w>*}](?:/[\w.<>*{},$-]*)*/?")
MODULE_AFTER_DASH_M = re.compile(rf"python3? -m ((?:{'|'.join(PACKAGES)})\b[\w.]*)")
DOTTED = re.compile(rf"(?<![\w./-])((?:{'|'.join(PACKAGES)})(?:\.\w+)+)(?::(\w+))?")


def _files() -> list[str]:
    """Every file and folder of the repository, folders ending in `/`."""
    found = []
    for folder, folders, files in os.walk(REPO):
        folders[:] = [f for f in folders if f not in GENERATED and not f.endswith(".egg-info")]
        relative = Path(folder).relative_to(REPO).as_posix()
        prefix = "" if relative == "." else relative + "/"
        found += [prefix + f + "/" for f in folders] + [prefix + f for f in files]
    return sorted(found)


FILES = _files()


def _python_notes(path: Path) -> str:
    """A module's comments and docstrings, one after the other."""
    source = path.read_text(encoding="utf-8")
    notes = [
        token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(ast.get_docstring(node, clean=False) or "")
    return "\n".join(notes)


def _hash_comments(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line.split("#", 1)[1] for line in lines if "#" in line)


def _texts() -> dict[str, str]:
    """What each document or source file says: whole documents, comments of code."""
    texts = {
        name: (REPO / name).read_text(encoding="utf-8") for name in ("README.md", "ARCHITECTURE.md")
    }
    for name in FILES:
        path = REPO / name
        if name.endswith(".py"):
            texts[name] = _python_notes(path)
        elif (
            name in ("Makefile", ".ci/run")
            or name.endswith((".sh", ".yaml", ".yml", ".toml", ".env"))
            or path.name.startswith("Dockerfile")
        ):
            texts[name] = _hash_comments(path)
    return texts


def _alternatives(name: str) -> list[str]:
    """`pipelines/{cli,entry}.py` -> `pipelines/cli.py`, `pipelines/entry.py`."""
    parts = re.split(r"(\{[^}/]*\})", name)
    choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    return ["".join(c) for c in itertools.product(*choices)]


def _pattern(name: str) -> str:
    """A named path as a pattern over repository paths: `<x>` and `*` match any name."""
    parts = re.split(r"(<[^>/]*>|\*)", name.rstrip("/"))
    return "".join(r"[^/]*" if p == "*" or p.startswith("<") else re.escape(p) for p in parts)


def path_exists(name: str) -> bool:
    """Whether `name` is a path of the repository (each of its `{a,b}` alternatives is)."""
    for alternative in _alternatives(name):
        pattern = _pattern(alternative)
        if alternative.split("/", 1)[0] not in TOP_LEVEL:
            pattern = r"(?:.*/)?" + pattern  # a tail: in any folder
        if not any(re.fullmatch(pattern + "/?", f) for f in FILES) and not _names_in_a_file(
            alternative
        ):
            return False
    return True


def _names_in_a_file(name: str) -> bool:
    """`tests/tiny_models.build_tiny_ixc`: a name defined in `tests/tiny_models.py`."""
    found = re.fullmatch(r"((?:[\w-]+/)+\w+)\.(\w+)", name)
    source = REPO / f"{found.group(1)}.py" if found else None
    return source is not None and source.is_file() and _defines(source, found.group(2))


def _defines(source: Path, name: str) -> bool:
    """Whether the module `source` defines or imports `name` at its top level."""
    definition = rf"^(?:class |def |async def |)({name})\b|^from .* import .*\b{name}\b"
    return re.search(definition, source.read_text(encoding="utf-8"), re.M) is not None


def named_paths(text: str) -> set[str]:
    """The repository paths `text` names: under a top-level folder, or a source file's name."""
    found = set()
    for match in PATH.finditer(text):
        name = re.sub(r",(?![^{]*\}).*", "", match.group(0)).rstrip(".")  # commas in {} only
        if text[match.end() : match.end() + 3] == "://" or name.startswith(NOT_IN_THE_REPOSITORY):
            continue
        if name in NAMED_AS_EXAMPLES:
            continue
        under_top = "/" in name and name.split("/", 1)[0] in TOP_LEVEL
        if under_top or (name.endswith(SOURCE_SUFFIXES) and not name.startswith(".")):
            found.add(name)
    return found


def module_exists(dotted: str, attribute: str | None) -> bool:
    """Whether `dotted` is a module of the repository (or a module and a name in it), and
    `attribute` (`module:attribute`) a name defined in that module."""
    parts = dotted.split(".")
    for size in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:size])
        source = next(
            (p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None
        )
        if source is None:
            continue
        names = parts[size:] + ([attribute] if attribute else [])
        if len(names) > 1:
            return False  # a name inside a name: say the module and the one name instead
        return all(_defines(source, n) for n in names)
    return False


def named_modules(text: str) -> set[tuple[str, str | None]]:
    modules = {(m.group(1), None) for m in MODULE_AFTER_DASH_M.finditer(text)}
    modules |= {(m.group(1), m.group(2)) for m in DOTTED.finditer(text)}
    return {(d.rstrip("."), a) for d, a in modules}


TEXTS = _texts()


def test_the_docs_and_comments_are_read():
    # The reading itself: a broken pattern would find nothing and pass everything.
    assert {"README.md", "ARCHITECTURE.md", "Makefile", "pipelines/jobs/clean.py"} <= set(TEXTS)
    assert "pipelines/jobs/clean.py" in named_paths(TEXTS["README.md"] + TEXTS["ARCHITECTURE.md"])
    assert ("bench.gpu_util_bench", None) in named_modules(TEXTS["README.md"])


def test_every_named_path_exists():
    missing = {
        named_in: sorted(n for n in named_paths(text) if not path_exists(n))
        for named_in, text in TEXTS.items()
    }
    assert {k: v for k, v in missing.items() if v} == {}, "named, not in the repository"


def test_every_named_module_exists():
    missing = {
        named_in: sorted(
            f"{d}:{a}" if a else d for d, a in named_modules(text) if not module_exists(d, a)
        )
        for named_in, text in TEXTS.items()
    }
    assert {k: v for k, v in missing.items() if v} == {}, "named, not in the repository"


@pytest.mark.parametrize(
    "name, exists",
    [
        ("pipelines/jobs/clean.py", True),
        ("pipelines/clean_old.py", False),
        ("transforms/io/", True),
        ("transforms/nowhere/", False),
        ("shuffle/spill.py", True),
        ("media/spill.py", False),
        ("decode_pool.py", True),
        ("bench/results/*.json", True),
        ("pipelines/commands/{clean,export}.py", True),
        ("pipelines/commands/{clean,exprot}.py", False),
        ("tests/tiny_models.build_tiny_ixc", True),
        ("tests/tiny_models.build_tiny_nothing", False),
    ],
)
def test_a_wrong_path_is_found(name, exists):
    assert path_exists(name) is exists


def test_a_wrong_module_is_found():
    assert module_exists("bench.gpu_util_bench", None)
    assert module_exists("tests.helpers", "AnswerLengthModel")
    assert not module_exists("bench.gpu_util", None)
    assert not module_exists("tests.helpers", "NoSuchModel")
    assert not module_exists("models.base.NoSuchThing", None)
