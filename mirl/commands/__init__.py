"""One module per `mirl` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse

# literal copy of mirl.models.config.MODEL_PRESETS' names (a test keeps them in sync) so that building
# the parser does not import torch
MODEL_PRESET_NAMES: tuple[str, ...] = ("paper", "small", "tiny")


class _RenamedToModel(argparse.Action):
    """``--preset`` on a command that reads a checkpoint: one line naming ``--model``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        parser.exit(2, f"{parser.prog}: error: {option_string} {values} names a study preset (mirl lottery, mirl report); "
                       f"the network size is --model {values} here (one of {', '.join(MODEL_PRESET_NAMES)})\n")


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--allow-pickle``: how a command that reads a checkpoint reads it."""
    parser.add_argument("--model", default=None, choices=MODEL_PRESET_NAMES,
                        help="network size to load the weights into (default: recorded in the file, else inferred from its shapes)")
    parser.add_argument("--preset", action=_RenamedToModel, help=argparse.SUPPRESS)
    parser.add_argument("--allow-pickle", action="store_true", help="allow arbitrary unpickling (trusted files only)")


def checkpoint_file(source: str) -> str:
    """The checkpoint ``source`` names: a file as given; a node, level, replicate or study folder
    its ``model.pt``, as ``mirl evaluate`` and ``mirl export`` read it."""
    import os

    if not os.path.isdir(source):
        return source
    from mirl.export.ticket import resolve_source

    return str(resolve_source(source)[0])
