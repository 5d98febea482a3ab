"""`RUNNER=` presets: the Beam flags each named runner needs, so users type a word, not a page.

Anything else given to the CLI is passed to Beam as is and wins over a preset, so every flag
Beam documents still works.
"""

from __future__ import annotations

import os

# Beam's DirectRunner silently hands batch jobs to Prism when it can download Prism's binary,
# and then ignores --direct_running_mode; naming the FnApiRunner keeps local runs the same,
# and as measured in bench/, on every machine.
IN_PROCESS = ["--runner=FnApiRunner"]

PRESETS: dict[str, list[str]] = {
    # Several worker processes on this machine; decoding runs in parallel across them.
    "local": [
        "--runner=FnApiRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={max(os.cpu_count() or 1, 1)}",
        # Worker processes log every startup step at INFO otherwise; our progress lines stay.
        "--default_sdk_harness_log_level=WARNING",
        '--sdk_harness_log_level_overrides={"rmclean": "INFO"}',
    ],
    # Beam's portable Fn API path, the one Flink, Spark and Dataflow use, with an in-process
    # job server: portability problems (pickling, coders) show up here first.
    "portable": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
    # A Spark or Flink cluster through Beam's job server (see README, "Runners"); workers run
    # the rmclean container so they have the project and its dependencies.
    "spark": ["--runner=PortableRunner", "--job_endpoint=localhost:8099"],
    "flink": ["--runner=PortableRunner", "--job_endpoint=localhost:8099"],
    # Google Cloud Dataflow: project, region, temp_location and the GPU container come from the
    # environment (README, "Runners"); Runner v2 is needed for custom containers.
    "dataflow": ["--runner=DataflowRunner", "--experiments=use_runner_v2"],
}

DATAFLOW_ENV = {
    "DATAFLOW_PROJECT": "--project",
    "DATAFLOW_REGION": "--region",
    "DATAFLOW_TEMP_LOCATION": "--temp_location",
    "DATAFLOW_CONTAINER": "--sdk_container_image",
    "DATAFLOW_GPU": None,  # e.g. nvidia-l4; becomes --dataflow_service_options
}


def _dataflow_from_env(environ) -> list[str]:
    flags = [
        f"{flag}={environ[name]}"
        for name, flag in DATAFLOW_ENV.items()
        if flag and environ.get(name)
    ]
    if environ.get("DATAFLOW_GPU"):
        flags.append(
            "--dataflow_service_options=worker_accelerator="
            f"type:{environ['DATAFLOW_GPU']};count:1;install-nvidia-driver"
        )
    return flags


def beam_args_for(runner: str | None, user_args: list[str], environ=os.environ) -> list[str]:
    """Preset flags for `runner` followed by the user's own (later flags win in Beam).

    With no runner named anywhere, the job runs in this process.
    """
    if not runner:
        named = any(arg == "--runner" or arg.startswith("--runner=") for arg in user_args)
        return list(user_args) if named else [*IN_PROCESS, *user_args]
    if runner not in PRESETS:
        # Not a preset name: a Beam runner class name such as FlinkRunner, passed through.
        return [f"--runner={runner}", *user_args]
    preset = list(PRESETS[runner])
    if runner == "dataflow":
        preset += _dataflow_from_env(environ)
    return [*preset, *user_args]


# Runners whose workers are this machine (what this machine's GPU decides is what they get).
LOCAL_RUNNERS = {"directrunner", "fnapirunner", "bundlebaseddirectrunner", "switchingdirectrunner"}


def runs_locally(beam_args: list[str]) -> bool:
    """Whether the pipeline's workers run on this machine (local runners, embedded job server)."""
    from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions

    options = PipelineOptions(beam_args)
    runner = options.get_all_options(retain_unknown_options=True).get("runner") or "DirectRunner"
    name = str(runner).rsplit(".", 1)[-1].lower()
    if name == "portablerunner":
        return options.view_as(PortableOptions).job_endpoint == "embed"
    return name in LOCAL_RUNNERS


def local_processes(options: dict) -> int | None:
    """Pipeline worker processes on this machine for a local run; None for remote runners.

    `options` is `PipelineOptions.get_all_options()`. The in-process FnApiRunner (the default)
    is one process; `--direct_running_mode=multi_processing` (the `local` preset) runs
    `--direct_num_workers` of them, multi_threading as many DoFn copies in one.
    """
    runner = options.get("runner") or "FnApiRunner"
    if runner.rsplit(".", 1)[-1] not in ("FnApiRunner", "DirectRunner"):
        return None
    if options.get("direct_running_mode") in (None, "in_memory"):
        return 1
    return max(1, int(options.get("direct_num_workers") or 1))


def shuffles_in_memory(options: dict) -> bool:
    """Whether the runner holds every element of a GroupByKey in this machine's memory: the
    FnApiRunner (the default and `local`) and the PortableRunner's embedded job server
    (`portable`), which runs the FnApiRunner. `options` is `PipelineOptions.get_all_options()`.
    """
    runner = str(options.get("runner") or "FnApiRunner").rsplit(".", 1)[-1].lower()
    if runner == "portablerunner":
        return options.get("job_endpoint") == "embed"
    return runner in LOCAL_RUNNERS
