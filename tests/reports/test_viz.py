"""mirl.reports.viz: what the figures say (titles, n, interval method, labels) and the mask images' colours."""

from __future__ import annotations

import io
from typing import Any, Iterator

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mirl.analysis.evidence import METRICS
from mirl.reports import viz


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _texts(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def _curves(metric: str) -> pd.DataFrame:
    rows = []
    for label, shift in (("ticket", 0.0), ("random re-init", -1.0)):
        for task, images in (("derain", 5), ("denoise_25", 7), ("mean", 12)):
            for level, density in ((0, 1.0), (1, 0.8), (2, 0.64)):
                mean = 3.0 - level + shift
                rows.append({"label": label, "level": level, "remaining_prunable": density, "remaining_trainable": density + 0.01,
                             "task": task, "mean": mean, "low": mean - 0.5, "high": mean + 0.25, "images": images,
                             "replicates": 2, "method": "t (replicates)", "metric": metric})
    return pd.DataFrame(rows)


def test_interval_curves_titles_state_n_the_metric_and_the_interval_method() -> None:
    fig = viz.interval_curves(_curves("gain"), tasks=["denoise_25", "derain"], demo=True, columns=2)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["denoise_25 (n = 7 img x 2 rep)", "derain (n = 5 img x 2 rep)",
                                                "mean over tasks (n = 12 img x 2 rep)"]
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()  # a 2 x 2 grid, the fourth panel hidden
    title = fig._suptitle.get_text()
    assert title.startswith(f"{METRICS['gain']} vs remaining trainable weights") and "band: t (replicates)" in title
    assert viz.DEMO_LABEL in _texts(fig)
    ax = shown[0]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted() and ax.get_ylabel() == METRICS["gain"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"ticket", "random re-init", "degraded input (no restoration)"}
    assert list(lines["ticket"].get_xdata()) == pytest.approx([101.0, 81.0, 65.0])  # percent of the trainable weights
    assert list(lines["random re-init"].get_ydata()) == [2.0, 1.0, 0.0]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.5) and band.max() == pytest.approx(3.25)  # ticket's lowest low, highest high


def test_interval_curves_for_psnr_has_no_zero_line_and_no_demo_label() -> None:
    fig = viz.interval_curves(_curves("psnr"), denominator="prunable")
    labels = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    assert "degraded input (no restoration)" not in labels
    assert viz.DEMO_LABEL not in _texts(fig) and "remaining prunable weights" in fig._suptitle.get_text()
    assert fig.axes[0].get_xlabel() == "remaining prunable weights (%)"


def test_interval_curves_without_scores_says_so() -> None:
    with pytest.raises(ValueError, match="no scores to plot"):
        viz.interval_curves(_curves("psnr").iloc[:0])


def test_barrier_figure_labels_n_per_study_and_draws_the_interval_as_error_bars() -> None:
    barriers = pd.DataFrame({"label": ["reset", "reset", "rewind", "rewind"], "remaining trainable (%)": [100.0, 50.0] * 2,
                             "mean": [0.5, 2.0, 0.1, 0.2], "low": [0.25, 1.0, 0.0, 0.1], "high": [1.0, 3.5, 0.3, 0.3],
                             "n": [3, 3, 2, 2], "method": "t (replicates)"})
    fig = viz.barrier_figure(barriers)
    ax = fig.axes[0]
    assert "bars: t (replicates)" in ax.get_title()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["0: linearly connected (stable)", "reset (n = 3)",
                                                                          "rewind (n = 2)"]
    segments = ax.containers[0].lines[2][0].get_segments()  # reset's error bars, dense level first
    assert [tuple(s[:, 1]) for s in segments] == [(0.25, 1.0), (1.0, 3.5)]


def _sample(task: str, panels: int, seed: int) -> dict:
    g = np.random.default_rng(seed)
    images = [g.random((40, 48, 3)) for _ in range(panels)]
    entries = [{"label": f"p{i}", "image": im, "psnr": 20.0 + i + 0.123} for i, im in enumerate(images[:-1])]
    return {"task": task, "name": f"img{seed}", "panels": entries + [{"label": "clean", "image": images[-1], "psnr": None}]}


def test_gallery_captions_psnr_rows_and_zooms_the_same_crop_of_every_panel() -> None:
    samples = [_sample("derain", 3, 0), _sample("dehaze", 2, 1)]
    fig = viz.gallery(samples, crop=10, demo=True, title="Levels")
    axes = np.array(fig.axes).reshape(4, 3)
    assert [ax.get_title() for ax in axes[0]] == ["p0\n20.12 dB", "p1\n21.12 dB", "clean"]
    assert axes[0, 0].get_ylabel() == "derain\nimg0" and axes[1, 0].get_ylabel() == "zoom" and axes[2, 0].get_ylabel() == "dehaze\nimg1"
    assert not axes[2, 2].axison and not axes[3, 2].axison  # the second sample has one panel fewer
    top, left, side = viz.crop_box(40, 48, 10)
    for c in range(3):
        image = np.clip(samples[0]["panels"][c]["image"], 0, 1).astype(np.float32)
        assert np.array_equal(np.asarray(axes[1, c].images[0].get_array()), image[top:top + side, left:left + side])
        box = axes[0, c].patches[0]
        assert (box.get_x() + 0.5, box.get_y() + 0.5, box.get_width()) == (left, top, side)
    assert fig._suptitle.get_text() == f"Levels\n{viz.DEMO_LABEL}"
    with pytest.raises(ValueError, match="at least one sample"):
        viz.gallery([])


def test_crop_box_is_a_centred_quarter_of_the_short_side_within_the_image() -> None:
    assert viz.crop_box(64, 100) == (24, 42, 16)
    assert viz.crop_box(20, 20) == (6, 6, 8)  # at least 8 pixels
    assert viz.crop_box(30, 40, size=100) == (0, 5, 30)  # never larger than the image


def test_mask_matrix_flattens_kernels_and_folds_vectors_into_rows_of_64() -> None:
    conv = torch.rand(6, 2, 3, 3) > 0.5
    assert np.array_equal(viz.mask_matrix(conv), conv.reshape(6, 18).numpy())
    vector = torch.arange(70) % 3 == 0
    folded = viz.mask_matrix(vector)
    assert folded.shape == (2, 64) and np.array_equal(folded.reshape(-1)[:70], vector.numpy()) and not folded.reshape(-1)[70:].any()
    assert viz.mask_matrix(np.array([1, 0, 1])).tolist() == [[True, False, True]]
    assert viz.mask_matrix(torch.tensor(True)).shape == (1, 1)


def test_mask_rgb_colours_each_case_of_kept_and_pruned() -> None:
    reference = torch.tensor([[True, True, False, False]])
    mask = torch.tensor([[True, False, True, False]])
    rgb = viz.mask_rgb(mask, reference)
    expected = [viz._COLOR_BOTH, viz._COLOR_A_ONLY, viz._COLOR_B_ONLY, viz._COLOR_NONE]
    assert rgb.shape == (1, 4, 3) and all(np.allclose(rgb[0, i], c) for i, c in enumerate(expected))
    alone = viz.mask_rgb(mask)
    assert np.allclose(alone[0, 0], viz._COLOR_BOTH) and np.allclose(alone[0, 1], viz._COLOR_NONE)
    with pytest.raises(ValueError, match=r"mask shapes differ: \(1, 4\) vs \(2, 2\)"):
        viz.mask_rgb(torch.ones(2, 2, dtype=torch.bool), reference)


def test_a_large_mask_is_area_averaged_to_the_size_limit() -> None:
    mask = torch.zeros(400, 10, dtype=torch.bool)
    mask[::2] = True  # every other row kept: pixels covering two rows blend blue and white
    rgb = viz.mask_rgb(mask, max_side=192)
    assert rgb.shape == (134, 10, 3)  # ceil(400 / 3) rows of three
    assert np.allclose(rgb[0, 0], (2 * viz._COLOR_BOTH + viz._COLOR_NONE) / 3)


def test_mask_png_is_an_upscaled_image_with_the_masks_colours() -> None:
    mask = torch.tensor([[True, False], [False, True]])
    image = Image.open(io.BytesIO(viz.mask_png(mask, scale_to=64)))
    assert image.size == (64, 64)
    pixels = np.asarray(image.convert("RGB"))
    assert tuple(pixels[0, 0]) == tuple(np.round(viz._COLOR_BOTH * 255).astype(int)) and tuple(pixels[0, 63]) == (255, 255, 255)


def test_mask_view_titles_the_kept_fractions() -> None:
    reference = torch.ones(4, 8, dtype=torch.bool)
    mask = reference.clone()
    mask[:, :6] = False
    fig = viz.mask_view(mask, reference, title="conv", labels=("level 0", "level 2"))
    assert fig.axes[0].get_title() == "conv\nkept: level 0 100.0%, level 2 25.0%"
    assert viz.mask_view(mask).axes[0].get_title() == "kept: B 25.0%"


def _layer_table() -> pd.DataFrame:
    return pd.DataFrame({"tensor": ["encoder_level1.0.attn.qkv.weight", "a" * 30 + ".very.long.name.of.a.tensor.weight"],
                         "density_a": [1.0, 0.5], "density_b": [0.25, 0.5], "jaccard": [0.25, 0.8]})


def test_density_and_jaccard_bars_draw_the_tables_numbers_with_short_names() -> None:
    table = _layer_table()
    fig = viz.density_bars(table, labels=("level 0", "level 2"))
    ax = fig.axes[0]
    assert sorted(round(p.get_width(), 6) for p in ax.patches) == [25.0, 50.0, 50.0, 100.0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[0] == "encoder_level1.0.attn.qkv" and names[1].startswith("…") and len(names[1]) == 38
    assert ax.get_title() == "Per-layer density: level 0 vs level 2"
    jac = viz.jaccard_bars(table).axes[0]
    assert [round(p.get_width(), 6) for p in jac.patches] == [0.25, 0.8] and jac.get_xlim() == (0.0, 1.0)


def test_node_block_figure_without_an_overlap_says_there_is_nothing_to_compare() -> None:
    density = pd.Series({"latent": 0.5, "whole network": 0.4})
    fig = viz.node_block_figure(density, None, None, None, "level 0")
    assert "nothing to compare" in _texts(fig) and fig._suptitle.get_text() == "level 0"
    assert [round(p.get_height(), 6) for p in fig.axes[0].patches] == [50.0, 40.0]


def test_html_helpers_escape_user_text() -> None:
    assert viz.code('a"<b>&') == "<code>a&quot;&lt;b&gt;&amp;</code>"
    block = viz.collapsible("<table></table>", "runs <x>").data
    assert block == "<details><summary>runs &lt;x&gt;</summary><table></table></details>"
    assert "<table" in viz.collapsible(pd.DataFrame({"a": [1]}), "t").data
    fig = viz.add_demo_label(viz._figure(2, 2), "made up")
    assert "made up" in _texts(fig)
    assert viz.fig_to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_branch_keeps_its_colour_when_a_study_grows_another() -> None:
    """Issue 34, part 6: colours followed the order of the labels, so adding a branch recoloured the others."""
    from mirl.reports.viz import branch_color, interval_curves

    def curves(labels: list[str]) -> pd.DataFrame:
        table = _curves("gain")
        table = table[table["label"] == "ticket"]
        return pd.concat([table.assign(label=label) for label in labels])

    def colours(labels: list[str]) -> dict[str, str]:
        fig = interval_curves(curves(labels))
        return {line.get_label(): line.get_color() for line in fig.axes[0].get_lines() if line.get_label() in labels}

    two = colours(["ticket", "random pruning"])
    three = colours(["ticket", "random re-init", "random pruning"])
    assert two["random pruning"] == three["random pruning"] == branch_color("random_prune")
    assert len(set(three.values())) == 3 and branch_color("ticket") == branch_color("main") == two["ticket"]
    compared = interval_curves(curves(["ticket", "ticket (reset=rewind)"])).axes[0].get_lines()
    styles = {line.get_label(): (line.get_color(), line.get_linestyle()) for line in compared}
    assert styles["ticket"][0] == styles["ticket (reset=rewind)"][0] and styles["ticket"][1] != styles["ticket (reset=rewind)"][1]
