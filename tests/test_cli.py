"""The `rmclean clean` contract: exit codes, output-prefix safety, Beam flags passed through."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from pipelines.cli import main
from tests.helpers import TEST_MODEL


def write_config(tmp_path, root):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "root": str(root),
                "output": str(tmp_path / "unused"),
                "model": TEST_MODEL,
                "threshold": -2.0,
                "max_error_fraction": 0.5,
                "sources": [
                    {"name": "images", "manifests": "images.json"},
                    {
                        "name": "videos",
                        "manifests": "videos.json",
                        "video_archives": "videos_*.tar.gz",
                    },
                    {"name": "text", "manifests": "text.json"},
                ],
                "layout_help": "make the tiny dataset",
            }
        )
    )
    return str(path)


@pytest.mark.slow
def test_finished_run_is_not_overwritten_without_the_flag(tiny_dataset, tmp_path, capsys):
    config = write_config(tmp_path, tiny_dataset)
    out = tmp_path / "run"
    args = ["clean", "--config", config, "--output", str(out), "--direct_num_workers=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"{out}/clean/" in printed and "9 samples -> 3 clean, 3 review, 3 errors" in printed
    assert main(args) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--percentile", "50"]) == 0
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["percentile"] == 50.0 and set(summary["cuts"]) == {"images", "videos", "text"}


def test_a_dead_runs_leftovers_are_cleared_before_a_rerun(tiny_dataset, tmp_path):
    config = write_config(tmp_path, tiny_dataset)
    out = tmp_path / "run"
    (out / "clean").mkdir(parents=True)
    stale = out / "clean" / "part-00007-of-00009.parquet"
    stale.write_bytes(b"half-written")
    assert main(["clean", "--config", config, "--output", str(out)]) == 0
    assert not stale.exists() and (out / "_SUCCESS").exists()


def test_missing_data_exits_2_with_the_layout_help(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "nowhere")
    assert main(["clean", "--config", config, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nowhere/images.json" in err and "make the tiny dataset" in err


def test_too_many_errors_fails_without_success_and_names_the_reasons(
    tiny_dataset, tmp_path, capsys
):
    config = write_config(tmp_path, tiny_dataset)
    out = tmp_path / "run"
    args = ["clean", "--config", config, "--output", str(out), "--max-error-fraction", "0.2"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "3 of 9 samples (33.3%) failed" in err and "fetch/media_missing (1)" in err
    assert not (out / "_SUCCESS").exists()
    assert (out / "report" / "summary.json").exists()


@pytest.mark.slow
def test_a_typo_in_a_flag_is_refused_with_the_nearest_flag(tiny_dataset, tmp_path, capsys):
    config = write_config(tmp_path, tiny_dataset)
    out = tmp_path / "run"
    assert main(["clean", "--config", config, "--output", str(out), "--treshold", "-5"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--treshold" in line and "did you mean --threshold?" in line
    assert not out.exists()  # refused before any work started
    # Beam's own options keep working, in both spellings.
    args = ["clean", "--config", config, "--output", str(out), "--direct_num_workers=2"]
    assert main(args) == 0
    assert main([*args[:-1], "--direct_num_workers", "1", "--overwrite"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "--output", "x", "--seed", "424242"], "424242 is out of range"),
        (["sample", "--output", "x", "--seed", "one"], "'one' is not an integer"),
        (["clean", "--config", "configs/nowhere.yaml"], "not found"),
        (["clean", "--config", "configs/sample.yaml", "--percentile", "150"], "percentile"),
        (["clean", "--config", "configs/sample.yaml", "--format", "csv"], "invalid choice"),
        (["report"], "required"),
        (["sample", "--output", "x", "--verbose-typo"], "unknown arguments"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors leave through exit()
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_without_output_each_run_gets_its_own_prefix_and_one_shared_cache(
    tiny_dataset, tmp_path, capsys
):
    config = write_config(tmp_path, tiny_dataset)
    runs = tmp_path / "unused"  # the config's output folder
    assert main(["clean", "--config", config]) == 0
    time.sleep(1.1)  # prefixes are named to the second
    assert main(["clean", "--config", config]) == 0
    prefixes = sorted(p for p in runs.iterdir() if (p / "_SUCCESS").exists())
    assert len(prefixes) == 2 and all(p.name[:2] == "20" for p in prefixes)
    second = json.loads((prefixes[1] / "report" / "summary.json").read_text())
    assert second["scoring"]["scored"] == 0 and second["scoring"]["from_cache"] == 5
    assert (runs / "score-cache").is_dir()
    printed = capsys.readouterr().out
    assert f"-> {prefixes[0]}" in printed
    # The rerun says the cache spared the model (3 samples are errors, 1 is rule-flagged).
    first, second = [line for line in printed.splitlines() if line.startswith("rmclean: scores:")]
    assert first.startswith("rmclean: scores: 5 scored by the model, 0 from the score cache")
    assert second == (
        f"rmclean: scores: 0 scored by the model, 5 from the score cache ({runs}/score-cache), "
        "1 not scored (flagged by a rule first)"
    )
