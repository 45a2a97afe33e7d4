"""Stale nodes (issue 34, part 2) and branches with options (part 3) on one small study:
main levels 0-1, random_prune and its global variant at level 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mirl import paths
from mirl.branches.random_prune import RandomPrune
from mirl.cli import main
from mirl.errors import MirlError
from tests.conftest import FAST

SETTINGS = {"rounds": 1, "branches": "[random_prune, {name: random_prune, scope: global}]", **FAST}
VARIANT = "random_prune-scope_global"


@pytest.fixture(scope="module")
def variants(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mirl.study.lottery import run_study

    return run_study("smoke", {"data": str(demo_data), **SETTINGS}, out=tmp_path_factory.mktemp("runs"))


@pytest.fixture
def study(variants: Path, tmp_path: Path) -> Path:
    """A copy of the study that a test may change."""
    copy = tmp_path / "runs" / variants.name
    shutil.copytree(variants, copy)
    return copy


def _done(study: Path, level: int, branch: str) -> dict:
    return json.loads(paths.done_file(paths.level_dir(paths.replicate_dir(study, 0), level, branch)).read_text())


def test_a_branch_with_options_runs_in_its_own_folder_and_records_them(variants: Path) -> None:
    from mirl.pruning.mask import load_mask

    level = paths.replicate_dir(variants, 0) / "level_1"
    assert sorted(p.name for p in level.iterdir()) == ["main", "random_prune", VARIANT]
    assert _done(variants, 1, VARIANT)["options"] == {"scope": "global"} and _done(variants, 1, VARIANT)["version"] == 1
    assert _done(variants, 1, "random_prune")["options"] == {"scope": "layerwise"}
    assert _done(variants, 1, "main")["version"] == 1 and json.loads(paths.metrics_file(level / VARIANT).read_text())["options"]
    masks = {b: load_mask(paths.mask_file(level / b)) for b in ("main", "random_prune", VARIANT)}
    kept = {b: {n: int(m.sum()) for n, m in mask.items()} for b, mask in masks.items()}
    assert kept["random_prune"] == kept["main"]  # layer-wise: the ticket's count in every tensor
    assert sum(kept[VARIANT].values()) == sum(kept["main"].values()) and kept[VARIANT] != kept["main"]  # global: the total


def test_a_variant_is_labelled_with_its_options_in_the_reports(variants: Path) -> None:
    from mirl.analysis.evidence import study_variants
    from mirl.reports.viz import branch_color

    labels = list(study_variants(variants))
    assert labels == ["ticket", "random pruning", "random pruning (scope=global)"]
    assert branch_color(VARIANT) == branch_color("random pruning (scope=global)") != branch_color("random_prune")


def test_the_job_graph_and_status_name_a_variant_by_its_folder(variants: Path, capsys: pytest.CaptureFixture) -> None:
    from mirl.study.config import study_preset
    from mirl.study.launch import job_graph

    cfg = study_preset("smoke", SETTINGS)
    assert f"r0-L1-{VARIANT}" in [job.name for job in job_graph(cfg)]
    assert main(["status", str(variants)]) == 0
    out = capsys.readouterr().out
    assert VARIANT in out and "4 done of 4 nodes" in out and "stale" not in out


def test_editing_a_branchs_version_makes_status_list_its_nodes_as_stale(variants: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(RandomPrune, "version", 2)
    assert main(["status", str(variants)]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[1:4]) for line in out.splitlines()[1:] if line.split() and line.split()[0] == "0"}
    assert rows == {("0", "main", "done"), ("1", "main", "done"), ("1", "random_prune", "stale"), ("1", VARIANT, "stale")}
    stale_line = next(line for line in out.splitlines() if line.startswith("stale:"))
    assert "2 node(s)" in stale_line and "random_prune version 1, now 2" in stale_line
    assert stale_line.endswith(f"--out {variants.parent} --rerun-stale") and "mirl lottery --preset smoke" in stale_line


def test_lottery_refuses_to_mix_a_stale_node_into_a_study_in_one_line(study: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(RandomPrune, "version", 2)
    before = _done(study, 1, "random_prune")
    assert main(["lottery", "--preset", "smoke", "--set", f"data={demo_data}", "rounds=1",
                 f"branches=[random_prune, {{name: random_prune, scope: global}}]", "--out", str(study.parent), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 finished node(s)" in err and "--rerun-stale" in err
    assert "replicate 0 level 1 random_prune (random_prune version 1, now 2)" in err
    assert _done(study, 1, "random_prune") == before  # nothing was trained


def test_rerun_stale_trains_exactly_the_stale_nodes(study: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mirl.study.lottery import run_study

    monkeypatch.setattr(RandomPrune, "version", 2)
    kept = {b: _done(study, 1, b) for b in ("main",)} | {"level 0": _done(study, 0, "main")}
    run_study("smoke", {"data": str(demo_data), **SETTINGS}, out=study.parent, rerun_stale=True)
    assert _done(study, 1, "random_prune")["version"] == _done(study, 1, VARIANT)["version"] == 2
    assert {"main": _done(study, 1, "main"), "level 0": _done(study, 0, "main")} == kept  # main was not touched
    run_study("smoke", {"data": str(demo_data), **SETTINGS}, out=study.parent)  # nothing stale is left


def test_a_stale_main_level_makes_its_branches_and_later_levels_stale(study: Path) -> None:
    from mirl.study.lottery import study_nodes
    from mirl.study.config import study_preset
    from mirl.study.stale import stale_nodes

    nodes = study_nodes(study_preset("smoke", SETTINGS))
    assert stale_nodes(study, nodes) == {}
    done = paths.done_file(paths.level_dir(paths.replicate_dir(study, 0), 1))
    done.write_text(json.dumps({**json.loads(done.read_text()), "version": 0}))
    stale = stale_nodes(study, nodes)
    assert stale == {(0, 1, "main"): "main version 0, now 1", (0, 1, "random_prune"): "main level 1 is stale (main version 0, now 1)",
                     (0, 1, VARIANT): "main level 1 is stale (main version 0, now 1)"}


def test_a_branch_whose_main_level_is_gone_is_stale(study: Path) -> None:
    from mirl.study.stale import stale_nodes

    shutil.rmtree(paths.level_dir(paths.replicate_dir(study, 0), 0))
    assert stale_nodes(study, [(0, 1, "main"), (0, 1, VARIANT)]) == {
        (0, 1, "main"): "main level 0 is not finished (it will be trained again)",
        (0, 1, VARIANT): "main level 0 is not finished (it will be trained again)"}


def test_a_record_without_a_version_is_version_one_with_the_default_options(study: Path) -> None:
    """Studies finished before nodes recorded their code are not stale by that alone."""
    from mirl.study.stale import stale_nodes

    for branch in ("main", "random_prune"):
        done = paths.done_file(paths.level_dir(paths.replicate_dir(study, 0), 1, branch))
        record = {k: v for k, v in json.loads(done.read_text()).items() if k not in ("version", "options")}
        done.write_text(json.dumps(record))
    assert stale_nodes(study, [(0, 1, "main"), (0, 1, "random_prune")]) == {}


def test_the_reports_refuse_a_stale_node_naming_it(variants: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mirl.analysis.results import metrics_table

    assert not metrics_table(variants, branch=VARIANT).empty
    monkeypatch.setattr(RandomPrune, "version", 2)
    assert not metrics_table(variants).empty  # main is current
    with pytest.raises(MirlError, match=rf"{VARIANT} is stale \(random_prune-scope_global version 1, now 2\).*mirl status"):
        metrics_table(variants, branch=VARIANT)


@pytest.mark.parametrize("version", [1, 2])
def test_a_dense_level_of_another_main_version_is_not_reused(study: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch,
                                                              version: int) -> None:
    import mirl.branches
    from mirl.study.lottery import run_study

    monkeypatch.setattr(mirl.branches, "MAIN_VERSION", version)
    other = run_study("smoke", {"data": str(demo_data), "rounds": 0, "fraction": 0.5, **FAST}, out=study.parent)
    level0 = paths.level_dir(paths.replicate_dir(other, 0), 0)
    assert paths.reused_file(level0).exists() == (version == 1)  # the sibling's dense level is version 1's
    assert json.loads(paths.done_file(level0).read_text())["version"] == version
