"""Flags that are not rmclean's must be real Beam pipeline options, or the command stops.

Beam itself drops an unknown flag with a log line ("Discarding unparseable args"), so a typo
such as `--treshold -5` would run at the config's threshold; here it ends the command with the
nearest flag instead.
"""

from __future__ import annotations

import argparse
import difflib

from pipelines.commands.usage import UsageError, flags_of


def _beam_parser() -> argparse.ArgumentParser:
    """A parser that knows every Beam pipeline option, as Beam itself builds one."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for options_class in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(parser)
    return parser


def check_beam_args(beam_args: list[str], ours: list[str]) -> None:
    """Refuse any argument that is neither ours nor a Beam pipeline option, with a suggestion."""
    beam = _beam_parser()
    _, unknown = beam.parse_known_args(beam_args)
    if not unknown:
        return
    flags = [arg for arg in unknown if arg.startswith("-")]
    if not flags:
        raise UsageError(f"unexpected argument {unknown[0]!r}")
    name = flags[0].split("=", 1)[0]
    close = difflib.get_close_matches(name, ours + flags_of(beam), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(
        f"unknown option {name}: neither an rmclean flag nor a Beam pipeline option{hint}"
    )
