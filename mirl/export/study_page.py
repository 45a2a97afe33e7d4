"""The web page that ``mirl report RUN`` builds for the study's last level
(``reports/web-<run name>``: one folder per study, so a report never replaces another study's page).

The study is the folder the reports read (``mirl report --preset P``: the run of preset ``P`` with
its default settings, ``runs/<P>_<hash>``). The page is rebuilt only when that level's checkpoint or the page's own files
changed. A missing ONNX extra, runtime or run is a note in the log, never a failed report.

Example:
    >>> study_web_page("runs", "quickstart", "reports")      # doctest: +SKIP
    PosixPath('reports/web-quickstart_5520eaf8')
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote

from mirl import paths
from mirl.errors import MirlError

if TYPE_CHECKING:
    from .ticket import Ticket

FOLDER = "web"  # a study's page is <reports>/web-<run name>


# The modules whose code decides the page's graph and weights: a page built by other code is rebuilt.
_GRAPH_MODULES = ("mirl.models.promptir", "mirl.models.narrow", "mirl.export.onnx_model", "mirl.export.compact")


def _page_hash() -> str:
    """A digest of what builds the page: its templates, the runtime version and the export code."""
    import importlib

    from .web import PAGE_FILES, ORT_WEB_VERSION, template_dir

    digest = hashlib.sha256(ORT_WEB_VERSION.encode())
    for name in PAGE_FILES:
        digest.update((template_dir() / name).read_bytes())
    for module in _GRAPH_MODULES:
        digest.update(Path(importlib.import_module(module).__file__).read_bytes())
    return digest.hexdigest()[:16]


def study_run(runs_dir: str | os.PathLike, preset: str) -> Path | None:
    """``runs_dir/<preset>_<hash>`` for the preset's default settings, if it exists."""
    from mirl.study.config import run_name, study_preset

    try:
        path = Path(runs_dir) / run_name(preset, study_preset(preset))
    except MirlError:
        return None
    return path if paths.is_run_dir(path) else None


def page_folder(out: str | os.PathLike, run: str | os.PathLike) -> Path:
    """The folder of ``run``'s page in the reports folder ``out``: ``out/web-<run name>``."""
    return Path(out) / f"{FOLDER}-{Path(run).name}"


def _page_ticket(run: Path) -> "Ticket":
    """Replicate 0's last finished level of main, or its ``refill`` branch when that is finished
    too: the structured ticket, narrowed, is the one that runs faster in the browser."""
    from .ticket import load_ticket

    ticket = load_ticket(run)
    if ticket.level is not None:
        refill = paths.level_dir(paths.replicate_dir(run, 0), ticket.level, "refill")
        if paths.is_finished(refill):
            return load_ticket(refill)
    return ticket


def study_web_page(runs_dir: str | os.PathLike, preset: str, out: str | os.PathLike,
                   log: Callable[[str], None] | None = print) -> Path | None:
    """:func:`run_web_page` for the preset's study with its default settings under ``runs_dir``."""
    run = study_run(runs_dir, preset)
    if run is None:
        if log:
            log(f"mirl report: no web page: no {preset} study in {runs_dir} (run `mirl lottery --preset {preset}`)")
        return None
    return run_web_page(run, out, log)


def run_web_page(run: str | os.PathLike, out: str | os.PathLike, log: Callable[[str], None] | None = print) -> Path | None:
    """Build (or keep, when up to date) ``out/web-<run name>`` for the last finished level of the study
    folder ``run``: its ``refill`` branch (narrowed, with its speed against the dense network) when there is one, else main.

    Returns the folder, or ``None`` with a note in ``log`` when it cannot be built.
    """
    from .card import sha256
    from .formats import export_ticket
    from .onnx_model import require_onnx
    from .web import TICKET_FILE, runtime_missing

    say = log or (lambda _text: None)
    run = Path(run)
    target = page_folder(out, run)
    try:
        require_onnx()
        if runtime_missing():
            raise MirlError("onnxruntime-web is not vendored (run `make setup`)")
        ticket = _page_ticket(run)
        stamp = {"source_sha256": sha256(ticket.checkpoint), "page": _page_hash()}
        existing = target / TICKET_FILE
        if existing.is_file() and json.loads(existing.read_text(encoding="utf-8")).get("stamp") == stamp:
            say(f"mirl report: web page for {run.name} level {ticket.level} is up to date -> {target}")
            return target
        what = f"{run.name} level {ticket.level}" + (" (its refill branch, narrowed)" if ticket.narrow else "")
        say(f"mirl report: building the web page for {what} (ONNX export, about a minute on 2 cores)")
        export_ticket(ticket, "web", target)
        record = json.loads(existing.read_text(encoding="utf-8"))
        record["stamp"] = stamp
        from mirl.fileio import atomic_write_json

        atomic_write_json(existing, record)
    except MirlError as exc:
        say(f"mirl report: no web page: {exc}")
        return None
    say(f"mirl report: web page -> {target} (open it with: mirl serve {target})")
    return target


def study_page_link(out: str | os.PathLike) -> str:
    """HTML paragraphs linking every study's page (``out/web-<run name>/index.html``) for the
    reports index, or ``""`` when there is none."""
    return "".join(_page_link(folder) for folder in sorted(Path(out).glob(f"{FOLDER}-*"))
                   if (folder / "index.html").is_file())


def _page_link(folder: Path) -> str:
    title = ""
    try:
        record = json.loads((folder / "ticket.json").read_text(encoding="utf-8"))
        title = f" ({html.escape(str(record.get('title', '')))}, {100 * record['density']['prunable']:.1f}% of the prunable weights)"
        model = record["model"]
        title += (f"; the model downloads as {model['sent_bytes'] / 1e3:,.0f} kB, against {model['dense']['sent_bytes'] / 1e3:,.0f} kB "
                  "for its weights stored dense")
        if record.get("speed"):
            from .speed import speed_text

            title += f"; whole channels removed, it restores {html.escape(speed_text(record['speed']))}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return (f'<p class=note><strong><a href="{html.escape(quote(folder.name))}/index.html">Restore your own photos with the last '
            f"ticket of {html.escape(folder.name[len(FOLDER) + 1:])}</a></strong>"
            f"{title}: a page that runs the network in the browser, offline. It needs a local web server: "
            f"<code>mirl serve {html.escape(str(folder))}</code> (opening it from disk shows how).</p>")


__all__ = ["FOLDER", "page_folder", "run_web_page", "study_page_link", "study_run", "study_web_page"]
