from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config

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
    [({"format": "csv"}, "format"), ({"percentile": 150.0}, "percentile")],
)
def test_bad_values_are_rejected_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SAMPLE).with_overrides(**overrides)


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nroot: r\noutput: o\nsources: []\nthreshhold: 1\n")
    with pytest.raises(ConfigError, match="threshhold"):
        load_config(path)
