"""`rmclean doctor`: what this machine has, and whether each config's model can load here."""

from __future__ import annotations

import argparse

from pipelines.commands.usage import EXIT_FAILED, EXIT_OK

NAME = "doctor"


def add_parser(commands) -> argparse.ArgumentParser:
    doctor = commands.add_parser(
        NAME,
        help="torch, CUDA, GPUs, packages, and whether each config's models can load here",
        allow_abbrev=False,
    )
    doctor.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="a config to check (repeatable; default: every configs/*.yaml)",
    )
    return doctor


def run(args: argparse.Namespace) -> int:
    from pipelines.jobs.doctor import diagnose

    findings = diagnose(args.config)
    print("\n".join(findings.lines))
    return EXIT_OK if findings.ok else EXIT_FAILED
