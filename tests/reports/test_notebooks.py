"""Every study notebook runs through papermill with ``preset="smoke"`` and records its results.

One real smoke study is run per test session (in this process) and every notebook is executed
against it in one process (papermill starts one kernel per notebook), through the same code path
as ``mirl report``. Other test modules reuse the executed reports via :func:`smoke_reports`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

_CACHE: dict[str, Any] = {}


def write_lightning_ckpt(model_pt: Path, out: Path) -> Path:
    """A Lightning-format ``.ckpt`` (``state_dict`` with the ``net.`` prefix, as MIR-L publishes)
    written from a mirl level checkpoint, to test notebook 5 on the published format."""
    import torch

    from mirl.models import load_checkpoint

    model, _ = load_checkpoint(model_pt)
    state = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "global_step": 1, "state_dict": state}, out)
    return out


def smoke_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the smoke study once and execute all notebooks into a reports folder (cached per session).

    Returns ``{"base", "runs", "reports", "run_dir", "records": {notebook stem: record}}``.
    """
    if "smoke" in _CACHE:
        return _CACHE["smoke"]
    from mirl import paths
    from mirl.reports import runner
    from mirl.analysis import results
    from mirl.data import run_data_root
    from mirl.study.lottery import run_study

    base = tmp_path_factory.mktemp("mirl_smoke")
    runs = base / "runs"
    run_dir = run_study("smoke", out=runs, progress=False)
    ckpt = write_lightning_ckpt(paths.model_file(results.chain_node(run_dir, results.levels(run_dir)[-1])), base / "smoke_last.ckpt")
    first = [{"preset": "smoke", "notebooks": ["01", "04"]}]
    sets = [
        # the ticket and a control on one figure: the study above grows a random re-initialisation
        # branch in place (branches are not part of its hash), after 01 and 04 read it (reports
        # never train: `mirl lottery` grows it); the gallery then sets it beside the ticket
        {"preset": "smoke", "notebooks": ["02", "03"], "branches": ["random_reinit"]},
        # a published-format checkpoint outside any study, on every task of a data folder
        {"notebooks": ["05"], "checkpoint": str(ckpt), "data_root": str(run_data_root(run_dir)), "limit": 1, "n_images": 1},
        # the study's own checkpoint: its test set and tasks by default (issue 21)
        {"preset": "smoke", "notebooks": ["05"], "limit": 1, "n_images": 1},
    ]
    records: dict[str, Any] = {}
    ran = runner.run_reports(param_sets=first, out=base / "reports", runs_dir=runs, log=None)
    run_study("smoke", {"branches": "random_reinit"}, out=runs, progress=False)
    for record in ran + runner.run_reports(param_sets=sets, out=base / "reports", runs_dir=runs, log=None):
        records[record["notebook"] + ("@study" if record["notebook"] in records else "")] = record
    _CACHE["smoke"] = {"base": base, "runs": runs, "reports": base / "reports", "run_dir": run_dir, "records": records}
    return _CACHE["smoke"]


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return smoke_reports(tmp_path_factory)


def _results(smoke: dict[str, Any], stem: str) -> dict[str, Any]:
    record = smoke["records"][stem]
    assert record["status"] == "ok", f"{stem} failed: {record['error']} (see {smoke['reports'] / record['executed_notebook']})"
    path = smoke["reports"] / record["name"] / "results.json"
    assert path.is_file(), f"{stem} wrote no results.json"
    data = json.loads(path.read_text())
    assert data["headline"], f"{stem}: empty headline"
    assert (smoke["reports"] / record["name"] / data["main_figure"]).is_file()
    return data


def test_every_notebook_has_parameters_cell() -> None:
    import nbformat

    from mirl.reports.runner import NOTEBOOKS, notebook_parameters, notebooks_dir

    for spec in NOTEBOOKS:
        path = notebooks_dir() / f"{spec.stem}.ipynb"
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path}: needs exactly one cell tagged 'parameters'"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path}: commit without outputs"
        ids = [c.get("id") for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]  # nbformat renames duplicates on read
        assert len(set(ids)) == len(ids), f"{path}: duplicate cell ids {sorted({i for i in ids if ids.count(i) > 1})}"
        params = notebook_parameters(path)
        assigned = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if re.match(r"^\w+\s*=", line)}
        assert set(params) == assigned, f"{path}: papermill cannot parse the parameters {sorted(assigned - set(params))}"
        assert "output_dir" in params, path
        if spec.stem == "06_scaling":
            assert params["preset"].strip("'\"") == "scaling", f"{path}: defaults must read the real grid"
        elif spec.stem != "05_any_checkpoint":
            assert params["preset"].strip("'\"") == "quickstart", f"{path}: defaults must run the real study"


def test_study_notebook(smoke: dict[str, Any]) -> None:
    data = _results(smoke, "01_study")
    head = data["headline"]
    dense = head["ticket, dense: mean PSNR gain over the degraded input (dB, upstream)"]
    # smoke: one seed, one test image per task, so nothing estimates a spread (issue 31)
    assert re.fullmatch(r"[+-]\d+\.\d\d \(no interval: 1 seed, 1 image per task\) \(n = 1 seed \(the mean over \d+ test images?\)\)", dense), dense
    assert any(k.startswith("ticket, level 2 (") for k in head)  # smoke: dense + 2 rounds
    assert head["study compute time (s)"] > 0
    assert data["runs"] == [f"{Path(smoke['run_dir']).name}/replicate_0"]
    levels = sorted({row["level"] for row in data["table"]})
    assert levels == [0, 1, 2] and all(row["low"] <= row["mean"] <= row["high"] for row in data["table"])
    assert all(row["replicates"] == 1 and row["images"] >= 1 for row in data["table"])
    assert isinstance(data["warnings"], list)


def test_sparsity_vs_psnr_notebook(smoke: dict[str, Any]) -> None:
    from mirl.analysis.stats import TOO_FEW

    data = _results(smoke, "02_sparsity_vs_psnr")
    study = Path(smoke["run_dir"]).name
    assert data["runs"] == {"ticket": [f"{study}/replicate_0/main"], "random re-init": [f"{study}/replicate_0/random_reinit"]}
    assert {row["label"] for row in data["table"]} == set(data["runs"])
    assert data["verdicts"] and all(v["verdict"] == TOO_FEW for v in data["verdicts"])  # one seed, one image per task
    assert [p["control"] for p in data["primary"]] == ["random re-init"] and data["primary"][0]["verdict"] == TOO_FEW
    assert data["verdicts"][0]["sentence"].startswith("at ") and "random re-init" in data["verdicts"][0]["sentence"]
    assert all("(n = " in v or "n = 1 seed" in v or k.endswith("(secondary, Holm-adjusted)") for k, v in data["headline"].items())
    assert any("primary endpoint" in k for k in data["headline"])


def test_gallery_notebook(smoke: dict[str, Any]) -> None:
    from mirl.data.datasets import TestDataset
    from mirl.analysis.gallery import photo_of
    from mirl.analysis.results import tasks_of

    data = _results(smoke, "03_gallery")
    panels = {row["panel"] for row in data["images"]}
    assert {"degraded input", "dense (level 0)", "level 2", "level 2, random re-init"} <= panels
    assert all(math.isfinite(row["psnr"]) for row in data["images"])
    assert data["parameters"]["branches"] == ["random_reinit"]
    # every held-out photo of every task, one crop each
    from mirl.data import run_data_root

    for task in tasks_of(smoke["run_dir"]):
        dataset = TestDataset(run_data_root(smoke["run_dir"]), task)
        photos = {photo_of(dataset[i]["name"]) for i in range(len(dataset))}
        shown = {photo_of(row["image"]) for row in data["images"] if row["task"] == task and row["panel"] == "level 2"}
        assert shown == photos and len(photos) > 1, task
    page = (smoke["reports"] / f"{smoke['records']['03_gallery']['name']}.html").read_text(encoding="utf-8")
    assert page.count("mirl-gallery-page") >= len(data["images"]) // len(panels)  # a pre-rendered page per image


def _png_sizes(nb: Any) -> list[tuple[int, int]]:
    """(width, height) of every PNG an executed notebook shows: cell outputs and the images held
    in its widget state (the explorers' pre-rendered pages)."""
    import base64
    import io

    from PIL import Image

    blobs = [out["data"]["image/png"] for cell in nb.cells for out in cell.get("outputs", [])
             if "image/png" in out.get("data", {})]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():
        if model.get("model_name") == "ImageModel":
            blobs += [b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"] and b.get("data")]
    return [Image.open(io.BytesIO(base64.b64decode(b))).size for b in blobs]


def test_mask_explorer_notebook(smoke: dict[str, Any]) -> None:
    """Issue 21, part 2, on the smoke study as notebook 04 sees it (1 replicate, global scope, no
    branch yet): blocks, the scope's sentence, level against level, and no figure taller than wide."""
    import nbformat
    from PIL import Image

    from mirl.analysis import mask_compare, results
    data = _results(smoke, "04_mask_explorer")
    head = data["headline"]
    config = results.load_config(smoke["run_dir"])
    last = results.levels(smoke["run_dir"])[-1]
    assert data["level"] == last and data["replicates"] == [0] and data["branches"] == []
    assert head["replicates (n)"] == 1
    kept = head[f"ticket at level {last}: weights kept (% of prunable)"]
    assert kept == pytest.approx(100 * (1 - config["fraction"]) ** last, abs=0.1) and round(kept, 1) == kept
    assert not any(k.startswith(("replicate vs replicate", "ticket vs random pruning")) for k in head)  # one seed, no branch
    fewest = head[f"block keeping the fewest weights at level {last} (global scope)"]
    assert re.fullmatch(r"[a-z0-9 ]+: \d+\.\d%", fewest), fewest
    density = {(row["level"], row["block"]): row["density"] for row in data["block_density"]}
    assert {b for _, b in density} == set(mask_compare.BLOCKS) | {mask_compare.WHOLE}  # every block of PromptIR
    assert density[(last, mask_compare.WHOLE)] == pytest.approx(kept / 100, abs=5e-4)
    assert fewest.startswith(min((d, b) for (k, b), d in density.items() if k == last and b != mask_compare.WHOLE)[1] + ":")
    step = [row for row in data["survival"] if row["level_b"] == last and row["block"] == mask_compare.WHOLE]
    assert step[0]["survival"] == pytest.approx(1 - config["fraction"], abs=1e-3) and step[0]["revived"] == 0
    # every figure the notebook saves or shows is wider than tall
    assert set(data["figure_inches"]) == {"density", "survival"}
    assert all(w >= h for w, h in data["figure_inches"].values()), data["figure_inches"]
    main = Image.open(smoke["reports"] / smoke["records"]["04_mask_explorer"]["name"] / data["main_figure"])
    assert main.size[0] >= main.size[1]
    nb = nbformat.read(smoke["reports"] / smoke["records"]["04_mask_explorer"]["executed_notebook"], as_version=4)
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {})  # for the exported HTML
    sizes = _png_sizes(nb)
    assert len(sizes) >= 2 + 3 + 2  # two heat maps, three pre-rendered levels, the kernel explorer's two images
    assert all(w >= h for w, h in sizes), sizes
    page = (smoke["reports"] / f"{smoke['records']['04_mask_explorer']['name']}.html").read_text(encoding="utf-8")
    assert "one magnitude threshold runs over every prunable tensor" in page  # the global scope's sentence
    assert "set the parameter <code>replicates</code> to 2 or more" in page
    assert "Table: all " in page and "<details>" in page  # the per-tensor detail, folded


def test_any_checkpoint_notebook(smoke: dict[str, Any]) -> None:
    from mirl.data import ALL_IN_ONE

    data = _results(smoke, "05_any_checkpoint")
    assert data["checkpoint"].endswith(".ckpt")
    trained = {row["task"]: row["trained"] for row in data["table"] if row["task"] != "average"}
    assert {t for t, ok in trained.items() if ok} == set(ALL_IN_ONE) and trained["jpeg"] is False
    assert all(row["images"] == 1 and row["convention"] == "upstream" for row in data["table"] if row["task"] != "average")
    head = data["headline"]
    assert not any(k.startswith("jpeg") for k in head)  # not trained on: in no mean, not in the headline
    assert all(math.isfinite(v) and round(v, 3) == v for v in head.values())
    gains = [v for k, v in head.items() if k.endswith("gain over the degraded input (dB, upstream)") and not k.startswith("mean")]
    assert len(gains) == len(ALL_IN_ONE)
    page = (smoke["reports"] / f"{smoke['records']['05_any_checkpoint']['name']}.html").read_text(encoding="utf-8")
    assert "Not trained on (jpeg)" in page


def test_any_checkpoint_notebook_defaults_to_the_studys_test_set_and_tasks(smoke: dict[str, Any]) -> None:
    from mirl.data import run_data_root
    from mirl.analysis.results import tasks_of

    record = smoke["records"]["05_any_checkpoint@study"]
    assert record["status"] == "ok", record["error"]
    data = json.loads((smoke["reports"] / record["name"] / "results.json").read_text())
    assert Path(data["parameters"]["data_root"]) == run_data_root(smoke["run_dir"])
    assert [row["task"] for row in data["table"] if row["task"] != "average"] == tasks_of(smoke["run_dir"])
    assert all(row["trained"] for row in data["table"])


def test_reports_end_with_a_headline_table_not_a_raw_dict(smoke: dict[str, Any]) -> None:
    """Issue 21, part 5: no report prints a Python dict; the headline is an escaped table."""
    for stem, record in smoke["records"].items():
        assert record["status"] == "ok", stem
        page = (smoke["reports"] / f"{record['name']}.html").read_text(encoding="utf-8")
        assert 'class="mirl-headline"' in page, stem
        assert not re.search(r"\{'[^'<]{1,200}': ", page), f"{stem}: a raw dict in the report"


def test_scaling_notebook_reads_a_grid_and_its_numbers_match_the_metrics_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Notebook 06 on two smoke cells (steps_scale 1 and 2, 2 seeds, both controls at 2 pruned
    levels): its share of the dense gain and ticket - control match values computed by hand; a
    missing cell is refused with the command that makes it; `mirl report` leaves 06 out unless named."""
    import nbformat

    from mirl.reports import runner
    from tests.analysis.test_scaling import GRID_CELLS, expected_numbers, smoke_grid

    base = tmp_path_factory.mktemp("scaling_reports")
    grid = smoke_grid(tmp_path_factory.mktemp("scaling_grid"))
    runs = grid[0].parent
    params = {"notebooks": ["06"], "preset": "smoke", "cells": GRID_CELLS}
    (record,) = runner.run_reports(param_sets=[params], out=base / "reports", runs_dir=runs, log=None)
    assert record["status"] == "ok", record["error"]
    data = json.loads((base / "reports" / record["name"] / "results.json").read_text())
    assert list(data["cells"].values()) == [g.name for g in grid]
    for (label, folder), study in zip(data["cells"].items(), grid):
        expected = expected_numbers(study)
        share = {row["level"]: row for row in data["gains"] if row["cell"] == label and row["quantity"] == "share of dense gain"}
        if expected["dense_restores"]:
            assert {level: row["mean"] for level, row in share.items()} == pytest.approx(expected["share"], abs=1e-9)
            assert all(row["df"] == 1 and row["seeds"] == 2 for row in share.values())
        else:  # smoke's dense level does not restore: no share (NaN is written as null)
            assert all(row["mean"] is None and row["n"].startswith("no share") for row in share.values()), share
        diffs = {row["control"]: row["mean"] for row in data["differences"] if row["cell"] == label}
        assert diffs == pytest.approx({"random re-init": expected["difference"]["random_reinit"],
                                       "dense, same size": expected["difference"]["dense_same_size"]}, abs=1e-9)
    assert any("share of the dense gain" in k for k in data["headline"]) and any("ticket - random re-init" in k for k in data["headline"])
    if all(expected_numbers(study)["dense_restores"] for study in grid):  # the second cell's share against the first's, per level
        assert [row["level"] for row in data["share_changes"]] == [1, 2] and all(row["seeds"] == 2 for row in data["share_changes"])
    else:
        assert isinstance(data["share_changes"], list)
    assert [row["to_step"] for row in data["dense_late_rise"]] == [6, 12]  # has each cell's dense network flattened?
    assert (base / "reports" / record["name"] / data["main_figure"]).is_file()
    sizes = _png_sizes(nbformat.read(base / "reports" / record["executed_notebook"], as_version=4))
    assert len(sizes) >= 2 and all(w > h for w, h in sizes), sizes  # the grid's figure and the dense curves, wider than tall
    missing = {**params, "cells": [*GRID_CELLS, {**GRID_CELLS[0], "steps_scale": 3}]}
    (failed,) = runner.run_reports(param_sets=[missing], out=base / "reports", runs_dir=runs, log=None)
    assert failed["status"] == "failed" and "mirl lottery --preset smoke" in failed["error"] and "steps_scale=3" in failed["error"]
    assert "06_scaling" not in [s.stem for s in runner.select_notebooks(None)]
