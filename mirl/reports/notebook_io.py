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
from mirl.errors import MirlError
from mirl.fileio import atomic_open, atomic_write_json
from mirl.paths import datasets_dir, reports_dir
from mirl.study.config import lottery_command

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
                       overrides: Mapping[str, Any] | None = None, study: PathLike | None = None) -> Path:
    """``checkpoint`` as a path, or (``None``) the last level's ``model.pt`` of the finished study
    :func:`find_study` finds (``study``, else the preset's with ``overrides``); nothing is trained.

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
    run_dir = find_study(study, preset, overrides, runs_dir)
    from mirl.analysis.results import chain_node, levels

    return paths.model_file(chain_node(run_dir, levels(run_dir)[-1]))


# --------------------------------------------------------------------------- the study a notebook reads


class StudyNotFound(MirlError):
    """The study a notebook would read is missing or unfinished; the message gives the command that makes it."""


def study_folder(study: PathLike, runs_dir: PathLike | None = None) -> Path:
    """A study folder from a path, or a study's name (``smoke_24da834f``) or settings hash
    (``24da834f``) under ``runs_dir``.

    Example:
        >>> study_folder("smoke_24da834f", "runs")  # doctest: +SKIP
        PosixPath('/.../runs/smoke_24da834f')
    """
    root = resolve_runs_dir(runs_dir)
    given = Path(study).expanduser()
    for candidate in (given, root / given):
        if paths.is_run_dir(candidate):
            return candidate.resolve()
    by_hash = sorted(p for p in root.glob(f"*_{given.name}") if paths.is_run_dir(p)) if given.name else []
    if len(by_hash) == 1:
        return by_hash[0].resolve()
    if len(by_hash) > 1:
        raise StudyNotFound(f"{study}: {len(by_hash)} studies in {root} have that hash ({', '.join(p.name for p in by_hash)}); give one folder")
    raise StudyNotFound(f"{study}: no study folder there or in {root} (a folder with {paths.run_config('.').name}); "
                        "give runs/<preset>_<hash>, its name or its hash, or make one with `mirl lottery`")


def _settings_of(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """The preset and the settings a study folder's ``config.json`` records (its grown replicates and branches too)."""
    import dataclasses

    from mirl.fileio import read_json
    from mirl.study.config import StudyConfig

    record = read_json(paths.run_config(run_dir))
    if not isinstance(record, dict):
        raise StudyNotFound(f"{paths.run_config(run_dir)} is not a study's settings; restore it or give another folder")
    preset = str(record.get("preset") or run_dir.name.rpartition("_")[0])
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    return preset, {k: v for k, v in record.items() if k in names}


def find_study(study: PathLike | None = None, preset: str = "quickstart", overrides: Mapping[str, Any] | None = None,
               runs_dir: PathLike | None = None) -> Path:
    """The finished study a notebook reads; it never trains one.

    ``study`` (a folder, or its name or hash under ``runs_dir``) is that study, read with its own
    settings; ``overrides`` may only grow what it must hold (replicates, branches). Without ``study``,
    the preset's study with ``overrides`` under ``runs_dir``. A study that is missing, has other
    settings, or lacks a node is refused with the ``mirl lottery`` command that makes it.

    Example:
        >>> find_study(preset="smoke", overrides={"rounds": 3})  # doctest: +SKIP
        Traceback (most recent call last):
        mirl.reports.notebook_io.StudyNotFound: no smoke study with these settings in runs (runs/smoke_1234abcd); make it with: mirl lottery --preset smoke --set rounds=3 --out runs
    """
    from mirl.study.config import run_name, study_preset
    from mirl.study.lottery import study_nodes

    wanted = dict(overrides or {})
    root = resolve_runs_dir(runs_dir)
    if study is not None:
        run = study_folder(study, root)
        preset, settings = _settings_of(run)
        cfg = study_preset(preset, {**settings, **wanted})
        name = run_name(preset, cfg)
        if name != run.name:
            changed = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if settings.get(k) != v)
            other = run.parent / name
            how = (f"give its folder {other}" if paths.is_run_dir(other) else
                   f"make that study with: {lottery_command(preset, cfg, run.parent)}, then give its folder {other}")
            raise StudyNotFound(f"{run.name} was not run with {changed}; a report reads one study: leave those settings out, or {how}")
    else:
        cfg = study_preset(preset, wanted)
        run = root / run_name(preset, cfg)
        if not paths.is_run_dir(run):
            raise StudyNotFound(f"no {preset} study with these settings in {root} ({run.name}); reports never train: "
                                f"make it with: {lottery_command(preset, cfg, root)}")
    missing = [node for node in study_nodes(cfg) if not paths.is_finished(paths.level_dir(paths.replicate_dir(run, node[0]), node[1], node[2]))]
    if missing:
        r, level, branch = missing[0]
        raise StudyNotFound(f"{run} lacks {len(missing)} finished node(s) (first: replicate {r}, level {level}, {branch}); "
                            f"reports never train: finish it with: {lottery_command(preset, cfg, run.parent)}")
    return run


def find_sibling(run: PathLike, overrides: Mapping[str, Any]) -> Path:
    """The finished study beside ``run`` (same folder, same preset) with ``run``'s settings and
    ``overrides`` on top: what notebook 02 compares a study with. Refused, like :func:`find_study`,
    with the ``mirl lottery`` command when it is missing.

    Example:
        >>> find_sibling("runs/smoke_24da834f", {"reset": "rewind", "rewind_steps": 2})  # doctest: +SKIP
        PosixPath('/.../runs/smoke_5c1e0a77')
    """
    from mirl.study.config import AUTO, effective_rule

    run = Path(run)
    preset, settings = _settings_of(run)
    if "scope" in overrides and "rule" not in overrides and settings.get("rule") == effective_rule(AUTO, str(settings.get("scope"))):
        settings.pop("rule")  # the study's rule was its scope's default: the sibling's scope chooses its own
    return find_study(None, preset, {**settings, **dict(overrides)}, run.parent)


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


__all__ = ["MAIN_FIGURE", "RESULTS_FILE", "StudyNotFound", "find_sibling", "find_study", "headline_html", "jsonable", "lottery_command", "resolve_checkpoint", "resolve_data_dir", "resolve_output_dir", "resolve_runs_dir",
           "save_results", "study_folder", "study_overrides"]
