"""`rmclean export`: a run's samples back in their dataset's layout, records and media exact."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.config import SourceConfig, load_config
from pipelines.jobs.clean import run
from pipelines.jobs.export import export_run
from tests.helpers import tiny_config

REPO = Path(__file__).resolve().parent.parent


def _origins(run_prefix: Path, part: str) -> list[str]:
    return pq.read_table(run_prefix / "index" / f"{part}.parquet").column("origin").to_pylist()


def _kept_records(origins: list[str], root: Path) -> dict[str, list[dict]]:
    """Input manifest (relative to root) -> its records at the given origins, in file order."""
    wanted: dict[str, list[int]] = {}
    for origin in origins:
        file, _, index = origin[:-1].rpartition("[")
        wanted.setdefault(str(Path(file).relative_to(root)), []).append(int(index))
    return {
        name: [json.loads((root / name).read_text())[i] for i in sorted(indices)]
        for name, indices in wanted.items()
    }


def _archive_members(root: Path) -> dict[str, bytes]:
    members = {}
    for archive in root.rglob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    members[member.name] = tar.extractfile(member).read()
    return members


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The bundled sample, cleaned with configs/sample.yaml and the demo model."""
    from synth.dataset import write_sample_dataset

    base = tmp_path_factory.mktemp("sample")
    root = base / "data"
    write_sample_dataset(root)
    config = load_config(REPO / "configs" / "sample.yaml").with_overrides(
        root=str(root), output=str(base / "run"), score_cache=None
    )
    run(config)
    return root, base / "run", config


@pytest.mark.slow
def test_every_clean_sample_of_the_bundled_sample_exports_as_it_was_read(sample_run, tmp_path):
    root, run_prefix, config = sample_run
    out = tmp_path / "export"
    report = export_run(str(run_prefix), str(out))
    expected = _kept_records(_origins(run_prefix, "clean"), root)
    assert report.samples == sum(len(records) for records in expected.values()) > 200
    assert report.manifests == {name: len(records) for name, records in expected.items()}
    assert len(expected) == 8  # every manifest of the sample kept some samples
    media_roots = {s.name: s.media_root for s in config.sources}
    videos = _archive_members(root)
    checked = 0
    for name, records in expected.items():
        exported = json.loads((out / name).read_text())
        assert exported == records  # same records, same order
        assert [list(r) for r in exported] == [list(r) for r in records]  # same key order
        source = next(s.name for s in config.sources if Path(name).match(s.manifests[0]))
        for record in exported:
            if "image" in record:
                path = Path(media_roots[source]) / record["image"]
                assert (out / path).read_bytes() == (root / path).read_bytes()
                checked += 1
            if "video" in record:
                assert (out / record["video"]).read_bytes() == videos[record["video"]]
                checked += 1
    assert checked > 150
    text = json.loads(
        (out / "ALLaVA-4V/allava_text/Evol-Instruct-GPT4-Turbo-143K.json").read_text()
    )
    assert all(list(record)[0] == "idx" for record in text)  # the text subset's id key is back
    assert report.media_written + report.media_shared == checked and not report.media_skipped


@pytest.mark.slow
def test_the_jsonl_layout_writes_every_manifest_as_json_lines(sample_run, tmp_path):
    root, run_prefix, _ = sample_run
    for part in ("clean", "review"):
        out = tmp_path / part
        args = ["export", str(run_prefix), "--layout", "jsonl", "--part", part]
        assert main([*args, "--output", str(out)]) == 0
        expected = _kept_records(_origins(run_prefix, part), root)
        written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl"))
        assert written == sorted(Path(name).with_suffix(".jsonl").as_posix() for name in expected)
        for name, records in expected.items():
            lines = (out / name).with_suffix(".jsonl").read_text().splitlines()
            assert [json.loads(line) for line in lines] == records


@pytest.mark.slow
def test_record_shapes_survive_every_output_format(tmp_path):
    """Integer ids, `idx`, a one-path list, key order and null media come back as they were."""
    from tests.helpers import conversation, jpeg_bytes, write_json

    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.jpg").write_bytes(jpeg_bytes())
    records = [
        {
            "conversations": conversation("What?", "A red square, clearly."),
            "id": 7,
            "image": ["img/a.jpg"],
            "extra": {"nested": [1, None]},
        },
        {"idx": "t-1", "image": None, "conversations": conversation("Hi?", "Hello there.", "")},
    ]
    write_json(root / "sub" / "m.json", records)
    for file_format in ("parquet", "webdataset"):
        config = tiny_config(root, tmp_path / file_format, format=file_format)
        config = config.with_overrides(sources=(SourceConfig("s", ("sub/*.json",)),))
        summary = run(config)
        assert summary["counts"]["total"]["clean"] == 2, summary["counts"]
        out = tmp_path / f"export-{file_format}"
        export_run(str(tmp_path / file_format), str(out))
        exported = json.loads((out / "sub" / "m.json").read_text())
        assert exported == records and [list(r) for r in exported] == [list(r) for r in records]
        assert (out / "img" / "a.jpg").read_bytes() == (root / "img" / "a.jpg").read_bytes()


@pytest.mark.slow
def test_export_refuses_an_unfinished_run_or_a_used_folder(tiny_dataset, tmp_path, capsys):
    run_prefix = tmp_path / "run"
    run(tiny_config(tiny_dataset, run_prefix))
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert main(["export", str(run_prefix), "--output", str(used)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (used / "keep.txt").read_text() == "mine" and len(list(used.iterdir())) == 1
    (run_prefix / "_SUCCESS").unlink()
    assert main(["export", str(run_prefix), "--output", str(tmp_path / "new")]) == 2
    assert "did not finish" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_spool_merges_many_sorted_runs_back_in_key_order():
    import random

    from transforms.core.sorted_spool import SortedSpool

    keys = [(f"m{m}.json", n, "") for m in range(3) for n in range(400)]
    shuffled = random.Random(0).sample(keys, len(keys))
    spool = SortedSpool(buffer_bytes=2000)  # a few dozen records per run
    for key in shuffled:
        spool.add(key, json.dumps({"at": list(key)}))
    assert len(spool._runs) > 20
    merged = list(spool.sorted_items())
    spool.close()
    assert [key for key, _ in merged] == sorted(keys)
    assert all(json.loads(text)["at"] == list(key) for key, text in merged)


@pytest.mark.parametrize(
    ("origin", "file", "order"),
    [
        ("/d/a/m.json[12]", "/d/a/m.json", (12, "")),
        ("s3://b/d/m.jsonl:7", "s3://b/d/m.jsonl", (7, "")),
        ("/d/part-0.parquet#3", "/d/part-0.parquet", (3, "")),
        ("gs://b/shard.tar:img-1-0a1b", "gs://b/shard.tar", (0, "img-1-0a1b")),
        ("/d/s.tar.gz:dir/key:2", "/d/s.tar.gz", (0, "dir/key:2")),
    ],
)
def test_origins_name_the_file_and_the_position(origin, file, order):
    from transforms.io.origins import parse_origin

    parsed = parse_origin(origin)
    assert (parsed.file, parsed.order) == (file, order)
