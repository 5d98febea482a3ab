"""What cannot run here is still checked: the Dockerfiles lint, the Flex Template's parameters
are flags the CLI accepts, and the Dataflow preset parses into the options Dataflow reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
)

from pipelines.cli import parser
from pipelines.runners import beam_args_for

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DOCKERFILES = [DEPLOY / "Dockerfile.gpu-worker", DEPLOY / "flex-template" / "Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_dockerfiles_lint_clean(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(__file__).parents[1] / ".venv/bin/hadolint")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_worker_image_boots_beam_and_installs_the_project():
    text = DOCKERFILES[0].read_text()
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in text
    assert "apache-beam[gcp]==2.77.0" in text and "cuda" in text
    # IXC-2.5-Reward's own code needs the ixc extra; its config asks for flash-attn.
    assert '".[s3,gcs,ixc]"' in text and 'python -c "import flash_attn"' in text


def test_flex_template_parameters_are_cli_flags():
    metadata = json.loads((DEPLOY / "flex-template" / "metadata.json").read_text())
    names = [p["name"] for p in metadata["parameters"] if p["name"] != "percentile"]
    numeric = ("threshold", "max_error_fraction")
    argv = ["clean", *(f"--{n}={'1' if n in numeric else 'x'}" for n in names)]
    args, beam_args = parser().parse_known_args(argv)
    assert beam_args == []  # every parameter is one of our flags, none leaks to Beam
    assert args.config == "x" and args.score_cache == "x" and args.max_error_fraction == 1.0
    assert parser().parse_known_args(["clean", "--percentile=5", "--config=x"])[1] == []


def test_dataflow_preset_parses_into_dataflow_options():
    environ = {
        "DATAFLOW_PROJECT": "my-project",
        "DATAFLOW_REGION": "us-central1",
        "DATAFLOW_TEMP_LOCATION": "gs://bucket/tmp",
        "DATAFLOW_CONTAINER": "us-docker.pkg.dev/my-project/r/rmclean-gpu:1",
        "DATAFLOW_GPU": "nvidia-l4",
    }
    options = PipelineOptions(beam_args_for("dataflow", [], environ))
    cloud = options.view_as(GoogleCloudOptions)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert (cloud.project, cloud.region, cloud.temp_location) == (
        "my-project",
        "us-central1",
        "gs://bucket/tmp",
    )
    assert cloud.dataflow_service_options == [
        "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
    ]
