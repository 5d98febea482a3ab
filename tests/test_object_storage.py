"""Inputs and outputs on s3:// through a real S3-compatible server on loopback, through the
same code paths users hit (fsspec for manifests, media, archives and reports; Beam's own S3
filesystem for the shard writes)."""

from __future__ import annotations

import json

import fsspec
import pandas as pd
import pytest

from pipelines.clean import run
from tests.helpers import tiny_config
from tests.s3_server import s3_server


@pytest.fixture()
def s3():
    with s3_server() as endpoint:
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir("rmclean-test")
        yield endpoint, fs


@pytest.mark.slow
def test_a_run_reads_and_writes_s3(tiny_dataset, s3):
    endpoint, fs = s3
    fs.put(str(tiny_dataset), "rmclean-test/data", recursive=True)
    config = tiny_config("s3://rmclean-test/data", "s3://rmclean-test/out")
    summary = run(config, [f"--s3_endpoint_url={endpoint}"])
    assert summary["counts"]["total"] == {"input": 9, "clean": 3, "review": 3, "errors": 3}
    assert fs.exists("rmclean-test/out/_SUCCESS")
    assert fs.exists("rmclean-test/out/report/index.html")
    clean_files = fs.glob("rmclean-test/out/clean/*.parquet")
    with fs.open(clean_files[0], "rb") as handle:
        ids = set(pd.read_parquet(handle)["id"])
    for path in clean_files[1:]:
        with fs.open(path, "rb") as handle:
            ids |= set(pd.read_parquet(handle)["id"])
    assert ids == {"img-good", "txt-1", "vid-good"}
    errors = [
        json.loads(line)
        for path in fs.glob("rmclean-test/out/errors/*.jsonl")
        for line in fs.cat(path).decode().splitlines()
    ]
    assert {e["id"] for e in errors} == {"img-missing", "img-broken", "img-nan"}
