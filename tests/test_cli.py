"""The command line: every sub-command is registered, imports, and explains itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mirl.cli import COMMANDS, build_parser, main


def test_every_command_is_available():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert COMMANDS[command][1].split(":")[0] in capsys.readouterr().out


def test_python_m_mirl_runs_without_side_effects():
    proc = subprocess.run([sys.executable, "-c", "import mirl, mirl.cli, mirl.study.lottery, mirl.reports.runner; print('ok')"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "ok" and proc.stderr == ""
    proc = subprocess.run([sys.executable, "-m", "mirl", "--help"], capture_output=True, text=True, check=True)
    assert all(name in proc.stdout for name in COMMANDS)


def test_a_reader_that_stops_early_gets_no_traceback():
    """``mirl ... | head -1``: the reader closes the pipe before mirl writes; mirl exits quietly."""
    from tests.conftest import subprocess_env

    proc = subprocess.Popen([sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--list-settings"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    proc.stdout.close()  # before the child has imported anything: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err
