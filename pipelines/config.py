"""YAML run configuration -> a validated, frozen `RunConfig`.

Everything the pipeline needs to know comes through here, so a typo in a config fails before a
worker starts, with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transforms.samples.repair import REPAIRS

FORMATS = ("parquet", "webdataset")
DEFAULT_BATCH_SIZE = 16
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
    # Media named by URL (http://, s3://, ...) is fetched only when the source allows it.
    remote_media: bool = False


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
    # Estimated-token budget per batch and per forward pass (its padded size, or its total for a
    # packing backend); None batches by count (`batch_size`) only.
    max_batch_tokens: int | None = None
    # One model copy per machine instead of per worker process (for multi-GB checkpoints).
    large_model: bool = False
    # Devices to put one model copy on each: "auto" (every visible GPU, else the CPU) or a
    # list such as ("cuda:0", "cuda:1"); batches go to whichever copy is free.
    devices: str | tuple[str, ...] = "auto"
    threshold: float | None = -2.0
    percentile: float | None = None
    # `truncate`: a conversation whose only low turns follow a good prefix keeps the prefix in
    # clean/, the original in review/ (transforms/samples/repair.py); None repairs nothing.
    repair: str | None = None
    format: str = "parquet"
    # Clean and review shards are closed at about this size (media plus text, in MiB).
    shard_mb: float = 256.0
    # Samples per model batch, or `max_batch_tokens` per batch: one or the other (default 16).
    batch_size: int | None = None
    allow_media_outside_root: bool = False
    # Above this share of input samples in errors/, the run fails and writes no _SUCCESS.
    max_error_fraction: float = 0.05
    # Folder of the score cache (one subfolder per model); None scores everything every run.
    score_cache: str | None = None
    # Scores reach the cache every this many samples or seconds, whichever comes first: a
    # killed run loses at most that much scoring.
    score_cache_flush_every: int = 64
    score_cache_flush_seconds: float = 30.0
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    layout_help: str = ""

    @property
    def samples_per_batch(self) -> int | None:
        """Samples per model batch when batching by count; None when by `max_batch_tokens`."""
        if self.max_batch_tokens:
            return None
        return self.batch_size or DEFAULT_BATCH_SIZE

    def backend_options(self, text: bool = False) -> dict[str, Any]:
        """The options a backend gets: its own `model_options` plus those its spec takes from
        the run (batching, decode sampling, the remote-code opt-in), which have one home here:
        setting one of them under `model_options` is an error, not silently overridden."""
        from models.registry import spec_for
        from models.spec import RUN_OPTION_SOURCES

        name = self.text_model if text else self.model
        options = dict(self.text_model_options if text else self.model_options)
        spec = spec_for(name)
        doubled = sorted(set(options) & set(spec.run_options))
        if doubled:
            where = "text_model_options" if text else "model_options"
            homes = ", ".join(f"{key} -> {RUN_OPTION_SOURCES[key]}" for key in doubled)
            raise ConfigError(
                f"{where}: {', '.join(doubled)} come(s) from the run's config, not the model's "
                f"options; set it there ({homes})"
            )
        return {**options, **{key: self._run_value(key) for key in spec.run_options}}

    def _run_value(self, option: str) -> Any:
        from models.spec import RUN_OPTION_SOURCES

        if option == "max_batch_size":
            return self.samples_per_batch
        value: Any = self
        for part in RUN_OPTION_SOURCES[option].split("."):
            value = getattr(value, part)
        return list(value) if isinstance(value, tuple) else value

    def media_roots(self) -> dict[str, str]:
        """Source name -> the folder its media paths are relative to ("" -> the root)."""
        root = self.root.rstrip("/")
        roots = {s.name: f"{root}/{s.media_root}" if s.media_root else root for s in self.sources}
        return {"": root, **roots}

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
    if config.repair is not None and config.repair not in REPAIRS:
        raise ConfigError(
            f"repair must be one of {', '.join(REPAIRS)} (or absent), got {config.repair!r}"
        )
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
    if config.batch_size is not None and config.batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    if config.batch_size is not None and config.max_batch_tokens is not None:
        raise ConfigError(
            "batch_size and max_batch_tokens both set: batches are sized by one of them "
            "(max_batch_tokens for token budgets, batch_size for a fixed count); remove one"
        )
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


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against a dataclass field's type; ints widen to floats, one string is
    accepted for a tuple of strings. A mismatch raises ConfigError naming the key."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _typed(value, option, where)
            except ConfigError:
                continue
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_typed(item, args[0], f"{where}[]") for item in value)
        if args[0] is str and isinstance(value, str):
            return (value,)  # one glob or path where a list is allowed
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint in (int, bool, str):
        if isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
            return value
    else:
        return value
    raise ConfigError(f"{where} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if hint in names:
        return names[hint]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        described = " or ".join(_describe(a) for a in args)
        return f"{described} (or null)" if type(None) in typing.get_args(hint) else described
    return "a mapping" if hint is dict or typing.get_origin(hint) is dict else str(hint)


def _fields(cls: type, raw: Any, where: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """`raw` (a YAML mapping) checked against dataclass `cls`: no unknown keys, right types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        suggestions = [
            f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)
            for key in unknown
            for close in [difflib.get_close_matches(key, list(hints), n=1)]
        ]
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(suggestions)}; known: {', '.join(sorted(hints))}"
        )
    missing = [key for key in required if key not in raw]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
    return {key: _typed(value, hints[key], f"{where}: {key}") for key, value in raw.items()}


def _nearest_config(path: Path) -> str:
    """For a config that is not there: the nearest name beside it, and what is there
    (`make ... DATASET=alava` -> configs/alava.yaml -> did you mean configs/allava.yaml?)."""
    folder = path.parent
    there = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    if not there:
        return f" (and {folder}/ holds no configs)"
    close = difflib.get_close_matches(path.stem, there, n=1, cutoff=0.6)
    nearest = f" (did you mean {folder / close[0]}{path.suffix or '.yaml'}?)" if close else ""
    return f"{nearest}; {folder}/ has: {', '.join(there)}"


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config {path} not found{_nearest_config(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} cannot be read: {exc}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{line}: {problem}") from None
    raw = _fields(RunConfig, raw, str(path), required=("name", "root", "sources", "output"))
    if not isinstance(raw["sources"], tuple) or not all(
        isinstance(s, dict) for s in raw["sources"]
    ):
        raise ConfigError(f"{path}: sources must be a list of mappings")
    raw["sources"] = tuple(
        SourceConfig(**_fields(SourceConfig, s, f"{path}: sources[{i}]", ("name", "manifests")))
        for i, s in enumerate(raw["sources"])
    )
    raw["decode"] = DecodeConfig(**_fields(DecodeConfig, raw.get("decode", {}), f"{path}: decode"))
    return _validated(RunConfig(**raw))


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """Local relative paths made absolute, for workers that an engine (Spark, Flink) starts in
    folders of its own: the dataset root, the output prefix, the score cache, and the model
    options that name an existing file or folder. URLs stay as they are."""

    def absolute(path: str | None) -> str | None:
        return os.path.abspath(path) if path and "://" not in path else path

    def absolute_if_there(value: Any) -> Any:
        there = isinstance(value, str) and "://" not in value and os.path.exists(value)
        return os.path.abspath(value) if there else value

    return dataclasses.replace(
        config,
        root=absolute(config.root),
        output=absolute(config.output),
        score_cache=absolute(config.score_cache),
        model_options={k: absolute_if_there(v) for k, v in config.model_options.items()},
        text_model_options={k: absolute_if_there(v) for k, v in config.text_model_options.items()},
    )
