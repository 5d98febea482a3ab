import dataclasses
from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"

CONFIGS = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
SAMPLE = Path(__file__).parent.parent / "configs" / "sample.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_bundled_configs_validate(path):
    config = load_config(path)
    assert config.sources and config.layout_help


def test_overrides_switch_between_threshold_and_percentile():
    config = load_config(SAMPLE)
    by_percentile = config.with_overrides(percentile=5.0)
    assert by_percentile.percentile == 5.0 and by_percentile.threshold is None
    assert by_percentile.with_overrides(threshold=-1.0).percentile is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"format": "csv"}, "format"),
        ({"percentile": 150.0}, "percentile"),
        ({"repair": "drop-turns"}, "repair must be one of truncate"),
    ],
)
def test_bad_values_are_rejected_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SAMPLE).with_overrides(**overrides)


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nroot: r\noutput: o\nsources: []\nthreshhold: 1\n")
    with pytest.raises(ConfigError, match="threshhold"):
        load_config(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nroot: [unclosed\n", "not valid YAML \\(line \\d+\\)"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\nroot: r\noutput: o\nsources: []\nthreshold: low\n", "threshold must be"),
        ("name: x\nroot: r\noutput: o\nsources: []\nbatch_size: 2.5\n", "batch_size must be"),
        ("name: x\nroot: r\noutput: o\nsources: {a: 1}\n", "sources must be a list"),
        (
            "name: x\nroot: r\noutput: o\nsources: [{name: a, manifests: m.json, fromat: x}]\n",
            "'fromat' \\(did you mean 'format'\\?\\)",
        ),
        (
            "name: x\nroot: r\noutput: o\nsources: [{name: a, manifests: m}]\n"
            "decode: {max_frame: 3}\n",
            "decode: unknown key\\(s\\) 'max_frame' \\(did you mean 'max_frames'\\?\\)",
        ),
        ("name: x\nroot: r\noutput: o\nsources: [{name: a, manifests: [m, 3]}]\n", "manifests"),
    ],
)
def test_a_broken_config_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_an_unreadable_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)  # a directory
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_numbers_widen_and_single_globs_become_lists(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: x\nroot: r\noutput: o\nthreshold: -3\nsources: [{name: a, manifests: m}]\n"
    )
    config = load_config(path)
    assert config.threshold == -3.0 and isinstance(config.threshold, float)
    assert config.sources[0].manifests == ("m",)


def test_remote_runs_get_absolute_local_paths(tmp_path, monkeypatch):
    """Workers an engine starts run in folders of their own: relative paths become absolute."""
    from pipelines.config import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    config = load_config(str(REPO_CONFIGS / "sample.yaml")).with_overrides(
        root="data/sample", output="out/run", score_cache="out/cache"
    )
    config = dataclasses.replace(
        config, model_options={"path": "weights", "hub": "org/model", "hd_num": 9}
    )
    moved = with_absolute_paths(config)
    assert moved.root == str(tmp_path / "data" / "sample")
    assert (moved.output, moved.score_cache) == (
        str(tmp_path / "out/run"),
        str(tmp_path / "out/cache"),
    )
    # Only options naming something that is there: a hub id or a number stays as it is.
    assert moved.model_options == {
        "path": str(tmp_path / "weights"),
        "hub": "org/model",
        "hd_num": 9,
    }
    assert with_absolute_paths(config.with_overrides(output="s3://b/run")).output == "s3://b/run"
