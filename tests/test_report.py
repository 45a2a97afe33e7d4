"""HTML reports: offline (no external URL), widgets embedded, code hidden, index, batch runs, CLI.

Unit tests of the readers and figures use a SYNTHETIC run directory (made-up numbers, clearly
labelled, tests only); the export tests use the real smoke reports of tests/test_notebooks.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_notebooks import smoke_reports


def make_synthetic_run(root: Path, name: str = "synthetic", levels: int = 3, seed: int = 0) -> Path:
    """SYNTHETIC run directory (tests only): made-up scores and random masks, not a study result."""
    import torch

    g = torch.Generator().manual_seed(seed)
    run = root / f"{name}_{seed:08x}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": run.name, "hash": f"{seed:08x}", "non_default": {"synthetic": True},
                                                 "data": "builtin"}))
    shapes = {"conv1.weight": (8, 4, 3, 3), "conv2.weight": (16, 8, 3, 3), "norm.weight": (8,)}
    magnitudes = {k: torch.rand(s, generator=g) for k, s in shapes.items()}
    for k in range(levels):
        d = run / f"level_{k}"
        d.mkdir()
        mask = {n: m >= torch.quantile(m.flatten(), 1 - 0.8**k) for n, m in magnitudes.items()}
        torch.save(mask, d / "mask.pt")
        tensors = {n: {"kept": int(m.sum()), "total": m.numel()} for n, m in mask.items()}
        kept, total = sum(v["kept"] for v in tensors.values()), sum(v["total"] for v in tensors.values())
        (d / "sparsity_report.json").write_text(json.dumps({"level": k, "rule": "upstream", "tensors": tensors,
            "prunable": {"kept": kept, "total": total, "density": kept / total},
            "trainable": {"kept": kept + 50, "total": total + 50, "density": (kept + 50) / (total + 50)}}))
        tasks = {t: {"psnr": 25.0 + i - 0.5 * k, "ssim": 0.8 - 0.01 * k, "images": 1, "per_image": [{"name": "x", "psnr": 25.0, "ssim": 0.8}]}
                 for i, t in enumerate(["denoise_25", "derain"])}
        (d / "metrics.json").write_text(json.dumps({"level": k, "convention": "upstream", "test_crop": "center_crop_16",
            "density_prunable": kept / total, "density_trainable": (kept + 50) / (total + 50), "tasks": tasks,
            "mean_psnr": 25.5 - 0.5 * k, "mean_ssim": 0.8 - 0.01 * k}))
        (d / "done.json").write_text("{}")
    return run


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return smoke_reports(tmp_path_factory)


# ------------------------------------------------------------------ unit tests (synthetic data)


def test_results_tables_and_figures_on_synthetic_run(tmp_path: Path) -> None:
    from mirl import results, viz, widgets

    run = make_synthetic_run(tmp_path / "runs")
    assert results.levels(run) == [0, 1, 2]
    assert list(results.list_runs(tmp_path / "runs")["path"]) == [str(run)]
    table = results.metrics_table(run)
    assert set(table["convention"]) == {"upstream"} and len(table) == 6
    assert results.uses_builtin_corpus(run)
    head = results.headline(run)
    assert head["finished levels"] == 3 and "level 0 mean PSNR (dB, upstream)" in head
    masks = results.mask_collection([run])
    layer_table = results.mask_layer_table(masks["level 1"], masks["level 2"])
    assert (layer_table["density_b"] <= layer_table["density_a"]).all()
    assert results.density_evolution(run).shape == (3, 3)
    for fig in (viz.sparsity_curves([table], demo=True), viz.mask_comparison(layer_table),
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
    from mirl.report import load_param_sets, report_name

    assert report_name("02_sparsity_vs_psnr", {"preset": "smoke", "scope": "layerwise", "output_dir": "/x"}) == \
        "02_sparsity_vs_psnr--smoke--scope-layerwise"
    yaml_file = tmp_path / "batch.yaml"
    yaml_file.write_text("- {preset: smoke, scope: global}\n- {preset: smoke, scope: layerwise}\n")
    assert [s["scope"] for s in load_param_sets(yaml_file)] == ["global", "layerwise"]
    json_file = tmp_path / "batch.json"
    json_file.write_text(json.dumps({"defaults": {"preset": "smoke"}, "sets": [{"level_a": 0}, {"level_a": 1}]}))
    assert load_param_sets(json_file) == [{"preset": "smoke", "level_a": 0}, {"preset": "smoke", "level_a": 1}]


def test_external_reference_detector() -> None:
    from mirl.report import external_references

    assert external_references('<svg xmlns="http://www.w3.org/2000/svg"></svg><img src="data:image/png;base64,AAAA">') == []
    assert external_references('<script src="https://cdn.example/x.js"></script>')
    assert external_references("<style>@import url(//fonts.example/css);</style>")


# ------------------------------------------------------------------ exported reports (real smoke runs)


def test_reports_are_offline_and_self_contained(smoke: dict[str, Any]) -> None:
    from mirl.report import external_references, widget_renderer_path

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
    from mirl.report import external_references

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
    params.write_text("defaults: {preset: smoke}\nsets:\n  - {level_a: 0}\n  - {level_a: 1}\n")
    out = tmp_path / "reports"
    rc = main(["report", "--params", str(params), "--notebooks", "04", "--runs", str(smoke["runs"]), "--out", str(out)])
    assert rc == 0
    for level in (0, 1):
        name = f"04_mask_explorer--smoke--level_a-{level}"
        assert (out / f"{name}.html").is_file()
        assert json.loads((out / name / "results.json").read_text())["headline"]["mask A"] == f"level {level}"
    assert main(["report", "--index-only", "--out", str(out)]) == 0
    assert "04_mask_explorer--smoke--level_a-1.html" in (out / "index.html").read_text()


def test_default_locations_follow_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mirl report`` without --runs-dir/--data-dir (what ``make study`` runs) resolves the
    project's folders."""
    from mirl.report import resolve_data_dir, resolve_output_dir, resolve_runs_dir

    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    assert resolve_runs_dir(None) == tmp_path.resolve() / "runs"
    assert resolve_data_dir(None) == tmp_path.resolve() / "datasets"
    assert resolve_output_dir(None, "01_study") == tmp_path.resolve() / "reports" / "interactive" / "01_study"
    assert resolve_runs_dir(tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()
