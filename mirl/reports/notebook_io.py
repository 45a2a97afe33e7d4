"""What the study notebooks call: where they read and write, and how they record their results.

A notebook resolves its folders from its ``parameters`` cell (``None``: the project's defaults, as
in an interactive run), turns its parameters into study overrides, and ends with
:func:`save_results`, which writes the ``results.json`` (and ``main_figure.png``) that the report
runner (:mod:`mirl.reports.runner`) and the reports index (:mod:`mirl.reports.index`) read.

Example:
    >>> import tempfile
    >>> out = resolve_output_dir(tempfile.mkdtemp(), "01_study")
    >>> study_overrides({"seed": 1}, rounds=2, scope=None)
    {'seed': 1, 'rounds': 2}
    >>> save_results(out, {"dense mean PSNR (dB, upstream)": 30.1}).name
    'results.json'
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Mapping

from mirl import paths
from mirl.fileio import atomic_open, atomic_write_json
from mirl.paths import datasets_dir, reports_dir

PathLike = str | os.PathLike

RESULTS_FILE = "results.json"
MAIN_FIGURE = "main_figure.png"


# --------------------------------------------------------------------------- locations


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


# --------------------------------------------------------------------------- parameters


def resolve_checkpoint(checkpoint: PathLike | None, preset: str = "quickstart", runs_dir: PathLike | None = None,
                       overrides: Mapping[str, Any] | None = None, progress: bool = False) -> Path:
    """``checkpoint`` as a path, or (``None``) the last level's ``model.pt`` of the preset's study
    (run or resumed with :func:`mirl.study.lottery.run_study`). Notebooks run studies; :mod:`mirl.analysis.results` only reads them.

    Example:
        >>> resolve_checkpoint(None, preset="smoke")  # doctest: +SKIP
        PosixPath('.../runs/smoke_24da834f/replicate_0/level_2/main/model.pt')
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            raise FileNotFoundError(f"{path} is a folder; give its model.pt (a level or branch folder holds one)")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}; give a model.pt, or leave it out to use the study's last level")
        return path
    from mirl.study.lottery import run_study

    run_dir = run_study(preset, dict(overrides or {}), out=runs_dir or "runs", progress=progress)
    from mirl.analysis.results import chain_node, levels

    return paths.model_file(chain_node(run_dir, levels(run_dir)[-1]))


def study_overrides(base: Mapping[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """Study overrides from notebook parameters: ``base`` plus every setting that is not ``None``.

    Example:
        >>> study_overrides({"seed": 1}, rounds=2, scope=None)
        {'seed': 1, 'rounds': 2}
    """
    merged = dict(base or {})
    merged.update({k: v for k, v in settings.items() if v is not None})
    return merged


# --------------------------------------------------------------------------- results.json


def jsonable(value: Any) -> Any:
    """``value`` with mappings, sequences, paths and numpy/torch scalars made JSON-ready (NaN -> None).

    Example:
        >>> import numpy as np
        >>> jsonable({"psnr": np.float32(0.5), "runs": (Path("a"),), "ssim": float("nan")})
        {'psnr': 0.5, 'runs': ['a'], 'ssim': None}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def headline_html(headline: Mapping[str, Any], title: str = "Headline numbers") -> Any:
    """The headline numbers as a two-column HTML table (escaped), the last thing a report shows,
    instead of the raw dict.

    Example:
        >>> html = headline_html({"gain (dB)": "+4.31 [+3.98, +4.64] (n = 100 images x 1 replicate)", "<b>": 1}).data
        >>> html.startswith('<table class="mirl-headline">'), "<th>&lt;b&gt;</th><td>1</td>" in html
        (True, True)
    """
    from IPython.display import HTML

    from mirl.reports.viz import html_escape

    rows = "".join(f"<tr><th>{html_escape(key)}</th><td>{html_escape(value)}</td></tr>" for key, value in headline.items())
    return HTML(f'<table class="mirl-headline"><caption>{html_escape(title)}</caption>{rows}</table>')


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
        "headline": jsonable(dict(headline)),
        "parameters": jsonable(dict(parameters or {})),
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(jsonable(extra))
    if main_figure is not None:
        from mirl.reports.viz import fig_to_png

        png = fig_to_png(main_figure, dpi=90)
        with atomic_open(output_dir / MAIN_FIGURE, "wb") as handle:
            handle.write(png)
        record["main_figure"] = MAIN_FIGURE
    path = output_dir / RESULTS_FILE
    atomic_write_json(path, record)
    return path


__all__ = ["MAIN_FIGURE", "RESULTS_FILE", "headline_html", "jsonable", "resolve_checkpoint", "resolve_data_dir", "resolve_output_dir", "resolve_runs_dir",
           "save_results", "study_overrides"]
