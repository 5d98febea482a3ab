"""`rmclean doctor`: what this machine can run, and what is missing, before a long job.

It reports the torch build (CPU or CUDA, and which CUDA), the GPUs torch sees, the versions of
transformers and the media decoders, the packages each reward backend needs, and, for each
config it is given (default: every config in `configs/`), whether that config can run here,
with every problem found at once: the packages its backends import, each of its reward models'
own checks (the ones `rmclean clean` runs before it starts, `models/registry.py`'s preflight:
files, options, device; no weights are loaded), and whether its input data is in place.

Missing data is fixable by a download and does not make a config "cannot run here". Exit code:
with `--config`, 1 if any config asked about cannot run here; without, 1 only if no config can.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata

from models.ixc25.checks import IXC_PACKAGES

# What each built-in backend imports beyond the project's own dependencies.
BACKEND_PACKAGES = {
    "demo": (),
    "ixc25": IXC_PACKAGES,
    "vlm-value-head": (),
    "text-rm": (),
}
# The make target that downloads what a built-in backend's options name (README, "Real datasets").
DOWNLOAD_HINTS = {"ixc25": "make download-ixc25"}
INSTALL_HINTS = {
    "einops": "make install (the ixc extra)",
    "sentencepiece": "make install (the ixc extra)",
    "torchvision": "make install (the torchvision built for the installed torch)",
    "flash_attn": "make install-gpu installs a prebuilt wheel where one exists",
}


@dataclass
class ConfigCheck:
    """One config's verdict: what stops it running here, and what data it still lacks."""

    path: str
    models: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    data_missing: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def can_run(self) -> bool:
        return not self.problems


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    configs: list[ConfigCheck] = field(default_factory=list)
    # True when the configs were named (--config): then each of them must be able to run.
    asked: bool = False

    @property
    def ok(self) -> bool:
        if not self.configs:
            return True
        runnable = [check.can_run for check in self.configs]
        return all(runnable) if self.asked else any(runnable)

    def say(self, text: str) -> None:
        self.lines.append(text)

    def lack(self, what: str) -> None:
        self.missing.append(what)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _imports(module: str) -> str | None:
    """None if `module` imports, else why not (one line)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return None


def _torch(findings: Findings) -> None:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    findings.say(f"torch {torch.__version__} ({build})")
    if not torch.cuda.is_available():
        findings.say("  GPUs: none visible to torch")
        if torch.version.cuda is None:
            findings.lack("a CUDA build of torch for the GPU backends: make install-gpu")
        else:
            findings.lack("a visible CUDA GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
        return
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        memory = props.total_memory / (1 << 30)
        findings.say(f"  cuda:{index} {props.name}, {memory:.1f} GiB")


def _packages(findings: Findings) -> None:
    versions = {name: _version(name) for name in ("transformers", "apache-beam", "decord", "av")}
    findings.say(
        ", ".join(f"{name} {version or 'not installed'}" for name, version in versions.items())
    )
    flash = _imports("flash_attn")
    if flash is None:
        findings.say(f"flash-attn {_version('flash-attn') or '?'}")
    else:
        findings.say(
            f"flash-attn: not usable ({flash}); ixc25 uses torch's scaled-dot-product attention"
        )
        findings.lack(f"flash-attn (optional, faster ixc25 on GPUs): {INSTALL_HINTS['flash_attn']}")


def _backends(findings: Findings) -> dict[str, list[str]]:
    """Backend -> the packages it needs that do not import here, each with its install hint."""
    findings.say("backends (packages):")
    unmet = {}
    for backend, packages in BACKEND_PACKAGES.items():
        problems = {p: _imports(p) for p in packages}
        lacking = [p for p, problem in problems.items() if problem]
        unmet[backend] = [f"{p}: {INSTALL_HINTS.get(p, 'pip install ' + p)}" for p in lacking]
        if not lacking:
            findings.say(f"  {backend:<15} ok" + (f" ({', '.join(packages)})" if packages else ""))
            continue
        details = "; ".join(f"{p}: {problems[p]}" for p in lacking)
        findings.say(f"  {backend:<15} missing {details}")
    return unmet


def _check_config(path: str, unmet: dict[str, list[str]]) -> ConfigCheck:
    """Every problem of one config, each check on its own so one does not hide the next."""
    from models.registry import ModelConfigError, preflight_models
    from pipelines.config import ConfigError, load_config
    from pipelines.stages.read_sources import DataMissingError, discover_inputs

    check = ConfigCheck(path)
    try:
        config = load_config(path)
    except ConfigError as exc:
        check.problems.append(f"the config is invalid: {exc}")
        return check
    check.models = [m for m in (config.model, config.text_model) if m]
    for name in dict.fromkeys(check.models):
        check.problems += [f"{name} needs {package}" for package in unmet.get(name, [])]
    # Each reward model on its own (the text model as the run would build it), and the
    # remote-code opt-in taken as given: it is a flag of the run, not a property of the machine.
    alone = [dataclasses.replace(config, text_model=None, text_model_options={})]
    if config.text_model:
        alone.append(
            dataclasses.replace(
                alone[0], model=config.text_model, model_options=config.text_model_options
            )
        )
    for single in alone:
        try:
            preflight_models(dataclasses.replace(single, trust_remote_code=True))
        except (ModelConfigError, ConfigError) as exc:
            check.problems.append(str(exc))
        # A model's checks stop at its first problem; the files its options name are all
        # looked for here, so one doctor run lists every download still to do.
        check.problems += [
            problem
            for path, problem in _missing_files(single.model, single.model_options)
            if not any(path in known for known in check.problems)
        ]
    if "ixc25" in check.models and not (config.trust_remote_code or config.remote_code_allowlist):
        check.notes.append("run it with TRUST_REMOTE_CODE=1 / --trust-remote-code")
    try:
        discover_inputs(config)
    except DataMissingError as exc:
        check.data_missing = str(exc)
    return check


def _missing_files(model: str, options: dict) -> list[tuple[str, str]]:
    """(path, `<model>: <option> '<path>' is not there`) for each local path option (`path`,
    `*_path`) naming nothing on this machine; hub names and URLs are the backends' business."""
    from models.loading import looks_like_hub_name

    hint = f" ({DOWNLOAD_HINTS[model]})" if model in DOWNLOAD_HINTS else ""
    return [
        (value, f"{model}: {key} {value!r} is not there{hint}")
        for key, value in options.items()
        if (key == "path" or key.endswith("_path"))
        and isinstance(value, str)
        and value
        and "://" not in value
        and not looks_like_hub_name(value)
        and not os.path.exists(value)
    ]


def _report(findings: Findings, check: ConfigCheck) -> None:
    models = f" ({' + '.join(check.models)})" if check.models else ""
    if not check.can_run:
        verdict = "cannot run here"
    elif check.data_missing:
        verdict = "can run here once its data is in place"
    else:
        verdict = "ready: can run here"
    notes = f" ({'; '.join(check.notes)})" if check.notes and check.can_run else ""
    findings.say(f"  {check.path}{models}: {verdict}{notes}")
    for problem in check.problems:
        findings.say(f"    - {problem}")
    if check.data_missing:
        first, *rest = check.data_missing.splitlines()
        findings.say(f"    - data: {first}")
        findings.lines += [f"      {line}" for line in rest if line.strip()]


def _configs(findings: Findings, paths: list[str], unmet: dict[str, list[str]]) -> None:
    findings.say("configs (can each run here? every problem is listed; no weights are loaded):")
    for path in paths:
        check = _check_config(path, unmet)
        findings.configs.append(check)
        _report(findings, check)
    runnable = [c.path for c in findings.configs if c.can_run]
    findings.say(
        f"{len(runnable)} of {len(findings.configs)} configs can run here"
        + (f": {', '.join(runnable)}" if runnable else "")
    )


def diagnose(config_paths: list[str] | None = None) -> Findings:
    """Everything `rmclean doctor` prints; `ok` says whether it should exit 0 (see above)."""
    findings = Findings(asked=config_paths is not None)
    findings.say(
        f"rmclean {_version('rmclean') or '(not installed)'}, Python {platform.python_version()}"
    )
    _torch(findings)
    _packages(findings)
    unmet = _backends(findings)
    paths = config_paths if config_paths is not None else sorted(glob.glob("configs/*.yaml"))
    if paths:
        _configs(findings, paths, unmet)
    if findings.missing:
        findings.say("this machine lacks:")
        findings.lines += [f"  - {item}" for item in findings.missing]
    return findings
