from pipelines.runners import beam_args_for


def test_presets_expand_and_user_flags_come_last():
    args = beam_args_for("portable", ["--environment_type=DOCKER"])
    assert args[:2] == ["--runner=PortableRunner", "--job_endpoint=embed"]
    assert args[-1] == "--environment_type=DOCKER"  # later flags win in Beam


def test_unknown_names_are_beam_runner_classes():
    assert beam_args_for("FlinkRunner", ["--x=1"]) == ["--runner=FlinkRunner", "--x=1"]


def test_no_runner_named_runs_in_process_without_prism():
    # Beam's DirectRunner would switch to Prism wherever it can download it.
    assert beam_args_for(None, ["--x=1"]) == ["--runner=FnApiRunner", "--x=1"]
    assert beam_args_for(None, ["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
    assert beam_args_for("local", [])[0] == "--runner=FnApiRunner"


def test_dataflow_reads_project_region_and_gpu_from_the_environment():
    environ = {
        "DATAFLOW_PROJECT": "p",
        "DATAFLOW_REGION": "europe-west4",
        "DATAFLOW_TEMP_LOCATION": "gs://b/tmp",
        "DATAFLOW_CONTAINER": "europe-docker.pkg.dev/p/r/rmclean-gpu:1",
        "DATAFLOW_GPU": "nvidia-l4",
    }
    args = beam_args_for("dataflow", [], environ)
    assert "--project=p" in args and "--region=europe-west4" in args
    assert "--sdk_container_image=europe-docker.pkg.dev/p/r/rmclean-gpu:1" in args
    assert (
        "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;"
        "install-nvidia-driver" in args
    )
