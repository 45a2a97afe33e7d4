"""Mask explorer widgets, in two flavours.

* :class:`MaskExplorer` (kernel): dropdown/slider changes call back into Python, which
  recomputes the per-layer density bars, the overlap (Jaccard) bars and the chosen layer's mask
  image. Needs a running kernel (JupyterLab, Notebook, VS Code).
* :func:`static_mask_explorer` (browser-side): every image is rendered ahead of time and the
  controls are ``jslink``-ed to the ``selected_index`` of :class:`ipywidgets.Stack` widgets, so
  the comparison keeps working in an exported HTML report with no kernel.

Both take an ordered mapping ``{label: mask}`` where a mask is ``{parameter name: bool tensor}``
(see :func:`mirl.results.level_mask`). Pair each widget with a static PNG (``fallback_png``) so a
reader without JavaScript still sees the comparison.

Example (in a notebook):
    >>> from mirl import results, widgets                                        # doctest: +SKIP
    >>> run = "runs/smoke_1a2b3c4d"                                               # doctest: +SKIP
    >>> masks = {f"level {k}": results.level_mask(run, k) for k in results.levels(run)}  # doctest: +SKIP
    >>> widgets.MaskExplorer(masks).widget                                        # doctest: +SKIP
    >>> widgets.static_mask_explorer(masks)                                       # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from mirl import viz
from mirl.mask_compare import jaccard, mask_layer_table

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
    :func:`mirl.viz.mask_rgb`. Works without a kernel: controls are linked in the browser
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
