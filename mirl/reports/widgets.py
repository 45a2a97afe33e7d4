"""Mask explorer widgets, in two flavours, for a whole study and for a list of masks.

A study (notebook 04): :class:`StudyExplorer` (kernel) and :func:`static_study_explorer`
(browser-side) choose a replicate, a level and a branch, and show that mask per block against its
reference (:func:`mirl.analysis.mask_compare.compare_node`). A list of masks:

* :class:`MaskExplorer` (kernel): dropdown/slider changes call back into Python, which
  recomputes the per-layer density bars, the overlap (Jaccard) bars and the chosen layer's mask
  image. Needs a running kernel (JupyterLab, Notebook, VS Code).
* :func:`static_mask_explorer` (browser-side): every image is rendered ahead of time and the
  controls are ``jslink``-ed to the ``selected_index`` of :class:`ipywidgets.Stack` widgets, so
  the comparison keeps working in an exported HTML report with no kernel.

Both take an ordered mapping ``{label: mask}`` where a mask is ``{parameter name: bool tensor}``
(see :func:`mirl.analysis.results.level_mask`). Pair each widget with a static PNG (``fallback_png``) so a
reader without JavaScript still sees the comparison.

Example (in a notebook):
    >>> from mirl.analysis import results; from mirl.reports import widgets  # doctest: +SKIP
    >>> run = "runs/smoke_1a2b3c4d"                                               # doctest: +SKIP
    >>> masks = {f"level {k}": results.level_mask(run, k) for k in results.levels(run)}  # doctest: +SKIP
    >>> widgets.MaskExplorer(masks).widget                                        # doctest: +SKIP
    >>> widgets.static_mask_explorer(masks)                                       # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from mirl.reports import viz
from mirl.analysis.mask_compare import jaccard, mask_layer_table
from mirl.paths import MAIN

Mask = Mapping[str, Any]

KERNEL_CLASS = "mirl-kernel-explorer"
STATIC_CLASS = "mirl-static-explorer"


def shared_layers(masks: Mapping[str, Mask]) -> list[str]:
    """Tensor names present in every mask, in the first mask's order."""
    names: list[str] | None = None
    for mask in masks.values():
        if names is None:
            names = list(mask)
        else:
            names = [n for n in names if n in mask]
    return names or []


def pick_layers(masks: Mapping[str, Mask], max_layers: int = 12, min_dims: int = 2) -> list[str]:
    """The layers worth showing as images: tensors with at least ``min_dims`` dimensions, the
    ``max_layers`` largest (kept in network order).

    Example:
        >>> import torch
        >>> m = {"a.weight": torch.ones(4, 4, dtype=torch.bool), "n.weight": torch.ones(4, dtype=torch.bool)}
        >>> pick_layers({"x": m})
        ['a.weight']
    """
    names = shared_layers(masks)
    first = next(iter(masks.values()), {})
    candidates = [n for n in names if first[n].dim() >= min_dims] or names
    largest = sorted(candidates, key=lambda n: -first[n].numel())[:max_layers]
    return [n for n in names if n in set(largest)]


def _caption(layer: str, label: str, mask: Any, reference: Any | None, ref_label: str) -> str:
    density = float(mask.float().mean())
    text = f"<b>{html.escape(layer)}</b> · <b>{html.escape(label)}</b>: {density:.1%} of weights kept"
    if reference is not None:
        text += f" · Jaccard vs {html.escape(ref_label)}: {jaccard(mask, reference):.3f}"
    return text


def _image(png: bytes, width: str = "384px") -> Any:
    import ipywidgets as w

    return w.Image(value=png, format="png", layout=w.Layout(width=width, height="auto", object_fit="contain"))


def static_mask_explorer(
    masks: Mapping[str, Mask],
    reference: str | None = None,
    layers: Sequence[str] | None = None,
    max_layers: int = 12,
    image_px: int = 192,
) -> Any:
    """Browser-side mask explorer: a slider over masks and a layer dropdown switch pre-rendered images.

    The slider chooses mask B (any entry of ``masks``), compared against mask A = ``reference``
    (default: the first entry); the dropdown chooses the layer. Images are coloured as in
    :func:`mirl.reports.viz.mask_rgb`. Works without a kernel: controls are linked in the browser
    (``jslink`` to ``Stack.selected_index``). Returns a ``VBox`` with the CSS class
    ``mirl-static-explorer``.

    Example:
        >>> import torch
        >>> m = {"c.weight": torch.rand(8, 4, 3, 3) > 0.5}
        >>> box = static_mask_explorer({"level 0": m, "level 1": m})
        >>> type(box).__name__
        'VBox'
    """
    import ipywidgets as w

    labels = list(masks)
    if not labels:
        raise ValueError("static_mask_explorer needs at least one mask")
    ref_label = reference if reference is not None else labels[0]
    ref_mask = masks[ref_label]
    layers = list(layers) if layers is not None else pick_layers(masks, max_layers=max_layers)
    start = len(labels) - 1
    slider = w.SelectionSlider(options=[(label, i) for i, label in enumerate(labels)], index=start,
                               description="mask B", continuous_update=True,
                               style={"description_width": "initial"}, layout=w.Layout(width="520px"))
    dropdown = w.Dropdown(options=[(name, i) for i, name in enumerate(layers)], index=0, description="layer",
                          layout=w.Layout(width="520px"))
    outer = []
    for layer in layers:
        pages = []
        for label in labels:
            mask = masks[label][layer].bool()
            ref = ref_mask[layer].bool() if label != ref_label else None
            png = viz.mask_png(mask, ref if ref is not None else mask, scale_to=image_px)
            caption = _caption(layer, label, mask, ref, ref_label)
            pages.append(w.VBox([w.HTML(caption), _image(png)]))
        inner = w.Stack(pages, selected_index=start)
        w.jslink((slider, "index"), (inner, "selected_index"))
        outer.append(inner)
    layer_stack = w.Stack(outer, selected_index=0)
    w.jslink((dropdown, "index"), (layer_stack, "selected_index"))
    legend = w.HTML(f"<small>A = {html.escape(ref_label)}. {html.escape(viz.mask_legend_text())}. "
                    "Pre-rendered: works in the HTML report without a kernel.</small>")
    box = w.VBox([slider, dropdown, layer_stack, legend])
    box.add_class(STATIC_CLASS)
    return box


class MaskExplorer:
    """Kernel-backed mask comparison: choose mask A, mask B and a layer; Python redraws.

    ``widget`` holds: a dropdown for A, a slider for B, a layer dropdown, a status line, the
    layer's mask image, and the per-layer density and overlap bars. Every change calls
    :meth:`update` in the kernel (so it needs a live kernel; use :func:`static_mask_explorer`
    for exported HTML). The container has the CSS class ``mirl-kernel-explorer``.

    Example:
        >>> import torch
        >>> m0 = {"c.weight": torch.ones(8, 4, 3, 3, dtype=torch.bool)}
        >>> m1 = {"c.weight": torch.rand(8, 4, 3, 3) > 0.5}
        >>> ex = MaskExplorer({"level 0": m0, "level 1": m1})
        >>> ex.b.index = 0; ex.updates >= 2
        True
    """

    def __init__(self, masks: Mapping[str, Mask], layers: Sequence[str] | None = None, image_px: int = 256) -> None:
        import ipywidgets as w

        if not masks:
            raise ValueError("MaskExplorer needs at least one mask")
        self.masks = dict(masks)
        self.labels = list(masks)
        self.layers = list(layers) if layers is not None else shared_layers(masks)
        self.image_px = image_px
        self.updates = 0
        self.a = w.Dropdown(options=self.labels, value=self.labels[0], description="mask A")
        self.b = w.SelectionSlider(options=self.labels, value=self.labels[-1], description="mask B",
                                   continuous_update=False, layout=w.Layout(width="520px"))
        image_layers = pick_layers(masks, max_layers=10**6)
        self.layer = w.Dropdown(options=image_layers or self.layers, description="layer", layout=w.Layout(width="520px"))
        self.status = w.HTML()
        self.status.add_class("mirl-status")
        self.mask_image = _image(b"", width="420px")
        self.bars_image = w.Image(format="png", layout=w.Layout(width="560px"))
        self.jaccard_image = w.Image(format="png", layout=w.Layout(width="460px"))
        for control in (self.a, self.b, self.layer):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([
            w.HBox([self.a, self.b]), self.layer, self.status, self.mask_image,
            w.HBox([self.bars_image, self.jaccard_image]),
        ])
        self.widget.add_class(KERNEL_CLASS)
        self._last_pair: tuple[str, str] | None = None
        self.update()

    def _on_change(self, change: Mapping[str, Any]) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the view for the current A, B and layer (runs in the kernel)."""
        a_label, b_label, layer = self.a.value, self.b.value, self.layer.value
        mask_a, mask_b = self.masks[a_label], self.masks[b_label]
        self.mask_image.value = viz.mask_png(mask_b[layer].bool(), mask_a[layer].bool(), scale_to=self.image_px)
        self.status.value = (f"{_caption(layer, b_label, mask_b[layer].bool(), mask_a[layer].bool(), a_label)}"
                             f" · update #{self.updates + 1} (kernel)")
        if self._last_pair != (a_label, b_label):
            table = mask_layer_table(mask_a, mask_b)
            matrices = table[[mask_a[n].dim() >= 2 for n in table["tensor"]]]
            table = matrices if not matrices.empty else table
            self.bars_image.value = viz.fig_to_png(viz.density_bars(table, labels=(a_label, b_label)), dpi=80)
            self.jaccard_image.value = viz.fig_to_png(viz.jaccard_bars(table, title=f"Overlap {a_label} vs {b_label}"), dpi=80)
            self._last_pair = (a_label, b_label)
        self.updates += 1


def fallback_png(masks: Mapping[str, Mask], layer: str | None = None, reference: str | None = None,
                 compare: str | None = None) -> bytes:
    """A static PNG of one comparison (default: first vs last mask, largest layer), to show beside
    a widget for readers without JavaScript."""
    labels = list(masks)
    ref_label = reference or labels[0]
    cmp_label = compare or labels[-1]
    layer = layer or pick_layers(masks, max_layers=1)[0]
    fig = viz.mask_view(masks[cmp_label][layer].bool(), masks[ref_label][layer].bool(),
                        title=f"{layer}: {cmp_label} vs {ref_label}", labels=(ref_label, cmp_label))
    return viz.fig_to_png(fig)


# --------------------------------------------------------------------------- a whole study, per block (notebook 04)


def node_figure(comparison: Any) -> Any:
    """The figure of one :class:`mirl.analysis.mask_compare.NodeComparison`: kept weights per block beside
    the overlap with its reference (:func:`mirl.reports.viz.node_block_figure`)."""
    from mirl.branches import branch_label

    node, reference = comparison.node, comparison.reference
    ref_label, node_label = _short_labels(node, reference)
    return viz.node_block_figure(comparison.density, comparison.reference_density, comparison.overlap, comparison.expected,
                                 node.label(), labels=(node_label if node.branch == MAIN else branch_label(node.branch), ref_label),
                                 overlap_label=comparison.overlap_label)


def _missing_text(replicate: int, level: int, branch: str) -> str:
    from mirl.branches import branch_label

    return (f"replicate {replicate} has no {branch_label(branch)} mask at level {level}"
            + (" (branches start at level 1; level 0 is the dense network)" if level == 0 else ""))


def _study_controls(scan: Any, description_width: str = "initial") -> tuple[Any, Any, Any]:
    """Replicate and branch toggles and a level slider, set to replicate 0, the last level, the ticket."""
    import ipywidgets as w

    from mirl.branches import branch_label

    style = {"description_width": description_width}
    branches = [MAIN, *scan.branches]
    replicate = w.ToggleButtons(options=[(f"{r}", i) for i, r in enumerate(scan.replicates)], index=0,
                                description="replicate", style={**style, "button_width": "48px"})
    level = w.SelectionSlider(options=[(f"level {k}", i) for i, k in enumerate(scan.levels)], index=len(scan.levels) - 1,
                              description="level", continuous_update=True, style=style, layout=w.Layout(width="420px"))
    branch = w.ToggleButtons(options=[(branch_label(b), i) for i, b in enumerate(branches)], index=0,
                             description="branch", style={**style, "button_width": "150px"})
    return replicate, level, branch


def static_study_explorer(scan: Any, overlap: Any, dpi: int = 80) -> Any:
    """Browser-side explorer of a study's masks: replicate, level and branch choose a pre-rendered
    figure (kept weights per block, and the overlap with its reference; see
    :func:`mirl.analysis.mask_compare.compare_node`) and its caption. Controls are ``jslink``-ed to nested
    :class:`ipywidgets.Stack` widgets, so it works in an exported HTML report without a kernel.
    Returns a ``VBox`` with the CSS class ``mirl-static-explorer``.

    ``scan`` is :func:`mirl.analysis.mask_compare.scan_study` output, ``overlap`` its
    :func:`mirl.analysis.mask_compare.block_overlap` table.

    Example:
        >>> from mirl.analysis import mask_compare  # doctest: +SKIP
        >>> scan = mask_compare.scan_study("runs/smoke_de4d1844")       # doctest: +SKIP
        >>> static_study_explorer(scan, mask_compare.block_overlap(scan.pairs))  # doctest: +SKIP
    """
    import ipywidgets as w

    from mirl.analysis.mask_compare import Node, compare_node, node_caption

    replicate, level, branch = _study_controls(scan)
    branches = [MAIN, *scan.branches]
    per_replicate = []
    for r in scan.replicates:
        per_level = []
        for k in scan.levels:
            pages = []
            for b in branches:
                node = Node(r, k, b)
                if node not in scan.nodes:
                    pages.append(w.HTML(f"<p>{html.escape(_missing_text(r, k, b))}</p>"))
                    continue
                comparison = compare_node(scan, overlap, node)
                png = viz.fig_to_png(node_figure(comparison), dpi=dpi)
                pages.append(w.VBox([w.HTML(html.escape(node_caption(comparison))), _image(png, width="100%")]))
            inner = w.Stack(pages, selected_index=0)
            w.jslink((branch, "index"), (inner, "selected_index"))
            per_level.append(inner)
        middle = w.Stack(per_level, selected_index=len(scan.levels) - 1)
        w.jslink((level, "index"), (middle, "selected_index"))
        per_replicate.append(middle)
    outer = w.Stack(per_replicate, selected_index=0)
    w.jslink((replicate, "index"), (outer, "selected_index"))
    legend = w.HTML("<small>Reference: a branch is compared with the ticket's mask of its replicate and level (Jaccard; black "
                    "ticks: random masks of the same densities); the ticket with its own previous level (the fraction of "
                    "those weights it still keeps). Pre-rendered: works in the HTML report without a kernel.</small>")
    box = w.VBox([replicate, level, branch, outer, legend])
    box.add_class(STATIC_CLASS)
    return box


class StudyExplorer:
    """Kernel-backed explorer of a study's masks: choose a replicate, a level, a branch and a
    tensor; Python redraws the per-block figure (as :func:`static_study_explorer` shows) and the
    tensor's mask coloured against the reference (:func:`mirl.reports.viz.mask_rgb`).

    ``widget`` (CSS class ``mirl-kernel-explorer``) holds the controls, a status line (class
    ``mirl-status``), the per-block figure and the tensor's image. Every change calls
    :meth:`update` in the kernel, so it needs a live kernel.

    Example:
        >>> from mirl.analysis import mask_compare  # doctest: +SKIP
        >>> scan = mask_compare.scan_study("runs/smoke_de4d1844")        # doctest: +SKIP
        >>> StudyExplorer(scan, mask_compare.block_overlap(scan.pairs)).widget  # doctest: +SKIP
    """

    def __init__(self, scan: Any, overlap: Any, dpi: int = 80) -> None:
        import ipywidgets as w

        from mirl.analysis.mask_compare import block_of

        self.scan, self.overlap, self.dpi = scan, overlap, dpi
        self.branches = [MAIN, *scan.branches]
        self.updates = 0
        self._masks: dict[Any, Any] = {}
        self.replicate, self.level, self.branch = _study_controls(scan)
        self.level.continuous_update = False
        first = scan.densities.drop_duplicates("tensor")
        largest = first.sort_values("size", ascending=False, kind="stable")["tensor"].tolist()
        self.tensor = w.Dropdown(options=[(f"{block_of(t)} · {t}", t) for t in first["tensor"]],
                                 value=largest[0] if largest else None, description="tensor",
                                 style={"description_width": "initial"}, layout=w.Layout(width="560px"))
        self.status = w.HTML()
        self.status.add_class("mirl-status")
        self.figure_image = _image(b"", width="100%")
        self.tensor_image = _image(b"", width="440px")
        for control in (self.replicate, self.level, self.branch, self.tensor):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([self.replicate, self.level, self.branch, self.status, self.figure_image,
                              self.tensor, self.tensor_image])
        self.widget.add_class(KERNEL_CLASS)
        self.update()

    def _on_change(self, change: Mapping[str, Any]) -> None:
        self.update()

    def _mask(self, node: Any) -> Mapping[str, Any]:
        if node not in self._masks:
            if len(self._masks) >= 4:
                self._masks.pop(next(iter(self._masks)))
            self._masks[node] = self.scan.mask(node)
        return self._masks[node]

    def selected(self) -> Any:
        """The chosen :class:`mirl.analysis.mask_compare.Node`."""
        from mirl.analysis.mask_compare import Node

        return Node(self.scan.replicates[self.replicate.index], self.scan.levels[self.level.index],
                    self.branches[self.branch.index])

    def update(self) -> None:
        """Recompute the view for the current choice (runs in the kernel)."""
        from mirl.analysis.mask_compare import compare_node, node_caption

        node = self.selected()
        self.updates += 1
        if node not in self.scan.nodes:
            missing = html.escape(_missing_text(node.replicate, node.level, node.branch))
            self.status.value = f"{missing} · update #{self.updates} (kernel)"
            self.figure_image.value = b""
            self.tensor_image.value = b""
            return
        comparison = compare_node(self.scan, self.overlap, node)
        self.status.value = f"{html.escape(node_caption(comparison))} · update #{self.updates} (kernel)"
        self.figure_image.value = viz.fig_to_png(node_figure(comparison), dpi=self.dpi)
        name = self.tensor.value
        mask = self._mask(node)[name].bool()
        reference = comparison.reference
        labels = _short_labels(node, reference)
        fig = viz.mask_view(mask, self._mask(reference)[name].bool() if reference is not None else None,
                            title=f"{name}\nA = {labels[0]}, B = {labels[1]}" if reference is not None else name, labels=labels)
        self.tensor_image.value = viz.fig_to_png(fig, dpi=self.dpi)


def _short_labels(node: Any, reference: Any | None) -> tuple[str, str]:
    """Short names of a reference (A) and a node (B): ``level 1``/``level 2`` along the ticket,
    ``ticket``/``random pruning`` for a branch."""
    from mirl.branches import branch_label

    if reference is None:
        return "", f"level {node.level}"
    if reference.branch == node.branch:
        return f"level {reference.level}", f"level {node.level}"
    return branch_label(reference.branch), branch_label(node.branch)
