"""mirl.data.imageio: reading and writing images, mode conversion notes, errors that name the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mirl.data.imageio import (IMAGE_EXTENSIONS, BadImageError, image_size, is_image_name, list_images, read_alpha,
                               read_image, to_tensor, to_uint8, write_image)
from mirl.errors import MirlError


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse) if mse else float("inf")


def png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png_round_trip_is_exact_and_needs_no_notes(tmp_path: Path) -> None:
    img = rgb(32, 48)
    write_image(tmp_path / "a.png", img)
    back, notes = read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and np.array_equal(back, img) and notes == []
    assert image_size(tmp_path / "a.png") == (48, 32)  # (width, height)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # atomic write leaves no temporary file


def test_jpeg_round_trip_is_close_and_quality_matters(tmp_path: Path) -> None:
    img = np.asarray(Image.fromarray(rgb(8, 8)).resize((64, 64), Image.BILINEAR))  # smooth enough for JPEG
    write_image(tmp_path / "hi.jpg", img)
    write_image(tmp_path / "lo.JPEG", img, quality=10)
    hi, lo = read_image(tmp_path / "hi.jpg")[0], read_image(tmp_path / "lo.JPEG")[0]
    assert hi.shape == lo.shape == (64, 64, 3)
    assert psnr(hi, img) > 30 and psnr(hi, img) > psnr(lo, img)
    assert (tmp_path / "lo.JPEG").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".webp"])
def test_other_formats_round_trip_losslessly(tmp_path: Path, suffix: str) -> None:
    img = rgb(16, 24, 3)
    path = tmp_path / f"x{suffix}"
    if suffix == ".webp":
        Image.fromarray(img).save(path, lossless=True)  # write_image's WebP is lossy by default
    else:
        write_image(path, img)
    assert np.array_equal(read_image(path)[0], img)


def test_grayscale_is_read_as_three_equal_channels_with_a_note(tmp_path: Path) -> None:
    gray = rgb(20, 30)[:, :, 0]
    write_image(tmp_path / "g.png", gray)
    assert Image.open(tmp_path / "g.png").mode == "L"
    back, notes = read_image(tmp_path / "g.png")
    assert back.shape == (20, 30, 3) and all(np.array_equal(back[:, :, c], gray) for c in range(3))
    assert any("grayscale" in n for n in notes)


def test_rgba_drops_alpha_in_read_image_and_read_alpha_returns_it(tmp_path: Path) -> None:
    rgba = np.random.default_rng(1).integers(0, 256, size=(18, 22, 4), dtype=np.uint8)
    write_image(tmp_path / "a.png", rgba)
    back, notes = read_image(tmp_path / "a.png")
    assert np.array_equal(back, rgba[:, :, :3]) and any("alpha" in n for n in notes)
    assert np.array_equal(read_alpha(tmp_path / "a.png"), rgba[:, :, 3])
    write_image(tmp_path / "b.png", rgba[:, :, :3])
    assert read_alpha(tmp_path / "b.png") is None


def test_16bit_grayscale_is_scaled_to_8_bits(tmp_path: Path) -> None:
    deep = np.random.default_rng(2).integers(0, 65536, size=(12, 13), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    back, notes = read_image(tmp_path / "d.png")
    expected = np.round(deep.astype(np.float64) / 65535 * 255).astype(np.uint8)
    assert np.array_equal(back[:, :, 0], expected) and np.array_equal(back[:, :, 2], expected)
    assert any("16-bit" in n for n in notes)


def test_16bit_rgb_keeps_the_picture_within_one_level(tmp_path: Path) -> None:
    deep = np.random.default_rng(3).integers(0, 65536, size=(9, 11, 3)).astype(np.uint16)
    png16_rgb(tmp_path / "d.png", deep)
    back, notes = read_image(tmp_path / "d.png")
    scaled = deep.astype(np.float64) / 65535 * 255
    assert back.shape == (9, 11, 3) and np.abs(back - scaled).max() <= 1.0
    assert any("16-bit" in n for n in notes)


def test_palette_with_transparency_has_alpha(tmp_path: Path) -> None:
    im = Image.fromarray(rgb(10, 10)).convert("P")
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    assert read_alpha(tmp_path / "p.png") is not None
    assert any("alpha" in n for n in read_image(tmp_path / "p.png")[1])


@pytest.mark.parametrize("make,reason", [
    (lambda p: None, "file not found"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("hello, not a picture"), "not a readable image"),
])
def test_unreadable_files_name_the_file_and_the_problem(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "bad_input.png"
    make(path)
    with pytest.raises(BadImageError, match=f"bad_input.png: {reason}") as info:
        read_image(path)
    assert info.value.path == str(path) and reason in info.value.reason
    with pytest.raises(BadImageError, match="bad_input.png"):
        image_size(path)


def test_corrupt_pixel_data_says_what_to_do(tmp_path: Path) -> None:
    write_image(tmp_path / "broken.png", rgb(64, 64))
    data = (tmp_path / "broken.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(BadImageError, match=r"broken\.png: corrupt or truncated image .*pass --skip-bad"):
        read_image(tmp_path / "broken.png")


def test_max_pixels_refuses_with_the_flag_to_raise_it(tmp_path: Path) -> None:
    write_image(tmp_path / "big.png", rgb(40, 50))
    with pytest.raises(BadImageError, match=r"big\.png: 50x40 is 2,000 pixels.*--max-pixels 2000"):
        read_image(tmp_path / "big.png", max_pixels=1999)
    assert read_image(tmp_path / "big.png", max_pixels=2000)[0].shape == (40, 50, 3)
    assert read_image(tmp_path / "big.png", max_pixels=None)[0].shape == (40, 50, 3)


def test_write_image_refuses_non_uint8_naming_the_target(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expects uint8, got float32 for .*out\.png"):
        write_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.float32))
    assert not (tmp_path / "out.png").exists()


def test_is_image_name_is_case_insensitive() -> None:
    assert all(is_image_name(f"photo{ext.upper()}") for ext in IMAGE_EXTENSIONS)
    assert not is_image_name("notes.txt") and not is_image_name("png")


def test_list_images_sorted_recursive_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    for rel in ("b.png", "a.JPG", "sub/c.tif", ".hidden.png"):
        write_image(tmp_path / rel, rgb(4, 4))
    (tmp_path / "readme.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.JPG", "b.png", "sub/c.tif"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.JPG", "b.png"]


def test_list_images_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(MirlError, match=r"missing_dir: folder not found"):
        list_images(tmp_path / "missing_dir")
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("x")
    with pytest.raises(MirlError, match=r"only_text: no images found"):
        list_images(tmp_path / "only_text")


def test_to_tensor_and_to_uint8_round_trip() -> None:
    img = rgb(5, 7)
    t = to_tensor(img)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32 and float(t.max()) <= 1.0
    assert torch.allclose(t[1], torch.from_numpy(img[:, :, 1]).float() / 255)
    assert np.array_equal(to_uint8(t), img) and np.array_equal(to_uint8(t[None]), img)
    clipped = to_uint8(torch.tensor([[[-0.5]], [[1.7]], [[0.5]]]))
    assert clipped.tolist() == [[[0, 255, 128]]]
