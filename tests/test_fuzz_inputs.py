"""Property: no input can crash a run. Valid records and rows in every input format, broken
at random by Hypothesis, run through the real CLI: it exits 0 (with --max-error-fraction 1),
writes _SUCCESS, conserves counts, keeps every control record intact, prints no traceback.

Seeded (derandomized) so CI sees the same cases; RMCLEAN_FUZZ_EXAMPLES runs more pipeline
cases and RMCLEAN_FUZZ_RANDOM=1 draws new ones.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from pipelines.cli import main
from tests.fuzz_inputs import FuzzCase, fuzz_case, mutated_record, write_case, write_media
from tests.helpers import TEST_MODEL
from transforms.core.record import ErrorRecord, Sample
from transforms.io.llava_manifests import read_manifest

EXAMPLES = int(os.environ.get("RMCLEAN_FUZZ_EXAMPLES", "12"))  # each one a whole run
FAST = settings(
    max_examples=300,
    derandomize=os.environ.get("RMCLEAN_FUZZ_RANDOM") != "1",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# capfd is read (and so emptied) once per example.
PIPELINE = settings(
    FAST,
    max_examples=EXAMPLES,
    suppress_health_check=[*FAST.suppress_health_check, HealthCheck.function_scoped_fixture],
)
FORMATS = {
    "array.json": "llava",
    "lines.jsonl": "llava",
    "own.parquet": "parquet",
    "onevision.parquet": "parquet",
    "shard.tar": "webdataset",
}


@FAST
@given(record=mutated_record())
def test_any_mutated_record_reads_as_one_sample_or_one_error(record):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.json"
        path.write_text(json.dumps([record]))
        (item,) = list(read_manifest(str(path), "src"))
    assert isinstance(item, (Sample, ErrorRecord))
    if isinstance(item, ErrorRecord):
        assert item.stage == "read" and item.reason and item.detail
        json.dumps(item.to_json())  # every error record can be written
    else:
        assert all(isinstance(t["value"], str) for t in item.conversations)


def _config(root: Path, tmp: Path) -> str:
    config = {
        "name": "fuzz",
        "root": str(root),
        "output": str(tmp / "unused"),
        "model": TEST_MODEL,
        "threshold": -2.0,
        "sources": [
            {"name": name.replace(".", "_"), "manifests": name, "format": file_format}
            for name, file_format in FORMATS.items()
        ],
    }
    path = tmp / "fuzz.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _rows(directory: Path) -> list[dict]:
    return [
        row for f in sorted(directory.glob("*.parquet")) for row in pq.read_table(f).to_pylist()
    ]


@pytest.mark.slow
@PIPELINE
@given(case=fuzz_case())
def test_no_mutated_input_crashes_a_run(case: FuzzCase, capfd):
    tmp = Path(tempfile.mkdtemp(prefix="rmclean-fuzz-"))
    try:
        inputs = write_case(tmp / "data", case)
        out = tmp / "out"
        code = main(
            [
                "clean",
                "--config",
                _config(tmp / "data", tmp),
                "--output",
                str(out),
                "--max-error-fraction",
                "1",
            ]
        )
        printed = capfd.readouterr()
        assert code == 0, printed.err[-3000:]
        assert "Traceback" not in printed.out + printed.err
        assert (out / "_SUCCESS").exists()
        summary = json.loads((out / "report" / "summary.json").read_text())
        total = summary["counts"]["total"]
        assert total["input"] == sum(inputs.values())
        clean, review = _rows(out / "clean"), _rows(out / "review")
        errors = [
            json.loads(line)
            for f in sorted((out / "errors").glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ]
        assert (len(clean), len(review), len(errors)) == (
            total["clean"],
            total["review"],
            total["errors"],
        )
        assert total["input"] == len(clean) + len(review) + len(errors)
        kept = {row["id"]: row for row in clean}
        controls = [i for i in kept if i.startswith("control-")]
        # 3 per manifest format, 3 in our Parquet, 1 OneVision row, 1 WebDataset sample.
        assert len(controls) == 3 + 3 + 3 + 1 + 1, sorted(controls)
        for control in controls:
            assert kept[control]["conversations"][-1]["value"].endswith(".")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_files_that_cannot_be_opened_cost_one_error_each(tmp_path, capfd):
    root = tmp_path / "data"
    write_media(root)
    (root / "array.json").write_text('[{"id": "a", "conversations": []}')  # cut short
    (root / "lines.jsonl").write_bytes(b"\x1f\x8b not really gzip")
    (root / "own.parquet").write_bytes(b"PAR1" + b"\0" * 64)  # no footer
    (root / "onevision.parquet").write_bytes(b"")
    (root / "shard.tar").write_bytes(b"this is not a tar file" * 40)
    code = main(
        [
            "clean",
            "--config",
            _config(root, tmp_path),
            "--output",
            str(tmp_path / "out"),
            "--max-error-fraction",
            "1",
        ]
    )
    assert code == 0 and "Traceback" not in capfd.readouterr().err
    errors = [
        json.loads(line)
        for f in sorted((tmp_path / "out" / "errors").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    by_file = {Path(e["origin"]).name.split("[")[0]: e for e in errors}
    assert set(by_file) == set(FORMATS)
    assert all(e["stage"] == "read" and e["detail"] for e in errors)
    assert by_file["own.parquet"]["reason"] == "corrupt_parquet"
    assert by_file["shard.tar"]["reason"] == "corrupt_shard"
