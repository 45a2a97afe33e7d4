"""The numbers the report notebooks show, computed in the package: gallery per-image PSNR, mask-pair
summaries, checkpoint headline (mirl.reports.tables) and the study helpers of mirl.analysis.evidence.

Inputs are small hand-made tables or masks (made-up numbers, tests only); each function is checked
against values worked out by hand or counted from the masks themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mirl.analysis import evidence

from mirl import paths

from mirl.reports import tables
def _samples() -> list[dict]:
    """Gallery samples as mirl.analysis.gallery.gallery_samples returns them (PSNR values made up)."""
    def panels(base: float) -> list[dict]:
        return [{"label": "degraded input", "psnr": base}, {"label": "dense (level 0)", "psnr": base + 6.0},
                {"label": "level 2", "psnr": base + 5.0}, {"label": "clean", "psnr": None}]

    return [{"task": "derain", "name": "b.png", "panels": panels(20.0)},
            {"task": "derain", "name": "a.png", "panels": panels(22.0)},
            {"task": "denoise_25", "name": "c.png", "panels": panels(24.0)}]


def test_gallery_rows_pivot_and_headline() -> None:
    rows = tables.gallery_psnr_rows(_samples())
    assert len(rows) == 9 and all(r["panel"] != "clean" for r in rows)
    per_image = tables.per_image_psnr(rows)
    # gallery order is kept: tasks and images as shown, panels left to right
    assert list(per_image.index) == [("derain", "b.png"), ("derain", "a.png"), ("denoise_25", "c.png")]
    assert list(per_image.columns) == ["degraded input", "dense (level 0)", "level 2"]
    assert per_image.loc[("derain", "a.png"), "level 2"] == 27.0
    numbers = tables.gallery_headline(per_image, "upstream")
    assert list(numbers) == [f"{p}: mean PSNR of shown images (dB, upstream)" for p in per_image.columns]
    assert numbers["degraded input: mean PSNR of shown images (dB, upstream)"] == 22.0
    assert numbers["level 2: mean PSNR of shown images (dB, upstream)"] == 27.0


def _masks() -> tuple[dict, dict, pd.DataFrame]:
    """Two masks of three tensors (a 4-D kernel, a matrix, a 1-D scale) and their layer table."""
    import torch

    g = torch.Generator().manual_seed(0)
    shapes = {"conv.weight": (8, 4, 3, 3), "proj.weight": (16, 8), "norm.weight": (8,)}
    a = {n: torch.rand(s, generator=g) < 0.6 for n, s in shapes.items()}
    b = {n: m & (torch.rand(m.shape, generator=g) < 0.5) for n, m in a.items()}
    table = pd.DataFrame([{"tensor": n, "size": a[n].numel(), "density_a": float(a[n].float().mean()),
                           "density_b": float(b[n].float().mean()),
                           "jaccard": int((a[n] & b[n]).sum()) / int((a[n] | b[n]).sum())} for n in shapes],
                         columns=["tensor", "size", "density_a", "density_b", "jaccard"])
    return a, b, table


def test_matrix_layers_leave_out_1d_tensors() -> None:
    a, _, table = _masks()
    assert list(tables.matrix_layers(table, a)["tensor"]) == ["conv.weight", "proj.weight"]
    empty = table.iloc[:0]
    assert tables.matrix_layers(empty, a) is empty


def test_overall_density_counts_kept_weights() -> None:
    a, b, table = _masks()
    for column, mask in (("density_a", a), ("density_b", b)):
        kept = sum(int(m.sum()) for m in mask.values())
        total = sum(m.numel() for m in mask.values())
        assert tables.overall_density(table, column) == pytest.approx(kept / total)


def test_mask_pair_headline_counts_from_the_masks() -> None:
    a, b, table = _masks()
    numbers = tables.mask_pair_headline(table, "level 1", "level 2")
    assert list(numbers) == ["mask A", "mask B", "mean per-layer Jaccard A vs B", "overall density A (%)", "overall density B (%)"]
    assert (numbers["mask A"], numbers["mask B"]) == ("level 1", "level 2")
    jaccards = [int((a[n] & b[n]).sum()) / int((a[n] | b[n]).sum()) for n in a]  # from the masks, not the table
    assert numbers["mean per-layer Jaccard A vs B"] == pytest.approx(sum(jaccards) / len(jaccards), abs=5e-5)
    total = sum(m.numel() for m in a.values())
    assert numbers["overall density A (%)"] == pytest.approx(100 * sum(int(m.sum()) for m in a.values()) / total, abs=5e-3)
    assert numbers["overall density B (%)"] == pytest.approx(100 * sum(int(m.sum()) for m in b.values()) / total, abs=5e-3)
    assert numbers["overall density B (%)"] < numbers["overall density A (%)"]


def test_checkpoint_headline_reads_every_score_against_the_input() -> None:
    table = pd.DataFrame({"task": ["derain", "dehaze", "denoise_25", "jpeg", "average"], "psnr": [30.12345, 27.0, 29.5, 20.0, 0.0],
                          "input_psnr": [28.0, 28.0, 20.0, 25.0, 0.0], "ssim": [0.91234, 0.8, 0.7, 0.1, 0.0],
                          "trained": [True, True, True, False, True]})
    numbers = tables.checkpoint_headline(table, "upstream")
    gain = "PSNR gain over the degraded input (dB, upstream)"
    assert list(numbers) == [f"derain: {gain}", f"dehaze: {gain}", f"denoise_25: {gain}", "mean PSNR (dB, upstream)", f"mean {gain}",
                             "mean SSIM (upstream)"]
    assert numbers[f"derain: {gain}"] == 2.12 and numbers[f"dehaze: {gain}"] == -1.0
    # the average row and the task it was not trained on (jpeg) are left out
    assert numbers["mean PSNR (dB, upstream)"] == 28.87 and numbers[f"mean {gain}"] == round((2.12345 - 1.0 + 9.5) / 3, 2)
    assert numbers["mean SSIM (upstream)"] == round((0.91234 + 0.8 + 0.7) / 3, 3)
    assert tables.below_input(table) == ["dehaze: the restored images score 1.00 dB below the degraded input"]


# ------------------------------------------------------------------ mirl.analysis.evidence helpers of notebooks 01 and 02


def test_conventions_and_interval_method() -> None:
    scores = pd.DataFrame({"convention": ["upstream", "y_channel", "upstream"]})
    assert evidence.conventions(scores) == "upstream, y_channel"
    assert evidence.interval_method(pd.DataFrame({"method": ["bootstrap", "t"]})) == "bootstrap"
    assert evidence.interval_method(pd.DataFrame(columns=["method"])) == ""


def test_compute_seconds_sums_finished_levels_of_every_replicate(tmp_path: Path) -> None:
    """Every finished node of a study counts (every replicate, main and its branches), each study
    once however many of its folders are given; an unfinished node does not."""
    study = tmp_path / "smoke_0"
    study.mkdir()
    paths.run_config(study).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "preset": "smoke"}))

    def node(replicate: int, level: int, seconds: float | None, branch: str = paths.MAIN, done: bool = True) -> None:
        d = paths.level_dir(paths.replicate_dir(study, replicate), level, branch)
        d.mkdir(parents=True)
        paths.metrics_file(d).write_text(json.dumps({"train": {"level_seconds": seconds}}))
        if done:
            paths.done_file(d).write_text("{}")

    for r, seconds in enumerate(((10.0, 20.04), (5.0, None))):
        for level, value in enumerate(seconds):
            node(r, level, value)
    node(0, 1, 2.5, "random_reinit")
    node(0, 2, 1000.0, done=False)  # no done.json
    node(1, 1, 1000.0, "random_reinit", done=False)
    assert evidence.compute_seconds([study]) == 37.5
    assert evidence.compute_seconds([study, paths.replicate_dir(study, 1), paths.level_dir(paths.replicate_dir(study, 0), 1)]) == 37.5
    assert evidence.compute_seconds([]) == 0
