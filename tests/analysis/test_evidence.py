"""Evidence tables on synthetic studies: replicates aggregate, planted differences are resolved,
networks that harm their input are flagged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mirl import paths
from mirl.analysis.evidence import MEAN, curve_table, harm_warnings, harmful_levels, paired_differences, scores_table, verdict_table

TASKS = ("denoise_25", "derain")
IMAGES = 16


def write_run(root: Path, name: str, seed: int, offset: float, levels: int = 3, noise: float = 0.2,
              input_psnr: float = 25.0, harm_task: str | None = None) -> Path:
    """A finished study (one replicate, main chain) as mirl.study.lottery writes it; returns its
    replicate folder. Per-image PSNR = 28 - level + offset + noise."""
    study_dir = root / name
    study_dir.mkdir(parents=True)
    paths.run_config(study_dir).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "name": name, "preset": "smoke", "seed": seed}))
    run = paths.replicate_dir(study_dir, 0)
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    for level in range(levels):
        tasks = {}
        for task in TASKS:
            base = 28.0 - level + (offset if level else 0.0)
            if task == harm_task:
                base = input_psnr - 2.0
            per_image = [{"name": f"img{i:02d}", "psnr": float(base + rng.normal(0, noise)), "ssim": 0.9,
                          "input_psnr": input_psnr, "input_ssim": 0.7} for i in range(IMAGES)]
            tasks[task] = {"psnr": float(np.mean([p["psnr"] for p in per_image])), "images": IMAGES, "per_image": per_image}
        d = paths.level_dir(run, level)
        d.mkdir(parents=True)
        paths.metrics_file(d).write_text(json.dumps({
            "level": level, "convention": "upstream", "density_prunable": 0.5 ** level,
            "density_trainable": 0.9 * 0.5 ** level + 0.1, "tasks": tasks}))
        paths.done_file(d).write_text("{}")
    return run


def study(tmp_path: Path, planted: float, replicates: int = 3, **kwargs) -> dict[str, list[Path]]:
    return {
        "ticket": [write_run(tmp_path, f"ticket_{r}", seed=r, offset=planted, **kwargs) for r in range(replicates)],
        "random re-init": [write_run(tmp_path, f"reinit_{r}", seed=r, offset=0.0, **kwargs) for r in range(replicates)],
    }


def test_replicates_aggregate_into_one_curve_with_its_n(tmp_path):
    scores = scores_table(study(tmp_path, 0.0))
    assert sorted(scores["replicate"].unique()) == [0, 1, 2] and set(scores["seed"]) == {0, 1, 2}
    curves = curve_table(scores, "psnr")
    mean = curves[(curves.label == "ticket") & (curves.task == MEAN)]
    assert list(mean.level) == [0, 1, 2]
    assert (mean.replicates == 3).all() and (mean.images == IMAGES * len(TASKS)).all()
    assert (mean["low"] < mean["mean"]).all() and (mean["mean"] < mean["high"]).all()
    assert mean["mean"].tolist() == pytest.approx([28, 27, 26], abs=0.1)
    per_task = curves[(curves.task == "derain")]
    assert (per_task.images == IMAGES).all()


def test_a_planted_one_db_ticket_advantage_is_resolved(tmp_path):
    diffs = paired_differences(scores_table(study(tmp_path, 1.0)), "ticket")
    mean = diffs[diffs.task == MEAN]
    assert list(mean.level) == [1, 2] and (mean.verdict == "resolved").all()
    assert mean["mean"].tolist() == pytest.approx([1.0, 1.0], abs=0.1)
    table = verdict_table(diffs)
    assert table["sentence"].iloc[0].startswith("at 55% trainable the ticket is +1.0")
    assert " above random re-init: resolved (Holm-adjusted p = " in table["sentence"].iloc[0]
    assert table["n"].iloc[0] == "3 seeds (each the mean over 32 test images)"


def test_a_compared_studys_controls_are_paired_with_and_named_by_its_own_ticket(tmp_path):
    """Issue 34: with compare=[{reset: rewind}] the rows read "ticket - random pruning (reset=rewind)"
    while the rewind study's controls were paired with the rewind ticket; each row now names the
    ticket it was paired with, and the difference is the one against that ticket."""
    from mirl.analysis.evidence import paired_differences_by_study

    reset = {"ticket": [write_run(tmp_path, f"t_{r}", seed=r, offset=1.0) for r in range(3)],
             "random re-init": [write_run(tmp_path, f"c_{r}", seed=r, offset=0.0) for r in range(3)]}
    rewind = {"ticket (rewind)": [write_run(tmp_path, f"tw_{r}", seed=r, offset=3.0) for r in range(3)],
              "random re-init (rewind)": [write_run(tmp_path, f"cw_{r}", seed=r, offset=2.5) for r in range(3)]}
    scores = scores_table({**reset, **rewind})
    diffs = paired_differences_by_study(scores, {"": reset, " (rewind)": rewind})
    table = verdict_table(diffs)
    level1 = table[table.level == 1].set_index("control")
    assert level1.loc["random re-init (rewind)", "ticket"] == "ticket (rewind)"
    assert level1.loc["random re-init (rewind)", "sentence"].startswith("at 55% trainable the ticket (rewind) is +0.")
    assert level1.loc["random re-init", "ticket"] == "ticket" and level1.loc["ticket (rewind)", "ticket"] == "ticket"
    mean = diffs[(diffs.level == 1) & (diffs.task == MEAN)].set_index("control")["mean"]
    assert mean.to_dict() == pytest.approx({"random re-init": 1.0, "random re-init (rewind)": 0.5, "ticket (rewind)": -2.0}, abs=0.15)


def _per_seed_differences(variants: dict[str, list[Path]], levels: list[int]) -> list[float]:
    """Each seed's primary endpoint, straight from the metrics files: the mean over pruned levels and
    tasks of the mean over images of ticket - control."""
    out = []
    for mine, theirs in zip(variants["ticket"], variants["random re-init"]):
        values = []
        for level in levels:
            a, b = (json.loads(paths.metrics_file(paths.level_dir(run, level)).read_text())["tasks"] for run in (mine, theirs))
            values += [np.mean([x["psnr"] - y["psnr"] for x, y in zip(a[t]["per_image"], b[t]["per_image"])]) for t in TASKS]
        out.append(float(np.mean(values)))
    return out


@pytest.mark.parametrize("planted", [1.0, 0.0])
def test_the_primary_endpoint_is_a_t_interval_across_seeds_of_the_mean_over_levels(tmp_path, planted):
    """Issue 31: one endpoint per control, its df and real n (seeds), computed here with scipy directly."""
    from scipy import stats

    from mirl.analysis.evidence import primary_endpoints, primary_lines

    variants = study(tmp_path, planted, noise=0.3)
    table = primary_endpoints(scores_table(variants), "ticket")
    assert list(table.control) == ["random re-init"]
    row = table.iloc[0]
    per_seed = _per_seed_differences(variants, [1, 2])
    test = stats.ttest_1samp(per_seed, 0.0)
    ci = test.confidence_interval(0.95)
    assert (row["mean"], row["low"], row["high"], row["p"]) == pytest.approx((np.mean(per_seed), ci.low, ci.high, test.pvalue))
    assert (row["df"], row["seeds"], row["images"], row["levels"]) == (2, 3, IMAGES * len(TASKS), "1, 2")
    assert row["n"] == f"3 seeds (each the mean over 2 pruned levels x {IMAGES * len(TASKS)} test images)"
    assert row["verdict"] == ("resolved" if ci.low > 0 or ci.high < 0 else "not resolved")
    assert row["verdict"] == ("resolved" if planted else "not resolved")
    assert primary_lines(scores_table(variants)) == [row["sentence"]] and ", df = 2, n = 3 seeds" in row["sentence"]


@pytest.mark.parametrize("replicates, images", [(1, IMAGES), (3, 1)])
def test_one_seed_or_one_image_per_task_is_too_few_to_tell_everywhere(tmp_path, monkeypatch, replicates, images):
    """The smoke preset's one-image intervals (and any one-seed study) never print 'resolved'."""
    from mirl.analysis.evidence import primary_endpoints

    monkeypatch.setitem(globals(), "IMAGES", images)
    scores = scores_table(study(tmp_path, 3.0, replicates=replicates, noise=0.05))
    primary = primary_endpoints(scores, "ticket")
    assert primary["verdict"].tolist() == ["too few to tell"]
    if replicates == 1:  # no interval across one seed, even where the images would allow a bootstrap
        assert np.isnan(primary["low"].iloc[0]) and np.isnan(primary["high"].iloc[0])
    else:  # an interval that excludes 0 still reads "too few to tell" with one image per task
        assert primary["low"].iloc[0] > 0
    diffs = paired_differences(scores, "ticket")
    assert (diffs.verdict == "too few to tell").all() and diffs["p_holm"].isna().all() == (replicates == 1)


def test_secondary_rows_are_holm_adjusted_within_each_control(tmp_path):
    from mirl.analysis.stats import holm

    diffs = paired_differences(scores_table(study(tmp_path, 0.3, noise=0.5)), "ticket")
    assert len(diffs) == 2 * (len(TASKS) + 1)  # 2 pruned levels x (tasks + mean): one family
    assert diffs["p_holm"].tolist() == pytest.approx(holm(diffs["p"].tolist()))
    assert (diffs["p_holm"] >= diffs["p"]).all()
    assert ((diffs["p_holm"] < 0.05) == (diffs["verdict"] == "resolved")).all()


def test_no_planted_difference_is_not_resolved(tmp_path):
    diffs = paired_differences(scores_table(study(tmp_path, 0.0, noise=0.3)), "ticket")
    assert (diffs[diffs.task == MEAN].verdict == "not resolved").all()


def test_an_unfinished_replicate_level_is_left_out_not_mixed_in(tmp_path):
    variants = study(tmp_path, 0.0)
    paths.done_file(paths.level_dir(variants["ticket"][2], 2)).unlink()
    curves = curve_table(scores_table(variants), "psnr")
    assert list(curves[(curves.label == "ticket") & (curves.task == MEAN)].level) == [0, 1]


def test_networks_worse_than_their_input_are_flagged(tmp_path):
    scores = scores_table(study(tmp_path, 0.0, replicates=1, harm_task="derain"))
    bad = harmful_levels(scores)
    assert set(bad.task) == {"derain"} and len(bad) == 6  # 2 variants x 3 levels
    assert (bad["mean"] < 0).all()
    lines = harm_warnings(scores)
    assert lines[0].startswith("ticket, level 0 (100% trainable), derain: the restored images score 2.")
    assert "below the degraded input" in lines[0] and "n = 1 seed (the mean over 16 test images))" in lines[0]
    gains = curve_table(scores, "gain")
    assert gains[(gains.task == "denoise_25") & (gains.level == 0)]["mean"].iloc[0] == pytest.approx(3.0, abs=0.15)


def test_report_tables_keep_the_variant_order_and_state_n(tmp_path):
    from mirl.branches import branch_label
    from mirl.analysis.evidence import headline, wide_table

    scores = scores_table(study(tmp_path, 1.0))
    wide = wide_table(curve_table(scores, "gain"))
    assert list(wide.label) == ["ticket"] * 3 + ["random re-init"] * 3
    assert wide["n (mean)"].iloc[0] == "32 img x 3 rep" and wide["mean"].iloc[0].startswith("3.0")
    numbers = headline(scores, "ticket")
    assert all("(n = 3 seeds (each the mean over 32 test images))" in v for k, v in numbers.items() if "mean PSNR gain" in k)
    assert " above random re-init: resolved (Holm-adjusted p = " in numbers["ticket - random re-init, last level (secondary, Holm-adjusted)"]
    primary = numbers["ticket - random re-init: primary endpoint (PSNR, dB, mean over pruned levels)"]
    assert primary.startswith("ticket - random re-init, mean over pruned levels 1, 2: +1.0") and primary.endswith(": resolved")
    assert list(numbers).index("ticket - random re-init: primary endpoint (PSNR, dB, mean over pruned levels)") < \
        list(numbers).index("ticket - random re-init, last level (secondary, Holm-adjusted)")
    assert branch_label("main") == "ticket" and branch_label("random_reinit") == "random re-init"


def test_one_seed_and_one_image_per_task_print_no_interval(tmp_path, monkeypatch):
    """The smoke preset (1 image per task, 1 seed) printed "+0.39 dB [+0.39, +0.39]": a bracket
    that reads as an interval. Nothing estimates a spread there, and the tables and headlines say so."""
    import tests.analysis.test_evidence as here
    from mirl.analysis.evidence import headline, wide_table

    monkeypatch.setattr(here, "IMAGES", 1)
    scores = scores_table(study(tmp_path, 1.0, replicates=1))
    wide = wide_table(curve_table(scores, "gain"))
    assert all(cell.endswith(" (no interval)") and "[" not in cell for cell in wide["mean"]), list(wide["mean"])
    numbers = headline(scores, "ticket")
    gains = [v for k, v in numbers.items() if "mean PSNR gain" in k]
    assert gains and all("(no interval: 1 seed, 1 image per task)" in v and "[" not in v for v in gains), gains
    primary = numbers["ticket - random re-init: primary endpoint (PSNR, dB, mean over pruned levels)"]
    assert "no interval (1 seed)" in primary and "[" not in primary and primary.endswith(": too few to tell")
    from mirl.analysis.evidence import primary_endpoints

    row = primary_endpoints(scores, "ticket").iloc[0]
    assert np.isnan(row["low"]) and np.isnan(row["high"]) and row["df"] is None  # no interval across one seed


def test_variants_scored_on_different_images_are_not_paired(tmp_path):
    from mirl.errors import MirlError

    variants = study(tmp_path, 1.0, replicates=1)
    metrics = paths.metrics_file(paths.level_dir(variants["random re-init"][0], 1))
    data = json.loads(metrics.read_text())
    data["tasks"]["derain"]["per_image"][0]["name"] = "other-crop"
    metrics.write_text(json.dumps(data))
    with pytest.raises(MirlError, match="level 1: 'ticket' and 'random re-init' were scored on different"):
        paired_differences(scores_table(variants), "ticket")


def test_a_control_run_for_fewer_seeds_is_paired_on_the_seeds_it_has(tmp_path):
    """A branch added to a study after seed 0 finished (or a control of one seed): the ticket's other
    seeds have no pair, so the endpoint rests on the shared seed and says so."""
    from mirl.analysis.evidence import primary_endpoints

    variants = study(tmp_path, 1.0)
    variants["random re-init"] = variants["random re-init"][:1]
    scores = scores_table(variants)
    row = primary_endpoints(scores, "ticket").iloc[0]
    assert row["seeds"] == 1 and row["verdict"] == "too few to tell" and row["mean"] == pytest.approx(1.0, abs=0.1)
    diffs = paired_differences(scores, "ticket")
    assert (diffs["replicates"] == 1).all()


# ---- foreign, copied or incomplete nodes are refused, not summarised (issue 33, cases 3 and 8) --

def _smoke_copy(smoke_run: Path, tmp_path: Path) -> Path:
    import shutil

    study = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, study)
    return study


def _as_branch(study: Path, name: str, level: int = 1, **changes) -> Path:
    """main's node of ``level`` copied into the folder of branch ``name``, its record edited with ``changes``
    (a key set to None is removed)."""
    import shutil

    replicate = paths.replicate_dir(study, 0)
    node = paths.level_dir(replicate, level, name)
    shutil.copytree(paths.level_dir(replicate, level), node)
    metrics = json.loads(paths.metrics_file(node).read_text())
    metrics.update(changes)
    paths.metrics_file(node).write_text(json.dumps({k: v for k, v in metrics.items() if v is not None}))
    return node


def test_a_node_copied_over_another_branch_is_not_shown_under_its_name(smoke_run, tmp_path):
    from mirl.analysis.evidence import study_variants
    from mirl.errors import MirlError

    study = _smoke_copy(smoke_run, tmp_path)
    node = _as_branch(study, "random_reinit")  # the issue: refill's files copied over random_reinit's
    with pytest.raises(MirlError, match=rf"^{paths.metrics_file(node)} belongs to another node: it records branch 'main' "
                                        rf"\(here: 'random_reinit'\); .*delete the folder {node} and run the study again"):
        scores_table(study_variants(study))


def test_a_copied_replicate_is_not_an_interval(smoke_run, tmp_path):
    """`cp -a replicate_0 replicate_1`: refused, not "[-3.33, -3.33], 2 replicates"; also when
    the copy's records are edited to its place, its weights give it away."""
    import shutil

    from mirl.analysis.evidence import study_variants
    from mirl.errors import MirlError

    study = _smoke_copy(smoke_run, tmp_path)
    copy = paths.replicate_dir(study, 1)
    shutil.copytree(paths.replicate_dir(study, 0), copy)
    with pytest.raises(MirlError, match=r"belongs to another node: it records replicate 0 \(here: 1\)"):
        scores_table(study_variants(study))
    for node in copy.glob("level_*/main"):
        metrics = json.loads(paths.metrics_file(node).read_text())
        paths.metrics_file(node).write_text(json.dumps({**metrics, "replicate": 1, "seed": 1}))
    original = paths.level_dir(paths.replicate_dir(study, 0), 0)
    with pytest.raises(MirlError, match=rf"^{original} and {paths.level_dir(copy, 0)} hold the same trained weights .*one "
                                        "replicate copied over another"):
        scores_table(study_variants(study))


def test_a_refill_node_without_scores_is_an_error_not_a_missing_level(smoke_run, tmp_path):
    from mirl.analysis import results
    from mirl.analysis.evidence import study_variants
    from mirl.errors import MirlError

    study = _smoke_copy(smoke_run, tmp_path)
    node = _as_branch(study, "refill", branch="refill", seed=-1, weights=None, tasks=None)
    message = rf"^{paths.metrics_file(node)} holds no per-task scores \('tasks'\); remove {paths.done_file(node)} and run"
    with pytest.raises(MirlError, match=message):
        scores_table(study_variants(study))
    with pytest.raises(MirlError, match=message):
        results.metrics_table(study, branch="refill")


@pytest.mark.parametrize("damage", [{"barrier": None}, {"path": []}, {"path": [{"alpha": 0.0}]}])
def test_a_stability_node_without_its_barrier_is_one_line(smoke_run, tmp_path, damage):
    from mirl.analysis.evidence import barrier_table
    from mirl.errors import MirlError

    study = _smoke_copy(smoke_run, tmp_path)
    path = [{"alpha": a, "psnr": 30.0, "images": 2} for a in (0.0, 1.0)]
    node = _as_branch(study, "stability", branch="stability", seed=-1, weights=None,
                      **{"barrier": 0.0, "path": path, "alphas": [0.0, 1.0], **damage})
    with pytest.raises(MirlError, match=rf"^{paths.metrics_file(node)} lacks the stability barrier or its linear path .*remove "
                                        rf"{paths.done_file(node)} and run the study again"):
        barrier_table({"": study})
    node_ok = json.loads(paths.metrics_file(node).read_text())
    paths.metrics_file(node).write_text(json.dumps({**node_ok, "barrier": 0.0, "path": path}))
    with pytest.raises(MirlError, match=rf"^{paths.metrics_file(node)} was scored by an older mirl .*its path saw only the "
                                        rf"first test images by name\); remove {paths.done_file(node)} and run"):
        barrier_table({"": study})  # issue 31: an old path (first N images by name, no gain or distance) is not shown
    new = {"gain_ends": 3.0, "distance": {"a_b": 1.0, "a_start": 4.0, "ratio": 0.25},
           "path_images_per_photo": {"derain": {"barbara": 1, "china": 1}}}
    paths.metrics_file(node).write_text(json.dumps({**node_ok, "barrier": 0.0, "path": path, **new}))
    table = barrier_table({"": study})
    assert table["mean"].tolist() == [0.0] and table["crops per photo"].tolist() == ["1 from each of 2 photos"]
    assert table["gain over the input at the ends (dB)"].tolist() == ["+3.00 [+3.00, +3.00]"]
    assert table["|A - B| / |A - start|"].tolist() == ["0.250 [0.250, 0.250]"]
