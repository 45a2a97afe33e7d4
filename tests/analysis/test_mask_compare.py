"""The mask explorer's numbers (mirl.analysis.mask_compare, report_tables' notebook-04 helpers) and figures.

Masks are small and hand-made, in a study folder written here (two replicates, three levels, a
random-pruning and a random re-init branch), so every Jaccard index, random expectation and
survival fraction is worked out by hand below; the random expectation is also checked against
random masks drawn by the project's own random pruning.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from mirl.analysis import mask_compare as mc
from mirl import paths
from mirl.reports import tables, viz, widgets
from mirl.pruning import save_mask

# Three tensors in three blocks (names as PromptIR's), sizes 100, 300 and 40.
ENC, LAT, OUT = "encoder_level1.0.attn.qkv.weight", "latent.0.ffn.project_in.weight", "output.weight"
SIZES = {ENC: (10, 10), LAT: (30, 10), OUT: (4, 10)}


def _mask(**kept: list[int]) -> dict[str, torch.Tensor]:
    """A mask that keeps the given flat positions of each tensor (keywords enc, lat, out)."""
    names = {"enc": ENC, "lat": LAT, "out": OUT}
    mask = {}
    for key, name in names.items():
        flat = torch.zeros(torch.Size(SIZES[name]).numel(), dtype=torch.bool)
        flat[kept[key]] = True
        mask[name] = flat.view(SIZES[name])
    return mask


def r(a: int, b: int) -> list[int]:
    return list(range(a, b))


FULL = _mask(enc=r(0, 100), lat=r(0, 300), out=r(0, 40))
# replicate 0 keeps half of encoder and latent, 30 of 40 output weights at level 1; then half of those
REP0 = {1: _mask(enc=r(0, 50), lat=r(0, 150), out=r(0, 30)),
        2: _mask(enc=r(0, 25), lat=r(0, 75), out=r(0, 20))}
# replicate 1: the same counts, other positions
REP1 = {1: _mask(enc=r(0, 40) + r(60, 70), lat=r(0, 60) + r(200, 290), out=r(10, 40)),
        2: _mask(enc=r(0, 20) + r(60, 65), lat=r(0, 30) + r(200, 245), out=r(10, 30))}
# random pruning of replicate 0 at level 2 (hand-placed): the ticket's counts, disjoint in encoder
RANDOM_PRUNE = _mask(enc=r(50, 75), lat=r(50, 125), out=r(10, 30))


def _node(study: Path, replicate: int, level: int, branch: str, mask: dict, finished: bool = True) -> None:
    node = paths.level_dir(paths.replicate_dir(study, replicate), level, branch)
    node.mkdir(parents=True)
    save_mask(paths.mask_file(node), mask)
    if finished:
        paths.done_file(node).write_text("{}")


def make_study(root: Path, scope: str = "global") -> Path:
    """A study folder with only masks: 2 replicates x levels 0-2, random_prune and random_reinit
    branches of replicate 0 at level 2, and an unfinished node that must be ignored."""
    study = root / "synthetic_00000000"
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"format": 2, "name": study.name, "preset": "smoke", "scope": scope,
                                                   "fraction": 0.5, "seed": 0}))
    for replicate, masks in ((0, REP0), (1, REP1)):
        _node(study, replicate, 0, "main", FULL)
        for level, mask in masks.items():
            _node(study, replicate, level, "main", mask)
    _node(study, 0, 2, "random_prune", RANDOM_PRUNE)
    _node(study, 0, 2, "random_reinit", REP0[2])
    _node(study, 1, 2, "one_shot", REP1[2], finished=False)
    return study


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    return make_study(tmp_path)


def _row(table: pd.DataFrame, **where: object) -> pd.Series:
    rows = table
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, (where, rows)
    return rows.iloc[0]


# --------------------------------------------------------------------------- blocks


def test_every_promptir_parameter_has_a_block_of_its_own() -> None:
    from mirl.models import build_model
    from mirl.models.promptir import PromptIR

    net = build_model("tiny")
    names = [n for n, _ in net.named_parameters()]
    blocks = [mc.block_of(n) for n in names]
    assert set(blocks) == set(mc.BLOCKS), set(blocks) ^ set(mc.BLOCKS)  # every block is used; no name falls through
    assert {mc.block_of(n) for n in PromptIR.unused_in_forward} == {"unused in forward"}
    assert mc.block_of("down1_2.body.0.weight") == mc.block_of("encoder_level2.0.ffn.dwconv.weight") == "encoder 2"
    assert mc.block_of("up4_3.body.0.weight") == mc.block_of("decoder_level3.0.attn.qkv.weight") == "decoder 3"
    assert mc.block_of("noise_level1.attn.qkv.weight") == mc.block_of("reduce_noise_level1.weight") == "prompt interaction"
    assert mc.block_of("my_head.weight") == "my_head"
    assert mc.block_order(reversed(blocks)) == list(mc.BLOCKS)


# --------------------------------------------------------------------------- the scan of a study


def test_scan_reads_every_finished_mask_once(study: Path) -> None:
    scan = mc.scan_study(study / "replicate_1")  # any folder inside the study
    assert scan.study == study and scan.scope == "global"
    assert scan.replicates == [0, 1] and scan.levels == [0, 1, 2]
    assert scan.branches == ["random_prune", "random_reinit"]  # the unfinished one_shot node is left out
    assert len(scan.nodes) == 8
    kinds = scan.pairs.groupby("kind").size().to_dict()
    # 3 tensors x: 2 branch pairs; 2 replicates x 2 level steps; 3 levels x 1 replicate pair
    assert kinds == {"branch": 6, "next level": 12, "replicate": 9}


def test_replicate_jaccard_and_its_random_expectation_per_block(study: Path) -> None:
    scan = mc.scan_study(study)
    overlap = mc.block_overlap(scan.pairs)
    rep = overlap[(overlap["kind"] == "replicate") & (overlap["level_a"] == 1)]
    # encoder: 40 in common of 60; latent: 60 of 240; output: 20 of 40
    assert _row(rep, block="encoder 1")["jaccard"] == pytest.approx(40 / 60)
    assert _row(rep, block="latent")["jaccard"] == pytest.approx(60 / 240)
    assert _row(rep, block="output")["jaccard"] == pytest.approx(20 / 40)
    # random masks: pq / (p + q - pq) per tensor: 0.5, 0.5 -> 1/3; 0.75, 0.75 -> 0.6
    assert _row(rep, block="encoder 1")["random_jaccard"] == pytest.approx(1 / 3)
    assert _row(rep, block="latent")["random_jaccard"] == pytest.approx(1 / 3)
    assert _row(rep, block="output")["random_jaccard"] == pytest.approx(0.6)
    # the whole network sums counts (weighted by weights), it does not average the blocks
    whole = _row(rep, block=mc.WHOLE)
    assert whole["jaccard"] == pytest.approx(120 / 340)
    assert whole["random_jaccard"] == pytest.approx((25 + 75 + 22.5) / (75 + 225 + 37.5))
    assert whole["jaccard"] != pytest.approx(rep.loc[rep["block"] != mc.WHOLE, "jaccard"].mean(), abs=1e-3)
    # level 0 is dense in both: identical masks
    assert (overlap.loc[(overlap["kind"] == "replicate") & (overlap["level_a"] == 0), "jaccard"] == 1.0).all()


def test_random_expectation_matches_random_masks_drawn_by_random_pruning() -> None:
    """pq / (p + q - pq) is what the project's random pruning gives on average (and not the
    Jaccard of two identical masks, or of disjoint ones)."""
    from mirl.pruning.controls import random_prune

    size, p, q = 4000, 0.3, 0.6
    target = {"latent.w": torch.arange(size) < int(q * size)}
    other = {"latent.w": torch.arange(size) < int(p * size)}
    draws = []
    for seed in range(60):
        drawn = random_prune(None, target, torch.Generator().manual_seed(seed))
        draws.append(mc.jaccard(drawn["latent.w"], other["latent.w"]))
    counts = mc.pair_counts(other, drawn)
    expected = _row(mc.block_overlap(counts.assign(kind="replicate")), block="latent")["random_jaccard"]
    assert expected == pytest.approx(mc.random_jaccard(p, q)) == pytest.approx(0.25)
    assert sum(draws) / len(draws) == pytest.approx(expected, abs=0.004)


def test_ticket_against_branches(study: Path) -> None:
    scan = mc.scan_study(study)
    summary = mc.overlap_summary(mc.block_overlap(scan.pairs), "branch")
    assert set(summary["level_b"]) == {2} and set(summary["n"]) == {1}
    same = summary[summary["branch_b"] == "random_reinit"]
    assert (same["jaccard"] == 1.0).all()  # the ticket's own mask
    rp = summary[summary["branch_b"] == "random_prune"]
    assert _row(rp, block="encoder 1")["jaccard"] == 0.0  # disjoint by construction
    assert _row(rp, block="encoder 1")["random_jaccard"] == pytest.approx(0.0625 / 0.4375)  # p = q = 0.25
    assert _row(rp, block="latent")["jaccard"] == pytest.approx(25 / 125)
    assert _row(rp, block="output")["jaccard"] == pytest.approx(10 / 30)
    table = tables.block_table(rp, "branch_b", {"random_prune": "random pruning"})
    assert list(table.columns) == [("random pruning", "Jaccard"), ("random pruning", "random masks")]
    assert list(table.index) == ["encoder 1", "latent", "output", mc.WHOLE]


def test_level_against_the_next(study: Path) -> None:
    scan = mc.scan_study(study)
    steps = mc.overlap_summary(mc.block_overlap(scan.pairs), "next level")
    step = steps[(steps["level_a"] == 1) & (steps["level_b"] == 2)]
    # replicate 0 keeps 25 of 50, 75 of 150, 20 of 30; replicate 1 the same counts: means are equal
    assert _row(step, block="encoder 1")["survival"] == pytest.approx(0.5)
    assert _row(step, block="output")["survival"] == pytest.approx(20 / 30)
    assert _row(step, block=mc.WHOLE)["survival"] == pytest.approx(120 / 230)
    assert (step["revived"] == 0).all() and (step["n"] == 2).all()
    first = steps[steps["level_a"] == 0]
    assert _row(first, block="output")["survival"] == pytest.approx(0.75)


def test_densities_per_block_and_level(study: Path) -> None:
    scan = mc.scan_study(study)
    density = mc.block_densities(scan.densities)
    assert list(density.columns) == ["encoder 1", "latent", "output", mc.WHOLE]
    assert density.loc[0].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert density.loc[2, "output"] == pytest.approx(0.5) and density.loc[2, mc.WHOLE] == pytest.approx(120 / 440)
    weights = mc.block_weights(scan.densities)
    assert weights["weights"].tolist() == [100, 300, 40]


def test_compare_node_and_its_caption(study: Path) -> None:
    scan = mc.scan_study(study)
    overlap = mc.block_overlap(scan.pairs)
    dense = mc.compare_node(scan, overlap, mc.Node(0, 0))
    assert dense.reference is None and mc.node_caption(dense).endswith("100.0% of prunable weights kept (dense)")
    ticket = mc.compare_node(scan, overlap, mc.Node(0, 2))
    assert ticket.reference == mc.Node(0, 1) and ticket.expected is None
    assert ticket.overlap["encoder 1"] == pytest.approx(0.5)
    branch = mc.compare_node(scan, overlap, mc.Node(0, 2, "random_prune"))
    assert branch.reference == mc.Node(0, 2) and branch.overlap["encoder 1"] == 0.0
    caption = mc.node_caption(branch)
    assert caption.startswith("replicate 0 · level 2 · random pruning: 27.3% of prunable weights kept")
    assert f"Jaccard with the ticket's mask {(0 + 25 + 10) / (50 + 125 + 30):.3f}" in caption
    with pytest.raises(KeyError, match="no mask"):
        mc.compare_node(scan, overlap, mc.Node(1, 2, "one_shot"))
    with pytest.raises(ValueError, match="levels with one"):
        mc.focus_level(scan, 5)
    assert mc.focus_level(scan) == 2


def test_masks_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape of latent.w"):
        mc.pair_counts({"latent.w": torch.ones(4, dtype=torch.bool)}, {"latent.w": torch.ones(5, dtype=torch.bool)})


def test_scan_of_a_folder_without_masks_is_an_error(tmp_path: Path) -> None:
    study = tmp_path / "empty_00000000"
    study.mkdir()
    paths.run_config(study).write_text(json.dumps({"scope": "global"}))
    with pytest.raises(FileNotFoundError, match="no finished level with a mask"):
        mc.scan_study(study)


# --------------------------------------------------------------------------- headline and sentences


def test_headline_has_replicate_and_random_pruning_jaccards(study: Path) -> None:
    scan = mc.scan_study(study)
    numbers = tables.mask_study_headline(scan, mc.block_overlap(scan.pairs), 2)
    assert numbers["replicates (n)"] == 2
    assert numbers["ticket at level 2: weights kept (% of prunable)"] == round(100 * 120 / 440, 1) == 27.3
    # counted from the masks themselves, not from the tables
    both = sum(int((REP0[2][n] & REP1[2][n]).sum()) for n in SIZES)
    either = sum(int((REP0[2][n] | REP1[2][n]).sum()) for n in SIZES)
    key = "replicate vs replicate at level 2: Jaccard of kept weights (n = 2 replicates, 1 pair)"
    assert numbers[key] == round(both / either, 3)
    expected = numbers["replicate vs replicate at level 2: Jaccard of random masks of the same densities"]
    e_both = 25 * 25 / 100 + 75 * 75 / 300 + 20 * 20 / 40
    assert expected == round(e_both / (240 - e_both), 3)
    assert numbers["ticket vs random pruning at level 2: Jaccard of kept weights (n = 1 replicate)"] == round(35 / 205, 3)
    # encoder 1 and latent both keep 25.0%: a tie goes to the first in network order
    assert numbers["block keeping the fewest weights at level 2 (global scope)"] == "encoder 1: 25.0%"
    assert all(round(v, 3) == v for v in numbers.values() if isinstance(v, float))


def test_one_replicate_has_no_seed_comparison(tmp_path: Path) -> None:
    study = make_study(tmp_path, scope="layerwise")
    import shutil

    shutil.rmtree(study / "replicate_1")
    scan = mc.scan_study(study)
    numbers = tables.mask_study_headline(scan, mc.block_overlap(scan.pairs), 2)
    assert numbers["replicates (n)"] == 1 and not any(k.startswith("replicate vs replicate") for k in numbers)
    assert not any(k.startswith("block keeping") for k in numbers)  # layer-wise: equal by construction
    sentence = tables.scope_sentence(scan, 2)
    assert "by construction" in sentence and "output: 50.0%" in sentence and "25.0–25.0% each" in sentence


def test_tensor_table_at_a_level(study: Path) -> None:
    scan = mc.scan_study(study)
    table = tables.tensor_table(scan, 2)
    assert list(table.index) == [ENC, LAT, OUT]
    assert table.loc[OUT, "kept"] == pytest.approx(50.0)
    assert table.loc[ENC, "kept of level 1's kept (%)"] == pytest.approx(50.0)
    assert table.loc[ENC, "Jaccard: ticket vs random pruning"] == 0.0
    assert table.loc[LAT, "Jaccard: ticket vs random re-init"] == 1.0
    assert table.loc[OUT, "Jaccard: replicate vs replicate"] == pytest.approx(10 / 30)
    assert table.loc[OUT, "Jaccard: random masks of those densities"] == pytest.approx(0.25 / 0.75)


# --------------------------------------------------------------------------- figures and explorers


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(png)).size


def _wider_than_tall(fig: object) -> bool:
    width, height = fig.get_size_inches()
    return bool(width >= height)


def test_every_figure_is_wider_than_tall(study: Path) -> None:
    scan = mc.scan_study(study)
    overlap = mc.block_overlap(scan.pairs)
    many_levels = pd.DataFrame(0.5, index=[f"level {k}" for k in range(30)], columns=list(mc.BLOCKS) + [mc.WHOLE])
    figures = [viz.block_heatmap(mc.block_densities(scan.densities), "density"), viz.block_heatmap(many_levels, "30 levels"),
               viz.block_overlap_figure(mc.overlap_summary(overlap, "replicate"), "level_b", "replicates"),
               viz.block_overlap_figure(mc.overlap_summary(overlap, "branch"), "branch_b", "branches")]
    figures += [widgets.node_figure(mc.compare_node(scan, overlap, node)) for node in scan.nodes]
    for fig in figures:
        assert _wider_than_tall(fig), fig.get_size_inches()
        width, height = _png_size(viz.fig_to_png(fig, dpi=40))
        assert width >= height


def test_static_explorer_pre_renders_every_node(study: Path) -> None:
    scan = mc.scan_study(study)
    box = widgets.static_study_explorer(scan, mc.block_overlap(scan.pairs), dpi=40)
    assert "mirl-static-explorer" in box._dom_classes
    replicate, level, branch, outer = box.children[:4]
    assert [o[0] for o in level.options] == ["level 0", "level 1", "level 2"] and level.index == 2
    assert [o[0] for o in branch.options] == ["ticket", "random pruning", "random re-init"]
    assert len(replicate.options) == 2 and len(outer.children) == 2
    images, missing = [], []
    for per_replicate in outer.children:
        for per_level in per_replicate.children:
            for page in per_level.children:
                if hasattr(page, "children"):
                    images.append(page.children[1].value)
                else:
                    missing.append(page.value)
    assert len(images) == len(scan.nodes) == 8 and len(missing) == 2 * 3 * 3 - 8
    assert any("branches start at level 1" in m for m in missing)
    assert all(w >= h for w, h in map(_png_size, images))


def test_kernel_explorer_redraws_on_every_choice(study: Path) -> None:
    scan = mc.scan_study(study)
    ex = widgets.StudyExplorer(scan, mc.block_overlap(scan.pairs), dpi=40)
    assert "mirl-kernel-explorer" in ex.widget._dom_classes
    assert ex.tensor.value == LAT  # the largest tensor first
    first = ex.figure_image.value
    assert "level 2 · ticket" in ex.status.value and "update #1 (kernel)" in ex.status.value
    ex.level.index = 1
    assert "level 1" in ex.status.value and ex.figure_image.value != first and ex.updates == 2
    ex.level.index = 2
    ex.branch.index = 1
    assert "random pruning" in ex.status.value and "Jaccard" in ex.status.value
    for image in (ex.figure_image.value, ex.tensor_image.value):
        width, height = _png_size(image)
        assert width >= height
    ex.replicate.index = 1
    assert "replicate 1 has no random pruning mask at level 2" in ex.status.value and ex.figure_image.value == b""
