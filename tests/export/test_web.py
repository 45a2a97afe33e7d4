"""The web export in a real browser (Playwright driving Debian's /usr/bin/chromium, as
tests/reports/test_browser.py; never ``playwright install``), served by ``mirl serve``'s server. The page
is built around the ONNX file of tests/export/test_formats.py (``--onnx``), which is exported once.

1. The page restores a corpus photo; its PNG matches ``mirl restore`` with the same tiling
   within one 8-bit level.
2. A 1024x768 photo goes through the tiling (20 tiles of 256 px) with the progress bar.
3. No request leaves localhost, and every request is answered.
4. A file that is not an image gets a clear message; ``file://`` gets instructions.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from mirl import paths
from tests.conftest import browser_or_skip
from tests.export.test_formats import onnx_export, smoke_level

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _skip_without_tools() -> None:
    browser_or_skip()
    from mirl.export.web import runtime_missing, vendor_dir

    if runtime_missing():
        pytest.skip(f"onnxruntime-web is not vendored in {vendor_dir()} (make setup fetches it from npm)")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install -e '.[onnx]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A web export of the smoke ticket, served on a free localhost port."""
    _skip_without_tools()
    from mirl.cli import main
    from mirl.export.serve import make_server

    level = smoke_level(tmp_path_factory)
    folder = tmp_path_factory.mktemp("web") / "site"
    # the ONNX export takes half a minute here: reuse the one tests/export/test_formats.py checks against torch
    onnx = onnx_export(tmp_path_factory)
    assert main(["export", str(level), "--format", "web", "--onnx", str(onnx), "--out", str(folder)]) == 0
    server = make_server(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"folder": folder, "level": level, "url": f"http://127.0.0.1:{server.server_address[1]}/"}
    finally:
        server.shutdown()
        server.server_close()


def _open(browser: Any, url: str) -> tuple[Any, dict[str, list[str]]]:
    """A page at ``url`` that blocks and records every request not for localhost, and records
    failed responses."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    seen: dict[str, list[str]] = {"external": [], "failed": [], "errors": []}

    def guard(route: Any) -> None:
        request_url = route.request.url
        if request_url.startswith(("http://127.0.0.1:", "http://localhost:", "data:", "blob:")):
            route.continue_()
        else:
            seen["external"].append(request_url)
            route.abort()

    page.context.route("**/*", guard)
    page.on("response", lambda r: seen["failed"].append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(url)
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    assert page.evaluate("document.body.dataset.state") == "ready", page.text_content("#message")
    return page, seen


def _restore_in_page(page: Any, image: Path, tile: int | None = None, timeout_ms: int = 120_000) -> dict[str, Any]:
    if tile is not None:
        page.select_option("#tile", str(tile))
    page.set_input_files("#file", str(image))
    page.wait_for_function("() => ['done', 'error-restore'].includes(document.body.dataset.state)", timeout=timeout_ms)
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#message")
    return page.evaluate("window.mirlWeb.page.last")


def _download_png(page: Any, target: Path) -> np.ndarray:
    from PIL import Image

    with page.expect_download() as info:
        page.click("#download")
    info.value.save_as(target)
    with Image.open(target) as im:
        return np.asarray(im.convert("RGB"))


def _corpus_crop(name: str, height: int, width: int, out: Path) -> Path:
    from mirl.data.corpus import PHOTOS, load_photo
    from mirl.data.degrade import add_gaussian_noise
    from mirl.data.imageio import write_image

    photo = next(p for p in PHOTOS if p.name == name and p.path is not None)
    img = load_photo(photo)
    crop = np.ascontiguousarray(img[:height, :width])
    noisy, _ = add_gaussian_noise(crop, sigma=25, seed=0)
    write_image(out, noisy)
    return out


def test_page_restores_a_corpus_photo_like_mirl_restore(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    from mirl.cli import main
    from mirl.data.corpus import corpus_photos

    name = next((p.name for p in corpus_photos("test")), None) or pytest.skip("no corpus photo available")
    # 150 px high (not a multiple of 8: each tile is reflect-padded), 300 wide: 2 tiles of 192 px
    photo = _corpus_crop(name, 150, 300, tmp_path / f"{name}.png")
    page, seen = _open(browser, site["url"])
    last = _restore_in_page(page, photo, tile=192)
    assert last["tiles"] == 2 and (last["width"], last["height"]) == (300, 150)
    got = _download_png(page, tmp_path / "page.png")
    assert main(["restore", str(paths.model_file(site["level"])), str(photo), "--out", str(tmp_path / "cli"),
                 "--tile", "192", "--overlap", "32", "--device", "cpu", "--no-progress"]) == 0
    from PIL import Image

    with Image.open(tmp_path / "cli" / f"{name}.png") as im:
        expected = np.asarray(im.convert("RGB"))
    assert got.shape == expected.shape
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1, f"page and mirl restore differ by up to {diff.max()} levels ({(diff > 1).sum()} values)"
    assert "Restored 300×150" in page.text_content("#timing")
    assert seen["errors"] == [] and seen["external"] == []
    page.close()


def test_large_photo_goes_through_the_tiles(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    photo = tmp_path / "big.png"
    Image.fromarray(base).resize((1024, 768), Image.BICUBIC).save(photo)
    page, seen = _open(browser, site["url"])
    page.evaluate("""() => { window.progressSeen = [];
        new MutationObserver(() => window.progressSeen.push(document.getElementById('progress').value))
          .observe(document.getElementById('progress-text'), {childList: true, characterData: true, subtree: true}); }""")
    last = _restore_in_page(page, photo, timeout_ms=300_000)  # the page's default tiling: 256 px, overlap 32
    assert (last["width"], last["height"], last["tile"], last["tiles"]) == (1024, 768, 256, 20)
    assert page.evaluate("document.getElementById('progress').max") == 20
    progress = page.evaluate("window.progressSeen")
    assert len(set(progress)) >= 10 and max(progress) == 20, progress
    got = _download_png(page, tmp_path / "big_restored.png")
    assert got.shape == (768, 1024, 3)
    assert seen["errors"] == [] and seen["external"] == []
    page.close()


def test_no_request_leaves_localhost(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    import json

    page, seen = _open(browser, site["url"])
    if json.loads((site["folder"] / "ticket.json").read_text())["examples"]:
        page.click("#examples button >> nth=0")  # fetches the example photo from the folder
    else:  # no corpus photo installed: any picture does
        from PIL import Image

        Image.new("RGB", (64, 48), (120, 90, 60)).save(tmp_path / "plain.png")
        page.set_input_files("#file", str(tmp_path / "plain.png"))
    page.wait_for_function("() => document.body.dataset.state === 'done'", timeout=120_000)
    page.click("summary")  # the model card, fetched from the folder
    page.wait_for_function("() => document.getElementById('card').textContent.includes('Model card')", timeout=10_000)
    assert seen["external"] == [], f"the page tried to fetch {seen['external']}"
    assert seen["failed"] == [], f"requests that failed: {seen['failed']}"
    text = page.text_content("#facts")
    density = json.loads((site["folder"] / "ticket.json").read_text())["density"]["prunable"]
    assert f"{100 * density:.1f}% of the prunable weights" in text, text
    assert "built-in demo corpus" in text and "upstream convention" in text
    page.close()


def test_a_file_that_is_not_an_image_gets_a_message(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page, seen = _open(browser, site["url"])
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#message:not([hidden])", timeout=10_000)
    message = page.text_content("#message")
    assert '"notes.txt" is not an image' in message and "PNG, JPEG" in message
    assert page.evaluate("document.body.dataset.state") == "ready"
    page.close()


def test_file_protocol_shows_how_to_open_the_page(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page()
    page.goto((site["folder"] / "index.html").as_uri())
    banner = page.locator("#fileproto")
    assert banner.is_visible()
    assert "python -m http.server" in banner.text_content() and "mirl serve" in banner.text_content()
    page.close()


def _page_info(tile: int, overlap: int) -> dict[str, Any]:
    """A ticket.json as ``mirl.export.formats.web_info`` writes it (before the folder builder's parts)."""
    return {"format": "mirl.web", "version": 1, "title": "t", "preset": "tiny", "impl": "fast", "parameters": 1000,
            "model": {"dtype": "float32", "input": "image", "output": "restored", "opset": 18},
            "density": {"prunable": 0.1, "trainable": 0.2, "nonzero_prunable": 10, "prunable_total": 100, "rule": "upstream", "mask": "m"},
            "tiling": {"tile": tile, "overlap": overlap, "multiple": 8}, "restore_command": "mirl restore ...", "metrics": None,
            "provenance": {"run": None, "settings_hash": None, "level": None, "checkpoint": "t.pt", "mirl_version": "0", "created": "now"}}


def test_the_export_writes_no_page_that_would_refuse_its_ticket(tmp_path: Path) -> None:
    """build_web_folder checks the record it writes as the page checks it: a sound one passes, with
    the SHA-256 of the model the folder holds; ``tiling.overlap = -8`` (black seams in the page) is
    refused before anything is written."""
    import gzip
    import hashlib

    from mirl.errors import MirlError
    from mirl.export.web import build_web_folder, read_record, record_problem, runtime_missing

    if runtime_missing():
        pytest.skip("onnxruntime-web is not vendored (make setup fetches it from npm)")
    record = build_web_folder(tmp_path / "site", b"a graph", _page_info(256, 32), examples=False, compact=False)
    assert record_problem(record) == "" and read_record(tmp_path / "site") == record
    assert record["model"]["sha256"] == hashlib.sha256(gzip.decompress((tmp_path / "site" / "model.onnx.gz").read_bytes())).hexdigest()
    with pytest.raises(MirlError, match=r"bad: ticket.json: tiling.overlap is -8, it must be a whole number of 0 or more; the page would refuse"):
        build_web_folder(tmp_path / "bad", b"a graph", _page_info(256, -8), examples=False, compact=False)
    assert not (tmp_path / "bad").exists() and [p.name for p in tmp_path.iterdir()] == ["site"]
