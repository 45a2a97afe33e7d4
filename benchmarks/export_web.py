"""What a ticket costs where it runs: ONNX sizes, bytes as sent, multiply-accumulates, and ms per
256x256 tile in torch, native onnxruntime (1 and 2 threads) and headless Chromium, for the dense
network, the unstructured ticket and the refilled (structured, narrowed) ticket, as ratios against
the dense network of the same preset measured in the same process run.

For each case (a network and a mask) it exports the ONNX graphs with ``mirl.export`` as
``mirl export --format onnx`` and ``--format web`` write them (a ``refill`` ticket's graph is
narrowed; the web page's graph writes the channel norm as reductions) and measures

* the ``.onnx`` size raw and gzipped, float32 and float16 weights, and the weights it stores;
* multiply-accumulates per 256x256 tile (torch's ``FlopCounterMode``; zeros count: they run);
* torch CPU ms per tile; native onnxruntime ms per tile (the ``--format onnx`` graph) with 1 and 2 threads, every case's
  session taking turns run by run (``mirl.export.speed.tile_times``) so all see the same load;
* the model's bytes as sent (the gzipped files the page fetches, as ``ticket.json`` records them):
  the compact page (graph + bitmasks and float16 values, ``mirl.export.compact``) against the same
  network stored dense (its whole ONNX file gzipped), and against the dense network of the preset;
* the web folder: total bytes, bytes sent by a server that gzips (files already gzipped count as
  they are), time from navigation to the model being ready (inflating its weights included,
  ``inflate_ms``), time to the first restored image (the page's first example photo, 320x240:
  2 tiles of 256 px), and ms per 256x256 tile in headless Chromium (Debian's /usr/bin/chromium),
  with 2 threads (``mirl serve``'s cross-origin isolation) and with 1 (a plain static host).

Every pruned row gets ``<measure>_vs_dense``: its value over the dense row of the same preset
(times: the dense one over its own, a speed-up; sizes and operations: its own over the dense).

Cases (seeded random weights pruned one-shot by layer-wise magnitude, then refilled for
``*-refill``; speed does not depend on the weights' values, the compressed size on how many are
zero): ``tiny-dense``, ``tiny-ticket`` and ``tiny-refill`` (the quickstart's network at its last
density, 9% of the prunable weights), ``small-ticket``, ``paper-dense``, ``paper-ticket`` (15 rounds
of 20%: 3.5%) and ``paper-refill`` (refilled at 10%). ``--study DIR`` takes ``tiny-dense``,
``tiny-ticket`` and ``tiny-refill`` from a real study instead (replicate 0: level 0, and main and
refill of the last level with a finished refill branch) and adds the paired PSNR difference
refill - main per level on the study's test set, with its 95% interval and verdict. It also offers
the practitioner's alternatives of that level (Liu et al. 2019), when the study trained them:
``tiny-dense-same-size`` (a dense network of the ticket's size, ``--set branches=dense_same_size``)
and ``tiny-refill-scratch`` (the refill ticket's narrowed shapes trained from fresh weights,
``refill_scratch``). Every row from a real study carries ``gain_db``: its mean PSNR over the test
tasks minus the degraded input's, and ``gain_n``, the test images it rests on.
``--source CASE=PATH`` uses a real level folder or checkpoint for one case.

``export_s`` is the ONNX export (0 when ``--onnx-cache`` had the file). Every time depends on what
else the machine runs: each row records the load average before and after.

Example:
    python -m benchmarks.export_web --study runs/quickstart_5520eaf8 --cases tiny-dense tiny-ticket tiny-refill --json /tmp/w.json
    python -m benchmarks.export_web --cases paper-dense paper-refill --onnx-cache /tmp/onnx_cache
    python -m benchmarks.export_web --no-browser --cases tiny-dense tiny-ticket tiny-refill
    python -m benchmarks.export_web --study runs/quickstart_6bcc40d6 --cases tiny-dense tiny-refill tiny-dense-same-size tiny-refill-scratch
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

CASES: dict[str, tuple[str, float | None, bool]] = {  # name -> (preset, one-shot density (None: dense), refilled)
    "tiny-dense": ("tiny", None, False),
    "tiny-ticket": ("tiny", 0.09, False),  # the quickstart's last density (2 rounds of 70%)
    "tiny-refill": ("tiny", 0.09, True),
    "small-ticket": ("small", 0.0625, False),
    "paper-dense": ("paper", None, False),
    "paper-ticket": ("paper", 0.8 ** 15, False),  # the paper's 15 rounds of 20%
    "paper-refill": ("paper", 0.10, True),
}
STUDY_CASES: dict[str, tuple[str, str]] = {  # name -> (preset it stands beside, branch of a real study's level)
    "tiny-dense-same-size": ("tiny", "dense_same_size"),
    "tiny-refill-scratch": ("tiny", "refill_scratch"),
}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TIMES = ("torch_cpu_ms", "ort_ms_1t", "ort_ms_2t", "wasm_tile_ms_2t", "wasm_tile_ms_1t")
SIZES = ("onnx_weights", "macs", "model_sent_kb")


def _ticket(case: str, source: str | None) -> Any:
    """A :class:`mirl.export.Ticket` for the case: a real source, or seeded weights pruned one-shot
    by layer-wise magnitude (and refilled: :func:`mirl.branches.refill.refill_mask`)."""
    from mirl.branches.refill import refill_mask
    from mirl.export.ticket import Ticket, load_ticket
    from mirl.models import build_model
    from mirl.pruning.magnitude import magnitude_prune
    from mirl.pruning.mask import apply_mask, full_mask
    from mirl.pruning.rules import density_summary

    if source:
        return load_ticket(source)
    if case in STUDY_CASES:
        raise SystemExit(f"{case} exists only in a real study: give --study DIR with a finished {STUDY_CASES[case][1]} branch "
                         f"(mirl lottery --set branches=refill,{STUDY_CASES[case][1]})")
    preset, density, refilled = CASES[case]
    torch.manual_seed(0)
    model = build_model(preset).eval()
    state, unused = model.state_dict(), model.unused_in_forward
    mask = full_mask(state, "upstream", unused)
    if density is not None:
        mask = magnitude_prune(state, mask, 1 - density, "layerwise", "upstream", unused)
    if refilled:
        mask = refill_mask(mask, state, model.config)
    apply_mask(model, mask)
    meta = {"preset": preset, "config": model.config.to_dict(), "format": "synthetic",
            "metadata": {"branch": "refill"} if refilled else {}}
    how = "dense" if density is None else f"one-shot layer-wise magnitude to {density:.1%}" + (", refilled" if refilled else "")
    ticket = Ticket(model=model, meta=meta, checkpoint=Path(f"{case}.pt"), mask=mask, mask_source=how, narrow=refilled)
    ticket.densities = density_summary(model.state_dict())
    return ticket


def study_sources(study: str | os.PathLike) -> dict[str, str]:
    """``tiny-dense``, ``tiny-ticket`` and ``tiny-refill`` of a real study: replicate 0's level 0, and
    main and refill of its last level whose refill branch is finished; and that level's
    ``dense_same_size`` and ``refill_scratch`` branches where they are finished.

    Example:
        >>> sorted(study_sources("runs/quickstart_6bcc40d6"))  # doctest: +SKIP
        ['tiny-dense', 'tiny-dense-same-size', 'tiny-refill', 'tiny-refill-scratch', 'tiny-ticket']
    """
    from mirl import paths
    replicate = paths.replicate_dir(Path(study), 0)
    levels = [k for k in paths.level_numbers(replicate) if paths.is_finished(paths.level_dir(replicate, k, "refill"))]
    if not levels:
        raise SystemExit(f"{study}: no finished refill branch in replicate 0; run the study with --set branches=refill")
    level = max(levels)
    sources = {"tiny-dense": str(paths.level_dir(replicate, 0)), "tiny-ticket": str(paths.level_dir(replicate, level)),
               "tiny-refill": str(paths.level_dir(replicate, level, "refill"))}
    for case, (_, branch) in STUDY_CASES.items():
        node = paths.level_dir(replicate, level, branch)
        if paths.is_finished(node):
            sources[case] = str(node)
    return sources


def gain_over_input(metrics: dict[str, Any] | None) -> tuple[float | None, int]:
    """A level's mean PSNR over its test tasks minus the degraded input's (dB), and the test images
    it rests on (``None, 0`` without scores).

    Example:
        >>> gain_over_input({"tasks": {"derain": {"psnr": 30.0, "input_psnr": 28.5, "images": 20}}})
        (1.5, 20)
    """
    tasks = (metrics or {}).get("tasks") or {}
    if not tasks:
        return None, 0
    gain = statistics.fmean(t["psnr"] - t["input_psnr"] for t in tasks.values())
    return round(gain, 2), sum(int(t["images"]) for t in tasks.values())


def refill_against_main(study: str | os.PathLike) -> list[dict[str, Any]]:
    """Per pruned level: the PSNR of refill minus main's, paired on seeds and test images, over the
    mean of the tasks, with its 95% interval, n and verdict (``mirl.analysis.evidence``)."""
    from mirl.analysis.evidence import MEAN, paired_differences, scores_table, study_variants
    from mirl.analysis.stats import Interval, verdict

    variants = study_variants(study, ["refill"])
    differences = paired_differences(scores_table(variants), "ticket")
    rows = []
    for row in differences[differences["task"] == MEAN].itertuples():
        iv = Interval(-row.mean, -row.high, -row.low, row.images, row.replicates, row.method)  # refill - main
        rows.append({"level": int(row.level), "remaining_prunable": round(float(row.remaining_prunable), 4),
                     "refill_minus_main_db": iv.format("dB", signed=True), "n": iv.sample_size, "verdict": verdict(iv)})
    return rows


def _stored_weights(data: bytes) -> int:
    import onnx

    return sum(int(np.prod(t.dims)) for t in onnx.load_from_string(data).graph.initializer)


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
            weights = page.evaluate("window.mirlWeb.page.weights")
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
    return {"threads": threads, "ready_s": ready, "first_image_s": first, "tile_ms": statistics.median(per_tile),
            "inflate_ms": weights["ms"] if weights else None}


def run(cases: Sequence[str], sources: dict[str, str], tiles: int = 3, browser: bool = True,
        cache: Path | None = None) -> list[dict[str, Any]]:
    """One row per case; see the module docstring for the columns. ``cache`` keeps the exported
    ONNX files of the seeded cases between runs."""
    import onnx

    from mirl.export.formats import model_for_export, web_info
    from mirl.export.onnx_model import to_float16_weights
    from mirl.export.speed import multiply_accumulates, tile_times
    from mirl.export.web import build_web_folder, folder_size

    rows, graphs = [], {}
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    for case in cases:
        ticket = _ticket(case, sources.get(case))
        preset = CASES[case][0] if case in CASES else STUDY_CASES[case][0]  # a dense network of the ticket's size is a custom width of it
        paper = preset == "paper"
        model = model_for_export(ticket, "fast")  # narrowed for a refill ticket, as mirl export writes it
        start = time.perf_counter()
        data = _graph(model, ticket, cache / f"{case}.onnx" if cache is not None and not sources.get(case) else None)
        export_s = time.perf_counter() - start
        web_data = _graph(model, ticket, cache / f"{case}.web.onnx" if cache is not None and not sources.get(case) else None,
                          browser=True)  # the page's graph, as mirl export --format web writes it
        graphs[case] = data
        half = to_float16_weights(onnx.load_from_string(data)).SerializeToString()
        with torch.inference_mode():
            torch_ms = _median_ms(lambda: model(x), 3 if paper else 5)
        row: dict[str, Any] = {
            "case": case, "preset": preset, "narrowed": ticket.narrow, "load_avg_1m": round(os.getloadavg()[0], 2),
            "density_prunable": round(ticket.densities["density_prunable"], 4),
            "density_trainable": round(ticket.densities["density_trainable"], 4),
            "parameters": int(ticket.densities["parameters"]), "onnx_weights": _stored_weights(data),
            "macs": multiply_accumulates(model), "export_s": round(export_s, 1),
            "onnx_mb": round(len(data) / 1e6, 2), "onnx_gz_mb": round(len(gzip.compress(data, 9)) / 1e6, 2),
            "fp16_mb": round(len(half) / 1e6, 2), "fp16_gz_mb": round(len(gzip.compress(half, 9)) / 1e6, 2),
            "torch_cpu_ms": round(torch_ms),
        }
        if sources.get(case):
            row["gain_db"], row["gain_n"] = gain_over_input(ticket.metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "site"
            record = build_web_folder(folder, web_data, web_info(ticket, "float32", "fast", 256, 32), "# card\n")["model"]
            weights = record["weights"] or {}
            row.update({"model_sent_kb": round(record["sent_bytes"] / 1e3, 1),  # the page's model, as sent
                        "stored_dense_sent_kb": round(record["dense"]["sent_bytes"] / 1e3, 1),  # its whole ONNX file gzipped
                        "values": weights.get("values"), "probe_max_diff": weights.get("probe_max_difference"),
                        "page_mb": round(folder_size(folder) / 1e6, 2), "page_served_mb": round(_served_bytes(folder) / 1e6, 2)})
            if browser:
                for isolation in ((True,) if paper else (True, False)):
                    numbers = _browser_numbers(folder, isolation, 1 if paper else tiles)
                    key = f"{numbers['threads']}t"
                    row[f"ready_s_{key}"] = round(numbers["ready_s"], 1)
                    row[f"inflate_ms_{key}"] = round(numbers["inflate_ms"]) if numbers["inflate_ms"] is not None else None
                    row[f"first_image_s_{key}"] = round(numbers["first_image_s"], 1)
                    row[f"wasm_tile_ms_{key}"] = round(numbers["tile_ms"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    for threads in (1, 2):  # every case's session in turn, run by run, per preset
        for preset in dict.fromkeys(r["preset"] for r in rows):
            named = {r["case"]: graphs[r["case"]] for r in rows if r["preset"] == preset}
            times = tile_times(named, threads=threads, repeats=3 if preset == "paper" else 7)
            for row in rows:
                if row["case"] in times:
                    row[f"ort_ms_{threads}t"] = round(statistics.median(times[row["case"]]), 1)
    for row in rows:
        row["load_avg_1m_end"] = round(os.getloadavg()[0], 2)  # other processes on the machine skew every time
    against_dense(rows)
    return rows


def _graph(model: torch.nn.Module, ticket: Any, cached: Path | None, browser: bool = False) -> bytes:
    """The ONNX bytes of ``model`` (native form, or the web page's with ``browser``), from
    ``cached`` when it exists."""
    from mirl.export.formats import onnx_metadata
    from mirl.export.onnx_model import onnx_bytes

    if cached is not None and cached.is_file():
        return cached.read_bytes()
    data = onnx_bytes(model, "float32", onnx_metadata(ticket, "fast"), browser=browser)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return data


def against_dense(rows: list[dict[str, Any]]) -> None:
    """Add ``<measure>_vs_dense`` to each row but the ``<preset>-dense`` one: times as the dense row's
    over its own (a speed-up), sizes and operations as its own over the dense row's (same preset,
    same run; a dense network of the ticket's size is dense too, and compared with the full one).

    Example:
        >>> rows = [{"case": "tiny-dense", "preset": "tiny", "macs": 10, "torch_cpu_ms": 8.0, "model_sent_kb": 4.0, "stored_dense_sent_kb": 5.0},
        ...         {"case": "tiny-dense-same-size", "preset": "tiny", "macs": 2, "torch_cpu_ms": 2.0, "model_sent_kb": 1.0}]
        >>> against_dense(rows); rows[1]["macs_vs_dense"], rows[1]["torch_cpu_ms_vs_dense"]
        (0.2, 4.0)
    """
    dense = {r["preset"]: r for r in rows if r["case"] == f"{r['preset']}-dense"}
    for row in rows:
        base = dense.get(row["preset"])
        if base is None or row is base:
            continue
        for key in TIMES:
            if row.get(key) and base.get(key):
                row[f"{key}_vs_dense"] = round(base[key] / row[key], 2)
        for key in SIZES:
            if row.get(key) and base.get(key):
                row[f"{key}_vs_dense"] = round(row[key] / base[key], 3)
        row["model_sent_vs_dense_stored"] = round(row["model_sent_kb"] / base["stored_dense_sent_kb"], 3)


SUMMARY = ("case", "density_prunable", "parameters", "gain_db", "gain_n", "onnx_weights", "onnx_weights_vs_dense", "macs", "macs_vs_dense",
           "model_sent_kb", "model_sent_vs_dense_stored", "torch_cpu_ms", "torch_cpu_ms_vs_dense", "ort_ms_1t",
           "ort_ms_1t_vs_dense", "ort_ms_2t", "ort_ms_2t_vs_dense", "wasm_tile_ms_2t", "wasm_tile_ms_2t_vs_dense",
           "wasm_tile_ms_1t", "wasm_tile_ms_1t_vs_dense")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=[*CASES, *STUDY_CASES])
    parser.add_argument("--study", default=None, help="a study with a refill branch: tiny-dense, tiny-ticket and tiny-refill "
                                                      "from it (and tiny-dense-same-size, tiny-refill-scratch where trained), "
                                                      "and the paired PSNR difference refill - main")
    parser.add_argument("--source", action="append", default=[], metavar="CASE=PATH", help="a real level folder or checkpoint for a case")
    parser.add_argument("--tiles", type=int, default=3, help="256x256 restorations timed in the browser (paper: 1)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium measurements")
    parser.add_argument("--onnx-cache", default=None, help="folder that keeps the exported ONNX files between runs")
    parser.add_argument("--json", default=None, help="write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)  # torch on the CPU: 2 threads, as onnxruntime's second column
    sources = {**(study_sources(args.study) if args.study else {}), **dict(item.split("=", 1) for item in args.source)}
    cache = Path(args.onnx_cache) if args.onnx_cache else None
    rows = run(args.cases, sources, args.tiles, browser=not args.no_browser, cache=cache)
    print(format_table([{k: r[k] for k in SUMMARY if k in r} for r in rows]))
    paired = refill_against_main(args.study) if args.study else []
    if paired:
        print(f"refill - main on {args.study}'s test set (mean over tasks):")
        print(format_table(paired))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}",
                                               "date": time.strftime("%Y-%m-%d"), "study": args.study, "rows": rows,
                                               "refill_minus_main": paired}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
