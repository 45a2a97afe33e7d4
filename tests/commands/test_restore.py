"""``mirl restore`` (mirl.commands.restore): the files it writes are the network's restoration of
each input (any size, tiled or not), what it prints, and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mirl.cli import main
from mirl.data.imageio import read_image, to_uint8, write_image
from mirl.models import build_model, save_checkpoint
from mirl.scoring.restore import restore_image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    path = tmp_path_factory.mktemp("restore") / "tiny.pt"
    save_checkpoint(path, model)
    return path, model


@pytest.mark.parametrize("tiling", [[], ["--tile", "24", "--overlap", "8"]])
def test_each_output_is_the_networks_restoration(tiling: list[str], tiny: tuple[Path, torch.nn.Module], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    """An odd-sized photo (37x29): the PNG written equals ``restore_image`` of the same network
    with the same tiling (to one 8-bit level), at the input's size; the summary line names
    the count, the folder, the preset and the device."""
    path, model = tiny
    photo = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    write_image(tmp_path / "in" / "odd.png", photo)
    out = tmp_path / "out"
    assert main(["restore", str(path), str(tmp_path / "in" / "odd.png"), "--out", str(out), *tiling,
                 "--device", "cpu", "--no-progress"]) == 0
    assert capsys.readouterr().out == f"restored 1 image(s) into {out} with tiny on cpu\n"
    written, = out.rglob("*.png")
    got = read_image(written)[0]
    tile = int(tiling[1]) if tiling else None
    expected = to_uint8(restore_image(model, torch.from_numpy(photo).permute(2, 0, 1).float() / 255, tile=tile, overlap=8))
    assert got.shape == photo.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_the_wrong_model_size_writes_nothing(tiny: tuple[Path, torch.nn.Module], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    write_image(tmp_path / "a.png", np.zeros((16, 16, 3), dtype=np.uint8))
    assert main(["restore", str(tiny[0]), str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--model", "paper",
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl restore: error: ") and err.count("\n") == 1
    assert "tiny.pt" in err and "preset 'paper' (given)" in err
    assert not list(tmp_path.glob("out/**/*.png"))


def test_a_missing_checkpoint_is_named_after_the_inputs_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Good inputs, no checkpoint: the error names the checkpoint file; no image is written."""
    write_image(tmp_path / "a.png", np.zeros((16, 16, 3), dtype=np.uint8))
    assert main(["restore", str(tmp_path / "gone.pt"), str(tmp_path / "a.png"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 2
    assert capsys.readouterr().err == f"mirl restore: error: {tmp_path / 'gone.pt'}: no such checkpoint file\n"
    assert not list(tmp_path.glob("out/**/*.png"))


@pytest.mark.parametrize("argv, needle", [
    (["ckpt.pt", "a.png"], "--out"),
    (["ckpt.pt", "--out", "o"], "INPUT"),
    (["ckpt.pt", "a.png", "--out", "o", "--device", "tpu"], "'tpu'"),
    (["ckpt.pt", "a.png", "--out", "o", "--tile", "big"], "'big'"),
])
def test_argument_errors_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["restore", *argv])
    assert info.value.code == 2 and needle in capsys.readouterr().err


def test_a_node_folder_restores_with_its_model(tiny: tuple[Path, torch.nn.Module], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """Issue 34, part 6: ``mirl restore <node folder>`` said "no such checkpoint file"."""
    import shutil

    from mirl import paths

    path, _ = tiny
    node = paths.level_dir(paths.replicate_dir(tmp_path / "smoke_0123abcd", 0), 1, "random_reinit")
    node.mkdir(parents=True)
    shutil.copy(path, paths.model_file(node))
    photo = tmp_path / "in" / "a.png"
    photo.parent.mkdir()
    write_image(photo, to_uint8(torch.rand(3, 20, 24)))
    assert main(["restore", str(path), str(photo), "--out", str(tmp_path / "file"), "--no-progress"]) == 0
    assert main(["restore", str(node), str(photo), "--out", str(tmp_path / "node"), "--no-progress"]) == 0
    assert (tmp_path / "node" / "a.png").read_bytes() == (tmp_path / "file" / "a.png").read_bytes()
