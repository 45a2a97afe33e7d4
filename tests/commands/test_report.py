"""``mirl report`` (mirl.commands.report): argument handling, with the notebook runs replaced by a
recorder (real notebooks: tests/reports/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirl import paths
from mirl.cli import main


@pytest.fixture()
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Notebook runs, recorded instead of executed: ``(notebook stem, parameters)``; a run with
    ``tasks=fail`` is recorded as failed."""
    from mirl.reports import runner

    calls: list[tuple[str, dict[str, Any]]] = []

    def record(spec: Any, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        calls.append((spec.stem, dict(params)))
        failed = params.get("tasks") == "fail"
        return {"name": f"{spec.stem}-{len(calls)}", "status": "failed" if failed else "ok", "html": None,
                "duration_s": 0.0, "error": "boom" if failed else None}

    monkeypatch.setattr(runner, "execute_report", record)
    return calls


def _one_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl report: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("extra, message", [
    (["--set", "limit"], "--set expects KEY=VALUE, got 'limit'"),
    (["--notebooks", "99"], "unknown notebook '99'; known: ['01_study', "),
    (["--notebooks", "04", "--set", "colour=red"], "parameter(s) ['colour'] are not parameters of notebook(s) ['04_mask_explorer']"),
])
def test_bad_arguments_are_refused_before_any_notebook_runs(extra: list[str], message: str, tmp_path: Path,
                                                            ran: list, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports"
    err = _one_error(["report", "--out", str(out), "--runs", str(tmp_path / "runs"), *extra], capsys)
    assert message in err and ran == [] and not out.exists()


def test_set_applies_to_every_parameter_set(tmp_path: Path, ran: list, capsys: pytest.CaptureFixture) -> None:
    """``--params`` with two sets and ``--set``: each set runs once, with the ``--set`` value on top."""
    params = tmp_path / "batch.yaml"
    params.write_text("- {notebooks: [4], scope: global}\n- {notebooks: [4], scope: layerwise}\n")
    out = tmp_path / "reports"
    assert main(["report", "--params", str(params), "--set", "scope=layerwise", "--set", "replicates=2",
                 "--out", str(out), "--runs", str(tmp_path / "runs")]) == 0
    assert ran == [("04_mask_explorer", {"scope": "layerwise", "replicates": 2})] * 2
    assert capsys.readouterr().out.splitlines()[-1] == f"Reports: {(out / 'index.html').resolve()}"


def test_a_failed_notebook_is_listed_and_exits_1(tmp_path: Path, ran: list, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports"
    assert main(["report", "--notebooks", "03", "04", "--set", "tasks=fail", "--out", str(out),
                 "--runs", str(tmp_path / "runs")]) == 1
    assert [stem for stem, _ in ran] == ["03_gallery", "04_mask_explorer"]
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if " failed: " in line] == ["mirl report: 03_gallery-1 failed: boom",
                                                               "mirl report: 04_mask_explorer-2 failed: boom"]


def test_index_only_builds_the_index_and_runs_nothing(tmp_path: Path, ran: list, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports"
    assert main(["report", "--index-only", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"{(out / 'index.html').resolve()}\n"
    assert (out / "index.html").is_file() and ran == []


def test_an_unknown_preset_is_refused_before_any_notebook_runs(tmp_path: Path, ran: list,
                                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports"
    err = _one_error(["report", "--preset", "smoek", "--notebooks", "04", "--out", str(out),
                      "--runs", str(tmp_path / "runs")], capsys)
    assert "'smoek'" in err and "smoke" in err and ran == [] and not out.exists()


def test_a_study_is_resolved_before_any_notebook_runs_and_given_to_every_notebook(tmp_path: Path, ran: list,
                                                                                  capsys: pytest.CaptureFixture) -> None:
    """``mirl report RUN`` (a folder, name or hash) and ``--preset P`` resolve to a finished study
    first; each notebook gets it; a missing one is refused with the command that makes it."""
    from tests.reports.test_notebook_io import fake_study

    runs, out = tmp_path / "runs", tmp_path / "reports"
    err = _one_error(["report", "--preset", "smoke", "--notebooks", "01", "--runs", str(runs), "--out", str(out)], capsys)
    assert f"reports never train: make it with: mirl lottery --preset smoke --out {runs.resolve()}" in err and ran == []
    study = fake_study(runs)
    err = _one_error(["report", "smoke_0000", "--runs", str(runs), "--out", str(out)], capsys)
    assert "smoke_0000: no study folder there or in" in err and ran == [] and not out.exists()
    err = _one_error(["report", str(study), "--preset", "smoke", "--runs", str(runs), "--out", str(out)], capsys)
    assert "not both" in err and ran == []
    for given in (str(study), study.name, paths.run_hash(study)):
        assert main(["report", given, "--notebooks", "01", "05", "--no-web", "--runs", str(runs), "--out", str(out)]) == 0
    assert main(["report", "--preset", "smoke", "--notebooks", "03", "--no-web", "--runs", str(runs), "--out", str(out)]) == 0
    assert ran == [("01_study", {"study": study.name}), ("05_any_checkpoint", {"study": study.name})] * 3 + \
        [("03_gallery", {"study": study.name})]
    elsewhere = fake_study(tmp_path / "elsewhere")
    ran.clear()
    assert main(["report", str(elsewhere), "--notebooks", "02", "--no-web", "--runs", str(runs), "--out", str(out)]) == 0
    assert ran == [("02_sparsity_vs_psnr", {"study": str(elsewhere)})]


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: (size, mtime_ns, sha256), and every folder."""
    import hashlib

    return {p.relative_to(root).as_posix(): ((p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
                                             if p.is_file() else (0, 0, "folder")) for p in root.rglob("*")}


@pytest.mark.slow
def test_a_report_on_a_study_folder_builds_every_report_and_its_page_and_changes_nothing_under_runs(
        smoke_run: Path, tmp_path: Path) -> None:
    """Issue 34, part 1: ``mirl report runs/smoke_<hash>`` builds every report and that study's
    page, and creates or changes no file under runs/."""
    import json
    import shutil

    from mirl.export.study_page import page_folder
    from mirl.reports.runner import NOTEBOOKS

    runs, out = tmp_path / "runs", tmp_path / "reports"
    study = runs / smoke_run.name
    shutil.copytree(smoke_run, study)
    before = _snapshot(runs)
    assert main(["report", str(study), "--no-web", "--runs", str(runs), "--out", str(out)]) == 0
    assert _snapshot(runs) == before, "a report created or changed a file under runs/"
    records = json.loads((out / "index.json").read_text())
    assert sorted(r["notebook"] for r in records) == [s.stem for s in NOTEBOOKS if s.default]  # 06 reads a grid: only when named
    assert all(r["status"] == "ok" and r["parameters"]["study"] == study.name for r in records), records
    assert not page_folder(out, study).exists(), "--no-web built the page"
    assert main(["report", paths.run_hash(study), "--notebooks", "01", "--runs", str(runs), "--out", str(out)]) == 0
    assert _snapshot(runs) == before, "a report created or changed a file under runs/"
    page = page_folder(out, study)
    if not (page / "index.html").is_file():
        pytest.skip("the web page needs the ONNX extra and the vendored runtime (make setup)")
    assert f'href="{page.name}/index.html"' in (out / "index.html").read_text()
