"""`rmclean download` / `make download-*`: the command lines each download runs, the space it
needs checked against the free space before anything is fetched, and the unzip step. Nothing is
downloaded here (no network to the Hub): the refusal and the commands are what is tested."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.jobs.downloads import GB, DownloadError, Unzip, check_space, plan_for

REPO = Path(__file__).resolve().parent.parent
HF = str(Path(sys.executable).parent / "hf")


def test_each_download_runs_the_environments_hf_with_the_files_it_names(tmp_path):
    data = tmp_path / "data"
    allava = plan_for("allava-1pct", data)
    fetch, unzip = allava.steps
    assert fetch.command(HF) == [
        HF,
        "download",
        "FreedomIntelligence/ALLaVA-4V",
        "allava_laion/ALLaVA-Caption-LAION-4V.json",
        "allava_laion/ALLaVA-Instruct-LAION-4V.json",
        "allava_vflan/ALLaVA-Caption-VFLAN-4V.json",
        "allava_vflan/ALLaVA-Instruct-VFLAN-4V.json",
        "allava_text/Evol-Instruct-GPT4-Turbo-143K.json",
        "allava_laion/image_chunks/images_0.zip",
        "--repo-type",
        "dataset",
        "--local-dir",
        str(data / "ALLaVA-4V"),
    ]
    assert (unzip.archive, unzip.target, unzip.flat) == (
        data / "ALLaVA-4V/allava_laion/image_chunks/images_0.zip",
        data / "ALLaVA-4V/allava_laion/images",
        True,
    )
    (video,) = plan_for("llava-video", data, bucket="30_60_s_youtube_v0_1", archives=2).steps
    assert video.command(HF)[3:] == [
        "--repo-type",
        "dataset",
        "--include",
        "30_60_s_youtube_v0_1/*.json",
        "--include",
        "30_60_s_youtube_v0_1/30_60_s_youtube_v0_1_videos_1.tar.gz",
        "--include",
        "30_60_s_youtube_v0_1/30_60_s_youtube_v0_1_videos_2.tar.gz",
        "--local-dir",
        str(data / "LLaVA-Video-178K"),
    ]
    whole = plan_for("llava-video", data).steps[0].command(HF)
    assert whole[whole.index("--include") + 1] == "0_30_s_youtube_v0_1/*"
    reward, clip, font = (step.command(HF) for step in plan_for("ixc25", data).steps)
    assert reward == [
        HF,
        "download",
        "internlm/internlm-xcomposer2d5-7b-reward",
        "--local-dir",
        str(data / "models/internlm-xcomposer2d5-7b-reward"),
    ]
    assert clip[2] == "internlm/internlm-xcomposer2d5-clip"
    assert font[2:4] == ["internlm/internlm-xcomposer2d5-7b", "SimHei.ttf"]
    with pytest.raises(DownloadError, match="unknown LLaVA-Video-178K bucket 'nope'"):
        plan_for("llava-video", data, bucket="nope")


def test_the_sizes_are_the_hubs_and_what_is_on_disk_is_not_counted_again(tmp_path):
    data = tmp_path / "data"
    one_pct, everything = plan_for("allava-1pct", data), plan_for("allava", data)
    assert 20 < one_pct.total_gb() < 23  # manifests, one 9.3 GB zip and its unzipped copy
    assert everything.total_gb() > 200  # ten zips, Vision-Flan's 36 GB zip, unzipped copies
    assert 18 < plan_for("ixc25", data).total_gb() < 20
    assert 100 < plan_for("llava-video", data).total_gb() < 105  # 19 archives of ~5.3 GB
    before = one_pct.bytes_needed()
    manifest = data / "ALLaVA-4V/allava_laion/ALLaVA-Caption-LAION-4V.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("[]")
    assert before - one_pct.bytes_needed() == int(1.13 * GB)
    unzip = one_pct.steps[1]
    unzip.target.mkdir(parents=True)
    unzip.done_marker.touch()
    assert before - one_pct.bytes_needed() == int(1.13 * GB) + int(unzip.gb * GB)


def test_a_download_that_does_not_fit_is_refused_before_anything_is_fetched(tmp_path, capsys):
    data = tmp_path / "data"
    free = shutil.disk_usage(tmp_path).free / GB
    # Keep more free than the disk has: whatever the machine, the download cannot fit.
    argv = ["download", "allava-1pct", "--data", str(data), "--keep-free", f"{free + 1000:.0f}"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "allava-1pct needs 21." in line and "nothing was downloaded" in line
    assert not data.exists()
    with pytest.raises(DownloadError, match=r"needs \d+\.\d GB more"):
        check_space(plan_for("allava", data), data, keep_free_gb=free)


def test_a_dry_run_prints_the_fully_qualified_commands(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["download", "ixc25", "--data", str(data), "--dry-run", "--keep-free", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"  {HF} download internlm/internlm-xcomposer2d5-clip --local-dir" in printed
    assert "19.2 GB in all" in printed and not data.exists()


def test_make_has_a_target_per_download():
    for target, command in [
        (["download-allava-1pct"], "rmclean download allava-1pct"),
        (["download-allava"], "rmclean download allava"),
        (["download-ixc25"], "rmclean download ixc25"),
        (
            ["download-llava-video", "BUCKET=1_2_m_youtube_v0_1", "ARCHIVES=1"],
            "rmclean download llava-video --bucket 1_2_m_youtube_v0_1 --archives 1",
        ),
    ]:
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", *target],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0 and f".venv/bin/{command}" in result.stdout, result


def test_unzip_flattens_and_never_writes_outside_its_folder(tmp_path):
    archive = tmp_path / "images_0.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("images/sub/a.jpeg", b"a")
        zipped.writestr("images/b.jpeg", b"b")
    Unzip(archive, tmp_path / "flat", True, 0.0).run(HF)
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == [
        ".unzipped-images_0.zip",
        "a.jpeg",
        "b.jpeg",
    ]
    Unzip(archive, tmp_path / "tree", False, 0.0).run(HF)
    assert (tmp_path / "tree/images/sub/a.jpeg").read_bytes() == b"a"
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as zipped:
        zipped.writestr("../escaped.txt", b"x")
    with pytest.raises(DownloadError, match="leaves"):
        Unzip(hostile, tmp_path / "safe", False, 0.0).run(HF)
    assert not (tmp_path / "escaped.txt").exists()
