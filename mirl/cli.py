"""The ``mirl`` command. Thin: argument parsing lives here and in ``mirl.commands.*`` only.

Example:
    $ mirl info runs/quickstart_1a2b3c4d/level_3/model.pt
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from mirl.errors import MirlError
from mirl.study.log import configure_cli_logging

# sub-command -> (module, one-line help). Modules import their heavy dependencies inside run().
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("mirl.commands.info", "describe a checkpoint: preset, parameters, density"),
    "make-dataset": ("mirl.commands.make_dataset", "write the built-in corpus, degraded, in the published layout"),
    "restore": ("mirl.commands.restore", "restore images of any size with a checkpoint"),
    "lottery": ("mirl.commands.lottery", "run (or resume) an iterative magnitude pruning study"),
    "status": ("mirl.commands.status", "which levels and branches of a study are done, running or missing"),
    "evaluate": ("mirl.commands.evaluate", "score a run or checkpoint on a dataset folder"),
    "export": ("mirl.commands.export", "export a ticket: sparse file, published .ckpt, ONNX, or a web page"),
    "report": ("mirl.commands.report", "execute the notebooks and publish HTML reports"),
    "serve": ("mirl.commands.serve", "serve a web export on localhost (all CPU cores in the browser)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirl", description="MIR-L study kit: lottery-ticket pruning of PromptIR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        loudness = sub_parser.add_mutually_exclusive_group()
        loudness.add_argument("-v", "--verbose", action="store_const", const=1, dest="verbosity", default=0,
                              help="log debug detail as well")
        loudness.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity",
                              help="log only warnings and errors (the run's log.txt still gets every note)")
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli_logging(args.verbosity)
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # here, not at exit: a reader that stopped early (| head -1) is handled below
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except MirlError as exc:
        print(f"mirl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mirl {args.command}: interrupted", file=sys.stderr)
        return 130


def _quiet_stdout() -> None:
    """Point stdout at devnull: the reader is gone, and Python's flush at exit must not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
