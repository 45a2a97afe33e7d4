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

This module runs the notebooks (parameter sets, report names, build folders, swap-in); the
notebooks themselves call :mod:`mirl.reports.notebook_io`, the HTML export is :mod:`mirl.reports.html`
and the index page :mod:`mirl.reports.index`.

Example:
    >>> from mirl.reports.runner import run_reports                              # doctest: +SKIP
    >>> records = run_reports(preset="smoke", out="reports")             # doctest: +SKIP
    >>> records[0]["html"]                                               # doctest: +SKIP
    'reports/01_study--smoke.html'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from mirl.errors import MirlError
from mirl.fileio import atomic_write_json, atomic_write_text, build_folder
from mirl.reports.html import export_html
from mirl.reports.notebook_io import RESULTS_FILE, jsonable, resolve_data_dir, resolve_runs_dir
from mirl.paths import project_root
from mirl.reports.index import build_index

PathLike = str | os.PathLike


@dataclass(frozen=True)
class NotebookSpec:
    """A study notebook: file stem, the title shown in the index, and whether it runs by default
    (``False``: only when named, e.g. ``--notebooks 06``: it reads a grid of studies, not one)."""

    stem: str
    title: str
    default: bool = True


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec("01_study", "Study: iterative magnitude pruning"),
    NotebookSpec("02_sparsity_vs_psnr", "Sparsity vs PSNR/SSIM"),
    NotebookSpec("03_gallery", "Restoration gallery"),
    NotebookSpec("04_mask_explorer", "Mask explorer"),
    NotebookSpec("05_any_checkpoint", "Any checkpoint: table and gallery"),
    NotebookSpec("06_scaling", "Scaling: the ticket's gap by width and budget", default=False),
)

# Parameters every notebook has that the report runner fills in itself.
RUNNER_PARAMETERS = ("output_dir", "runs_dir", "data_dir")


class ReportError(MirlError):
    """A report could not be built; the message says why."""


# --------------------------------------------------------------------------- locations


def notebooks_dir() -> Path:
    """The folder holding the study notebooks (``notebooks/`` of the checkout)."""
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    return checkout if checkout.is_dir() else project_root() / "notebooks"


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
    from mirl.study.yamlio import check_json_values, read_yaml_file

    data = read_yaml_file(path, "--params", "a YAML or JSON file of parameter sets (docs/reports.md)", ReportError)
    shape = "expected a list of parameter sets, e.g. - {notebooks: [4], level_a: 0}, or a mapping of defaults and sets"
    defaults: Any = {}
    if isinstance(data, Mapping):
        if set(data) - {"defaults", "sets"}:
            raise ReportError(f"{path}: unknown key(s) {sorted(map(str, set(data) - {'defaults', 'sets'}))}; {shape}")
        defaults, data = data.get("defaults") or {}, data.get("sets", [{}])
    if not isinstance(defaults, Mapping) or not isinstance(data, list) or not all(isinstance(s, Mapping) for s in data):
        raise ReportError(f"{path}: {shape}")
    sets = [{**defaults, **dict(s)} for s in data]
    for number, params in enumerate(sets, 1):
        check_json_values(params, f"{path}: set {number}", ReportError)
        try:
            select_notebooks(params.get("notebooks"))
        except ReportError as exc:
            raise ReportError(f"{path}: set {number}: {exc}") from None
    return sets


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
        >>> report_name("01_study", {"study": "smoke_24da834f"})
        '01_study--smoke_24da834f'
    """
    params = {k: v for k, v in parameters.items() if k not in RUNNER_PARAMETERS}
    parts = [stem]
    for key in ("study", "preset"):
        if key in params:
            parts.append(_slug(params.pop(key)))
    parts += [f"{_slug(k)}-{_slug(v)}" for k, v in sorted(params.items())]
    name = "--".join(parts)
    if len(name) > 120:
        name = f"{name[:100]}--{_digest(parameters)}"
    return name


def _digest(parameters: Mapping[str, Any]) -> str:
    """8 hex digits that tell parameter sets apart."""
    return hashlib.sha1(json.dumps(jsonable(parameters), sort_keys=True).encode()).hexdigest()[:8]


def _unique_name(out: Path, name: str, parameters: Mapping[str, Any], passed: Mapping[str, Any]) -> str:
    """``name``, or ``name--<digest of the parameters>`` when ``out`` holds a report of that name
    run with other parameters (paths that differ only in their folders give one name)."""
    try:
        previous = json.loads((out / name / "report.json").read_text(encoding="utf-8"))["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        return name
    return name if previous == json.loads(json.dumps(jsonable(passed))) else f"{name}--{_digest(parameters)}"


def notebook_parameters(path: PathLike) -> dict[str, Any]:
    """Parameters declared by a notebook's ``parameters`` cell: ``{name: default source text}``."""
    import papermill

    return {name: info.get("default") for name, info in papermill.inspect_notebook(str(path)).items()}


# --------------------------------------------------------------------------- execution


def _kernel_config() -> Any:
    """The notebook kernels' settings: CurveZMQ keys where the kernel supports them (it then runs
    without warning that its local TCP sockets are unencrypted, ipykernel >= 7.3; older clients
    ignore the setting), and only critical kernel log lines on the terminal: jupyter_client
    interrupts every kernel it shuts down, which ipykernel sometimes logs as an error. A cell's
    error is never lost this way: it is in the notebook, the report and its record."""
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport_encryption = "auto"
    config.NotebookClient.extra_arguments = ["--IPKernelApp.log_level=CRITICAL"]
    return config


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
    passed = {k: v for k, v in parameters.items() if k in declared}
    name = _unique_name(out, report_name(spec.stem, parameters), parameters, passed)
    # Build in a hidden sibling folder; the previous report stays whole until the swap.
    with build_folder(out / name) as work:
        record = _execute_into(spec, parameters, declared, src, work, out / name, runner, kernel_name, timeout)
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
        # The kernel starts in ``work`` (nbclient's resources path); papermill's own cwd= would
        # change this process's directory, which notebooks run side by side share.
        papermill.execute_notebook(
            str(src), str(executed), parameters=full, kernel_name=kernel_name, resources={"metadata": {"path": str(work)}},
            progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            execution_timeout=timeout, config=_kernel_config(),
        )
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"{exc.ename}: {exc.evalue}"
    duration = time.perf_counter() - t0
    html_path = work / f"{name}.html"
    record: dict[str, Any] = {
        "name": name,
        "notebook": spec.stem,
        "title": spec.title,
        "parameters": jsonable(passed),
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


def select_notebooks(names: Iterable[str | int] | str | int | None) -> list[NotebookSpec]:
    """The notebooks named (by stem, prefix like ``04`` or number ``4``; one name or a list), or
    (none named) every notebook that runs by default: 06 reads a grid of studies and runs only when named.

    Example:
        >>> [s.stem for s in select_notebooks(["4", "01_study"])]
        ['01_study', '04_mask_explorer']
        >>> "06_scaling" in [s.stem for s in select_notebooks(None)], [s.stem for s in select_notebooks("06")]
        (False, ['06_scaling'])
    """
    if not names:
        return [s for s in NOTEBOOKS if s.default]
    if isinstance(names, (str, int)):
        names = [names]
    if isinstance(names, Mapping) or not isinstance(names, Iterable):
        raise ReportError(f"notebooks must be a list of notebook names or numbers, e.g. [01_study, 4]; got {names!r}")
    chosen = []
    for name in names:
        key = Path(str(name)).stem
        matches = [s for s in NOTEBOOKS if s.stem == key or s.stem.startswith(key.zfill(2) + "_") or s.stem.startswith(key)]
        if not matches:
            raise ReportError(f"unknown notebook {name!r}; known: {[s.stem for s in NOTEBOOKS]}")
        chosen += [m for m in matches[:1] if m not in chosen]
    return sorted(chosen, key=lambda s: s.stem)


def _declared(targets: Sequence[NotebookSpec], notebooks: PathLike | None) -> set[str]:
    """The parameters that at least one of ``targets`` declares."""
    declared: set[str] = set()
    for spec in targets:
        declared |= set(notebook_parameters(Path(notebooks or notebooks_dir()) / f"{spec.stem}.ipynb"))
    return declared


def _check_parameters(params: Mapping[str, Any], targets: Sequence[NotebookSpec], notebooks: PathLike | None) -> None:
    """Each notebook gets the parameters it declares; one that none of them declares is an error
    (a misspelt or unparsable parameter would otherwise be dropped silently)."""
    declared = _declared(targets, notebooks)
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ReportError(f"parameter(s) {unknown} are not parameters of notebook(s) {[s.stem for s in targets]}; "
                          f"valid: {', '.join(sorted(declared))}")


def report_workers(reports: int, asked: int | None = None) -> tuple[int, int]:
    """(notebooks to run at once, threads for each kernel): ``asked``, or one per free core
    (measured over half a second, :mod:`mirl.study.cpu_plan`), never more than ``reports``; the
    free cores' threads shared among them.

    Example:
        >>> report_workers(1)[0], report_workers(5, asked=1)[0]
        (1, 1)
    """
    from mirl.study.cpu_plan import busy_cores, free_cores, usable_cores

    cores = usable_cores()
    free = free_cores(cores, busy_cores()) if reports > 1 and asked is None else cores
    workers = max(1, min(reports, asked or free))
    return workers, max(1, free // workers)


@contextlib.contextmanager
def _kernel_threads(threads: int) -> Iterator[None]:
    """Kernels started inside run torch on ``threads`` threads (``OMP_NUM_THREADS``, which a kernel
    reads when it starts); this process's setting is restored after."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def _execute_all(work: Sequence[tuple[NotebookSpec, Mapping[str, Any]]], out: PathLike, runner: Mapping[str, Any],
                 notebooks_path: PathLike | None, kernel_name: str, log: Callable[[str], None] | None,
                 workers: int | None) -> list[dict[str, Any]]:
    """Execute every (notebook, parameters) of ``work``, ``workers`` at a time (threads: each kernel
    is a process of its own); their records, in ``work``'s order. The index follows every finished report."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    if not work:
        return []
    names = [report_name(spec.stem, params) for spec, params in work]
    if len(set(names)) < len(names):  # one name twice: the second may need the first's report to name itself
        workers = 1
    chosen, threads = report_workers(len(work), workers)
    lock = threading.Lock()

    def say(text: str) -> None:  # whole lines from the threads
        if log:
            with lock:
                log(text)

    if chosen > 1:
        say(f"mirl report: {len(work)} notebooks, {chosen} at a time, {threads} thread(s) each")

    def one(spec: NotebookSpec, params: Mapping[str, Any]) -> dict[str, Any]:
        say(f"mirl report: running {spec.stem} {json.dumps(jsonable(params))}")
        return execute_report(spec, params, out=out, runner=runner, notebooks=notebooks_path, kernel_name=kernel_name)

    done: dict[int, dict[str, Any]] = {}
    with _kernel_threads(threads) if chosen > 1 else contextlib.nullcontext(), ThreadPoolExecutor(chosen) as pool:
        futures = {pool.submit(one, spec, params): i for i, (spec, params) in enumerate(work)}
        try:
            for future in as_completed(futures):
                record = done[futures[future]] = future.result()
                say(f"mirl report: {record['name']}: {record['status']} in {record['duration_s']:.1f} s -> "
                    f"{Path(out) / (record['html'] or '-')}")
                build_index(out)
        except BaseException:  # as one at a time would: what has not started does not run
            for future in futures:
                future.cancel()
            raise
    return [done[i] for i in range(len(work))]


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
    study: PathLike | None = None,
    web: bool = True,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Execute every selected notebook for every parameter set, export HTML, rebuild the index.

    Notebooks run side by side, ``workers`` at a time (default: one per free core,
    :func:`report_workers`), each kernel on its share of the free cores' threads.

    ``study`` (a folder, or its name or hash under ``runs_dir``) is the finished study every
    notebook reads; ``preset`` names the preset's study with its default settings instead. Either
    is resolved to a folder before any notebook runs (a missing or unfinished study is refused with
    the ``mirl lottery`` command that makes it); notebooks never train. With a study, its offline
    web page is built too (``web=False``: not). With neither, each notebook uses its own parameters.

    Example:
        >>> run_reports(study="runs/smoke_24da834f", notebooks=["01", "02"], out="reports")   # doctest: +SKIP
    """
    from mirl.reports.notebook_io import find_study

    if study is not None and preset is not None:
        raise ReportError(f"give a study folder ({study}) or --preset {preset}, not both")
    specs = select_notebooks(notebooks)
    sets = [dict(s) for s in (param_sets or [{}])]
    runner = {"runs_dir": resolve_runs_dir(runs_dir), "data_dir": resolve_data_dir(data_dir)}
    run = find_study(study, preset, None, runner["runs_dir"]) if study is not None or preset is not None else None
    if run is not None and log:
        log(f"mirl report: reading {run} (reports read finished studies; they never train)")
    work: list[tuple[NotebookSpec, dict[str, Any]]] = []
    for params in sets:
        only = params.pop("notebooks", None)
        targets = select_notebooks(only) if only else specs
        if run is not None and "study" not in params and "study" in _declared(targets, notebooks_path):
            params["study"] = run.name if run.parent == runner["runs_dir"] else str(run)
        _check_parameters(params, targets, notebooks_path)
        work += [(spec, params) for spec in targets]
    records = _execute_all(work, out, runner, notebooks_path, kernel_name, log, workers)
    from mirl.export.study_page import run_web_page  # the study's last ticket as an offline web page

    failed = sum(r["status"] != "ok" for r in records)
    if run is not None and web and failed:  # a failed build never touches the page
        if log:
            log(f"mirl report: the study's web page is left as it was: {failed} report(s) failed")
    elif run is not None and web and run_web_page(run, out, log=log):
        build_index(out)  # now with the link to it
    if not records:
        build_index(out)
    return records
