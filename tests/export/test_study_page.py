"""mirl.export.study_page: which ticket a study's page is built from (refill branch or main),
when it is rebuilt, its notes, and the index's links; on hand-made study folders, with the
web export itself replaced by a stub (tests/export/test_formats.py builds a real one)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from mirl import paths
from mirl.export import study_page
from mirl.export.study_page import page_folder, study_page_link, study_run, study_web_page
from mirl.models import build_model, save_checkpoint
from mirl.study.config import run_name, study_preset
from tests.export.test_ticket import make_node, make_study

PRESET = "smoke"


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    """runs/<smoke default run>/replicate_0 with level 1 finished (main) and nothing else."""
    root = tmp_path / "runs"
    study = make_study(root, name=run_name(PRESET, study_preset(PRESET)))
    make_node(paths.level_dir(paths.replicate_dir(study, 0), 1))
    return root


@pytest.fixture()
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ticket handed to the web export; the stub writes only ticket.json, as the real one does last."""
    from mirl.export import formats, onnx_model, web

    seen: list[Any] = []

    def fake_export(ticket: Any, fmt: str, target: Path) -> None:
        assert fmt == "web"
        seen.append(ticket)
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / web.TICKET_FILE).write_text(json.dumps({"title": "stub"}))

    monkeypatch.setattr(formats, "export_ticket", fake_export)
    monkeypatch.setattr(web, "runtime_missing", lambda: False)
    monkeypatch.setattr(onnx_model, "require_onnx", lambda *modules: None)
    return seen


def _study(runs: Path) -> Path:
    return runs / run_name(PRESET, study_preset(PRESET))


def _node(runs: Path, branch: str = paths.MAIN) -> Path:
    return paths.level_dir(paths.replicate_dir(_study(runs), 0), 1, branch)


def test_study_run_is_the_presets_default_run(runs: Path, tmp_path: Path) -> None:
    assert study_run(runs, PRESET) == _study(runs)
    assert study_run(tmp_path / "elsewhere", PRESET) is None
    assert study_run(runs, "no_such_preset") is None
    paths.run_config(_study(runs)).unlink()  # a folder of that name that is no study
    assert study_run(runs, PRESET) is None


def test_the_finished_refill_branch_is_the_pages_ticket(runs: Path, tmp_path: Path, exports: list[Any]) -> None:
    refill = make_node(_node(runs, "refill"), build_model("tiny"), metrics={"branch": "refill"})
    notes: list[str] = []
    out = tmp_path / "reports"
    target = study_web_page(runs, PRESET, out, log=notes.append)
    assert target == page_folder(out, _study(runs)) == out / f"web-{_study(runs).name}"
    [ticket] = exports
    assert ticket.checkpoint == paths.model_file(refill) and ticket.narrow and ticket.level == 1
    assert any(f"{_study(runs).name} level 1 (its refill branch, narrowed)" in n for n in notes), notes
    stamp = json.loads((target / "ticket.json").read_text())["stamp"]
    assert stamp["source_sha256"] == hashlib.sha256(paths.model_file(refill).read_bytes()).hexdigest()


def test_main_is_the_ticket_while_refill_is_unfinished(runs: Path, tmp_path: Path, exports: list[Any]) -> None:
    make_node(_node(runs, "refill"), metrics={"branch": "refill"}, done=False)
    notes: list[str] = []
    study_web_page(runs, PRESET, tmp_path / "reports", log=notes.append)
    [ticket] = exports
    assert ticket.checkpoint == paths.model_file(_node(runs)) and not ticket.narrow
    assert not any("refill" in n for n in notes), notes


def test_a_changed_checkpoint_rebuilds_the_page(runs: Path, tmp_path: Path, exports: list[Any]) -> None:
    out = tmp_path / "reports"
    notes: list[str] = []
    study_web_page(runs, PRESET, out, log=notes.append)
    study_web_page(runs, PRESET, out, log=notes.append)
    assert len(exports) == 1 and "is up to date" in notes[-1]
    torch.manual_seed(1)
    save_checkpoint(paths.model_file(_node(runs)), build_model("tiny"))  # retrained: other weights
    assert study_web_page(runs, PRESET, out, log=notes.append) == page_folder(out, _study(runs))
    assert len(exports) == 2 and "building the web page" in notes[-2]


def test_a_missing_runtime_is_a_note_not_a_failure(runs: Path, tmp_path: Path, exports: list[Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mirl.export import web

    monkeypatch.setattr(web, "runtime_missing", lambda: True)
    notes: list[str] = []
    out = tmp_path / "reports"
    assert study_web_page(runs, PRESET, out, log=notes.append) is None
    assert notes == ["mirl report: no web page: onnxruntime-web is not vendored (run `make setup`)"]
    assert exports == [] and not out.exists()
    assert study_web_page(runs, PRESET, out, log=None) is None  # no log: silent


def test_a_missing_study_says_how_to_make_it(tmp_path: Path, exports: list[Any]) -> None:
    notes: list[str] = []
    assert study_web_page(tmp_path / "runs", PRESET, tmp_path / "reports", log=notes.append) is None
    assert notes == [f"mirl report: no web page: no {PRESET} study in {tmp_path / 'runs'} "
                     f"(run `mirl lottery --preset {PRESET}`)"]


def _page(out: Path, name: str, record: dict[str, Any] | str | None) -> Path:
    folder = out / f"{study_page.FOLDER}-{name}"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<html></html>")
    if record is not None:
        (folder / "ticket.json").write_text(record if isinstance(record, str) else json.dumps(record))
    return folder


def test_index_links_every_page_with_its_facts(tmp_path: Path) -> None:
    from mirl.export.speed import speed_text

    out = tmp_path / "reports"
    assert study_page_link(out) == ""
    speed = {"tile": 256, "threads": 1, "ms": 50.0, "dense_ms": 150.0, "speedup": 3.0, "macs": 1e9, "dense_macs": 3e9,
             "runtime": "native onnxruntime <x>, CPU", "measured": "2030-01-01"}
    _page(out, "smoke_aaaa", {"title": "<b>smoke</b> level 2", "density": {"prunable": 0.0637},
                              "model": {"sent_bytes": 123_456, "dense": {"sent_bytes": 1_234_567}}, "speed": speed})
    _page(out, "my run", "{damaged")
    (out / "web-unfinished").mkdir()  # no index.html: no link
    html = study_page_link(out)
    paragraphs = html.split("</p>")[:-1]
    assert len(paragraphs) == 2
    damaged, full = paragraphs  # sorted by folder name: "web-my run" < "web-smoke_aaaa"
    assert '<a href="web-my%20run/index.html">' in damaged and "last ticket of my run</a></strong>: a page" in damaged
    assert '<a href="web-smoke_aaaa/index.html">' in full
    assert ("(&lt;b&gt;smoke&lt;/b&gt; level 2, 6.4% of the prunable weights); the model downloads as 123 kB, "
            "against 1,235 kB for its weights stored dense") in full
    assert "whole channels removed, it restores " + speed_text(speed).replace("<x>", "&lt;x&gt;") in full
    assert f"<code>mirl serve {out / 'web-smoke_aaaa'}</code>" in full
    assert "unfinished" not in html


def test_changed_export_code_rebuilds_the_page(runs: Path, tmp_path: Path, exports: list[Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The stamp covers the code that writes the page's graph, not only the templates: after an
    upgrade that changes the export (say, how the norm is written), the page is built again."""
    import mirl.export.study_page as study_page

    out = tmp_path / "reports"
    notes: list[str] = []
    study_web_page(runs, PRESET, out, log=notes.append)
    monkeypatch.setattr(study_page, "_GRAPH_MODULES", study_page._GRAPH_MODULES + ("tests.export.test_study_page",))  # more code: another digest
    study_web_page(runs, PRESET, out, log=notes.append)
    assert len(exports) == 2 and "building the web page" in notes[-2]
