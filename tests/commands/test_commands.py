"""mirl.commands (the package): ``add_checkpoint_arguments`` and the renamed ``--preset`` on every
command that reads a checkpoint; building the parser stays free of torch."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mirl.cli import main
from mirl.commands import MODEL_PRESET_NAMES, add_checkpoint_arguments
from tests.conftest import subprocess_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe")
    add_checkpoint_arguments(parser)
    return parser


def test_checkpoint_arguments_parse_model_and_allow_pickle() -> None:
    """``--model`` takes each preset name, defaults to None (read from the file); ``--allow-pickle`` is a flag."""
    parser = _parser()
    assert vars(parser.parse_args([])) == {"model": None, "preset": None, "allow_pickle": False}
    for name in MODEL_PRESET_NAMES:
        args = parser.parse_args(["--model", name, "--allow-pickle"])
        assert (args.model, args.allow_pickle) == (name, True)


def test_an_unknown_model_is_refused_with_the_choices(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--model", "huge"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'huge'" in err and all(name in err for name in MODEL_PRESET_NAMES)


def test_the_old_preset_flag_is_hidden_from_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "--model" in shown and "--preset" not in shown


@pytest.mark.parametrize("argv", [
    ["restore", "{missing}", "{missing}", "--out", "{out}"],
    ["evaluate", "{missing}"],
    ["export", "{missing}", "--out", "{out}"],
])
def test_preset_on_a_checkpoint_command_is_one_line_naming_model(argv: list[str], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """``--preset small`` on restore, evaluate or export (info: tests/models): exit 2 at parse time (before the missing file is
    looked at), one line that names ``--model small`` and the valid sizes; nothing written."""
    argv = [a.format(missing=tmp_path / "no.pt", out=tmp_path / "out") for a in argv]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--preset", "small"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"mirl {argv[0]}: error: --preset small names a study preset")
    assert f"--model small here (one of {', '.join(MODEL_PRESET_NAMES)})" in err
    assert "no.pt" not in err and not (tmp_path / "out").exists()


def test_preset_is_a_real_option_of_the_study_commands() -> None:
    """``lottery`` and ``report`` keep ``--preset`` as their own option (not the renamed one)."""
    from mirl.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("lottery", "report"):
        assert sub.choices[name].parse_args(["--preset", "smoke"]).preset == "smoke"


def test_building_the_parser_does_not_import_torch() -> None:
    """The literal copies in mirl.commands exist so that ``mirl --help`` stays light: check it."""
    code = ("import sys; from mirl.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
