"""Tiled restoration and `mirl restore`: any size and mode, equal results, bad input handled."""

from __future__ import annotations

import zlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mirl.cli import main
from mirl.errors import MirlError
from mirl.data.imageio import BadImageError, read_image, write_image
from mirl.models import build_model, save_checkpoint
from mirl.restore import collect_inputs, restore_files, restore_image, tile_starts


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, tiny)
    return path


class Pointwise(nn.Module):
    """A per-pixel model: tiling must reproduce it up to float rounding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None] * 0.8)
            self.conv.bias.fill_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0
        return self.conv(x)


def test_tile_at_least_image_is_exactly_untiled(tiny):
    x = torch.rand(1, 3, 45, 61)
    ref = restore_image(tiny, x)
    assert ref.shape == x.shape and float(ref.min()) >= 0 and float(ref.max()) <= 1
    assert torch.equal(restore_image(tiny, x, tile=64), ref)
    assert torch.equal(restore_image(tiny, x, tile=61, overlap=16), ref)
    assert torch.equal(restore_image(tiny, x[0], tile=1000), ref[0])


def test_bf16_precision_stays_close_to_fp32(tiny):
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    ref = restore_image(tiny, x)
    half = restore_image(tiny, x, precision="bf16")
    assert not torch.equal(half, ref), "bf16 autocast was not applied"
    assert float((half - ref).abs().max()) < 0.05
    with pytest.raises(ValueError, match="precision"):
        restore_image(tiny, x, precision="fp8")


def test_tiles_blend_exactly_for_a_pointwise_model():
    model, x = Pointwise(), torch.rand(3, 70, 93)
    ref = restore_image(model, x)
    for tile, overlap in ((32, 8), (40, 16), (24, 0)):
        out = restore_image(model, x, tile=tile, overlap=overlap)
        assert out.shape == x.shape
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_tiled_real_model_is_smooth_and_bounded(tiny):
    x = torch.rand(1, 3, 64, 96)
    out = restore_image(tiny, x, tile=48, overlap=16)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1


def test_tile_starts_and_bad_settings(tiny):
    assert tile_starts(100, 40, 10) == [0, 30, 60]
    assert tile_starts(30, 40, 10) == [0]
    for size, tile, ov in ((1000, 128, 32), (129, 64, 8)):
        s = tile_starts(size, tile, ov)
        assert s[0] == 0 and s[-1] + tile == size and all(b - a <= tile - ov for a, b in zip(s, s[1:]))
    with pytest.raises(ValueError, match="overlap"):
        restore_image(tiny, torch.rand(3, 64, 64), tile=16, overlap=16)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        restore_image(tiny, torch.rand(2, 3, 16, 16))


def write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A minimal 16-bit RGB PNG writer (PIL cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_modes_are_converted_with_notes(tmp_path, tiny):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (21, 30), dtype=np.uint8), "L").save(src / "gray.png")
    Image.fromarray(rng.integers(0, 256, (17, 19, 4), dtype=np.uint8), "RGBA").save(src / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).convert("P").save(src / "palette.png")
    write_png16_rgb(src / "deep.png", rng.integers(0, 65536, (16, 24, 3)))
    Image.fromarray(rng.integers(0, 65536, (12, 13), dtype=np.uint16)).save(src / "deepgray.png")
    Image.fromarray(rng.integers(0, 256, (33, 40, 3), dtype=np.uint8)).save(src / "photo.jpg")
    summary = restore_files(tiny, [src], tmp_path / "out", progress=False)
    out = tmp_path / "out" / "in"
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "deep.png", "deepgray.png", "gray.png", "palette.png", "photo.png"]
    assert Image.open(out / "gray.png").mode == "L" and Image.open(out / "gray.png").size == (30, 21)
    alpha_in = np.asarray(Image.open(src / "alpha.png"))[:, :, 3]
    assert Image.open(out / "alpha.png").mode == "RGBA" and np.array_equal(np.asarray(Image.open(out / "alpha.png"))[:, :, 3], alpha_in)
    assert Image.open(out / "deep.png").size == (24, 16)
    notes = {Path(p).name: n for p, n in summary.notes}
    assert "16-bit" in notes["deep.png"] and "16-bit" in notes["deepgray.png"] and "grayscale" in notes["gray.png"]
    assert "alpha" in notes["alpha.png"] and "photo.jpg" not in notes


def make_bad(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.png"
    write_image(good, np.full((24, 24, 3), 100, np.uint8))
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    trunc = folder / "trunc.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(trunc, quality=90)
    trunc.write_bytes(trunc.read_bytes()[:700])
    text = folder / "readme.txt"
    text.write_text("not an image")
    return {"good": good, "corrupt": corrupt, "trunc": trunc, "text": text}


@pytest.mark.parametrize("kind", ["corrupt", "trunc", "text"])
def test_bad_file_names_the_file_and_writes_nothing(tmp_path, tiny, kind):
    files = make_bad(tmp_path / "in")
    with pytest.raises(MirlError, match=files[kind].name):
        restore_files(tiny, [files["good"], files[kind]], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_truncated_image_is_a_bad_image(tmp_path):
    files = make_bad(tmp_path / "in")
    with pytest.raises(BadImageError, match="trunc.jpg.*truncated"):
        read_image(files["trunc"])


def test_skip_bad_warns_and_counts(tmp_path, tiny):
    make_bad(tmp_path / "in")
    with pytest.warns(UserWarning) as record:
        summary = restore_files(tiny, [tmp_path / "in"], tmp_path / "out", skip_bad=True, progress=False)
    assert sorted(Path(p).name for p, _ in summary.skipped) == ["corrupt.png", "readme.txt", "trunc.jpg"]
    assert len(record) == 3
    assert [Path(p).name for p in summary.written] == ["good.png"]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]  # no temp files left


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MirlError, match="empty.*no images"):
        collect_inputs([tmp_path / "empty"])
    with pytest.raises(MirlError, match="nope.png.*no such file"):
        collect_inputs([tmp_path / "nope.png"])
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        write_image(d / "x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MirlError, match="both be written"):
        collect_inputs([a / "x.png", b / "x.png"])


def test_cli_restore(tmp_path, ckpt, capsys):
    src = tmp_path / "photos"
    write_image(src / "one.png", np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    write_image(src / "sub" / "two.jpg", np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    rc = main(["restore", str(ckpt), str(src), "--out", str(tmp_path / "out"), "--tile", "32", "--overlap", "8", "--device", "cpu", "--no-progress"])
    assert rc == 0 and "restored 2 image(s)" in capsys.readouterr().out
    assert (tmp_path / "out/photos/one.png").is_file() and (tmp_path / "out/photos/sub/two.png").is_file()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["restore", str(ckpt), str(bad), "--out", str(tmp_path / "out2"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and err.count("\n") == 1 and "--skip-bad" in err
