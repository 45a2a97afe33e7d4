"""Executed notebook -> one self-contained HTML file, and a check that a page fetches nothing.

The export uses nbconvert with mirl's template ``mirl/templates/mirl_report`` (JupyterLab look):
no require.js, MathJax or web fonts; widgets are rendered by the vendored ``embed.js`` (included
as a ``data:`` URL when setup fetched it); code cells are hidden, with a button to show them.
:func:`external_references` lists every address a page would load from the network.

Example:
    >>> export_html("reports/01_study--smoke/01_study.ipynb", "reports/01_study--smoke.html")  # doctest: +SKIP
    >>> external_references('<a href="https://x.org">x</a>')
    ['https://x.org']
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mirl.fileio import atomic_write_text

PathLike = str | os.PathLike

TEMPLATE_NAME = "mirl_report"


def templates_dir() -> Path:
    """The folder of mirl's templates (package data): nbconvert's ``mirl_report`` and the index page."""
    return Path(__file__).resolve().parents[1] / "templates"


def widget_renderer_path() -> Path | None:
    """``embed.js`` of ``@jupyter-widgets/html-manager`` (fetched from npm by setup), if present."""
    path = Path(__file__).resolve().parents[1] / "_vendor" / "embed.js"
    return path if path.is_file() and path.stat().st_size > 0 else None


_STYLE_RE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S | re.I)
_CSS_COMMENT_RE = re.compile(r"/\*.*?\*/", re.S)


def _strip_css_comments(text: str) -> str:
    # The lab theme's CSS credits its sources with https:// links in comments; drop comments so
    # the file names no external address at all.
    return _STYLE_RE.sub(lambda m: m.group(1) + _CSS_COMMENT_RE.sub("", m.group(2)) + m.group(3), text)


_EXPORTER_CACHE: dict[str, Any] = {}


def _exporter() -> Any:
    if "html" not in _EXPORTER_CACHE:
        from nbconvert import HTMLExporter

        extra = [str(templates_dir())]
        renderer = widget_renderer_path()
        if renderer is not None:
            extra.append(str(renderer.parent))
        exporter = HTMLExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(templates_dir())],
                                extra_template_paths=extra)
        _EXPORTER_CACHE["html"] = exporter
    return _EXPORTER_CACHE["html"]


def export_html(notebook: PathLike, html_path: PathLike, header: str = "") -> Path:
    """Export an executed notebook to one self-contained HTML file (atomic write).

    The file loads nothing from the network: no require.js, MathJax or web fonts; widgets are
    rendered by the vendored ``embed.js`` included as a ``data:`` URL (when setup fetched it;
    otherwise the static fallback images still show). Code cells are hidden, with a button to
    show them. ``header`` is a line of text shown on top (parameters, run time).

    Example:
        >>> export_html("reports/01_study--smoke/01_study.ipynb", "reports/01_study--smoke.html")  # doctest: +SKIP
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    renderer = widget_renderer_path()
    resources = {
        "mirl_header": header,
        "mirl_widget_renderer": renderer.name if renderer is not None else "",
        "metadata": {"name": Path(html_path).stem},
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    body = _strip_css_comments(body)
    html_path = Path(html_path)
    atomic_write_text(html_path, body)
    return html_path


# Protocol-relative addresses (``//host/x``) in attributes and CSS; absolute ones match _ANY_URL_RE.
_URL_ATTR_RE = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*//[^\s"'<>]+""", re.I)
_SRCSET_RE = re.compile(r"""srcset\s*=\s*["']([^"']*)["']""", re.I)
_CSS_URL_RE = re.compile(r"""(?:url\(\s*["']?\s*//[^\s"')]+|@import\s+["']//[^\s"']+)""", re.I)
_ANY_URL_RE = re.compile(r"(?:https?|wss?|ftp)://[^\s\"'<>)]+", re.I)
# XML namespace identifiers are names, never fetched.
_NAMESPACE_OK = ("http://www.w3.org/",)


def external_references(text: str) -> list[str]:
    """Every external address in an HTML text (``data:`` URLs excluded); empty means offline-safe.

    Example:
        >>> external_references('<img src="data:image/png;base64,AAA"><a href="https://x.org">x</a>')
        ['https://x.org']
    """
    stripped = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "data:", text)
    found = [m.group(0) for m in _ANY_URL_RE.finditer(stripped) if not m.group(0).startswith(_NAMESPACE_OK)]
    found += [m.group(0) for m in _URL_ATTR_RE.finditer(stripped)]
    found += [m.group(0) for m in _CSS_URL_RE.finditer(stripped)]
    found += [candidate for m in _SRCSET_RE.finditer(stripped)  # "a.png 1x, //cdn/b.png 2x": each address is fetched
              for candidate in (part.strip().split(" ")[0] for part in m.group(1).split(",")) if candidate.startswith("//")]
    return found


__all__ = ["TEMPLATE_NAME", "export_html", "external_references", "templates_dir", "widget_renderer_path"]
