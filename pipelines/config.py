"""YAML run configuration -> a validated, frozen `RunConfig`.

Everything the pipeline needs to know comes through here, so a typo in a config fails before a
worker starts, with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FORMATS = ("parquet", "webdataset")
SOURCE_FORMATS = ("llava", "parquet", "webdataset")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SourceConfig:
    """One subset of a dataset: manifests (globs relative to the root) and where media lives."""

    name: str
    manifests: tuple[str, ...]
    format: str = "llava"
    media_root: str = ""
    video_archives: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecodeConfig:
    video_fps: float = 1.0
    max_frames: int = 32
    max_side: int = 1024
    # A video still decoding after this many seconds is killed and becomes an error record.
    video_timeout_s: float = 60.0
    # Decoder processes per machine, shared by the run's worker processes; None = its cores.
    workers: int | None = None
    # Media and decoded frames held ahead of the model per machine, in MiB; None = a tenth of
    # the memory free at start (256 to 4096).
    prefetch_mb: float | None = None


@dataclass(frozen=True)
class RunConfig:
    name: str
    root: str
    sources: tuple[SourceConfig, ...]
    output: str
    model: str = "demo"
    # Backend options (checkpoint path, dtype, device, ...): see README, "Reward backends".
    model_options: dict[str, Any] = field(default_factory=dict)
    # Optional second backend for text-only samples (e.g. a text-rm for ALLaVA's text subset).
    text_model: str | None = None
    text_model_options: dict[str, Any] = field(default_factory=dict)
    # Code shipped inside a checkpoint runs only when the user opts in, globally or per path.
    trust_remote_code: bool = False
    remote_code_allowlist: tuple[str, ...] = ()
    # Padded-token budget per forward pass; None batches by count (`batch_size`) only.
    max_batch_tokens: int | None = None
    # One model copy per machine instead of per worker process (for multi-GB checkpoints).
    large_model: bool = False
    # Devices to put one model copy on each: "auto" (every visible GPU, else the CPU) or a
    # list such as ("cuda:0", "cuda:1"); batches go to whichever copy is free.
    devices: str | tuple[str, ...] = "auto"
    threshold: float | None = -2.0
    percentile: float | None = None
    format: str = "parquet"
    # Clean and review shards are closed at about this size (media plus text, in MiB).
    shard_mb: float = 256.0
    batch_size: int = 16
    allow_media_outside_root: bool = False
    # Above this share of input samples in errors/, the run fails and writes no _SUCCESS.
    max_error_fraction: float = 0.05
    # Folder of the score cache (one subfolder per model); None scores everything every run.
    score_cache: str | None = None
    score_cache_flush_every: int = 500
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    layout_help: str = ""

    def backend_options(self, text: bool = False) -> dict[str, Any]:
        """The options a backend factory gets: its own plus the run-wide opt-ins it uses."""
        name = self.text_model if text else self.model
        options = dict(self.text_model_options if text else self.model_options)
        if name == "ixc25":
            options.setdefault("trust_remote_code", self.trust_remote_code)
            options.setdefault("remote_code_allowlist", list(self.remote_code_allowlist))
        if self.max_batch_tokens and name in ("ixc25", "vlm-value-head", "text-rm"):
            # The backend sorts each batch by length and packs padded micro-batches.
            options.setdefault("max_batch_tokens", self.max_batch_tokens)
        return options

    def with_overrides(self, **overrides: Any) -> RunConfig:
        """Apply CLI flags (None means 'not given'); threshold and percentile exclude each other."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        if "percentile" in changes:
            changes.setdefault("threshold", None)
        if "threshold" in changes:
            changes.setdefault("percentile", None)
        return _validated(dataclasses.replace(self, **changes))


def _validated(config: RunConfig) -> RunConfig:
    if config.format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {config.format!r}")
    if (config.threshold is None) == (config.percentile is None):
        raise ConfigError("give exactly one of threshold or percentile")
    if config.percentile is not None and not 0 < config.percentile < 100:
        raise ConfigError(f"percentile must be between 0 and 100, got {config.percentile}")
    if not config.sources:
        raise ConfigError("the config lists no sources")
    for source in config.sources:
        if source.format not in SOURCE_FORMATS:
            raise ConfigError(f"source {source.name}: format must be one of {SOURCE_FORMATS}")
    if not 0 <= config.max_error_fraction <= 1:
        raise ConfigError(f"max_error_fraction must be in [0, 1], got {config.max_error_fraction}")
    if config.max_batch_tokens is not None and config.max_batch_tokens < 1:
        raise ConfigError("max_batch_tokens must be at least 1")
    if config.shard_mb <= 0:
        raise ConfigError(f"shard_mb must be positive, got {config.shard_mb}")
    if config.batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    _check_devices(config)
    if config.decode.workers is not None and config.decode.workers < 1:
        raise ConfigError(f"decode.workers must be at least 1, got {config.decode.workers}")
    if config.decode.prefetch_mb is not None and config.decode.prefetch_mb <= 0:
        raise ConfigError(f"decode.prefetch_mb must be positive, got {config.decode.prefetch_mb}")
    return config


def _check_devices(config: RunConfig) -> None:
    from models.device_pool import check_devices

    try:
        devices = check_devices(config.devices)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    for options, key in ((config.model_options, "model"), (config.text_model_options, "text")):
        if devices != "auto" and options.get("device") not in (None, "", "auto"):
            raise ConfigError(
                f"{key}_options.device and devices: both name devices; keep devices: only"
            )


def _source(raw: dict[str, Any]) -> SourceConfig:
    unknown = set(raw) - {f.name for f in dataclasses.fields(SourceConfig)}
    if unknown or "name" not in raw or "manifests" not in raw:
        raise ConfigError(f"source entries need name and manifests; unknown keys: {unknown}")
    as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,)  # noqa: E731
    return SourceConfig(
        name=raw["name"],
        manifests=as_tuple(raw["manifests"]),
        format=raw.get("format", "llava"),
        media_root=raw.get("media_root", ""),
        video_archives=as_tuple(raw.get("video_archives", ())),
    )


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config {path} not found; see configs/ for the bundled ones")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    for required in ("name", "root", "sources", "output"):
        if required not in raw:
            raise ConfigError(f"{path}: missing required key {required!r}")
    raw["sources"] = tuple(_source(s) for s in raw["sources"])
    decode = raw.get("decode") or {}
    unknown_decode = set(decode) - {f.name for f in dataclasses.fields(DecodeConfig)}
    if unknown_decode:
        known_decode = sorted(f.name for f in dataclasses.fields(DecodeConfig))
        raise ConfigError(
            f"{path}: unknown decode keys {sorted(unknown_decode)}; known: {known_decode}"
        )
    raw["decode"] = DecodeConfig(**decode)
    if isinstance(raw.get("devices"), list):
        raw["devices"] = tuple(raw["devices"])
    raw["remote_code_allowlist"] = tuple(raw.get("remote_code_allowlist", ()))
    return _validated(RunConfig(**raw))
