"""One module per `mirl` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse

# literal copy of mirl.models.config.MODEL_PRESETS' names (a test keeps them in sync) so that building
# the parser does not import torch
MODEL_PRESET_NAMES: tuple[str, ...] = ("paper", "small", "tiny")


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset`` and ``--allow-pickle``: how a command that reads a checkpoint reads it."""
    parser.add_argument("--preset", default=None, choices=MODEL_PRESET_NAMES,
                        help="network size to load the weights into (default: recorded in the file, else inferred from its shapes)")
    parser.add_argument("--allow-pickle", action="store_true", help="allow arbitrary unpickling (trusted files only)")
