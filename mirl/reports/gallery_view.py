"""The restoration gallery as a widget: a task and a photo chosen from dropdowns switch between
pre-rendered pages (every panel's full view with the zoom box, the zoomed crop, and its PSNR).

The controls are ``jslink``-ed to :class:`ipywidgets.Stack` widgets in the browser, so the gallery
works the same live in JupyterLab and in an exported HTML report with no kernel. Full views are
JPEG (quality 90, to keep reports small); zoomed crops, where the differences are, are lossless
PNG shown with nearest-neighbour scaling. PSNR is computed on the restored images, never on the
encoded ones.

Example:
    >>> import numpy as np
    >>> panel = {"label": "clean", "image": np.zeros((32, 32, 3)), "psnr": None}
    >>> box = gallery_browser([{"task": "derain", "name": "china-r0c0", "panels": [panel]}])
    >>> type(box).__name__
    'VBox'
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Mapping, Sequence

import numpy as np

from mirl.analysis.gallery import photo_of
from mirl.reports.viz import crop_box

GALLERY_CLASS = "mirl-gallery-browser"


def _encode(image: np.ndarray, fmt: str) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    picture = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
    if fmt == "JPEG":
        picture.save(buffer, format="JPEG", quality=90)
    else:
        picture.save(buffer, format="PNG", optimize=True)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _with_box(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """A copy of ``image`` with a 1-px red square around the zoomed crop."""
    boxed = np.array(image, dtype=np.float32, copy=True)
    bottom, right = top + side - 1, left + side - 1
    red = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    boxed[top, left:right + 1] = boxed[bottom, left:right + 1] = red
    boxed[top:bottom + 1, left] = boxed[top:bottom + 1, right] = red
    return boxed


def sample_page(sample: Mapping[str, Any], crop: int | None = None) -> str:
    """One sample as an HTML table: full views (with the zoom box), zoomed crops, labels and PSNR.

    Example:
        >>> panel = {"label": "level 2", "image": np.zeros((32, 32, 3)), "psnr": 31.234}
        >>> "31.23 dB" in sample_page({"task": "derain", "name": "x", "panels": [panel]})
        True
    """
    first = np.asarray(sample["panels"][0]["image"])
    top, left, side = crop_box(first.shape[0], first.shape[1], crop)
    cells_full, cells_zoom, cells_label = [], [], []
    for panel in sample["panels"]:
        image = np.asarray(panel["image"], dtype=np.float32)
        full = _encode(_with_box(image, top, left, side), "JPEG")
        zoom = _encode(image[top:top + side, left:left + side], "PNG")
        psnr = panel.get("psnr")
        cells_full.append(f'<td><img src="{full}" style="width:100%;height:auto" alt="{html.escape(panel["label"])}"></td>')
        cells_zoom.append(f'<td><img src="{zoom}" style="width:100%;height:auto;image-rendering:pixelated" '
                          f'alt="zoom of {html.escape(panel["label"])}"></td>')
        score = "" if psnr is None else f"<br>{psnr:.2f} dB"
        cells_label.append(f'<td style="text-align:center;vertical-align:bottom"><b>{html.escape(panel["label"])}</b>{score}</td>')
    caption = (f"{html.escape(sample['task'])} · {html.escape(sample.get('name', ''))}: PSNR against the clean image "
               f"({html.escape(sample.get('convention', 'upstream'))}); the red box is the zoomed crop")
    rows = "".join(f"<tr>{''.join(cells)}</tr>" for cells in (cells_label, cells_full, cells_zoom))
    width = min(100, 18 * len(sample["panels"]))  # panels of at most about 2x their pixels on a wide screen
    return (f'<table class="mirl-gallery-page" style="table-layout:fixed;width:{width}%">'
            f'<caption style="caption-side:top;text-align:left">{caption}</caption>{rows}</table>')


def gallery_browser(samples: Sequence[Mapping[str, Any]], crop: int | None = None) -> Any:
    """Dropdowns (task, photo) over pre-rendered :func:`sample_page` pages, linked in the browser.

    Tasks that show the same photos share one photo dropdown; otherwise one dropdown lists every
    (task, image). Returns a ``VBox`` with the CSS class ``mirl-gallery-browser``.
    """
    import ipywidgets as w

    if not samples:
        raise ValueError("gallery_browser needs at least one sample")
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for sample in samples:
        by_task.setdefault(sample["task"], []).append(sample)
    photo_lists = {tuple(photo_of(s["name"]) for s in shown) for shown in by_task.values()}
    layout = w.Layout(width="420px")
    if len(photo_lists) == 1:
        names = next(iter(photo_lists))
        task_menu = w.Dropdown(options=[(t, i) for i, t in enumerate(by_task)], index=0, description="task", layout=layout)
        photo_menu = w.Dropdown(options=[(n, i) for i, n in enumerate(names)], index=0, description="photo", layout=layout)
        inner = []
        for shown in by_task.values():
            stack = w.Stack([w.HTML(sample_page(s, crop)) for s in shown], selected_index=0)
            w.jslink((photo_menu, "index"), (stack, "selected_index"))
            inner.append(stack)
        pages = w.Stack(inner, selected_index=0)
        w.jslink((task_menu, "index"), (pages, "selected_index"))
        controls: list[Any] = [task_menu, photo_menu]
    else:
        menu = w.Dropdown(options=[(f"{s['task']} · {s['name']}", i) for i, s in enumerate(samples)], index=0,
                          description="image", layout=layout)
        pages = w.Stack([w.HTML(sample_page(s, crop)) for s in samples], selected_index=0)
        w.jslink((menu, "index"), (pages, "selected_index"))
        controls = [menu]
    note = w.HTML("<small>Pre-rendered: the menus work in the HTML report without a kernel. Full views JPEG (quality 90); "
                  "zoomed crops lossless.</small>")
    box = w.VBox([w.HBox(controls), pages, note])
    box.add_class(GALLERY_CLASS)
    return box


__all__ = ["gallery_browser", "sample_page"]
