"""A study's live record: TensorBoard scalars per node, log.txt in the study folder, -v/-q."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mirl import paths
from mirl.study.log import TENSORBOARD_DIR, ScalarLog, configure_cli_logging, run_log


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_every_node_writes_loss_lr_speed_and_test_psnr(smoke_run: Path) -> None:
    import json

    nodes = [done.parent for done in smoke_run.glob("replicate_*/level_*/*/done.json")]
    assert nodes
    for node in nodes:
        scalars = {**_scalars(node / TENSORBOARD_DIR / "train"), **_scalars(node / TENSORBOARD_DIR / "test")}
        log = [line.split(",") for line in paths.train_log_file(node).read_text().splitlines()[1:]]
        assert [s for s, _ in scalars["train/loss"]] == [int(row[0]) for row in log]
        assert [v for _, v in scalars["train/loss"]] == pytest.approx([float(row[2]) for row in log], abs=1e-6)
        assert {"train/lr", "train/images_per_s"} <= set(scalars)
        tasks = json.loads(paths.metrics_file(node).read_text())["tasks"]
        for task, score in tasks.items():
            ((step, value),) = scalars[f"test/psnr/{task}"]
            assert step == len(log) and value == pytest.approx(score["psnr"], abs=1e-4)


def test_the_study_folder_keeps_a_log(smoke_run: Path) -> None:
    text = (smoke_run / "log.txt").read_text()
    levels = sorted({p.parent.name for p in smoke_run.glob("replicate_0/level_*/main")})
    for level in levels:
        assert f"replicate 0, level {level.split('_')[1]}, main: done in" in text
    assert "over the input" in text


def test_run_log_appends_warnings_and_notes_but_not_debug(tmp_path: Path) -> None:
    import warnings

    with run_log(tmp_path):
        logging.getLogger("mirl.test").info("first note")
        logging.getLogger("mirl.test").debug("hidden detail")
        warnings.warn("a warning worth keeping", stacklevel=1)
    with run_log(tmp_path):
        logging.getLogger("mirl.test").info("second note")
    text = (tmp_path / "log.txt").read_text()
    assert text.index("first note") < text.index("a warning worth keeping") < text.index("second note")
    assert "hidden detail" not in text
    logging.getLogger("mirl.test").info("after the run")
    assert "after the run" not in (tmp_path / "log.txt").read_text()


def test_quiet_terminal_still_fills_the_log_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    configure_cli_logging(-1)
    try:
        with run_log(tmp_path):
            logging.getLogger("mirl.test").info("a note for the file only")
            logging.getLogger("mirl.test").warning("a warning for both")
        err = capfd.readouterr().err
        assert "a warning for both" in err and "a note for the file only" not in err
        assert "a note for the file only" in (tmp_path / "log.txt").read_text()
    finally:
        root = logging.getLogger("mirl")
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.NOTSET)
        logging.captureWarnings(False)


def test_resuming_drops_the_steps_after_the_checkpoint(tmp_path: Path) -> None:
    import time

    first = ScalarLog(tmp_path, "train")
    first.add({"train/loss": 1.0}, step=1)
    first.add({"train/loss": 0.9}, step=2)
    first.add({"train/loss": 0.8}, step=3)  # trained after the last checkpoint (step 2), then killed
    first.close()
    time.sleep(1.1)  # a resumed run starts in a later second (event files sort by their creation second)
    resumed = ScalarLog(tmp_path, "train", purge_step=3)
    resumed.add({"train/loss": 0.7}, step=3)
    resumed.close()
    assert _scalars(tmp_path / TENSORBOARD_DIR / "train")["train/loss"] == [(1, 1.0), (2, pytest.approx(0.9)), (3, pytest.approx(0.7))]


def test_a_disabled_log_writes_nothing(tmp_path: Path) -> None:
    log = ScalarLog(tmp_path, "train", enabled=False)
    log.add({"train/loss": 1.0}, step=1)
    log.close()
    assert not (tmp_path / TENSORBOARD_DIR).exists()


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_log_txt_that_is_not_a_plain_file_is_refused(tmp_path: Path, kind: str) -> None:
    """``log.txt -> ../outside.txt`` would append the study's notes to the outside file; a FIFO
    without a reader would block the run. Both are refused in one line that names the file."""
    import os

    from mirl.errors import MirlError

    study = tmp_path / "study"
    study.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    if kind == "link":
        (study / "log.txt").symlink_to(Path("..") / "outside.txt")
    else:
        os.mkfifo(study / "log.txt")
    with pytest.raises(MirlError, match=r"log\.txt is (a symbolic link|not a plain file).*remove it") as info:
        with run_log(study):
            logging.getLogger("mirl.test").info("a note for the study")
    assert str(study / "log.txt") in str(info.value) and "\n" not in str(info.value)
    assert outside.read_text() == "keep\n"
