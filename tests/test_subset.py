"""`rmclean subset`: a consistent slice of a partly downloaded dataset, every medium present."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.config import load_config
from pipelines.jobs.subset import make_subset

REPO = Path(__file__).resolve().parent.parent
LAION = "ALLaVA-4V/allava_laion"


@pytest.fixture(scope="module")
def partly_downloaded(tmp_path_factory):
    """The bundled sample with half its LAION images and all VFLAN images not downloaded."""
    from synth.dataset import write_sample_dataset

    root = tmp_path_factory.mktemp("download") / "data"
    write_sample_dataset(root)
    images = sorted((root / LAION / "images").iterdir())
    for image in images[::2]:
        image.unlink()
    for image in (root / "ALLaVA-4V/allava_vflan/images").rglob("*.*"):
        image.unlink()
    return root


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def test_a_subset_keeps_whole_records_whose_media_are_here(partly_downloaded, tmp_path):
    root = partly_downloaded
    config = load_config(REPO / "configs" / "sample.yaml").with_overrides(root=str(root))
    out = tmp_path / "subset"
    report = make_subset(config, 0.25, str(out))
    for name, counts in report.manifests.items():
        original, kept = _records(root / name), _records(out / name)
        assert counts.records == len(original) and counts.kept == len(kept)
        assert kept == [r for r in original if r in kept]  # whole records, in file order
        if "allava_vflan" in name:
            assert kept == [] and counts.media_here == 0  # its images were not downloaded
        elif counts.media_here >= 12:
            assert 0.1 * len(original) <= len(kept) <= 0.45 * len(original), name
    for name in report.manifests:
        media_root = name.split("/", 1)[0]  # ALLaVA-4V or LLaVA-Instruct-665K
        for record in _records(out / name):
            if "image" in record:
                copy = out / media_root / record["image"]
                assert copy.read_bytes() == (root / media_root / record["image"]).read_bytes()
    # Caption and instruct records share images: the subset keeps the same images for both.
    images = {
        kind: {r["image"] for r in _records(out / f"{LAION}/ALLaVA-{kind}-LAION-4V.json")}
        for kind in ("Caption", "Instruct")
    }
    assert images["Caption"] == images["Instruct"] and images["Caption"]
    # Videos: a new archive holds exactly the kept videos, so the same config reads it.
    kept_videos = {
        r["video"]
        for name in report.manifests
        if "LLaVA-Video" in name
        for r in _records(out / name)
    }
    (archive,) = (out / "LLaVA-Video-178K").rglob("*.tar.gz")
    with tarfile.open(archive) as tar:
        assert {m.name for m in tar.getmembers()} == kept_videos and kept_videos


@pytest.mark.slow
def test_the_subset_runs_with_the_same_config_and_no_missing_media(partly_downloaded, tmp_path):
    from pipelines.jobs.clean import run

    out = tmp_path / "subset"
    args = ["subset", "--config", str(REPO / "configs" / "sample.yaml")]
    args += ["--input", str(partly_downloaded), "--fraction", "0.1", "--output", str(out)]
    assert main(args) == 0
    config = load_config(REPO / "configs" / "sample.yaml").with_overrides(
        root=str(out), output=str(tmp_path / "run"), score_cache=None
    )
    summary = run(config)
    total = summary["counts"]["total"]
    assert total["errors"] == 0 and 20 <= total["input"] <= 60
    assert main(args) == 2  # the folder now holds the subset: never written over
