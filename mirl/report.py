"""Execute the study notebooks with papermill and publish them as offline HTML reports.

Layout of a reports folder::

    reports/index.html                 every report: title, parameters, run time, duration,
                                       headline numbers, thumbnail of the main figure
    reports/<name>.html                one self-contained report (no network needed, widgets work)
    reports/<name>/<notebook>.ipynb    the executed notebook
    reports/<name>/results.json        headline numbers written by the notebook
    reports/<name>/main_figure.png     the figure shown as the index thumbnail
    reports/<name>/report.json         parameters, timings and status of the run

``<name>`` is the notebook's stem plus the parameters that were set, e.g.
``02_sparsity_vs_psnr--smoke--scope-layerwise``. Everything runs in one Python process (papermill
starts one kernel per notebook); every file is written atomically. A report is built in a hidden
``.<name>.tmp-*`` folder and swapped in when complete: an interrupted run leaves the previous
report, and the index, as they were.

Example:
    >>> from mirl.report import run_reports                              # doctest: +SKIP
    >>> records = run_reports(preset="smoke", out="reports")             # doctest: +SKIP
    >>> records[0]["html"]                                               # doctest: +SKIP
    'reports/01_study--smoke.html'
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from mirl.errors import MirlError
from mirl.fileio import atomic_open, atomic_write_json, atomic_write_text
from mirl import paths
from mirl.paths import datasets_dir, project_root, reports_dir

PathLike = str | os.PathLike


@dataclass(frozen=True)
class NotebookSpec:
    """A study notebook: file stem and the title shown in the index."""

    stem: str
    title: str


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec("01_study", "Study: iterative magnitude pruning"),
    NotebookSpec("02_sparsity_vs_psnr", "Sparsity vs PSNR/SSIM"),
    NotebookSpec("03_gallery", "Restoration gallery"),
    NotebookSpec("04_mask_explorer", "Mask explorer"),
    NotebookSpec("05_any_checkpoint", "Any checkpoint: table and gallery"),
)

# Parameters every notebook has that the report runner fills in itself.
RUNNER_PARAMETERS = ("output_dir", "runs_dir", "data_dir")

RESULTS_FILE = "results.json"
MAIN_FIGURE = "main_figure.png"
TEMPLATE_NAME = "mirl_report"


class ReportError(MirlError):
    """A report could not be built; the message says why."""


# --------------------------------------------------------------------------- locations


def notebooks_dir() -> Path:
    """The folder holding the study notebooks (``notebooks/`` of the checkout)."""
    checkout = Path(__file__).resolve().parents[1] / "notebooks"
    return checkout if checkout.is_dir() else project_root() / "notebooks"


def resolve_output_dir(output_dir: PathLike | None, stem: str) -> Path:
    """Where a notebook writes ``results.json`` and its figures.

    ``None`` (an interactive run) means ``reports/interactive/<stem>`` under the project root.
    The folder is created.

    Example:
        >>> resolve_output_dir("/tmp/out", "01_study").as_posix()
        '/tmp/out'
    """
    path = Path(output_dir) if output_dir is not None else reports_dir() / "interactive" / stem
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def resolve_runs_dir(runs_dir: PathLike | None) -> Path:
    """Where study runs live: ``runs_dir`` or ``runs/`` under the project root."""
    return Path(runs_dir).resolve() if runs_dir is not None else paths.runs_dir()


def resolve_data_dir(data_dir: PathLike | None) -> Path:
    """Where datasets live: ``data_dir`` or ``datasets/`` under the project root."""
    return Path(data_dir).resolve() if data_dir is not None else datasets_dir()


# --------------------------------------------------------------------------- results.json


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def save_results(
    output_dir: PathLike,
    headline: Mapping[str, Any],
    main_figure: Any | None = None,
    parameters: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Record a notebook's headline numbers in ``output_dir/results.json`` (and its main figure).

    ``headline`` holds the few numbers shown in the report index (name them with their unit and
    metric convention). ``main_figure`` (a matplotlib figure) is saved as ``main_figure.png``.

    Example:
        >>> import tempfile, json
        >>> d = tempfile.mkdtemp()
        >>> p = save_results(d, {"dense mean PSNR (dB, upstream)": 30.1}, runs=["a"])
        >>> json.load(open(p))["headline"]
        {'dense mean PSNR (dB, upstream)': 30.1}
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "headline": _jsonable(dict(headline)),
        "parameters": _jsonable(dict(parameters or {})),
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(_jsonable(extra))
    if main_figure is not None:
        from mirl.viz import fig_to_png

        png = fig_to_png(main_figure, dpi=90)
        with atomic_open(output_dir / MAIN_FIGURE, "wb") as handle:
            handle.write(png)
        record["main_figure"] = MAIN_FIGURE
    path = output_dir / RESULTS_FILE
    atomic_write_json(path, record)
    return path


# --------------------------------------------------------------------------- parameters


def load_param_sets(path: PathLike) -> list[dict[str, Any]]:
    """Read a batch parameters file (YAML or JSON): a list of parameter sets.

    Accepted shapes: a list of mappings, or ``{"defaults": {...}, "sets": [...]}`` where each set
    is merged over the defaults. A set may name the notebooks it applies to with ``notebooks``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "b.yaml")
        >>> _ = open(p, "w").write("defaults: {preset: smoke}\\nsets:\\n- {scope: global}\\n- {scope: layerwise}\\n")
        >>> load_param_sets(p)
        [{'preset': 'smoke', 'scope': 'global'}, {'preset': 'smoke', 'scope': 'layerwise'}]
    """
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)  # JSON is YAML
    defaults: dict[str, Any] = {}
    if isinstance(data, Mapping):
        defaults = dict(data.get("defaults") or {})
        data = data.get("sets", [{}])
    if not isinstance(data, list) or not all(isinstance(s, Mapping) for s in data):
        raise ReportError(f"{path}: expected a list of parameter sets (mappings), or defaults + sets")
    return [{**defaults, **dict(s)} for s in data]


def _slug(value: Any) -> str:
    """A file-name-safe rendering of a parameter value; paths are shortened to their last part.

    Example:
        >>> _slug([{}, {"scope": "layerwise"}]), _slug("/data/sets/Rain100L"), _slug(None)
        ('default+scope=layerwise', 'Rain100L', 'none')
    """
    if isinstance(value, (list, tuple)):
        return "+".join(_slug(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "+".join(f"{_slug(k)}={_slug(v)}" for k, v in sorted(value.items())) or "default"
    if value is None:
        return "none"
    text = str(value)
    if "/" in text or os.sep in text:
        text = Path(text).name or text
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", text).strip("_") or "none"


def report_name(stem: str, parameters: Mapping[str, Any]) -> str:
    """File name (without ``.html``) of a report: notebook stem plus the parameters that were set.

    Example:
        >>> report_name("02_sparsity_vs_psnr", {"preset": "smoke", "scope": "layerwise"})
        '02_sparsity_vs_psnr--smoke--scope-layerwise'
        >>> report_name("01_study", {})
        '01_study'
    """
    params = {k: v for k, v in parameters.items() if k not in RUNNER_PARAMETERS}
    parts = [stem]
    if "preset" in params:
        parts.append(_slug(params.pop("preset")))
    parts += [f"{_slug(k)}-{_slug(v)}" for k, v in sorted(params.items())]
    name = "--".join(parts)
    if len(name) > 120:
        digest = hashlib.sha1(json.dumps(_jsonable(parameters), sort_keys=True).encode()).hexdigest()[:8]
        name = f"{name[:100]}--{digest}"
    return name


def notebook_parameters(path: PathLike) -> dict[str, Any]:
    """Parameters declared by a notebook's ``parameters`` cell: ``{name: default source text}``."""
    import papermill

    return {name: info.get("default") for name, info in papermill.inspect_notebook(str(path)).items()}


# --------------------------------------------------------------------------- HTML export


def templates_dir() -> Path:
    """The folder of mirl's nbconvert templates (package data)."""
    return Path(__file__).resolve().parent / "templates"


def widget_renderer_path() -> Path | None:
    """``embed.js`` of ``@jupyter-widgets/html-manager`` (fetched from npm by setup), if present."""
    path = Path(__file__).resolve().parent / "_vendor" / "embed.js"
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
    return found


# --------------------------------------------------------------------------- execution


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _header(spec_title: str, parameters: Mapping[str, Any], started: str, duration: float, status: str) -> str:
    shown = {k: v for k, v in parameters.items() if k not in RUNNER_PARAMETERS}
    params = ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "defaults"
    return f"{spec_title} · parameters: {params} · ran {started} · {duration:.1f} s · {status}"


def execute_report(
    spec: NotebookSpec,
    parameters: Mapping[str, Any],
    out: PathLike = "reports",
    runner: Mapping[str, Any] | None = None,
    notebooks: PathLike | None = None,
    kernel_name: str = "python3",
    timeout: int | None = None,
) -> dict[str, Any]:
    """Execute one notebook with papermill and export its HTML report; return its record.

    ``parameters`` are the user's (they name the report); ``runner`` adds ``runs_dir`` /
    ``data_dir``, passed only to notebooks that declare them. A failing notebook still gives a
    report (with the error shown) and a record with ``status: failed``. The previous report of
    the same name is replaced only once the new one is complete.
    """
    out = Path(out).resolve()
    src = Path(notebooks or notebooks_dir()) / f"{spec.stem}.ipynb"
    if not src.is_file():
        raise ReportError(f"notebook not found: {src}")
    declared = notebook_parameters(src)
    name = report_name(spec.stem, parameters)
    # Build in a hidden sibling folder; the previous report stays whole until the swap.
    work = _new_build_folder(out, name)
    try:
        record = _execute_into(spec, parameters, declared, src, work, out / name, runner, kernel_name, timeout)
        _swap_in(work, out / name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    html_built = out / name / f"{name}.html"
    if html_built.is_file():
        os.replace(html_built, out / f"{name}.html")
    return record


def _execute_into(
    spec: NotebookSpec, parameters: Mapping[str, Any], declared: Mapping[str, Any], src: Path, work: Path,
    final: Path, runner: Mapping[str, Any] | None, kernel_name: str, timeout: int | None,
) -> dict[str, Any]:
    """Run the notebook in ``work`` (to become ``final``); the HTML goes to ``work/<name>.html``."""
    import papermill

    name = final.name
    passed = {k: v for k, v in parameters.items() if k in declared}
    full = dict(passed)
    for key, value in (runner or {}).items():
        if key in declared and key not in full:
            full[key] = str(value)
    if "output_dir" in declared:
        full["output_dir"] = str(work)
    executed = work / f"{spec.stem}.ipynb"
    started, t0 = _now(), time.perf_counter()
    status, error = "ok", None
    try:
        papermill.execute_notebook(
            str(src), str(executed), parameters=full, kernel_name=kernel_name, cwd=str(work),
            progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            execution_timeout=timeout,
        )
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"{exc.ename}: {exc.evalue}"
    duration = time.perf_counter() - t0
    html_path = work / f"{name}.html"
    record: dict[str, Any] = {
        "name": name,
        "notebook": spec.stem,
        "title": spec.title,
        "parameters": _jsonable(passed),
        "ignored_parameters": sorted(k for k in parameters if k not in declared),
        "started": started,
        "duration_s": round(duration, 2),
        "status": status,
        "error": error,
        "html": html_path.name,
        "executed_notebook": f"{name}/{executed.name}",
    }
    if executed.is_file():
        # The notebook ran in the build folder; name the folder it is published in.
        atomic_write_text(executed, executed.read_text(encoding="utf-8").replace(str(work), str(final)))
        export_html(executed, html_path, header=_header(spec.title, passed, started, duration, status))
    else:
        record["html"] = None
    results = work / RESULTS_FILE
    if results.is_file():
        record["results"] = json.loads(results.read_text(encoding="utf-8"))
    atomic_write_json(work / "report.json", record)
    return record


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _new_build_folder(out: Path, name: str) -> Path:
    """A fresh ``out/.<name>.tmp-<pid>-<random>`` with the usual permissions, after removing what
    killed builds of this report left (and restoring a report a kill left aside mid-swap)."""
    out.mkdir(parents=True, exist_ok=True)
    for leftover in sorted(out.glob(f".{glob_escape(name)}.*")):
        kind, _, rest = leftover.name[len(name) + 2:].partition("-")
        if kind == "old" and not (out / name).exists():
            leftover.rename(out / name)
        elif kind == "old" or (kind == "tmp" and rest.split("-")[0].isdigit() and not _pid_alive(int(rest.split("-")[0]))):
            shutil.rmtree(leftover, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.tmp-{os.getpid()}-"))
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)  # mkdtemp makes 0700
    return work


def _swap_in(work: Path, final: Path) -> None:
    """Put the folder ``work`` in place of ``final`` (two renames; the old one is then removed)."""
    aside = None
    if final.exists():
        aside = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(aside)
    try:
        work.rename(final)
    except BaseException:
        if aside is not None:
            aside.rename(final)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def select_notebooks(names: Iterable[str] | None) -> list[NotebookSpec]:
    """The notebooks named (by stem, prefix like ``04`` or number ``4``), or all of them.

    Example:
        >>> [s.stem for s in select_notebooks(["4", "01_study"])]
        ['01_study', '04_mask_explorer']
    """
    if not names:
        return list(NOTEBOOKS)
    chosen = []
    for name in names:
        key = Path(str(name)).stem
        matches = [s for s in NOTEBOOKS if s.stem == key or s.stem.startswith(key.zfill(2) + "_") or s.stem.startswith(key)]
        if not matches:
            raise ReportError(f"unknown notebook {name!r}; known: {[s.stem for s in NOTEBOOKS]}")
        chosen += [m for m in matches[:1] if m not in chosen]
    return sorted(chosen, key=lambda s: s.stem)


def run_reports(
    preset: str | None = None,
    param_sets: Sequence[Mapping[str, Any]] | None = None,
    notebooks: Iterable[str] | None = None,
    out: PathLike = "reports",
    runs_dir: PathLike | None = None,
    data_dir: PathLike | None = None,
    notebooks_path: PathLike | None = None,
    kernel_name: str = "python3",
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Execute every selected notebook for every parameter set, export HTML, rebuild the index.

    ``preset`` sets the ``preset`` parameter of every set that does not name one. With no
    ``param_sets``, one set (just the preset, or the notebooks' defaults) is run.

    Example:
        >>> run_reports(preset="smoke", notebooks=["01", "02"], out="reports")   # doctest: +SKIP
    """
    specs = select_notebooks(notebooks)
    sets = [dict(s) for s in (param_sets or [{}])]
    runner = {"runs_dir": resolve_runs_dir(runs_dir), "data_dir": resolve_data_dir(data_dir)}
    records = []
    for params in sets:
        only = params.pop("notebooks", None)
        if preset is not None:
            params.setdefault("preset", preset)
        targets = select_notebooks(only) if only else specs
        for spec in targets:
            if log:
                log(f"mirl report: running {spec.stem} {json.dumps(_jsonable(params))}")
            record = execute_report(spec, params, out=out, runner=runner, notebooks=notebooks_path, kernel_name=kernel_name)
            if log:
                log(f"mirl report: {record['status']} in {record['duration_s']:.1f} s -> {Path(out) / (record['html'] or '-')}")
            records.append(record)
            build_index(out)  # the index follows every finished report
    from mirl.export.study_page import study_web_page  # the study's last ticket as an offline web page

    if preset is not None and study_web_page(runner["runs_dir"], preset, out, log=log):
        build_index(out)  # now with the link to it
    if not records:
        build_index(out)
    return records


# --------------------------------------------------------------------------- index


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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return html.escape(str(value))


_INDEX_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin-bottom:4px} p.note{color:#555;margin-top:0}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:8px;vertical-align:top;text-align:left;font-size:13px}
th{background:#f5f5f5} td.params,td.numbers{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
td img{max-width:360px;max-height:300px;border:1px solid #ccc} td.numbers{min-width:300px} .failed{color:#b71c1c;font-weight:bold} .ok{color:#2e7d32}
"""


def build_index(out: PathLike = "reports") -> Path:
    """Write ``out/index.html`` (and ``index.json``) listing every report found in ``out``.

    Reports are found through their ``<name>/report.json``; re-running one report replaces its
    row, and reports from earlier batches stay listed.
    """
    from mirl.export.study_page import study_page_link

    out = Path(out)
    records = []
    for path in sorted(out.glob("*/report.json")):
        if path.parent.name.startswith("."):  # a report being built, or a killed build
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        results = path.parent / RESULTS_FILE
        if results.is_file():
            record["results"] = json.loads(results.read_text(encoding="utf-8"))
        record["thumbnail"] = _thumbnail(path.parent / MAIN_FIGURE)
        records.append(record)
    records.sort(key=lambda r: (r.get("notebook", ""), r.get("name", "")))
    rows = []
    for r in records:
        link = (f'<a href="{html.escape(r["html"])}">{html.escape(r.get("title", r["name"]))}</a>'
                if r.get("html") else html.escape(r.get("title", r["name"])))
        params = "<br>".join(f"{html.escape(str(k))}={html.escape(json.dumps(v))}" for k, v in (r.get("parameters") or {}).items()) or "defaults"
        headline = (r.get("results") or {}).get("headline") or {}
        numbers = "<br>".join(f"{html.escape(str(k))}: {_fmt(v)}" for k, v in headline.items()) or "&mdash;"
        status = f'<span class="{"ok" if r.get("status") == "ok" else "failed"}">{html.escape(str(r.get("status")))}</span>'
        if r.get("error"):
            status += f"<br><small>{html.escape(r['error'][:300])}</small>"
        thumb = f'<img alt="main figure of {html.escape(r["name"])}" src="{r["thumbnail"]}">' if r.get("thumbnail") else ""
        rows.append(
            f"<tr><td>{link}<br><small>{html.escape(r['name'])}</small></td><td class=params>{params}</td>"
            f"<td>{html.escape(str(r.get('started', '')))}</td><td>{float(r.get('duration_s', 0)):.1f} s</td>"
            f"<td class=numbers>{numbers}</td><td>{status}</td><td>{thumb}</td></tr>"
        )
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>mirl reports</title>"
        f"<style>{_INDEX_CSS}</style></head><body><h1>mirl reports</h1>"
        "<p class=note>Each report is one self-contained HTML file (open it offline; widgets work without a kernel). "
        "Scores name their metric convention; runs on the built-in demo corpus are not a benchmark.</p>"
        f"{study_page_link(out)}<table><thead><tr><th>report</th><th>parameters</th><th>ran</th><th>took</th><th>headline numbers</th>"
        f"<th>status</th><th>main figure</th></tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>"
    )
    index = out / "index.html"
    atomic_write_text(index, page)
    atomic_write_json(out / "index.json", [{k: v for k, v in r.items() if k != "thumbnail"} for r in records])
    return index


def study_overrides(base: Mapping[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """Study overrides from notebook parameters: ``base`` plus every setting that is not ``None``.

    Example:
        >>> study_overrides({"seed": 1}, rounds=2, scope=None)
        {'seed': 1, 'rounds': 2}
    """
    merged = dict(base or {})
    merged.update({k: v for k, v in settings.items() if v is not None})
    return merged
