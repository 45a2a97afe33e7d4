"""The reports index: ``reports/index.html`` (and ``index.json``) listing every report of a folder.

Reports are found through their ``<name>/report.json`` (written by :mod:`mirl.reports.runner`); each row
shows the title (linking the report's HTML), the parameters, when it ran and how long it took, the
headline numbers of its ``results.json`` and a thumbnail of its ``main_figure.png``. The page is
rendered from the Jinja template ``mirl/templates/report_index.html.j2`` and fetches nothing from
the network (thumbnails are ``data:`` URLs). Report collections in sub-folders (``reports/evidence/``,
``reports/scaling/``: each with its own index) are linked above the table with their headlines,
and building a sub-folder's index rebuilds its parent's.

Example:
    >>> import tempfile
    >>> build_index(tempfile.mkdtemp()).name
    'index.html'
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping

from mirl.fileio import atomic_write_json, atomic_write_text, read_json
from mirl.reports.html import templates_dir
from mirl.reports.notebook_io import MAIN_FIGURE, RESULTS_FILE

PathLike = str | os.PathLike

INDEX_TEMPLATE = "report_index.html.j2"
INDEX_TITLE = "<title>mirl reports</title>"  # in the template's head: marks an index this module wrote


def format_number(value: Any) -> str:
    """A headline value as the index shows it: floats with 4 significant digits below 1, else 2 decimals.

    Example:
        >>> format_number(0.123456), format_number(31.4159), format_number("+0.40 dB"), format_number(3)
        ('0.1235', '31.42', '+0.40 dB', '3')
    """
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _thumbnail(png_path: Path, box: tuple[int, int] = (360, 300)) -> str | None:
    """A JPEG data URL of the figure, fitted in ``box`` (pixels)."""
    if not png_path.is_file():
        return None
    from PIL import Image

    with Image.open(png_path) as image:
        image = image.convert("RGB")
        image.thumbnail(box, Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def load_records(out: PathLike) -> list[dict[str, Any]]:
    """Every finished report of ``out``: its ``report.json`` with ``results`` (its ``results.json``)
    and ``thumbnail`` (a data URL of its main figure, or ``None``), sorted by notebook and name.

    Hidden folders (a report being built, or what a killed build left) are skipped; a damaged
    ``report.json`` or ``results.json`` is an error that names it.

    Example:
        >>> import tempfile
        >>> load_records(tempfile.mkdtemp())
        []
    """
    records = []
    for path in sorted(Path(out).glob("*/report.json")):
        if path.parent.name.startswith("."):  # a report being built, or a killed build
            continue
        advice = f"run `mirl report` again for {path.parent.name}, or remove that folder"
        record = read_json(path, advice)
        results = path.parent / RESULTS_FILE
        if results.is_file():
            record["results"] = read_json(results, advice)
        record["thumbnail"] = _thumbnail(path.parent / MAIN_FIGURE)
        records.append(record)
    records.sort(key=lambda r: (r.get("notebook", ""), r.get("name", "")))
    return records


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the template shows of one record (plain text; the template escapes it)."""
    return {
        "href": record.get("html"),
        "title": record.get("title", record["name"]),
        "name": record["name"],
        "parameters": [(str(k), json.dumps(v)) for k, v in (record.get("parameters") or {}).items()],
        "started": str(record.get("started", "")),
        "duration_s": float(record.get("duration_s", 0)),
        "headline": [(str(k), v) for k, v in ((record.get("results") or {}).get("headline") or {}).items()],
        "status": str(record.get("status")),
        "error": (record.get("error") or "")[:300],
        "thumbnail": record.get("thumbnail"),
    }


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["number"] = format_number
    return env


def _is_report_index(folder: Path) -> bool:
    """Whether ``folder`` holds an index this module wrote (and may rewrite), not another tool's."""
    try:
        return INDEX_TITLE in (folder / "index.html").read_text(encoding="utf-8")[:2000]
    except OSError:
        return False


def load_collections(out: PathLike) -> list[dict[str, Any]]:
    """The report collections in sub-folders of ``out`` (each a folder with its own ``index.json``),
    as the index lists them: ``href`` of its index page and each report's title, link and headline.

    Example:
        >>> import tempfile
        >>> load_collections(tempfile.mkdtemp())
        []
    """
    collections = []
    for listing in sorted(Path(out).glob("*/index.json")):
        folder = listing.parent
        if folder.name.startswith(".") or not _is_report_index(folder):  # a report being built, or another tool's index
            continue
        records = read_json(listing, f"run `mirl report --out {folder}` again, or remove {listing}")
        reports = [{"title": str(r.get("title", r["name"])), "href": f"{folder.name}/{r['html']}" if r.get("html") else None,
                    "status": str(r.get("status")), "headline": _row(r)["headline"]} for r in records]
        collections.append({"name": folder.name, "href": f"{folder.name}/index.html", "reports": reports})
    return collections


def render_index(records: list[Mapping[str, Any]], study_link: str = "", collections: list[Mapping[str, Any]] | None = None) -> str:
    """The index page for ``records`` (as :func:`load_records` gives them). ``study_link`` is an
    HTML fragment put above the table (trusted: it is not escaped); ``collections``: the
    sub-folders' report collections (:func:`load_collections`), listed above the table.

    Example:
        >>> page = render_index([{"name": "01_study", "title": "Study", "html": "01_study.html",
        ...                       "status": "ok", "results": {"headline": {"mean PSNR (dB)": 30.123}}}])
        >>> 'href="01_study.html"' in page, "mean PSNR (dB): 30.12" in page
        (True, True)
    """
    from markupsafe import Markup

    template = _environment().get_template(INDEX_TEMPLATE)
    return template.render(rows=[_row(r) for r in records], study_link=Markup(study_link), collections=collections or [])


def build_index(out: PathLike = "reports") -> Path:
    """Write ``out/index.html`` (and ``index.json``) listing every report found in ``out``.

    Reports are found through their ``<name>/report.json``; re-running one report replaces its
    row, and reports from earlier batches stay listed. When ``out``'s parent has an index too
    (``reports/scaling`` in ``reports``), the parent's is rebuilt so that it links this one.
    """
    from mirl.export.study_page import study_page_link

    out = Path(out)
    records = load_records(out)
    index = out / "index.html"
    atomic_write_text(index, render_index(records, study_link=study_page_link(out), collections=load_collections(out)))
    atomic_write_json(out / "index.json", [{k: v for k, v in r.items() if k != "thumbnail"} for r in records])
    parent = out.resolve().parent
    if (parent / "index.json").is_file() and _is_report_index(parent):
        build_index(parent)
    return index


__all__ = ["INDEX_TEMPLATE", "build_index", "format_number", "load_records", "render_index"]
