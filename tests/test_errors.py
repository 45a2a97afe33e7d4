"""mirl.errors: MirlError and the error classes built on it, as the library raises and the CLI reports them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirl.cli import main
from mirl.errors import MirlError


def _subclasses() -> dict[str, type]:
    from mirl.data import TaskError
    from mirl.data.datasets import DatasetError
    from mirl.data.imageio import BadImageError
    from mirl.data.make_dataset import DatasetExistsError
    from mirl.data.resolve import DataFolderError
    from mirl.models.checkpoints import CheckpointError
    from mirl.reports.runner import ReportError
    from mirl.runlock import HeldError
    from mirl.scoring.metrics import MetricInputError
    from mirl.study.config import ConfigError
    from mirl.study.train import TrainingDiverged

    return {c.__name__: c for c in (TaskError, DatasetError, BadImageError, DatasetExistsError, DataFolderError,
                                    CheckpointError, ReportError, HeldError, MetricInputError, ConfigError, TrainingDiverged)}


def test_mirl_error_is_a_plain_exception() -> None:
    assert issubclass(MirlError, Exception) and not issubclass(MirlError, (ValueError, OSError))
    assert str(MirlError("x: do y")) == "x: do y"


def test_every_user_facing_error_is_a_mirl_error() -> None:
    for name, cls in _subclasses().items():
        assert issubclass(cls, MirlError), name


@pytest.mark.parametrize("name,builtin", [("TaskError", ValueError), ("DataFolderError", FileNotFoundError),
                                          ("CheckpointError", ValueError), ("MetricInputError", ValueError)])
def test_errors_also_keep_their_builtin_kind(name: str, builtin: type) -> None:
    """Callers that catch ValueError / FileNotFoundError still catch these."""
    assert issubclass(_subclasses()[name], builtin)


def test_library_errors_are_caught_as_mirl_error(tmp_path: Path) -> None:
    from mirl.data import expand_tasks
    from mirl.data.imageio import read_image
    from mirl.data.resolve import dataset_root

    for call in (lambda: expand_tasks(["deblur"]), lambda: read_image(tmp_path / "none.png"),
                 lambda: dataset_root(tmp_path / "none")):
        with pytest.raises(MirlError):
            call()


def test_bad_image_error_keeps_its_parts() -> None:
    from mirl.data.imageio import BadImageError

    err = BadImageError("a/b.png", "empty file (0 bytes)", "replace or remove it")
    assert (err.path, err.reason, str(err)) == ("a/b.png", "empty file (0 bytes)", "a/b.png: empty file (0 bytes); replace or remove it")
    assert str(BadImageError("c.png", "bad")) == "c.png: bad"


def test_cli_prints_a_mirl_error_as_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"junk")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mirl info: error: {bad}: ") and err.count("\n") == 1 and "Traceback" not in err
