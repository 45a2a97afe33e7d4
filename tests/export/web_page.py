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


DAMAGE: tuple[str, ...] = ("nan", "random", "zeros")


def damaged_site(site: Path, out: Path, kind: str, rehash: bool = False) -> Path:
    """A copy of the web export ``site`` at ``out`` whose float16 weight values are damaged:
    ``nan`` sets 1% of them to NaN, ``random`` replaces them with random finite values (normal, sd 1),
    ``zeros`` sets them all to zero. ``rehash`` records the damaged file's size and SHA-256 in
    ``ticket.json`` too (an export of a broken network, rather than a file damaged after export)."""
    import gzip
    import hashlib
    import json
    import shutil

    from mirl.export.compact import _planes, _unplanes, read_header

    shutil.copytree(site, out)
    blob = gzip.decompress((out / "weights.bin.gz").read_bytes())
    header, start = read_header(blob)
    first, count = start + header["counts"]["mask_bytes"], header["counts"]["float16"]
    values = _unplanes(blob[first : first + 2 * count], count, np.float16).copy()
    rng = np.random.default_rng(0)
    if kind == "nan":
        values[rng.choice(count, max(1, count // 100), replace=False)] = np.nan
    elif kind == "random":
        values = rng.standard_normal(count).astype(np.float16)
    elif kind == "zeros":
        values[:] = 0
    else:
        raise ValueError(kind)
    blob = blob[:first] + _planes(values) + blob[first + 2 * count :]
    packed = gzip.compress(blob, mtime=0)
    (out / "weights.bin.gz").write_bytes(packed)
    if rehash:
        record = json.loads((out / "ticket.json").read_text())
        weights = record["model"]["weights"]
        weights.update({"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob), "gzip_bytes": len(packed)})
        record["model"]["sent_bytes"] = record["model"]["gzip_bytes"] + len(packed)
        (out / "ticket.json").write_text(json.dumps(record, indent=2))
    return out


def edit_ticket(folder: Path, path: str, value: Any) -> None:
    """Set the field ``path`` (dotted) of ``folder``'s ``ticket.json`` to ``value``."""
    import json

    record = json.loads((folder / "ticket.json").read_text())
    *parents, last = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    target[last] = value
    (folder / "ticket.json").write_text(json.dumps(record, indent=2))


def page_outcome(page: Any, url: str, photo: Path) -> dict[str, Any]:
    """Load the page at ``url``; when it gets ready, restore ``photo`` as one whole image. Returns
    the final state, the message and status shown, and whether a download is offered."""
    page.goto(url)
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    if page.evaluate("document.body.dataset.state") == "ready":
        page.select_option("#tile", "0")
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => ['done', 'error-restore'].includes(document.body.dataset.state)", timeout=120_000)
    return {"state": page.evaluate("document.body.dataset.state"), "message": page.text_content("#message"),
            "status": page.text_content("#status"), "download": page.is_visible("#download"),
            "result": page.is_visible("#result")}
