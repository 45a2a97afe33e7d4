"""The scaling grid: its presets land near 30% and 10% trainable, the Makefile trains the grid file's
cells, and the tables' numbers match values computed from the metrics files by hand."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO

GRID_OVERRIDES = {"replicates": 2, "branches": "random_reinit,dense_same_size"}
GRID_CELLS = [dict(GRID_OVERRIDES), {**GRID_OVERRIDES, "steps_scale": 2}]
_CACHE: dict[str, Any] = {}


def smoke_grid(base: Path) -> list[Path]:
    """Two smoke cells (steps_scale 1 and 2), 2 seeds, both controls at the 2 pruned levels (cached per session)."""
    if "grid" not in _CACHE:
        from mirl.study.lottery import run_study

        _CACHE["grid"] = [run_study("smoke", cell, out=base / "runs", progress=False) for cell in GRID_CELLS]
    return _CACHE["grid"]


def _node_gain(node: Path) -> tuple[float, dict[str, np.ndarray]]:
    """Mean over tasks of the per-task mean gain, and the per-image PSNR per task, from metrics.json."""
    tasks = json.loads((node / "metrics.json").read_text())["tasks"]
    psnr = {t: np.array([i["psnr"] for i in v["per_image"]]) for t, v in tasks.items()}
    gain = float(np.mean([np.mean([i["psnr"] - i["input_psnr"] for i in v["per_image"]]) for v in tasks.values()]))
    return gain, psnr


def expected_numbers(study: Path) -> dict[str, Any]:
    """Share of the dense gain per seed and level, and ticket - control per seed (mean over levels), by hand."""
    shares: dict[int, list[float]] = {1: [], 2: []}
    diffs: dict[str, list[float]] = {"random_reinit": [], "dense_same_size": []}
    dense_gains = []
    for replicate in sorted(study.glob("replicate_*")):
        dense, _ = _node_gain(replicate / "level_0" / "main")
        dense_gains.append(dense)
        per_control: dict[str, list[float]] = {c: [] for c in diffs}
        for level in (1, 2):
            gain, ticket = _node_gain(replicate / f"level_{level}" / "main")
            shares[level].append(gain / dense)
            for control in diffs:
                _, theirs = _node_gain(replicate / f"level_{level}" / control)
                per_control[control].append(float(np.mean([np.mean(ticket[t] - theirs[t]) for t in ticket])))
        for control in diffs:
            diffs[control].append(float(np.mean(per_control[control])))
    return {"share": {k: float(np.mean(v)) for k, v in shares.items()}, "share_seeds": shares, "dense_restores": min(dense_gains) > 0,
            "difference": {k: float(np.mean(v)) for k, v in diffs.items()}}


def test_the_scaling_presets_land_near_30_and_10_percent_trainable_at_their_two_levels() -> None:
    from mirl.analysis.scaling import planned_densities
    from mirl.study.config import study_preset

    for preset, models in (("scaling", ("tiny", "small")), ("scaling-gpu", ("small", "paper"))):
        cfg = study_preset(preset)
        assert cfg.rounds == 2 and set(cfg.branches) == {"random_reinit", "dense_same_size"} and cfg.replicates >= 2, preset
        for model in models:
            first, second = planned_densities(model, cfg.rounds, cfg.fraction, cfg.scope)
            assert abs(first - 0.30) <= 0.03 and abs(second - 0.10) <= 0.04, (preset, model, first, second)
    assert study_preset("scaling-gpu").epochs == study_preset("paper").epochs  # the published budget per round


def test_make_scaling_trains_the_cells_of_the_grid_file_then_reports_them() -> None:
    from mirl.reports.runner import load_param_sets
    from mirl.study.config import study_preset

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    (params,) = load_param_sets(REPO / "notebooks" / "scaling.yaml")
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "scaling"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    trained = []
    for line in dry.splitlines():
        words = shlex.split(line)
        if "lottery" in words:
            sets = words[words.index("--set") + 1:] if "--set" in words else []
            trained.append((words[words.index("--preset") + 1], dict(s.split("=", 1) for s in sets)))
    wanted = [(params["preset"], {k: str(v) for k, v in cell.items()}) for cell in params["cells"]]
    assert trained == wanted
    assert [study_preset(p, c) for p, c in trained] == [study_preset(params["preset"], c) for c in params["cells"]]
    assert re.search(r"mirl report --params notebooks/scaling.yaml", dry)


def test_gain_and_difference_tables_match_the_metrics_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    from mirl.analysis import scaling

    grid = smoke_grid(tmp_path_factory.mktemp("scaling"))
    cells = [(f"cell {i}", study) for i, study in enumerate(grid)]
    gains, differences = scaling.gain_table(cells), scaling.difference_table(cells)
    for label, study in cells:
        expected = expected_numbers(study)
        share = gains[(gains["cell"] == label) & (gains["quantity"] == "share of dense gain")].set_index("level")
        for level in (1, 2):
            if expected["dense_restores"]:
                assert share.loc[level, "mean"] == pytest.approx(expected["share"][level], abs=1e-9)
                assert share.loc[level, "seeds"] == 2 and share.loc[level, "df"] == 1
                assert share.loc[level, "low"] <= share.loc[level, "mean"] <= share.loc[level, "high"]
            else:  # smoke's 6 steps do not restore: a share of a negative gain means nothing
                assert np.isnan(share.loc[level, "mean"]) and share.loc[level, "n"].startswith("no share: the dense gain is not above 0")
        mine = differences[differences["cell"] == label].set_index("control")
        assert mine.loc["random re-init", "mean"] == pytest.approx(expected["difference"]["random_reinit"], abs=1e-9)
        assert mine.loc["dense, same size", "mean"] == pytest.approx(expected["difference"]["dense_same_size"], abs=1e-9)
    assert list(gains["steps"].unique()) == [6, 12]  # smoke: 2 epochs x 3 steps, then steps_scale 2
    assert scaling.headline(gains, differences)


def test_dense_curves_and_their_late_rise_come_from_each_seeds_validation_curve(tmp_path_factory: pytest.TempPathFactory) -> None:
    from mirl.analysis import scaling

    grid = smoke_grid(tmp_path_factory.mktemp("scaling"))
    cells = [(f"cell {i}", study) for i, study in enumerate(grid)]
    curves, rise = scaling.dense_curves(cells), scaling.late_rise(scaling.dense_curves(cells))
    for (label, study), steps in zip(cells, (6, 12)):
        by_hand = {}
        for seed, replicate in enumerate(sorted(study.glob("replicate_*"))):
            points = json.loads((replicate / "level_0" / "main" / "metrics.json").read_text())["val_curve"]
            assert len(points) >= 7 and points[-1]["step"] == steps  # step 0 and evenly spaced steps to the end
            mine = curves[(curves["cell"] == label) & (curves["seed"] == seed)].sort_values("step")
            assert mine["gain"].tolist() == [p["gain"] for p in points]
            by_hand[seed] = points[-1]["gain"] - points[-3]["gain"]
        row = rise.set_index("cell").loc[label]
        assert row["mean"] == pytest.approx(np.mean(list(by_hand.values())), abs=1e-12) and row["seeds"] == 2 and row["df"] == 1
        assert row["to_step"] == steps and row["low"] <= row["mean"] <= row["high"]
    assert scaling.late_rise(curves[curves["seed"] == 0])["verdict"].tolist() == ["too few to tell"] * 2


def test_the_share_is_the_mean_of_each_seeds_ratio_and_none_where_the_dense_network_does_not_restore(monkeypatch) -> None:
    """The share of the dense gain, per seed, against hand-made gains: a t-interval across seeds of
    ticket gain / dense gain; a cell whose dense network scores below its input gets no share."""
    from scipy import stats

    from mirl.analysis import scaling

    def scores(dense: tuple[float, float]) -> pd.DataFrame:
        rows = []
        for seed, dense_gain in enumerate(dense):
            for level, gain, trainable in ((0, dense_gain, 1.0), (1, 0.8 * dense_gain + seed * 0.1, 0.3), (2, 0.5, 0.1)):
                for task in ("derain", "dehaze"):
                    rows += [{"label": "ticket", "seed": seed, "level": level, "task": task, "gain": gain, "remaining_trainable": trainable}] * 2
        return pd.DataFrame(rows)

    frames = {"good": scores((2.0, 4.0)), "bad": scores((2.0, -1.0))}
    monkeypatch.setattr(scaling, "_scores", lambda study: frames[str(study)])
    monkeypatch.setattr(scaling, "cell_settings", lambda study: {"model": "tiny", "steps_scale": 1, "steps": 10, "replicates": 2})
    gains = scaling.gain_table([("good", "good"), ("bad", "bad")]).set_index(["cell", "quantity", "level"])
    per_seed = [(0.8 * 2.0) / 2.0, (0.8 * 4.0 + 0.1) / 4.0]
    expected = stats.ttest_1samp(per_seed, 0).confidence_interval(0.95)
    row = gains.loc[("good", "share of dense gain", 1)]
    assert row["mean"] == pytest.approx(np.mean(per_seed)) and (row["low"], row["high"]) == pytest.approx((expected.low, expected.high))
    assert gains.loc[("good", "share of dense gain", 2)]["mean"] == pytest.approx(np.mean([0.5 / 2.0, 0.5 / 4.0]))
    bad = gains.loc[("bad", "share of dense gain", 1)]
    assert np.isnan(bad["mean"]) and bad["n"] == "no share: the dense gain is not above 0 for seed(s) [1]"


def test_share_change_pairs_seeds_across_cells_and_leaves_out_a_dense_network_that_does_not_restore(monkeypatch) -> None:
    """The change of the share from one cell to another is a per-seed difference on the seeds both
    cells share, with a t-interval across those seeds; a seed whose dense gain is not above 0 has no share."""
    from scipy import stats

    from mirl.analysis import scaling

    def scores(dense: dict[int, float], ticket: dict[int, float]) -> pd.DataFrame:
        rows = []
        for seed in dense:
            for level, gain in ((0, dense[seed]), (1, ticket[seed])):
                rows += [{"label": "ticket", "seed": seed, "level": level, "task": "derain", "gain": gain, "remaining_trainable": 1.0 if level == 0 else 0.3}] * 3
        return pd.DataFrame(rows)

    frames = {"1x": scores({0: 2.0, 1: 4.0, 2: 1.0}, {0: 1.0, 1: 1.0, 2: 0.5}),
              "4x": scores({0: 2.0, 1: 4.0, 2: 2.0}, {0: 1.5, 1: 3.0, 2: 1.0}),
              "wide": scores({0: 2.0, 1: -1.0}, {0: 1.0, 1: 0.5})}
    monkeypatch.setattr(scaling, "_scores", lambda study: frames[str(study)])
    change = scaling.share_change(("tiny 1x", "1x"), ("tiny 4x", "4x")).iloc[0]
    per_seed = [1.5 / 2 - 1.0 / 2, 3.0 / 4 - 1.0 / 4, 1.0 / 2 - 0.5 / 1]
    ci = stats.ttest_1samp(per_seed, 0).confidence_interval(0.95)
    assert change["seeds"] == 3 and change["share_from"] == pytest.approx(np.mean([0.5, 0.25, 0.5]), abs=1e-3)
    assert change["change"] == f"{np.mean(per_seed):+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]"
    assert change["verdict"] == ("resolved" if ci.low > 0 or ci.high < 0 else "not resolved")
    assert scaling.seed_shares("wide").attrs["left_out"] == [1]
    one_seed = scaling.share_change(("tiny 1x", "1x"), ("wide", "wide")).iloc[0]  # seed 1 of 'wide' does not restore
    assert one_seed["seeds"] == 1 and one_seed["verdict"] == "too few to tell"


def test_scaling_tables_script_prints_the_grid_and_writes_its_figure(tmp_path_factory: pytest.TempPathFactory, capsys) -> None:
    """scripts/scaling_tables.py, which docs/findings.md's section is made with, prints the same
    share as gain_table and writes the figure."""
    import importlib.util

    from mirl.analysis import scaling

    grid = smoke_grid(tmp_path_factory.mktemp("scaling"))
    spec = importlib.util.spec_from_file_location("scaling_tables", REPO / "scripts" / "scaling_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figure, curves = tmp_path_factory.mktemp("figure") / "scaling.png", tmp_path_factory.mktemp("figure") / "curves.png"
    assert module.main(["--cell", f"one={grid[0]}", "--cell", f"two={grid[1]}", "--figure", str(figure), "--curve-figure", str(curves)]) == 0
    out = capsys.readouterr().out
    gains = scaling.gain_table([("one", grid[0]), ("two", grid[1])])
    dense = gains[(gains["cell"] == "one") & (gains["quantity"] == "dense gain")].iloc[0]
    assert f"| one | 6 | dense gain | 0 | 1.000 | {dense['mean']:.3f} |" in out
    assert "Does the share grow? Each cell against one" in out and figure.stat().st_size > 1000
    rise = scaling.late_rise(scaling.dense_curves([("one", grid[0])])).iloc[0]
    assert f"| one | 4 | 6 | {rise['mean']:.3f} |" in out and curves.stat().st_size > 1000
