"""Tiled restoration and `mirl restore`: any size and mode, equal results, bad input handled."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
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
from mirl.scoring.restore import collect_inputs, restore_files, restore_image, tile_starts


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


def write_png(path: Path, w: int, h: int, depth: int, color: int, raw: bytes) -> None:
    """A minimal PNG writer: IHDR, one IDAT of ``raw`` (filtered rows), IEND."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A minimal 16-bit RGB PNG writer (PIL cannot write one)."""
    h, w, _ = arr.shape
    write_png(path, w, h, 16, 2, b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h)))


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


def test_float_tiff_is_read_by_its_range_or_refused(tmp_path):
    """A 32-bit float TIFF (mode F) with values 0..1 is read as 0 black to 1 white, not as 0/1 of
    255; one outside 0..1 (e.g. 0..255, or NaN) is refused, naming it (issue 23, case 6)."""
    ramp = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    Image.fromarray(ramp, "F").save(tmp_path / "unit.tif")
    arr, notes = read_image(tmp_path / "unit.tif")
    assert arr.shape == (24, 32, 3) and arr.min() == 0 and arr.max() == 255
    assert np.array_equal(arr[:, :, 0], np.round(ramp * 255).astype(np.uint8)) and "32-bit float, 0..1" in notes[0]
    Image.fromarray(ramp * 255, "F").save(tmp_path / "wide.tif")
    with pytest.raises(BadImageError, match=r"wide.tif: 32-bit float image with values 0 to 255; .*0 \(black\) to 1 \(white\)"):
        read_image(tmp_path / "wide.tif")
    ramp[0, 0] = np.nan
    Image.fromarray(ramp, "F").save(tmp_path / "nan.tif")
    with pytest.raises(BadImageError, match=r"nan.tif: 32-bit float image with 1 NaN or infinite value"):
        read_image(tmp_path / "nan.tif")


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


# ----------------------------------------------------------------- nothing lost, nothing wrong (issue 13)
def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (24, 24)) -> bytes:
    write_image(path, np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))
    return path.read_bytes()


def _refuse_before_loading(monkeypatch, argv: list[str], capsys) -> str:
    """Run ``mirl restore`` and return its error line; loading the checkpoint fails the test."""
    import mirl.models

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the arguments were checked")

    monkeypatch.setattr(mirl.models, "load_checkpoint", no_load)
    assert main(["restore", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl restore: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("case", ["parent_of_input_folder", "file_into_its_folder", "out_is_input_folder", "out_inside_input_folder",
                                  "beside_input_file"])
def test_restore_never_writes_over_or_into_its_inputs(tmp_path, ckpt, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    originals = {p: _photo(tmp_path / p, i) for i, p in enumerate(["photos/a.png", "same/a.png", "same/b.jpg"])}
    argv, message = {
        "parent_of_input_folder": (["photos", "--out", "."], "would write photos/a.png over the input photos/a.png"),
        "file_into_its_folder": (["same/a.png", "--out", "same"], "would write same/a.png over the input same/a.png"),
        "out_is_input_folder": (["same", "--out", "same"], "--out same is inside the input folder same"),
        "out_inside_input_folder": (["photos", "--out", "photos/restored"], "inside the input folder photos"),
        "beside_input_file": (["same/b.jpg", "--out", "same"], "beside the input same/b.jpg"),
    }[case]
    err = _refuse_before_loading(monkeypatch, [str(ckpt), *argv], capsys)
    assert message in err and "pass " in err
    assert {p: (tmp_path / p).read_bytes() for p in originals} == originals  # originals untouched
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(originals)


def test_restore_outputs_beside_but_outside_inputs_are_fine(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _photo(tmp_path / "photos/a.png")
    (tmp_path / "photos/sub").mkdir()
    monkeypatch.chdir(tmp_path / "photos/sub")
    summary = restore_files(tiny, ["../a.png"], "../../restored", progress=False)  # '..' must not fool the check
    assert summary.written == ["../../restored/a.png"] and (tmp_path / "restored/a.png").is_file()
    assert (tmp_path / "photos/a.png").read_bytes() == before


@pytest.mark.parametrize("opts, message", [
    (["--tile", "0"], "tile (--tile) must be at least 8 px, got 0"),
    (["--tile", "7"], "tile (--tile) must be at least 8 px, got 7"),
    (["--tile", "16"], "overlap (32 px, --overlap) must be smaller than tile (16 px, --tile)"),
    (["--tile", "64", "--overlap", "-4"], "overlap (--overlap) must be 0 or more px, got -4"),
    (["--overlap", "-1"], "overlap (--overlap) must be 0 or more px, got -1"),
], ids=["tile0", "tile7", "overlap_not_below_tile", "negative_overlap_tiled", "negative_overlap"])
def test_bad_tiling_is_refused_before_loading(tmp_path, ckpt, monkeypatch, capsys, opts, message):
    _photo(tmp_path / "in/a.png", size=(40, 40))
    err = _refuse_before_loading(monkeypatch, [str(ckpt), str(tmp_path / "in"), "--out", str(tmp_path / "out"), *opts], capsys)
    assert message in err
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused_before_loading(tmp_path, ckpt, monkeypatch, capsys):
    _photo(tmp_path / "in/a.png")
    blocker = tmp_path / "taken.txt"
    blocker.write_text("keep me")
    err = _refuse_before_loading(monkeypatch, [str(ckpt), str(tmp_path / "in"), "--out", str(blocker)], capsys)
    assert "taken.txt: is a file, not a folder" in err
    err = _refuse_before_loading(monkeypatch, [str(ckpt), str(tmp_path / "in"), "--out", str(blocker / "deeper")], capsys)
    assert "cannot create it" in err and "taken.txt is a file" in err
    assert blocker.read_text() == "keep me"


def test_read_only_out_is_refused_before_loading(tmp_path, ckpt, monkeypatch, capsys):
    _photo(tmp_path / "in/a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: emulate what anyone else sees
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == locked else real_access(p, mode, *a, **k))
        err = _refuse_before_loading(monkeypatch, [str(ckpt), str(tmp_path / "in"), "--out", str(locked / "out")], capsys)
        assert "locked is not writable" in err
    finally:
        locked.chmod(0o755)


def test_existing_outputs_are_refused_unless_overwrite(tmp_path, ckpt, monkeypatch, capsys):
    """An unrelated ``edited/photo.png`` is never replaced silently: refused before loading, naming
    it; ``--overwrite`` replaces it (issue 23, case 12)."""
    _photo(tmp_path / "raw/photo.jpg")
    edited = tmp_path / "edited" / "photo.png"
    _photo(edited, seed=5)
    before = edited.read_bytes()
    err = _refuse_before_loading(monkeypatch, [str(ckpt), str(tmp_path / "raw/photo.jpg"), "--out", str(tmp_path / "edited")], capsys)
    assert f"{edited} already exist(s) and would be replaced; pass --overwrite" in err
    assert edited.read_bytes() == before
    monkeypatch.undo()
    assert main(["restore", str(ckpt), str(tmp_path / "raw/photo.jpg"), "--out", str(tmp_path / "edited"), "--overwrite",
                 "--device", "cpu", "--no-progress"]) == 0
    assert edited.read_bytes() != before and read_image(edited)[0].shape == (24, 24, 3)


def test_max_pixels_lifts_the_decompression_bomb_limit(tmp_path, ckpt, capsys):
    """A 108 MP photo is refused with a message naming ``--max-pixels``; the flag raises the limit
    (on a small photo here: decoding 108 MP is too slow for a test) (issue 23, case 18)."""
    big = tmp_path / "big" / "pano.png"
    big.parent.mkdir()
    write_png(big, 12_000, 9_000, 8, 0, b"")  # the header is enough: the size is checked before decoding
    with pytest.raises(BadImageError, match=r"pano.png: 12000x9000 is 108,000,000 pixels, more than the limit of 89,478,485 .*"
                                            r"decompression bombs; if you trust the file, raise the limit: mirl restore --max-pixels 108000000"):
        read_image(big)
    with pytest.raises(BadImageError, match="corrupt or truncated"):  # past the size check: the (empty) pixel data
        read_image(big, max_pixels=108_000_000)
    assert main(["restore", str(ckpt), str(big), "--out", str(tmp_path / "o1"), "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl restore: error: ") and err.count("\n") == 1 and "--max-pixels 108000000" in err
    _photo(tmp_path / "small/a.png", size=(30, 40))
    argv = ["restore", str(ckpt), str(tmp_path / "small/a.png"), "--device", "cpu", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "o2"), "--max-pixels", "1000"]) == 2
    assert "40x30 is 1,200 pixels, more than the limit of 1,000" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "o3"), "--max-pixels", "1200"]) == 0
    assert main([*argv, "--out", str(tmp_path / "o4"), "--max-pixels", "-1"]) == 2
    assert "--max-pixels must be 0 (no limit) or more, got -1" in capsys.readouterr().err
    from mirl.commands import restore as restore_cmd
    from mirl.data import imageio

    assert restore_cmd.MAX_PIXELS == imageio.MAX_PIXELS == Image.MAX_IMAGE_PIXELS  # literal copy; Pillow's default


def test_write_failure_is_a_clear_error(tmp_path, tiny):
    _photo(tmp_path / "in/a.png")
    (tmp_path / "out/in/a.png").mkdir(parents=True)  # a folder where the output file should go
    with pytest.raises(MirlError, match=r"a.png: cannot write the restored image .*0 image\(s\) were written"):
        restore_files(tiny, [tmp_path / "in"], tmp_path / "out", progress=False)


def test_cli_skip_bad_prints_only_its_own_list(tmp_path, ckpt, capsys):
    make_bad(tmp_path / "in")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any raw warning fails the test
        rc = main(["restore", str(ckpt), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--skip-bad", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    listed = out.split("skipped 3 bad input(s):\n")[1].splitlines()
    assert [line.split(": ", 1)[0].strip() for line in listed] == [str(tmp_path / "in" / n) for n in ("readme.txt", "corrupt.png", "trunc.jpg")]
    assert all(line.count(str(tmp_path)) == 1 and "--skip-bad" not in line for line in listed)  # each names its file once


def _exif_jpeg(path: Path, stored: np.ndarray, orientation: int = 6) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_when_reading(tmp_path):
    from PIL import ImageOps

    from mirl.data.imageio import image_size, read_alpha

    stored = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)  # landscape sensor pixels
    _exif_jpeg(tmp_path / "phone.jpg", stored)
    arr, notes = read_image(tmp_path / "phone.jpg")
    assert arr.shape == (96, 64, 3) and image_size(tmp_path / "phone.jpg") == (64, 96)  # portrait, as displayed
    with Image.open(tmp_path / "phone.jpg") as im:
        assert np.array_equal(arr, np.asarray(ImageOps.exif_transpose(im)))
    assert any("EXIF orientation 6" in n for n in notes)
    rgba = np.dstack([stored, np.arange(64 * 96, dtype=np.uint8).reshape(64, 96)])
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rgba, "RGBA").save(tmp_path / "tagged.png", exif=exif)
    alpha = read_alpha(tmp_path / "tagged.png")
    assert read_image(tmp_path / "tagged.png")[0].shape == (96, 64, 3) and image_size(tmp_path / "tagged.png") == (64, 96)
    assert np.array_equal(alpha, np.rot90(rgba[:, :, 3]))  # alpha turns with the picture


def test_restore_writes_exif_rotated_photos_upright(tmp_path, ckpt, capsys):
    stored = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    _exif_jpeg(tmp_path / "in/phone.jpg", stored)
    assert main(["restore", str(ckpt), str(tmp_path / "in/phone.jpg"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    with Image.open(tmp_path / "out/phone.png") as out:
        assert out.size == (64, 96) and out.getexif().get(0x0112) is None  # shown as the person saw it


def test_decoder_warnings_become_notes(tmp_path):
    broken = tmp_path / "broken_exif.jpg"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(broken, exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arr, notes = read_image(broken)
    assert arr.shape == (16, 16, 3) and any("decoder warning: Corrupt EXIF" in n for n in notes)


class _NaNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * self.scale
        out[..., 0, 0] = float("nan")
        return out


def test_non_finite_network_output_is_an_error_not_a_black_png(tmp_path):
    src = tmp_path / "in" / "a.png"
    write_image(src, np.full((24, 24, 3), 128, dtype=np.uint8))
    with pytest.raises(MirlError, match=r"output holds NaN or infinite values \(3 of 1,728\)"):
        restore_image(_NaNNet(), torch.rand(3, 24, 24))
    with pytest.raises(MirlError, match="NaN or infinite"):
        restore_files(_NaNNet(), [src], tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.png"))
