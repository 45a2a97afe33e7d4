"""Export and the browser: ONNX sizes, page weight, time to first restored image, ms per tile.

For each case (a network and a mask) it exports the ONNX graph with ``mirl.export`` (as
``mirl export --format onnx|web`` does), measures

* the ``.onnx`` size raw and gzipped, float32 and float16 weights;
* torch and onnxruntime CPU time for one 256x256 tile (same weights, same input);
* the web folder: total bytes, bytes sent by a server that gzips (files already gzipped count as
  they are), time from navigation to the model being ready, time to the first restored image
  (the page's first example photo, 320x240: 2 tiles of 256 px), and ms per 256x256 tile in
  headless Chromium (Debian's /usr/bin/chromium), with 2 threads (``mirl serve``'s cross-origin
  isolation) and with 1 (a plain static host).

Cases: ``tiny-ticket`` (the quickstart study's network at its last density, 9% of the prunable
weights), ``small-ticket`` (the earlier quickstart's network at 6.25%), ``paper-dense`` and ``paper-ticket`` (15 rounds of 20%: 3.5% of
the prunable weights, about 10% of all trainable parameters). Weights are seeded random draws
pruned one-shot by magnitude: speed does not depend on their values, and the compressed size
depends on how many are zero. ``--source CASE=PATH`` uses a real level folder or checkpoint.

``export_s`` is the ONNX export (0 when ``--onnx-cache`` had the file). Every time depends on what
else the machine runs: each row records the load average before and after.

Example:
    python -m benchmarks.export_web --json /tmp/export_web.json --onnx-cache /tmp/onnx_cache
    python -m benchmarks.export_web --no-browser --threads 1 --onnx-cache /tmp/onnx_cache
    python -m benchmarks.export_web --cases small-ticket --source small-ticket=runs/quickstart_1a2b3c4d
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from benchmarks.common import format_table

CASES: dict[str, tuple[str, int]] = {  # name -> (preset, rounds of one-shot pruning; 0 = dense)
    "tiny-ticket": ("tiny", 2),  # the quickstart study's network and last density (2 rounds of 70%)
    "small-ticket": ("small", 4),
    "paper-dense": ("paper", 0),
    "paper-ticket": ("paper", 15),
}
FRACTIONS = {"tiny": 0.7, "small": 0.5, "paper": 0.2}  # per round: the quickstart now prunes 70% (tiny), before 50% (small); the paper 20%
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _ticket(case: str, source: str | None) -> Any:
    """A :class:`mirl.export.Ticket` for the case: a real source, or seeded weights pruned one-shot."""
    from mirl.export.ticket import Ticket, load_ticket
    from mirl.models import build_model
    from mirl.pruning.controls import one_shot_fraction
    from mirl.pruning.magnitude import magnitude_prune
    from mirl.pruning.mask import apply_mask, full_mask
    from mirl.pruning.rules import density_summary

    if source:
        return load_ticket(source)
    preset, rounds = CASES[case]
    torch.manual_seed(0)
    model = build_model(preset).eval()
    state = model.state_dict()
    mask = magnitude_prune(state, None, one_shot_fraction(FRACTIONS[preset], rounds)) if rounds else full_mask(state)
    apply_mask(model, mask)
    meta = {"preset": preset, "config": model.config.to_dict(), "format": "synthetic", "metadata": {}}
    ticket = Ticket(model=model, meta=meta, checkpoint=Path(f"{case}.pt"), mask=mask, mask_source=f"one-shot magnitude, {rounds} rounds")
    ticket.densities = density_summary(model.state_dict())
    return ticket


def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _served_bytes(folder: Path) -> int:
    """Bytes a server that gzips on the fly sends: .gz files as they are, the rest gzipped."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            total += len(data) if path.suffix == ".gz" else len(gzip.compress(data, 6))
    return total


def _browser_numbers(folder: Path, isolation: bool, tiles: int) -> dict[str, float]:
    """Page timings in headless Chromium: model ready, first restored image, ms per 256 tile."""
    from playwright.sync_api import sync_playwright
    from PIL import Image

    from mirl.export.serve import make_server

    server = make_server(folder, port=0, isolation=isolation)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    tile_png = folder.parent / "tile256.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tile_png)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=600_000)
            ready = time.perf_counter() - start
            page.click("#examples button >> nth=0")
            page.wait_for_function("() => document.body.dataset.state === 'done'", timeout=1_200_000)
            first = time.perf_counter() - start
            threads = page.evaluate("window.mirlWeb.page.threads")
            per_tile = []
            for _ in range(tiles):
                page.set_input_files("#file", str(tile_png))
                page.wait_for_function("() => document.body.dataset.state === 'restoring'", timeout=60_000)
                page.wait_for_function("() => document.body.dataset.state === 'done'", timeout=1_200_000)
                per_tile.append(page.evaluate("window.mirlWeb.page.last.perTileMs"))
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"threads": threads, "ready_s": ready, "first_image_s": first, "tile_ms": statistics.median(per_tile)}


def run(cases: Sequence[str], sources: dict[str, str], tiles: int = 3, browser: bool = True,
        threads: int = 2, cache: Path | None = None) -> list[dict[str, Any]]:
    """One row per case; see the module docstring for the columns. torch and onnxruntime run on
    ``threads`` threads each; ``cache`` keeps the exported ONNX files between runs."""
    import onnx

    from mirl.export.formats import onnx_metadata, web_info
    from mirl.export.onnx_model import inference_session, onnx_bytes, to_float16_weights
    from mirl.export.web import build_web_folder, folder_size

    rows = []
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    for case in cases:
        ticket = _ticket(case, sources.get(case))
        paper = ticket.preset == "paper"
        cached = cache / f"{case}.onnx" if cache is not None and not sources.get(case) else None
        start = time.perf_counter()
        if cached is not None and cached.is_file():
            data = cached.read_bytes()
        else:
            data = onnx_bytes(ticket.model, "float32", onnx_metadata(ticket, "fast"))
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(data)
        export_s = time.perf_counter() - start
        half = to_float16_weights(onnx.load_from_string(data)).SerializeToString()
        repeats = 3 if paper else 5
        with torch.inference_mode():
            torch_ms = _median_ms(lambda: ticket.model(x), repeats)
        session = inference_session(data, threads=threads)
        ort_ms = _median_ms(lambda: session.run(None, {"image": x.numpy()}), repeats)
        row: dict[str, Any] = {
            "case": case, "preset": ticket.preset, "load_avg_1m": round(os.getloadavg()[0], 2),
            "density_prunable": round(ticket.densities["density_prunable"], 4),
            "density_trainable": round(ticket.densities["density_trainable"], 4),
            "export_s": round(export_s, 1), "cpu_threads": threads,
            "onnx_mb": round(len(data) / 1e6, 2), "onnx_gz_mb": round(len(gzip.compress(data, 9)) / 1e6, 2),
            "fp16_mb": round(len(half) / 1e6, 2), "fp16_gz_mb": round(len(gzip.compress(half, 9)) / 1e6, 2),
            "torch_cpu_ms": round(torch_ms), "ort_cpu_ms": round(ort_ms),
        }
        if browser:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "site"
                build_web_folder(folder, data, web_info(ticket, "float32", "fast", 256, 32), "# card\n")
                row["page_mb"] = round(folder_size(folder) / 1e6, 2)
                row["page_served_mb"] = round(_served_bytes(folder) / 1e6, 2)
                for isolation in ((True,) if paper else (True, False)):
                    numbers = _browser_numbers(folder, isolation, 1 if paper else tiles)
                    key = f"{numbers['threads']}t"
                    row[f"ready_s_{key}"] = round(numbers["ready_s"], 1)
                    row[f"first_image_s_{key}"] = round(numbers["first_image_s"], 1)
                    row[f"wasm_tile_ms_{key}"] = round(numbers["tile_ms"])
        row["load_avg_1m_end"] = round(os.getloadavg()[0], 2)  # other processes on the machine skew every time
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--source", action="append", default=[], metavar="CASE=PATH", help="a real level folder or checkpoint for a case")
    parser.add_argument("--tiles", type=int, default=3, help="256x256 restorations timed in the browser (paper: 1)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium measurements")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and onnxruntime CPU threads (default: all cores)")
    parser.add_argument("--onnx-cache", default=None, help="folder that keeps the exported ONNX files between runs")
    parser.add_argument("--json", default=None, help="write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sources = dict(item.split("=", 1) for item in args.source)
    cache = Path(args.onnx_cache) if args.onnx_cache else None
    rows = run(args.cases, sources, args.tiles, browser=not args.no_browser, threads=args.threads, cache=cache)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
