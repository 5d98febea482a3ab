"""What a user meets after the first run: the latest run found without a glob, derived folders
that never pass for runs, paths with a trailing slash, output folders that are not runs, and
messages that point the right way (a runner, a config or an input that is not there, the
dropped part of an unreviewed run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.run_folders.latest_run import NoFinishedRunError, latest_run, mark_latest
from pipelines.run_folders.run_paths import derived_prefix, normalise_prefix
from tests.s3_server import s3_server
from tests.test_apply_review import _line, _write
from tests.test_cli import write_config

REPO = Path(__file__).resolve().parent.parent


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A config whose output folder holds one finished run, made by `rmclean clean` with its
    default output (a timestamp under the config's output folder)."""
    from tests.conftest import build_tiny_dataset

    base = tmp_path_factory.mktemp("runs")
    config = write_config(base, build_tiny_dataset(base))
    assert main(["clean", "--config", config]) == 0
    return config, base / "unused"


def test_a_finished_run_is_the_latest_and_derived_folders_never_pass_for_runs(runs, capsys):
    config, folder = runs
    (run,) = [p for p in folder.iterdir() if (p / "_SUCCESS").exists()]
    assert (folder / "LATEST").read_text() == f"{run.name}\n"  # relative: the folder can move
    capsys.readouterr()
    assert main(["latest", "--config", config]) == 0
    assert capsys.readouterr().out.strip() == str(run)
    # Derived with a trailing slash on the run, as `make export RUN=<run>/` passes it: beside
    # the run, named <what>-<run>, never inside it.
    assert main(["export", f"{run}/"]) == 0
    decisions = _write(folder.parent / "d.jsonl", [_line(run, "img-bad", "drop")])
    assert main(["apply-review", f"{run}/", "--decisions", decisions]) == 0
    assert (folder / f"export-{run.name}" / "images.json").exists()
    assert (folder / f"reviewed-{run.name}" / "_SUCCESS").exists()
    assert not list(run.glob("*export*")) and not list(run.glob("*reviewed*"))
    assert sorted(folder.glob("2*")) == [run]  # a glob for runs matches the run alone
    assert main(["export", str(folder / f"reviewed-{run.name}"), "--part", "dropped"]) == 0
    assert (folder / f"export-reviewed-{run.name}" / "images.json").exists()
    assert (folder / "LATEST").read_text() == f"{run.name}\n"  # derived work is not a run


def test_a_failed_run_leaves_the_pointer_on_the_last_finished_one(runs, tmp_path, capsys):
    config, folder = runs
    before = (folder / "LATEST").read_text()
    failed = tmp_path / "failed"  # outside the folder: named by its full path if it finished
    assert (
        main(["clean", "--config", config, "--output", str(failed), "--max-error-fraction", "0.2"])
        == 1
    )
    assert (folder / "LATEST").read_text() == before and not (failed / "_SUCCESS").exists()
    finished = tmp_path / "elsewhere"
    assert main(["clean", "--config", config, "--output", f"{finished}/"]) == 0
    assert (folder / "LATEST").read_text() == f"{finished}\n"
    assert latest_run(str(folder)) == str(finished)
    capsys.readouterr()
    shutil.rmtree(finished)  # a pointer at a removed run is refused, not followed
    assert main(["latest", str(folder)]) == 2
    assert "holds no finished run" in _one_line(capsys)
    (folder / "LATEST").write_text(before)


@pytest.mark.slow
def test_the_latest_pointer_works_on_object_storage(tmp_path):
    import fsspec
    import s3fs

    # Instances cached by an earlier test point at that test's (stopped) server.
    s3fs.S3FileSystem.clear_instance_cache()
    with s3_server():
        fs = fsspec.filesystem("s3")
        fs.mkdir("runs-bucket")
        with pytest.raises(NoFinishedRunError, match="no finished run"):
            latest_run("s3://runs-bucket/out/sample")
        fs.pipe("runs-bucket/out/sample/20250101-000000/_SUCCESS", b"")
        mark_latest("s3://runs-bucket/out/sample/", "s3://runs-bucket/out/sample/20250101-000000")
        assert fs.cat("runs-bucket/out/sample/LATEST") == b"20250101-000000\n"
        assert (
            latest_run("s3://runs-bucket/out/sample")
            == "s3://runs-bucket/out/sample/20250101-000000"
        )


def test_paths_are_normalised_and_derived_names_sit_beside_the_run():
    assert normalise_prefix("out/sample/r1/") == "out/sample/r1"
    assert normalise_prefix("./out//sample/r1") == "out/sample/r1"
    assert normalise_prefix("s3://b/out//r1/") == "s3://b/out/r1"
    assert derived_prefix("out/sample/r1/", "export") == "out/sample/export-r1"
    assert derived_prefix("s3://b/out/r1", "reviewed") == "s3://b/out/reviewed-r1"
    assert derived_prefix("/abs/r1", "export") == "/abs/export-r1"
    assert derived_prefix("r1", "export") == "export-r1"


def test_make_reads_the_latest_run_and_leaves_derived_names_to_rmclean():
    def dry(*args):
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return " ".join(result.stdout.replace("\\\n", " ").split())

    default = dry("export")
    assert "rmclean latest --config configs/sample.yaml" in default and "--output" not in default
    slash = dry("export", "RUN=out/sample/r1/")
    assert "run='out/sample/r1/'" in slash and "-export" not in slash
    assert "rmclean latest --config configs/allava.yaml" in dry("report", "DATASET=allava")
    review = dry("apply-review", "DECISIONS=a.jsonl")
    assert "rmclean latest" in review and "--decisions a.jsonl" in review
    assert "--output" not in review  # reviewed-<run>, named by rmclean from the run


def test_clean_refuses_a_folder_that_is_not_a_run(tiny_dataset, tmp_path, capsys):
    config = write_config(tmp_path, tiny_dataset)
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "todo.txt").write_text("keep me")
    for target in (unrelated, tiny_dataset):
        before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
        for extra in ([], ["--overwrite"]):
            assert main(["clean", "--config", config, "--output", str(target), *extra]) == 2
            line = _one_line(capsys)
            assert "not an rmclean run" in line and str(target) in line
        assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["clean", "--config", config, "--output", str(empty)]) == 0


def test_an_unknown_runner_is_one_line_with_the_nearest_and_the_presets(
    tiny_dataset, tmp_path, capsys
):
    config = write_config(tmp_path, tiny_dataset)
    assert main(["clean", "--config", config, "--runner", "sparkk"]) == 2
    line = _one_line(capsys)
    assert "unknown runner 'sparkk' (did you mean spark?)" in line
    assert "presets: local, portable, spark, flink, dataflow" in line and "FnApiRunner" in line
    assert main(["clean", "--config", config, "--runner=no.such.Runner"]) == 2
    assert "unknown runner 'no.such.Runner'" in _one_line(capsys)


def test_hints_point_the_right_way(runs, tmp_path, capsys):
    sample = str(REPO / "configs" / "sample.yaml")
    assert main(["clean", "--config", sample, "--input", str(tmp_path / "nope")]) == 2
    line = _one_line(capsys)
    assert f"--input {tmp_path / 'nope'} is not a folder" in line
    assert "rmclean sample" not in line and "make sample" not in line
    assert main(["clean", "--config", str(REPO / "configs" / "alava.yaml")]) == 2
    line = _one_line(capsys)
    assert f"did you mean {REPO / 'configs' / 'allava.yaml'}?" in line
    assert "allava, llava_video_178k, sample" in line
    _, folder = runs
    run = folder / (folder / "LATEST").read_text().strip()
    assert main(["export", str(run), "--part", "dropped", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "only a reviewed prefix has one" in err and f"apply-review {run}" in err
