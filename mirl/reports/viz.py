"""Matplotlib figures for pruning studies: sparsity curves, restoration galleries, mask views.

Every function returns a :class:`matplotlib.figure.Figure` (or an array) and never calls
``plt.show``; notebooks display the figure. Figures of runs on the built-in photo corpus carry
the label :data:`DEMO_LABEL` (pass ``demo=True``): those numbers are a demonstration, not a
benchmark.

Text in reports is user input (paths, run names, parameters): HTML built here escapes it
(:func:`html_escape`, :func:`code`), and every notebook calls :func:`escape_tables` first, so
pandas ``Styler`` tables escape their cells and labels (a ``.format(...)`` call that sets its own
formatter needs ``escape="html"`` too).

Example:
    >>> from mirl.analysis import evidence; from mirl.reports import viz  # doctest: +SKIP
    >>> scores = evidence.scores_table({"ticket": ["runs/smoke_de4d1844"]})  # doctest: +SKIP
    >>> fig = viz.interval_curves(evidence.curve_table(scores, "gain"), demo=True)  # doctest: +SKIP
    >>> png = viz.fig_to_png(fig)                                       # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

DEMO_LABEL = "built-in demo corpus, not a benchmark"

# One colour per branch in every figure and report: a study that grows a branch keeps the others'.
BRANCH_COLORS = {"main": "C0", "random_reinit": "C1", "random_prune": "C2", "one_shot": "C3", "stability": "C4", "refill": "C5", "refill_scratch": "C6", "dense_same_size": "C7"}
# Line styles of the studies set side by side (notebook 02's ``compare``): the first study solid.
STUDY_STYLES = ("-", "--", ":", "-.")


def branch_color(name: str) -> str:
    """The colour of a branch, by folder name or label (``ticket`` is main): fixed for the built-in
    branches, chosen from the label for a new one or a branch with options (its folder name and
    its label give the same colour).

    Example:
        >>> branch_color("random_prune"), branch_color("random pruning"), branch_color("ticket")
        ('C2', 'C2', 'C0')
        >>> branch_color("random_prune-scope_global") == branch_color("random pruning (scope=global)") != "C2"
        True
    """
    import hashlib

    from mirl.branches import branch_label

    for branch, color in BRANCH_COLORS.items():
        if name in (branch, branch_label(branch)):
            return color
    label = branch_label(name)  # a folder name with options -> its label, which the figures show
    return f"C{6 + hashlib.sha256(label.encode()).digest()[0] % 4}"

_DENOMINATORS = {
    "prunable": ("remaining_prunable", "remaining prunable weights (%)"),
    "trainable": ("remaining_trainable", "remaining trainable parameters (%)"),
}


def _figure(width: float, height: float, photos: bool = False):
    # The object-oriented API: no pyplot state, safe in any backend and in tests. The subclass
    # gives the figure an image repr, so a notebook shows it when it is a cell's value: PNG, or
    # JPEG for a figure of photographs (a fifth of the bytes in a report).
    from matplotlib.figure import Figure

    class MirlFigure(Figure):
        def _repr_png_(self) -> bytes:
            return fig_to_png(self)

    class MirlPhotoFigure(Figure):
        def _repr_jpeg_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="jpeg", dpi=100, pil_kwargs={"quality": 90})
            return buffer.getvalue()

    return (MirlPhotoFigure if photos else MirlFigure)(figsize=(width, height), layout="constrained")


def collapsible(content: Any, summary: str) -> Any:
    """An HTML ``<details>`` block around a table (a pandas Styler/DataFrame) or HTML text, closed
    by default: long tables stay out of the way in reports.

    Example:
        >>> import pandas as pd
        >>> "<details>" in collapsible(pd.DataFrame({"a": [1]}), "table").data
        True
    """
    from IPython.display import HTML

    inner = content.to_html() if hasattr(content, "to_html") else str(content)
    return HTML(f"<details><summary>{html_escape(summary)}</summary>{inner}</details>")


def escape_tables() -> None:
    """Make pandas ``Styler`` tables escape their cells and labels as HTML: in a report, a table
    cell is text (an image name, a path), never markup.

    Example:
        >>> escape_tables(); pd.get_option("styler.format.escape")
        'html'
    """
    pd.set_option("styler.format.escape", "html")


def html_escape(text: Any) -> str:
    """``str(text)`` escaped for HTML (quotes included).

    Example:
        >>> html_escape("x`<img src=x onerror=alert(1)>`.pt")
        'x`&lt;img src=x onerror=alert(1)&gt;`.pt'
    """
    import html

    return html.escape(str(text))


def code(text: Any) -> str:
    """``str(text)`` as an HTML ``<code>`` span, escaped: for paths and names in ``display(HTML(...))``
    (a Markdown code span ends at the first backtick of the text, and Markdown passes HTML through).

    Example:
        >>> code("runs/a<b>.pt")
        '<code>runs/a&lt;b&gt;.pt</code>'
    """
    return f"<code>{html_escape(text)}</code>"


def add_demo_label(fig: Any, text: str = DEMO_LABEL) -> Any:
    """Stamp ``text`` (by default the demo-corpus warning) in the figure's bottom-right corner."""
    fig.text(0.998, 0.998, text, ha="right", va="top", fontsize=8, color="#b71c1c", style="italic")
    return fig


def fig_to_png(fig: Any, dpi: int = 100) -> bytes:
    """PNG bytes of a figure.

    Example:
        >>> from mirl.reports.viz import _figure, fig_to_png
        >>> fig_to_png(_figure(1, 1))[:4]
        b'\\x89PNG'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# --------------------------------------------------------------------------- sparsity curves


def interval_curves(
    curves: pd.DataFrame,
    denominator: str = "trainable",
    tasks: Sequence[str] | None = None,
    demo: bool = False,
    columns: int = 3,
) -> Any:
    """One panel per task plus a ``mean`` panel: each variant's mean with its 95% interval (a band)
    against the remaining weights (log axis, dense on the left), as lottery-ticket papers draw it.

    ``curves`` is :func:`mirl.analysis.evidence.curve_table` output (one metric). For the ``gain`` metric a
    zero line marks the degraded input (below it the network harms). The title states the
    interval's method and n.

    Example:
        >>> import pandas as pd
        >>> c = pd.DataFrame({"label": "ticket", "level": [0, 1], "remaining_prunable": [1.0, 0.5],
        ...     "remaining_trainable": [1.0, 0.55], "task": "mean", "mean": [1.0, 0.8], "low": [0.7, 0.5],
        ...     "high": [1.3, 1.1], "images": 32, "replicates": 3, "method": "t", "metric": "gain"})
        >>> len(interval_curves(c).axes)
        1
    """
    from mirl.analysis.evidence import MEAN, METRICS

    if curves.empty:
        raise ValueError("no scores to plot: the runs have no finished level with metrics.json")
    metric = str(curves["metric"].iloc[0])
    xcol, xlabel = _DENOMINATORS[denominator]
    panels = [t for t in (tasks or dict.fromkeys(curves["task"])) if t != MEAN] + [MEAN]
    panels = [t for t in panels if t in set(curves["task"])]
    ncols = min(columns, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(3.7 * ncols, 2.9 * nrows + 0.9)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    labels = list(dict.fromkeys(curves["label"]))
    studies = list(dict.fromkeys(_study_suffix(label) for label in labels))
    for ax, task in zip(axes, panels):
        for label in labels:
            sub = curves[(curves["label"] == label) & (curves["task"] == task)].sort_values("level")
            if sub.empty:
                continue
            x = 100 * sub[xcol]
            color = branch_color(label[:len(label) - len(_study_suffix(label))])
            style = STUDY_STYLES[studies.index(_study_suffix(label)) % len(STUDY_STYLES)]
            ax.fill_between(x, sub["low"], sub["high"], color=color, alpha=0.2, lw=0)
            ax.plot(x, sub["mean"], marker="o", ls=style, color=color, ms=3.5, lw=1.5, label=label)
        if metric == "gain":
            ax.axhline(0.0, color="0.25", ls=":", lw=1.2, label="degraded input (no restoration)")
        ax.set_xscale("log")
        _percent_ticks(ax, 100 * curves[xcol].dropna())
        ax.invert_xaxis()
        first = curves[curves["task"] == task].iloc[0]
        ax.set_title(f"{'mean over tasks' if task == MEAN else task} (n = {first['images']} img x {first['replicates']} rep)",
                     fontsize=9.5)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(METRICS[metric], fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
    method = str(curves["method"].iloc[0])
    fig.suptitle(f"{METRICS[metric]} vs remaining {denominator} weights\nline: mean; band: {method}", fontsize=10)
    if demo:
        add_demo_label(fig)
    return fig


def _study_suffix(label: str) -> str:
    """`` (reset=rewind)`` of ``random re-init (reset=rewind)``: the compared study a label names, or ``""``."""
    return label[label.index(" ("):] if " (" in label else ""


def barrier_figure(barriers: pd.DataFrame, denominator: str = "trainable") -> Any:
    """The stability barrier (dB) against the remaining weights, one line per study (e.g. reset to
    theta_0 beside rewinding), mean over replicates with its 95% interval as error bars.

    ``barriers`` is :func:`mirl.analysis.evidence.barrier_table`'s output.
    """
    column = f"remaining {denominator} (%)"
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    for i, (label, group) in enumerate(barriers.groupby("label", sort=False)):
        group = group.sort_values(column, ascending=False)
        errors = np.vstack([group["mean"] - group["low"], group["high"] - group["mean"]])
        ax.errorbar(group[column], group["mean"], yerr=errors, fmt="o-", color=f"C{i % 10}", ms=4, lw=1.5, capsize=3,
                    label=f"{label} (n = {group['n'].iloc[0]})")
    ax.axhline(0.0, color="0.25", ls=":", lw=1.2, label="0: linearly connected (stable)")
    ax.set_xscale("log")
    _percent_ticks(ax, barriers[column])
    ax.invert_xaxis()
    ax.set_xlabel(f"remaining {denominator} parameters (%)", fontsize=8)
    ax.set_ylabel("barrier on the linear path (dB)", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7.5)
    ax.set_title(f"Instability of the ticket's level (Frankle et al. 2020)\nbars: {barriers['method'].iloc[0]}", fontsize=9)
    return fig


def kept_by_kind_figure(tables: Mapping[str, pd.DataFrame]) -> Any:
    """Weights kept per kind of tensor against the level, one line style per study (e.g. layer-wise
    beside global): left, the share of that kind's prunable weights kept; right, the fewest any one
    tensor of the kind keeps (0: a tensor emptied, the layer passes nothing).

    ``tables`` maps a label to :func:`mirl.analysis.kept_by_kind.kept_by_kind`'s output.
    """
    fig = _figure(9.0, 3.6)
    share, fewest = fig.subplots(1, 2, sharey=True)
    styles = ("-", "--", ":", "-.")
    kinds = [k for table in tables.values() for k in table["kind"].unique()]
    colors = {kind: f"C{i % 10}" for i, kind in enumerate(dict.fromkeys(kinds))}
    for i, (label, table) in enumerate(tables.items()):
        for kind, group in table.groupby("kind", sort=False):
            for ax, column in ((share, "kept (%)"), (fewest, "fewest kept (%)")):
                ax.plot(group["level"], group[column].clip(lower=0.01), styles[i % len(styles)], marker="o", ms=3,
                        color=colors[kind], label=f"{kind} ({label})" if ax is share else None)
    from matplotlib.ticker import MaxNLocator

    for ax, title in ((share, "share of the kind's prunable weights kept"), (fewest, "fewest kept by any one tensor")):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("level (pruning rounds)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    share.set_ylabel("weights kept (%, log; 0 drawn at 0.01)", fontsize=8)
    fig.legend(loc="outside right center", fontsize=7)
    return fig


_NICE_PERCENTS = (100, 80, 64, 50, 40, 30, 20, 15, 10, 7, 5, 3.5, 2, 1, 0.5, 0.2, 0.1)


def _percent_ticks(ax: Any, values: pd.Series) -> None:
    """Readable ticks on a log-scaled percentage axis (no 9x10^1 labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    if values.empty:
        return
    low, high = float(values.min()), float(values.max())
    ticks = [t for t in _NICE_PERCENTS if low * 0.999 <= t <= high * 1.001] or [float(f"{high:.2g}")]
    if min(ticks) > low * 1.15:  # label the sparsest point too
        ticks.append(float(f"{low:.2g}"))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


# --------------------------------------------------------------------------- galleries


def crop_box(height: int, width: int, size: int | None = None) -> tuple[int, int, int]:
    """A square crop (top, left, side) around the image centre, a quarter of the short side."""
    side = size or max(8, min(height, width) // 4)
    side = min(side, height, width)
    return (height - side) // 2, (width - side) // 2, side


def gallery(
    samples: Sequence[Mapping[str, Any]],
    crop: int | None = None,
    demo: bool = False,
    title: str | None = None,
) -> Any:
    """Restoration gallery: per sample, a row of full images and a row of zoomed crops.

    Each sample is ``{"task", "name", "panels": [{"label", "image" (HxWx3 float in [0,1]),
    "psnr" (float or None)}]}`` as made by :func:`mirl.analysis.gallery.gallery_samples`; panels typically
    run degraded input, dense, pruned levels, clean. The crop (a red box in the full view) is
    the same for every panel of a sample.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((32, 32, 3))
        >>> s = {"task": "derain", "name": "x", "panels": [{"label": "clean", "image": img, "psnr": None}]}
        >>> len(gallery([s]).axes)
        2
    """
    from matplotlib.patches import Rectangle

    if not samples:
        raise ValueError("gallery needs at least one sample")
    ncols = max(len(s["panels"]) for s in samples)
    fig = _figure(2.3 * ncols, 4.6 * len(samples) + 0.5, photos=True)
    axes = fig.subplots(2 * len(samples), ncols, squeeze=False)
    for s_index, sample in enumerate(samples):
        first = np.asarray(sample["panels"][0]["image"])
        top, left, side = crop_box(first.shape[0], first.shape[1], crop)
        for c in range(ncols):
            ax_full, ax_zoom = axes[2 * s_index, c], axes[2 * s_index + 1, c]
            for ax in (ax_full, ax_zoom):
                ax.set_xticks([])
                ax.set_yticks([])
            if c >= len(sample["panels"]):
                ax_full.axis("off")
                ax_zoom.axis("off")
                continue
            panel = sample["panels"][c]
            image = np.clip(np.asarray(panel["image"], dtype=np.float32), 0, 1)
            ax_full.imshow(image, interpolation="lanczos")
            ax_full.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, ec="red", lw=1.2))
            ax_zoom.imshow(image[top:top + side, left:left + side], interpolation="nearest")
            psnr = panel.get("psnr")
            caption = panel["label"] if psnr is None else f"{panel['label']}\n{psnr:.2f} dB"
            ax_full.set_title(caption, fontsize=9)
            if c == 0:
                ax_full.set_ylabel(f"{sample['task']}\n{sample.get('name', '')}", fontsize=9)
                ax_zoom.set_ylabel("zoom", fontsize=9)
    fig.suptitle((title or "Restorations (PSNR per image vs clean)") + (f"\n{DEMO_LABEL}" if demo else ""), fontsize=11)
    return fig


# --------------------------------------------------------------------------- masks


def mask_matrix(mask: Any) -> np.ndarray:
    """A 2-D boolean view of a mask tensor: conv ``[out, in, kh, kw]`` -> ``[out, in*kh*kw]``;
    1-D tensors are folded into rows of at most 64.

    Example:
        >>> import torch
        >>> mask_matrix(torch.ones(8, 4, 3, 3, dtype=torch.bool)).shape
        (8, 36)
    """
    array = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    array = array.astype(bool)
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        n = array.size
        width = min(64, n)
        rows = math.ceil(n / width)
        padded = np.zeros(rows * width, dtype=bool)
        padded[:n] = array
        return padded.reshape(rows, width)
    return array.reshape(array.shape[0], -1)


_COLOR_BOTH = np.array([0.10, 0.23, 0.49])  # kept in both (dark blue)
_COLOR_A_ONLY = np.array([0.90, 0.32, 0.00])  # kept in the reference only: pruned since (orange)
_COLOR_B_ONLY = np.array([0.18, 0.63, 0.17])  # kept in the compared mask only (green)
_COLOR_NONE = np.array([1.0, 1.0, 1.0])  # pruned in both (white)


def mask_rgb(mask: Any, reference: Any | None = None, max_side: int = 192) -> np.ndarray:
    """An RGB image (float, HxWx3) of a mask, optionally coloured against a reference mask.

    Without a reference: kept = dark blue, pruned = white. With one: kept in both = dark blue,
    kept only in the reference = orange, kept only in ``mask`` = green, pruned in both = white.
    Large matrices are area-averaged down to at most ``max_side`` pixels per side, so colours
    blend where one pixel covers many weights.

    Example:
        >>> import torch
        >>> mask_rgb(torch.ones(4, 4, dtype=torch.bool)).shape
        (4, 4, 3)
    """
    b = mask_matrix(mask)
    a = mask_matrix(reference) if reference is not None else b
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    image = np.empty(b.shape + (3,), dtype=np.float32)
    image[...] = _COLOR_NONE
    image[a & b] = _COLOR_BOTH
    image[a & ~b] = _COLOR_A_ONLY
    image[~a & b] = _COLOR_B_ONLY
    return _area_downsample(image, max_side)


def _area_downsample(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    fy, fx = max(1, math.ceil(h / max_side)), max(1, math.ceil(w / max_side))
    if fy == 1 and fx == 1:
        return image
    ph, pw = math.ceil(h / fy) * fy, math.ceil(w / fx) * fx
    padded = np.ones((ph, pw, 3), dtype=np.float32)
    padded[:h, :w] = image
    return padded.reshape(ph // fy, fy, pw // fx, fx, 3).mean(axis=(1, 3))


def mask_png(mask: Any, reference: Any | None = None, scale_to: int = 256) -> bytes:
    """PNG bytes of :func:`mask_rgb`, upscaled with nearest neighbour to about ``scale_to`` px."""
    from PIL import Image

    rgb = mask_rgb(mask, reference, max_side=scale_to)
    h, w = rgb.shape[:2]
    factor = max(1, scale_to // max(h, w))
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
    if factor > 1:
        image = image.resize((w * factor, h * factor), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def mask_legend_text(with_reference: bool = True) -> str:
    """One-line explanation of the colours of :func:`mask_rgb`."""
    if not with_reference:
        return "dark blue = kept, white = pruned (rows: output channels; columns: inputs x kernel)"
    return ("dark blue = kept in both, orange = kept only in A (pruned in B), green = kept only in B, "
            "white = pruned in both (rows: output channels; columns: inputs x kernel)")


def mask_view(mask: Any, reference: Any | None = None, title: str = "", labels: tuple[str, str] = ("A", "B")) -> Any:
    """A figure with one layer's mask (coloured against ``reference`` when given)."""
    fig = _figure(5.5, 4.2)
    ax = fig.subplots()
    ax.imshow(mask_rgb(mask, reference), interpolation="nearest", aspect="auto")
    ax.set_xlabel("inputs x kernel positions", fontsize=8)
    ax.set_ylabel("output channels", fontsize=8)
    ax.tick_params(labelsize=7)
    density = float(mask_matrix(mask).mean())
    text = f"kept: {labels[1]} {density:.1%}"
    if reference is not None:
        text = f"kept: {labels[0]} {float(mask_matrix(reference).mean()):.1%}, {labels[1]} {density:.1%}"
    ax.set_title(f"{title}\n{text}" if title else text, fontsize=9)  # a line of its own: no overlap with the x label
    return fig


def _short(name: str, width: int = 38) -> str:
    name = name.replace(".weight", "")
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _paired_density_bars(ax: Any, table: pd.DataFrame, labels: tuple[str, str], legend_loc: str) -> np.ndarray:
    """Draw mask A's and mask B's per-layer density as paired horizontal bars; return the y positions."""
    y = np.arange(len(table))
    ax.barh(y - 0.2, 100 * table["density_a"], height=0.4, color="C0", label=labels[0])
    ax.barh(y + 0.2, 100 * table["density_b"], height=0.4, color="C1", label=labels[1])
    ax.set_yticks(y, [_short(t) for t in table["tensor"]], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("weights kept in the layer (%)", fontsize=8)
    ax.legend(fontsize=8, loc=legend_loc)
    return y


def density_bars(table: pd.DataFrame, labels: tuple[str, str] = ("A", "B"), title: str | None = None) -> Any:
    """Per-layer density of two masks as side-by-side horizontal bars.

    ``table`` is :func:`mirl.analysis.mask_compare.mask_layer_table` output (columns tensor, density_a,
    density_b), in network order from top to bottom.
    """
    n = len(table)
    fig = _figure(7.5, min(60.0, 0.16 * n + 1.4))
    ax = fig.subplots()
    _paired_density_bars(ax, table, labels, legend_loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title or f"Per-layer density: {labels[0]} vs {labels[1]}", fontsize=10)
    return fig


def jaccard_bars(table: pd.DataFrame, title: str | None = None) -> Any:
    """Per-layer overlap (Jaccard index of kept weights) of two masks as horizontal bars."""
    n = len(table)
    fig = _figure(6.0, min(60.0, 0.16 * n + 1.4))
    ax = fig.subplots()
    y = np.arange(n)
    ax.barh(y, table["jaccard"], height=0.7, color="C2")
    ax.set_yticks(y, [_short(t) for t in table["tensor"]], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("Jaccard index of kept weights (1 = identical)", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title or "Per-layer mask overlap", fontsize=10)
    return fig


def density_evolution_figure(evolution: pd.DataFrame, highlight: int = 8, title: str | None = None) -> Any:
    """How each layer's density evolves over rounds: a heatmap (layers x levels) and, beside it,
    lines for the ``highlight`` largest-change layers.

    ``evolution`` is :func:`mirl.analysis.results.density_evolution` output (rows tensors, columns levels).
    """
    if evolution.empty:
        raise ValueError("no sparsity reports to plot")
    n = len(evolution)
    fig = _figure(11.0, min(40.0, max(4.0, 0.13 * n + 1.6)))
    ax_map, ax_lines = fig.subplots(1, 2, width_ratios=[1.2, 1])
    data = 100 * evolution.to_numpy(dtype=float)
    image = ax_map.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax_map.set_xticks(range(evolution.shape[1]), [str(c) for c in evolution.columns], fontsize=7)
    ax_map.set_yticks(range(n), [_short(t) for t in evolution.index], fontsize=5)
    ax_map.set_xlabel("level (pruning round)", fontsize=8)
    fig.colorbar(image, ax=ax_map, label="weights kept (%)", shrink=0.6)
    spread = (evolution.max(axis=1) - evolution.min(axis=1)).sort_values(ascending=False)
    for name in spread.index[:highlight]:
        ax_lines.plot(list(evolution.columns), 100 * evolution.loc[name], "o-", ms=3, lw=1.2, label=_short(name, 30))
    ax_lines.set_xticks(list(evolution.columns))
    ax_lines.set_xlabel("level (pruning round)", fontsize=8)
    ax_lines.set_ylabel("weights kept (%)", fontsize=8)
    ax_lines.set_ylim(0, 102)
    ax_lines.grid(True, alpha=0.3)
    ax_lines.legend(fontsize=6, loc="lower left")
    ax_lines.set_title(f"{min(highlight, n)} layers that changed most", fontsize=9)
    fig.suptitle(title or "Per-layer density over rounds", fontsize=10)
    return fig


def mask_comparison(table: pd.DataFrame, labels: tuple[str, str] = ("A", "B"), title: str | None = None) -> Any:
    """Per-layer density of two masks (side-by-side bars) and their overlap (Jaccard), one row
    per layer, in one figure with a shared layer axis.

    ``table`` is :func:`mirl.analysis.mask_compare.mask_layer_table` output.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"tensor": ["a.weight"], "density_a": [1.0], "density_b": [0.5], "jaccard": [0.5]})
        >>> len(mask_comparison(t).axes)
        2
    """
    n = len(table)
    fig = _figure(10.0, min(60.0, 0.15 * n + 1.6))
    ax_d, ax_j = fig.subplots(1, 2, sharey=True, width_ratios=[1.6, 1])
    y = _paired_density_bars(ax_d, table, labels, legend_loc="lower left")
    ax_d.set_title("density per layer", fontsize=9)
    ax_j.barh(y, table["jaccard"], height=0.7, color="C2")
    ax_j.set_xlim(0, 1)
    ax_j.set_xlabel("Jaccard index of kept weights", fontsize=8)
    ax_j.set_title("overlap per layer (1 = identical)", fontsize=9)
    for ax in (ax_d, ax_j):
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title or f"Masks {labels[0]} vs {labels[1]}", fontsize=10)
    return fig


# --------------------------------------------------------------------------- masks per block (notebook 04)
#
# Blocks of PromptIR run along the x axis (mirl.analysis.mask_compare.block_order), so every figure is
# wider than tall however many tensors the network has.

_EXPECTED_STYLE = dict(color="black", lw=1.6, zorder=4)


def _block_axis(ax: Any, blocks: Sequence[str]) -> np.ndarray:
    """Blocks on the x axis (slanted labels); a dotted line before a trailing whole-network column."""
    x = np.arange(len(blocks))
    ax.set_xticks(x, list(blocks), rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(blocks) - 0.4)
    if blocks and blocks[-1] == "whole network":
        ax.axvline(len(blocks) - 1.5, color="0.5", ls=":", lw=1)
    return x


def _grouped_block_bars(ax: Any, blocks: Sequence[str], bars: Sequence[Mapping[str, Any]], ylabel: str,
                        ylim: tuple[float, float], expected_label: str | None = None) -> None:
    """Grouped vertical bars per block: each entry of ``bars`` is ``{"label", "values"}`` with
    optional ``"expected"`` (a black tick per bar), ``"low"``/``"high"`` (a whisker) and ``"color"``."""
    x = _block_axis(ax, blocks)
    width = 0.8 / max(1, len(bars))
    tick_drawn = False
    for i, bar in enumerate(bars):
        offset = x - 0.4 + width * (i + 0.5)
        values = np.asarray(bar["values"], dtype=float)
        ax.bar(offset, values, width=width * 0.92, color=bar.get("color", f"C{i % 10}"), label=bar["label"], zorder=2)
        if bar.get("low") is not None and bar.get("high") is not None:
            low, high = np.asarray(bar["low"], dtype=float), np.asarray(bar["high"], dtype=float)
            spread = high - low > 1e-9
            if spread.any():
                ax.vlines(offset[spread], low[spread], high[spread], color="0.2", lw=1, zorder=3)
        if bar.get("expected") is not None:
            expected = np.asarray(bar["expected"], dtype=float)
            ax.hlines(expected, offset - width * 0.46, offset + width * 0.46,
                      label=None if tick_drawn else expected_label, **_EXPECTED_STYLE)
            tick_drawn = True
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    ax.tick_params(axis="y", labelsize=8)


def block_heatmap(table: pd.DataFrame, title: str, label: str = "weights kept (%)", scale: float = 100.0,
                  decimals: int = 1, vmin: float = 0.0, vmax: float = 100.0, row_label: str = "level") -> Any:
    """An annotated heat map: rows = ``table``'s index (levels, or level transitions), columns =
    blocks; each cell shows ``scale * value`` with ``decimals`` decimals. Wider than tall for any
    number of rows up to three quarters of the width's worth.

    Example:
        >>> t = pd.DataFrame({"encoder 1": [1.0, 0.8], "latent": [1.0, 0.5]}, index=[0, 1])
        >>> fig = block_heatmap(t, "density per block")
        >>> w, h = fig.get_size_inches(); bool(w >= h)
        True
    """
    if table.empty:
        raise ValueError("block_heatmap: nothing to draw")
    data = scale * table.to_numpy(dtype=float)
    nrows, ncols = data.shape
    width = max(8.0, 0.72 * ncols + 2.6)
    fig = _figure(width, min(0.75 * width, 0.42 * nrows + 2.3))
    ax = fig.subplots()
    image = ax.imshow(data, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    _block_axis(ax, [str(c) for c in table.columns])
    ax.set_yticks(range(nrows), [str(i) for i in table.index], fontsize=8)
    ax.set_ylabel(row_label, fontsize=8)
    middle = (vmin + vmax) / 2
    for r in range(nrows):
        for c in range(ncols):
            value = data[r, c]
            if np.isfinite(value):
                ax.text(c, r, f"{value:.{decimals}f}", ha="center", va="center", fontsize=7.5,
                        color="black" if value > middle else "white")
    fig.colorbar(image, ax=ax, label=label, shrink=0.8, pad=0.01)
    ax.set_title(title, fontsize=10)
    return fig


def block_overlap_figure(summary: pd.DataFrame, series: str, title: str, value: str = "jaccard",
                         expected: str | None = "random_jaccard", ylabel: str = "Jaccard index of kept weights",
                         labels: Mapping[Any, str] | None = None,
                         expected_label: str = "random masks of the same densities (expected)",
                         colors: Mapping[Any, str] | None = None) -> Any:
    """Overlap per block as grouped bars, one bar per value of the ``series`` column (a branch, a
    level), with the random expectation as a black tick on each bar and, where ``jaccard_low`` and
    ``jaccard_high`` differ (several replicates), their range as a whisker.

    ``summary`` is :func:`mirl.analysis.mask_compare.overlap_summary` output (columns block, ``series``,
    ``value``, ``expected``). ``labels`` and ``colors`` map series values to legend text and colours.

    Example:
        >>> s = pd.DataFrame({"block": ["latent", "output"] * 2, "branch_b": ["a", "a", "b", "b"],
        ...                   "jaccard": [0.3, 0.4, 1.0, 1.0], "random_jaccard": [0.3, 0.35, 0.3, 0.35]})
        >>> fig = block_overlap_figure(s, "branch_b", "ticket vs branches")
        >>> w, h = fig.get_size_inches(); bool(w >= h), len(fig.axes)
        (True, 1)
    """
    from mirl.analysis.mask_compare import block_order

    if summary.empty:
        raise ValueError("block_overlap_figure: nothing to draw")
    blocks = block_order(summary["block"])
    bars = []
    for i, key in enumerate(dict.fromkeys(summary[series])):
        sub = summary[summary[series] == key].set_index("block").reindex(blocks)
        bars.append({"label": (labels or {}).get(key, str(key)), "values": sub[value],
                     "expected": sub[expected] if expected else None,
                     "low": sub["jaccard_low"] if value == "jaccard" and "jaccard_low" in sub else None,
                     "high": sub["jaccard_high"] if value == "jaccard" and "jaccard_high" in sub else None,
                     "color": (colors or {}).get(key, f"C{i % 10}")})
    fig = _figure(11.5, 4.3)
    ax = fig.subplots()
    _grouped_block_bars(ax, blocks, bars, ylabel, (0, 1.04), expected_label if expected else None)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7.5)
    ax.set_title(title, fontsize=10)
    return fig


def node_block_figure(density: pd.Series, reference_density: pd.Series | None, overlap: pd.Series | None,
                      expected: pd.Series | None, title: str, labels: tuple[str, str] = ("mask", "reference"),
                      overlap_label: str = "Jaccard index with the reference") -> Any:
    """One mask per block, in two panels side by side: the fraction of each block's weights it
    keeps (bars; the reference mask's as a black tick) and its overlap with the reference (bars;
    ``expected``, the random expectation, as a black tick). ``overlap=None``: the right panel
    says there is nothing to compare.

    Example:
        >>> d = pd.Series({"latent": 0.5, "whole network": 0.5})
        >>> fig = node_block_figure(d, d * 2, d, d / 2, "level 1")
        >>> w, h = fig.get_size_inches(); bool(w >= h), len(fig.axes)
        (True, 2)
    """
    fig = _figure(12.0, 3.9)
    ax_d, ax_o = fig.subplots(1, 2)
    blocks = list(density.index)
    ref = reference_density.reindex(blocks) * 100 if reference_density is not None else None
    # the y axes run past 100% (1.0), leaving a band above the bars for the legend
    _grouped_block_bars(ax_d, blocks, [{"label": labels[0], "values": density * 100, "expected": ref, "color": "C0"}],
                        "weights kept (%)", (0, 124), labels[1] if ref is not None else None)
    ax_d.set_yticks(range(0, 101, 20))
    ax_d.set_title("weights kept per block", fontsize=9)
    ax_d.legend(fontsize=7, loc="upper left", ncols=2)
    if overlap is not None:
        exp = expected.reindex(blocks) if expected is not None else None
        _grouped_block_bars(ax_o, blocks, [{"label": labels[0], "values": overlap.reindex(blocks), "expected": exp, "color": "C2"}],
                            overlap_label, (0, 1.24), "random masks of the same densities" if exp is not None else None)
        ax_o.set_yticks(np.linspace(0, 1, 6))
        ax_o.set_title(overlap_label, fontsize=9)
        if exp is not None:
            ax_o.legend(fontsize=7, loc="upper left", ncols=2)
    else:
        _block_axis(ax_o, blocks)
        ax_o.set_yticks([])
        ax_o.text(0.5, 0.5, "nothing to compare", transform=ax_o.transAxes, ha="center", va="center", fontsize=10, color="0.4")
    fig.suptitle(title, fontsize=10)
    return fig


def scaling_figure(gains: Any, differences: Any) -> Any:
    """Left: the ticket's share of the dense gain per cell, one marker per level, with intervals
    (1 = the dense network's gain). Right: ticket - control per cell with intervals (0 = no gap).
    Cells in the grid's order, so the gap's trend with budget or width reads left to right
    (:mod:`mirl.analysis.scaling` makes both tables).

    Example:
        >>> fig = scaling_figure(scaling.gain_table(cells), scaling.difference_table(cells))  # doctest: +SKIP
    """
    cells = list(dict.fromkeys(gains["cell"]))
    x = np.arange(len(cells))
    fig = _figure(12, 4.2)
    left, right = fig.subplots(1, 2)
    share = gains[gains["quantity"] == "share of dense gain"]
    levels = sorted(share["level"].unique())
    for i, level in enumerate(levels):
        part = share[share["level"] == level].set_index("cell").reindex(cells)
        offset = (i - (len(levels) - 1) / 2) * 0.15
        density = part["remaining_trainable"].dropna()
        label = f"level {level}" + (f" (~{100 * density.mean():.0f}% trainable)" if len(density) else "")
        left.errorbar(x + offset, part["mean"], yerr=[part["mean"] - part["low"], part["high"] - part["mean"]],
                      fmt="o", capsize=4, label=label)
    if share["mean"].isna().all():
        left.text(0.5, 0.5, "no share: no cell's dense network restores (gain <= 0)", ha="center", va="center",
                  transform=left.transAxes, color="grey")
    left.axhline(1.0, color="grey", lw=1, ls="--")
    left.set(xticks=x, xticklabels=cells, ylabel="ticket gain / dense gain", title="Ticket's share of the dense gain (95% CI, seeds)")
    left.legend(fontsize=8)
    controls = list(dict.fromkeys(differences["control"])) if len(differences) else []
    for i, control in enumerate(controls):
        part = differences[differences["control"] == control].set_index("cell").reindex(cells)
        offset = (i - (len(controls) - 1) / 2) * 0.15
        right.errorbar(x + offset, part["mean"], yerr=[part["mean"] - part["low"], part["high"] - part["mean"]],
                       fmt="s", capsize=4, label=f"ticket - {control}")
    right.axhline(0.0, color="grey", lw=1, ls="--")
    right.set(xticks=x, xticklabels=cells, ylabel="PSNR difference (dB)", title="Ticket - control, mean over pruned levels (95% CI)")
    if controls:
        right.legend(fontsize=8)
    return fig


def dense_curve_figure(curves: Any) -> Any:
    """The dense network's gain over the degraded input on the validation photos against its
    training step, one line per seed, one colour per cell (:func:`mirl.analysis.scaling.dense_curves`):
    a curve still climbing at its last step had not used up its budget's worth of learning.

    Example:
        >>> import pandas as pd
        >>> c = pd.DataFrame({"cell": "tiny 1x", "seed": [0, 0, 1, 1], "step": [0, 150, 0, 150], "gain": [-2.0, 2.5, -3.0, 2.0]})
        >>> len(dense_curve_figure(c).axes)
        1
    """
    fig = _figure(7, 4)
    ax = fig.subplots()
    styles = {seed: STUDY_STYLES[i % len(STUDY_STYLES)] for i, seed in enumerate(sorted(curves["seed"].unique()))}
    for i, (cell, part) in enumerate(curves.groupby("cell", sort=False)):
        for seed, line in part.sort_values("step").groupby("seed"):
            ax.plot(line["step"], line["gain"], color=f"C{i}", ls=styles[seed], marker=".", label=f"{cell}, seed {seed}")
    ax.axhline(0.0, color="grey", lw=1, ls="--")
    trained = curves.loc[curves["step"] > 0, "gain"]
    if len(trained) and curves["gain"].min() < min(0.0, trained.min()) - 0.5:  # the untrained network would flatten the rest
        ax.set_ylim(bottom=min(0.0, trained.min()) - 0.5, top=trained.max() + 0.3)
        ax.text(0.99, 0.02, "step 0 (untrained) lies below the axis", transform=ax.transAxes, ha="right", fontsize=8, color="grey")
    ax.set(xlabel="training step of the dense level", ylabel="gain over the degraded input (dB)",
           title="Dense network on the validation photos: still climbing at the end?")
    ax.legend(fontsize=8)
    return fig
