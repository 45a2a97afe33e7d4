"""Restore a photo with an exported web page in Chromium (Playwright), as a reader would: serve
the folder, wait for the model, pick a tile size, give the photo, download the PNG. Shared by the
browser tests of the compact page and of the refill (narrowed) page."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np


def noisy_photo(path: Path, width: int = 300, height: int = 150) -> Path:
    """A smooth random photo with Gaussian noise, written as PNG."""
    from PIL import Image

    from mirl.data.imageio import write_image

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (height // 10, width // 10, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(base).resize((width, height), Image.BICUBIC), np.float32)
    write_image(path, np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8))
    return path


def restore_in_page(browser: Any, folder: Path, photo: Path, out: Path, tile: int = 192) -> dict[str, Any]:
    """Restore ``photo`` with the page in ``folder``; save the page's PNG as ``out``. Returns the
    page's facts text, what its first line calls the ticket, its weights record, its tile count
    and the page errors."""
    from mirl.export.serve import make_server

    server = make_server(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
        assert page.evaluate("document.body.dataset.state") == "ready", page.text_content("#message")
        facts, weights = page.text_content("#facts"), page.evaluate("window.mirlWeb.page.weights")
        kind = page.text_content("#kind")
        page.select_option("#tile", str(tile))
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => ['done', 'error-restore'].includes(document.body.dataset.state)", timeout=300_000)
        assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#message")
        tiles = page.evaluate("window.mirlWeb.page.last.tiles")
        with page.expect_download() as info:
            page.click("#download")
        info.value.save_as(out)
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    return {"facts": facts, "kind": kind, "weights": weights, "tiles": tiles, "errors": errors}


def max_level_difference(a: Path, b: Path) -> int:
    """The largest difference in 8-bit levels between two RGB images of one size."""
    from PIL import Image

    with Image.open(a) as x, Image.open(b) as y:
        got, expected = np.asarray(x.convert("RGB")).astype(int), np.asarray(y.convert("RGB")).astype(int)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    return int(np.abs(got - expected).max())
