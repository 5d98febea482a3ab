"""`rmclean doctor`: what this machine can run, and what is missing, before a long job.

It reports the torch build (CPU or CUDA, and which CUDA), the GPUs torch sees, the versions of
transformers and the media decoders, the packages each reward backend needs, and, for each
config it is given (default: every config in `configs/`), whether that config's reward models
can load here: the same checks `rmclean clean` runs before it starts (`models/registry.py`'s
preflight: files, options, device), without loading any weights.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import platform
from dataclasses import dataclass, field
from importlib import metadata

from models.ixc25_checks import IXC_PACKAGES

# What each built-in backend imports beyond the project's own dependencies.
BACKEND_PACKAGES = {
    "demo": (),
    "ixc25": IXC_PACKAGES,
    "vlm-value-head": (),
    "text-rm": (),
}
INSTALL_HINTS = {
    "einops": "make install (the ixc extra)",
    "sentencepiece": "make install (the ixc extra)",
    "torchvision": "make install (the torchvision built for the installed torch)",
    "flash_attn": "make install-gpu installs a prebuilt wheel where one exists",
}


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ok: bool = True

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
    """Backend -> the packages it needs that do not import here."""
    findings.say("backends (packages):")
    unmet = {}
    for backend, packages in BACKEND_PACKAGES.items():
        problems = {p: _imports(p) for p in packages}
        unmet[backend] = [p for p, problem in problems.items() if problem]
        if not unmet[backend]:
            findings.say(f"  {backend:<15} ok" + (f" ({', '.join(packages)})" if packages else ""))
            continue
        details = "; ".join(f"{p}: {problems[p]}" for p in unmet[backend])
        findings.say(f"  {backend:<15} missing {details}")
        for package in unmet[backend]:
            findings.lack(f"{package} for {backend}: {INSTALL_HINTS.get(package, 'pip install')}")
    return unmet


def _configs(findings: Findings, paths: list[str], unmet: dict[str, list[str]]) -> None:
    from models.registry import ModelConfigError, preflight_models
    from pipelines.config import ConfigError, load_config

    findings.say("configs (can their reward models load here? no weights are loaded):")
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            findings.say(f"  {path}: the config is invalid: {exc}")
            findings.ok = False
            continue
        models = [m for m in (config.model, config.text_model) if m]
        needs_opt_in = "ixc25" in models and not (
            config.trust_remote_code or config.remote_code_allowlist
        )
        try:
            # The remote-code opt-in is a flag of the run, not a property of the machine.
            preflight_models(dataclasses.replace(config, trust_remote_code=True))
        except ModelConfigError as exc:
            findings.say(f"  {path} ({' + '.join(models)}): cannot load: {exc}")
            findings.ok = False
            continue
        lacking = [p for m in models for p in unmet.get(m, [])]
        if lacking:
            findings.say(f"  {path} ({' + '.join(models)}): needs {', '.join(lacking)}")
            findings.ok = False
            continue
        opt_in = " (run it with TRUST_REMOTE_CODE=1 / --trust-remote-code)" if needs_opt_in else ""
        findings.say(f"  {path} ({' + '.join(models)}): ready{opt_in}")


def diagnose(config_paths: list[str] | None = None) -> Findings:
    """Everything `rmclean doctor` prints; `ok` is False if a config cannot run here."""
    findings = Findings()
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
        findings.say("missing:")
        findings.lines += [f"  - {item}" for item in findings.missing]
    return findings
