"""`RUNNER=` presets: the Beam flags each named runner needs, so users type a word, not a page.

Anything else given to the CLI is passed to Beam as is and wins over a preset, so every flag
Beam documents still works.
"""

from __future__ import annotations

import difflib
import importlib
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
    # A Spark or Flink cluster through Beam's job server (see README, "Runners"); the ports
    # are those deploy/engines/engine.sh gives the loopback engines, one each so both can be
    # up at once. Elsewhere --job_endpoint names the cluster's job server.
    "spark": ["--runner=PortableRunner", "--job_endpoint=localhost:8099"],
    "flink": ["--runner=PortableRunner", "--job_endpoint=localhost:8199"],
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


class UnknownRunnerError(ValueError):
    """A runner name that is neither a preset nor a runner Beam can build: one line, exit 2."""


def check_runner(beam_args: list[str]) -> None:
    """Refuse the run's runner (the last `--runner` in `beam_args`) before Beam starts, if
    Beam could not build it; say the nearest preset or Beam runner name."""
    from apache_beam.options.pipeline_options import StandardOptions

    named = [
        arg.split("=", 1)[1] if arg.startswith("--runner=") else beam_args[i + 1]
        for i, arg in enumerate(beam_args)
        if arg.startswith("--runner=") or (arg == "--runner" and i + 1 < len(beam_args))
    ]
    if not named:
        return
    runner = named[-1]
    known = {name.lower(): name for name in StandardOptions.KNOWN_RUNNER_NAMES}
    # What Beam's create_runner accepts: a known name in any case, with or without "Runner",
    # or a module.Class path.
    if runner.lower() in known or f"{runner.lower()}runner" in known:
        return
    if "." in runner and _importable_class(runner):
        return
    candidates = {**{name: name for name in PRESETS}, **known}
    close = difflib.get_close_matches(runner.lower(), list(candidates), n=1, cutoff=0.6)
    hint = f" (did you mean {candidates[close[0]]}?)" if close else ""
    raise UnknownRunnerError(
        f"unknown runner {runner!r}{hint}; presets: {', '.join(PRESETS)}; Beam runners: "
        f"{', '.join(sorted(known.values()))}; or a module.Class path"
    )


def _importable_class(path: str) -> bool:
    module, _, name = path.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False
