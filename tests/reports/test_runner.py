"""HTML reports: offline (no external URL), widgets embedded, code hidden, index, batch runs, CLI.

Unit tests of the readers and figures use a SYNTHETIC run directory (made-up numbers, clearly
labelled, tests only); the export tests use the real smoke reports of tests/reports/test_notebooks.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mirl import paths
from tests.reports.test_notebook_io import fake_study
from tests.reports.test_notebooks import smoke_reports


def make_synthetic_run(root: Path, name: str = "synthetic", levels: int = 3, seed: int = 0) -> Path:
    """SYNTHETIC study folder (tests only; one replicate, its main chain): made-up scores and
    random masks, not a study result."""
    import torch

    g = torch.Generator().manual_seed(seed)
    run = root / f"{name}_{seed:08x}"
    run.mkdir(parents=True)
    paths.run_config(run).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "name": run.name,
                                                 "non_default": {"synthetic": True}, "data": "builtin"}))
    shapes = {"conv1.weight": (8, 4, 3, 3), "conv2.weight": (16, 8, 3, 3), "norm.weight": (8,)}
    magnitudes = {k: torch.rand(s, generator=g) for k, s in shapes.items()}
    for k in range(levels):
        d = paths.level_dir(paths.replicate_dir(run, 0), k)
        d.mkdir(parents=True)
        mask = {n: m >= torch.quantile(m.flatten(), 1 - 0.8**k) for n, m in magnitudes.items()}
        torch.save(mask, paths.mask_file(d))
        tensors = {n: {"kept": int(m.sum()), "total": m.numel()} for n, m in mask.items()}
        kept, total = sum(v["kept"] for v in tensors.values()), sum(v["total"] for v in tensors.values())
        paths.sparsity_file(d).write_text(json.dumps({"level": k, "rule": "upstream", "tensors": tensors,
            "prunable": {"kept": kept, "total": total, "density": kept / total},
            "trainable": {"kept": kept + 50, "total": total + 50, "density": (kept + 50) / (total + 50)}}))
        tasks = {t: {"psnr": 25.0 + i - 0.5 * k, "ssim": 0.8 - 0.01 * k, "images": 1, "per_image": [{"name": "x", "psnr": 25.0, "ssim": 0.8, "input_psnr": 22.0, "input_ssim": 0.6}]}
                 for i, t in enumerate(["denoise_25", "derain"])}
        paths.metrics_file(d).write_text(json.dumps({"level": k, "convention": "upstream", "test_crop": "center_crop_16",
            "density_prunable": kept / total, "density_trainable": (kept + 50) / (total + 50), "tasks": tasks,
            "mean_psnr": 25.5 - 0.5 * k, "mean_ssim": 0.8 - 0.01 * k}))
        paths.done_file(d).write_text("{}")
    return run


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return smoke_reports(tmp_path_factory)


# ------------------------------------------------------------------ unit tests (synthetic data)


def test_results_tables_and_figures_on_synthetic_run(tmp_path: Path) -> None:
    from mirl.analysis import evidence, mask_compare, results
    from mirl.reports import viz, widgets
    from mirl.data import uses_builtin_corpus

    run = make_synthetic_run(tmp_path / "runs")
    assert results.levels(run) == [0, 1, 2] == results.levels(paths.replicate_dir(run, 0))
    runs = results.list_runs(tmp_path / "runs")
    assert list(runs["path"]) == [str(run)] and list(runs["hash"]) == ["00000000"]  # from the folder name
    assert list(runs["replicates"]) == [1] and list(runs["branches"]) == [["main"]]
    table = results.metrics_table(run)
    assert set(table["convention"]) == {"upstream"} and len(table) == 6
    assert uses_builtin_corpus(run)
    scores = evidence.scores_table({"ticket": [run]})
    assert len(scores) == 6 and (scores["gain"] == 3.0).all()
    masks = mask_compare.mask_collection([run])
    layer_table = mask_compare.mask_layer_table(masks["level 1"], masks["level 2"])
    assert (layer_table["density_b"] <= layer_table["density_a"]).all()
    assert results.density_evolution(run).shape == (3, 3)
    for fig in (viz.interval_curves(evidence.curve_table(scores, "gain"), demo=True), viz.mask_comparison(layer_table),
                viz.density_evolution_figure(results.density_evolution(run))):
        assert viz.fig_to_png(fig)[:4] == b"\x89PNG"
    assert widgets.fallback_png(masks)[:4] == b"\x89PNG"
    ex = widgets.MaskExplorer(masks)
    before = ex.mask_image.value
    ex.b.value = "level 1"
    assert ex.mask_image.value != before and "level 1" in ex.status.value
    box = widgets.static_mask_explorer(masks)
    assert "mirl-static-explorer" in box._dom_classes


def test_report_names_and_param_files(tmp_path: Path) -> None:
    from mirl.reports.runner import load_param_sets, report_name

    assert report_name("02_sparsity_vs_psnr", {"preset": "smoke", "scope": "layerwise", "output_dir": "/x"}) == \
        "02_sparsity_vs_psnr--smoke--scope-layerwise"
    yaml_file = tmp_path / "batch.yaml"
    yaml_file.write_text("- {preset: smoke, scope: global}\n- {preset: smoke, scope: layerwise}\n")
    assert [s["scope"] for s in load_param_sets(yaml_file)] == ["global", "layerwise"]
    json_file = tmp_path / "batch.json"
    json_file.write_text(json.dumps({"defaults": {"preset": "smoke"}, "sets": [{"level_a": 0}, {"level_a": 1}]}))
    assert load_param_sets(json_file) == [{"preset": "smoke", "level_a": 0}, {"preset": "smoke", "level_a": 1}]


def test_external_reference_detector() -> None:
    from mirl.reports.html import external_references

    assert external_references('<svg xmlns="http://www.w3.org/2000/svg"></svg><img src="data:image/png;base64,AAAA">') == []
    assert external_references('<script src="https://cdn.example/x.js"></script>')
    assert external_references("<style>@import url(//fonts.example/css);</style>")


def test_index_page_rendered_from_its_template(tmp_path: Path) -> None:
    """The index (template mirl/templates/report_index.html.j2): a row per report with its link,
    parameters, numbers, status and thumbnail; text is escaped; killed builds are not listed."""
    from PIL import Image

    from mirl.reports.html import external_references
    from mirl.reports.index import build_index

    out = tmp_path / "reports"
    rows = {
        "01_study--smoke": {"title": "Study <1>", "html": "01_study--smoke.html", "parameters": {"preset": "smoke"},
                            "status": "ok", "error": None, "duration_s": 1.25},
        "02_sparsity_vs_psnr": {"title": "Curves", "html": None, "parameters": {}, "status": "failed",
                                "error": "ValueError: <bad> " + "x" * 400, "duration_s": 0.5},
        ".03_gallery.tmp-1-abc": {"title": "Being built", "html": None, "status": "ok"},
    }
    for name, row in rows.items():
        (out / name).mkdir(parents=True)
        (out / name / "report.json").write_text(json.dumps({"name": name, "notebook": name.strip(".")[:2],
                                                            "started": "2026-01-01T00:00:00+00:00", **row}))
    (out / "01_study--smoke" / "results.json").write_text(json.dumps(
        {"headline": {"gain (dB)": 0.123456, "PSNR (dB)": 31.4159, "mask A": "level 1"}}))
    Image.new("RGB", (800, 600), "white").save(out / "01_study--smoke" / "main_figure.png")
    page = build_index(out).read_text(encoding="utf-8")
    assert external_references(page) == []
    assert page.index("01_study--smoke") < page.index("02_sparsity_vs_psnr") and "Being built" not in page
    assert '<a href="01_study--smoke.html">Study &lt;1&gt;</a>' in page
    assert "preset=&#34;smoke&#34;" in page and ">defaults<" in page
    assert "gain (dB): 0.1235<br>PSNR (dB): 31.42<br>mask A: level 1" in page and "&mdash;" in page
    assert "1.2 s" in page or "1.3 s" in page
    assert '<span class="ok">ok</span>' in page and '<span class="failed">failed</span>' in page
    assert "ValueError: &lt;bad&gt;" in page and "x" * 282 in page and "x" * 283 not in page
    assert page.count("data:image/jpeg;base64,") == 1
    listed = json.loads((out / "index.json").read_text())
    assert [r["name"] for r in listed] == ["01_study--smoke", "02_sparsity_vs_psnr"]
    assert "thumbnail" not in listed[0] and listed[0]["results"]["headline"]["mask A"] == "level 1"


# ------------------------------------------------------------------ exported reports (real smoke runs)


def test_reports_are_offline_and_self_contained(smoke: dict[str, Any]) -> None:
    from mirl.reports.html import external_references, widget_renderer_path

    reports = smoke["reports"]
    for record in smoke["records"].values():
        text = (reports / record["html"]).read_text(encoding="utf-8")
        assert external_references(text) == [], f"{record['html']} references the network"
        assert "mirl-hide-code" in text, "code cells must be hidden by default"
        assert "require.js" not in text and "mathjax" not in text.lower()
    explorer = (reports / smoke["records"]["04_mask_explorer"]["html"]).read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in explorer
    assert "application/vnd.jupyter.widget-view+json" in explorer
    if widget_renderer_path() is None:
        pytest.skip("mirl/_vendor/embed.js missing (run scripts/setup.sh with npm): widgets not embedded")
    assert "data:application/javascript;base64," in explorer or "data:text/javascript;base64," in explorer


def test_index_lists_every_report(smoke: dict[str, Any]) -> None:
    reports = smoke["reports"]
    index = (reports / "index.html").read_text(encoding="utf-8")
    from mirl.reports.html import external_references

    assert external_references(index) == []
    for record in smoke["records"].values():
        assert f'href="{record["html"]}"' in index
        assert record["title"] in index
    assert index.count("data:image/jpeg;base64,") >= len(smoke["records"])  # thumbnails
    assert "upstream" in index  # headline numbers name their convention
    listed = json.loads((reports / "index.json").read_text())
    assert all(r["duration_s"] > 0 and r["started"] for r in listed)


def test_cli_batch_params_file(smoke: dict[str, Any], tmp_path: Path) -> None:
    """``mirl report --params FILE``: one report per parameter set, named by its parameters."""
    from mirl.cli import main

    params = tmp_path / "batch.yaml"
    params.write_text("defaults: {preset: smoke}\nsets:\n  - {level: 0}\n  - {level: 1}\n")
    out = tmp_path / "reports"
    rc = main(["report", "--params", str(params), "--notebooks", "04", "--runs", str(smoke["runs"]), "--out", str(out)])
    assert rc == 0
    for level in (0, 1):
        name = f"04_mask_explorer--smoke--level-{level}"
        assert (out / f"{name}.html").is_file()
        assert f"ticket at level {level}: weights kept (% of prunable)" in json.loads((out / name / "results.json").read_text())["headline"]
    assert main(["report", "--index-only", "--out", str(out)]) == 0
    assert "04_mask_explorer--smoke--level-1.html" in (out / "index.html").read_text()


def test_default_locations_follow_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mirl report`` without --runs-dir/--data-dir (what ``make study`` runs) resolves the
    project's folders."""
    from mirl.reports.notebook_io import resolve_data_dir, resolve_output_dir, resolve_runs_dir

    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    assert resolve_runs_dir(None) == tmp_path.resolve() / "runs"
    assert resolve_data_dir(None) == tmp_path.resolve() / "datasets"
    assert resolve_output_dir(None, "01_study") == tmp_path.resolve() / "reports" / "interactive" / "01_study"
    assert resolve_runs_dir(tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()


# ------------------------------------------------------------------ nothing lost when a report dies


def _tiny_notebooks(folder: Path, stems: tuple[str, ...], parameters: str = "output_dir = None\nversion = 0") -> Path:
    """Minimal notebooks with a parameters cell, standing in for the study notebooks."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell]
        nbformat.write(nb, folder / f"{stem}.ipynb")
    return folder


def test_interrupted_report_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report that dies mid-way (after writing some files) leaves the previous report, its
    status and the index as they were; the index follows every finished report; a complete
    rerun replaces them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat
    import papermill

    from mirl.reports import notebook_io, runner
    notebooks = _tiny_notebooks(tmp_path / "notebooks", ("01_study", "02_sparsity_vs_psnr"))
    out = tmp_path / "reports"
    crash: set[str] = set()
    calls: list[str] = []

    def fake_execute(src: str, dst: str, parameters: dict, **kwargs: Any) -> None:
        calls.append(Path(src).stem)
        nb = nbformat.read(src, as_version=4)
        injected = nbformat.v4.new_code_cell(f"output_dir = {parameters['output_dir']!r}")
        injected.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(1, injected)
        nbformat.write(nb, dst)
        fig = plt.figure(figsize=(1, 1))
        notebook_io.save_results(parameters["output_dir"], {"call": len(calls)}, main_figure=fig)
        plt.close(fig)
        if Path(src).stem in crash:
            raise RuntimeError("kernel died")  # what a kill leaves: files written, the run cut short

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)

    def run() -> list[dict[str, Any]]:  # one at a time: the calls number the reports in order
        return runner.run_reports(param_sets=[{"version": 1}], notebooks=["01", "02"], out=out,
                                  runs_dir=tmp_path / "runs", notebooks_path=notebooks, log=None, workers=1)

    def state(prefix: str = "") -> dict[str, bytes]:
        files = sorted(p for p in out.rglob("*") if p.is_file() and p.relative_to(out).as_posix().startswith(prefix))
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in files}

    def index() -> dict[str, tuple[str, int]]:
        return {r["notebook"]: (r["status"], r["results"]["headline"]["call"]) for r in json.loads((out / "index.json").read_text())}

    run()
    assert index() == {"01_study": ("ok", 1), "02_sparsity_vs_psnr": ("ok", 2)}
    second = state("02_")
    crash.add("02_sparsity_vs_psnr")
    with pytest.raises(RuntimeError, match="kernel died"):
        run()
    assert state("02_") == second, "a report that died changed the previous report"
    assert index() == {"01_study": ("ok", 3), "02_sparsity_vs_psnr": ("ok", 2)}, "the index does not match the reports"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], "temporaries left behind"
    crash.clear()
    records = run()
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert index() == {"01_study": ("ok", 5), "02_sparsity_vs_psnr": ("ok", 6)}
    folder = out / records[0]["name"]
    assert json.loads((folder / "report.json").read_text())["started"] == records[0]["started"]
    executed = (folder / "01_study.ipynb").read_text()
    assert repr(str(folder.resolve())) in executed and ".tmp" not in executed, "the notebook names its temporary folder"
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask


def test_notebooks_run_side_by_side_each_kernel_on_its_share_of_the_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import threading

    import papermill

    from mirl.reports import runner
    from mirl.study import cpu_plan

    notebooks = _tiny_notebooks(tmp_path / "notebooks", ("01_study", "02_sparsity_vs_psnr", "03_gallery"))
    lock, running, most, threads = threading.Lock(), [0], [0], []

    def fake_execute(src: str, dst: str, parameters: dict, **kwargs: Any) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            threads.append(os.environ.get("OMP_NUM_THREADS"))  # what a kernel started now inherits
        time.sleep(0.3)
        shutil.copy(src, dst)
        with lock:
            running[0] -= 1

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(cpu_plan, "usable_cores", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    lines: list[str] = []
    records = runner.run_reports(param_sets=[{"version": 1}], notebooks=["01", "02", "03"], out=tmp_path / "reports",
                                 runs_dir=tmp_path / "runs", notebooks_path=notebooks, log=lines.append, workers=2)
    assert [r["notebook"] for r in records] == ["01_study", "02_sparsity_vs_psnr", "03_gallery"]
    assert [r["status"] for r in records] == ["ok"] * 3
    assert most[0] == 2 and threads == ["2"] * 3, (most, threads)  # 4 cores, 2 kernels at once: 2 threads each
    assert os.environ["OMP_NUM_THREADS"] == "7", "this process's setting was not restored"
    assert "mirl report: 3 notebooks, 2 at a time, 2 thread(s) each" in lines
    assert {r["notebook"] for r in json.loads((tmp_path / "reports" / "index.json").read_text())} == {r["notebook"] for r in records}
    assert runner.report_workers(3, asked=1) == (1, 4)


def test_report_on_read_only_runs_writes_nothing(smoke: dict[str, Any], tmp_path: Path) -> None:
    """``mirl report --runs RO`` on finished runs: the reports are made and the runs folder is
    untouched (with a read-only folder when not running as root; the file times in any case)."""
    import shutil

    from mirl.cli import main

    runs = tmp_path / "runs"
    shutil.copytree(smoke["runs"], runs)
    paths = [runs, *runs.rglob("*")]
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in paths}
    try:
        rc = main(["report", "--preset", "smoke", "--notebooks", "01", "--runs", str(runs), "--out", str(tmp_path / "reports")])
        assert rc == 0
        assert {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in [runs, *runs.rglob("*")]} == before
    finally:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_what_a_killed_report_left_is_cleaned_up(tmp_path: Path) -> None:
    """kill -9 mid-build leaves a hidden build folder; mid-swap, the old report set aside. The
    next build of that report removes the first and puts the second back; the index skips both."""
    import subprocess
    import sys

    from mirl.fileio import build_folder
    from mirl.reports.index import build_index

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "reports"
    name = "01_study--smoke"
    for leftover in (f".{name}.tmp-{dead.pid}-abc", f".{name}.old-{dead.pid}"):
        (out / leftover).mkdir(parents=True)
        (out / leftover / "report.json").write_text(json.dumps({"name": name, "status": "ok", "html": None}))
    alive = out / f".{name}.tmp-{os.getpid()}-xyz"  # a build in progress (this process): kept
    alive.mkdir()
    build_index(out)
    assert json.loads((out / "index.json").read_text()) == []
    with build_folder(out / name) as work:
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(f".{name}")) == sorted([alive.name, work.name])
        assert json.loads((out / name / "report.json").read_text())["status"] == "ok"  # put back
        (work / "report.json").write_text(json.dumps({"name": name, "status": "ok", "html": "new.html"}))
    assert json.loads((out / name / "report.json").read_text())["html"] == "new.html"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(f".{name}")) == [alive.name]


def test_a_parameter_no_notebook_declares_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from mirl.reports.runner import ReportError, run_reports

    with pytest.raises(ReportError, match=r"\['presett'\] are not parameters of notebook\(s\) \['01_study'\]; valid: .*preset"):
        run_reports(param_sets=[{"notebooks": ["01"], "presett": "smoke"}], out=tmp_path / "reports", log=None)
    assert not (tmp_path / "reports").exists()


# ------------------------------------------------------------------ careless input (issue 23)


def test_sets_differing_only_in_a_folder_get_a_report_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sets whose paths differ only in their folders slug to one name: the second gets a
    short hash instead of replacing the first, and a rerun replaces each report, only its own."""
    import shutil

    import papermill

    from mirl.reports import runner
    notebooks = _tiny_notebooks(tmp_path / "notebooks", ("01_study",))
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, dst, parameters, **kwargs: shutil.copy(src, dst))
    out = tmp_path / "reports"
    sets = [{"version": "/a/x/ck.pt"}, {"version": "/b/x/ck.pt"}]

    def run() -> list[str]:
        records = runner.run_reports(param_sets=sets, notebooks=["01"], out=out, runs_dir=tmp_path / "runs",
                                     notebooks_path=notebooks, log=None)
        return [r["name"] for r in records]

    names = run()
    assert names[0] == "01_study--version-ck.pt" and names[1].startswith(names[0] + "--") and len(set(names)) == 2
    assert [json.loads((out / n / "report.json").read_text())["parameters"] for n in names] == sets
    assert run() == names
    assert sorted(p.name for p in out.glob("*.html")) == sorted([f"{n}.html" for n in names] + ["index.html"])


def test_a_report_never_replaces_another_studys_web_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study's web page lives in its own folder, ``web-<run name>``; a report of another
    preset leaves it (and the index keeps linking it), and a failed report builds no page."""
    import papermill

    from mirl.reports import runner
    from mirl.export import study_page

    out = tmp_path / "reports"
    other = study_page.page_folder(out, tmp_path / "runs" / "quickstart_0123abcd")
    assert other == out / "web-quickstart_0123abcd"
    other.mkdir(parents=True)
    (other / "index.html").write_text("the quickstart study's page")
    notebooks = _tiny_notebooks(tmp_path / "notebooks", ("01_study",), "output_dir = None\npreset = 'quickstart'")

    def fail(src: str, dst: str, parameters: dict, **kwargs: Any) -> None:
        raise papermill.PapermillExecutionError(0, 1, "", "RuntimeError", "boom", [])

    built: list[str] = []
    monkeypatch.setattr(papermill, "execute_notebook", fail)
    monkeypatch.setattr(study_page, "run_web_page", lambda run, out, log=None: built.append(run))
    fake_study(tmp_path / "runs")
    records = runner.run_reports(preset="smoke", notebooks=["01"], out=out, runs_dir=tmp_path / "runs",
                                 notebooks_path=notebooks, log=None)
    assert [r["status"] for r in records] == ["failed"] and built == [], "a failed report built the web page"
    assert (other / "index.html").read_text() == "the quickstart study's page"
    assert 'href="web-quickstart_0123abcd/index.html"' in (out / "index.html").read_text()


@pytest.fixture()
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Input that must be refused never reaches the notebooks (``{notebooks: 7}`` ran them all)."""
    from mirl.reports import runner

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("refused input reached run_reports")

    monkeypatch.setattr(runner, "run_reports", refuse)


@pytest.mark.parametrize("content, message", [
    ("sets: [\n", r"not valid YAML/JSON \(line 2: .*\); --params expects a YAML or JSON file"),
    (None, r"cannot read it \(No such file or directory\); --params expects"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", r"not a text file; --params expects a YAML or JSON file"),
    ("{notebooks: 7}\n", r"unknown key\(s\) \['notebooks'\]; expected a list of parameter sets, e\.g\. - \{notebooks: \[4\]"),
    ("- {notebooks: 7}\n", r"set 1: unknown notebook 7; known: "),
    ("- {data_root: !!binary aGk=}\n", r"set 1: YAML reads a binary"),
])
def test_a_bad_params_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture, nothing_runs: None,
                                                   content: Any, message: str) -> None:
    """``mirl report --params`` given bad YAML, a missing or binary file, or a mapping that is not
    defaults + sets (``{notebooks: 7}`` ran every notebook of the quickstart study): one line naming
    the file, exit 2, nothing made."""
    import re

    from mirl.cli import main

    params = tmp_path / "batch.yaml"
    if isinstance(content, str):
        params.write_text(content)
    elif content is not None:
        params.write_bytes(content)
    out = tmp_path / "reports"
    assert main(["report", "--params", str(params), "--out", str(out), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.match(rf"mirl report: error: {re.escape(str(params))}: {message}", err), err
    assert not out.exists()


def test_set_values_are_kept_or_refused_never_changed(tmp_path: Path, capsys: pytest.CaptureFixture, nothing_runs: None) -> None:
    """``mirl report --set``: a date stays the text typed (it was a date, then a traceback), ``#``
    and line breaks are kept where YAML keeps them and refused where YAML would drop them."""
    from mirl.cli import main
    from mirl.commands.report import _parse_sets
    from mirl.reports.runner import ReportError

    kept = ["data_root=2024-01-01", "checkpoint=/photos/a#2.pt", "tasks=[derain, dehaze]", 'data_dir="/photos #2\\nnew"']
    assert _parse_sets(kept) == {"data_root": "2024-01-01", "checkpoint": "/photos/a#2.pt", "tasks": ["derain", "dehaze"],
                                 "data_dir": "/photos #2\nnew"}
    for item, message in [("checkpoint=/photos #2.pt", "comment"), ("tasks=[derain] # two", "comment"),
                          ("checkpoint=/photos\nnew.pt", "join its lines"), ('checkpoint="/photos\nnew.pt"', "join its lines"),
                          ("data_root=!!timestamp 2024-01-01", "YAML reads a date")]:
        with pytest.raises(ReportError, match=message):
            _parse_sets([item])
    with pytest.raises(ReportError, match="given twice"):
        _parse_sets(["limit=1", "limit=2"])
    out = tmp_path / "reports"
    assert main(["report", "--notebooks", "05", "--set", "checkpoint=/photos #2.pt", "--out", str(out),
                 "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl report: error: --set checkpoint='/photos #2.pt': YAML reads ' #'") and err.count("\n") == 1
    assert not out.exists()


def test_notebook_kernels_start_without_the_transport_warning(tmp_path, capfd) -> None:
    """Issue 21, part 5: ipykernel >= 7.3 warns on every start over unencrypted TCP; mirl's
    kernels get CurveZMQ keys, so `make study` prints no such line."""
    import nbformat
    import papermill

    from mirl.reports.runner import _kernel_config

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, config=_kernel_config())
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[0].outputs[0]["text"] == "42\n"
    err = capfd.readouterr().err
    assert "without encryption" not in err and "[IPKernelApp]" not in err
