"""mirl.analysis.gallery: which levels a gallery shows, the networks it loads and the samples it restores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mirl import paths
from mirl.analysis.gallery import gallery_samples, load_level_model, photo_of, pick_levels
from mirl.models import build_model, save_checkpoint


@pytest.mark.parametrize("n", range(1, 12))
@pytest.mark.parametrize("count", [1, 2, 3])
def test_pick_levels_shows_the_dense_level_and_spreads_pruned_ones_up_to_the_last(n: int, count: int) -> None:
    available = list(range(n))[::-1]  # any order
    chosen = pick_levels(available, count=count)
    assert chosen == sorted(set(chosen)) and set(chosen) <= set(available)
    assert len(chosen) == min(n, count + 1) and chosen[0] == 0 and chosen[-1] == n - 1
    if n > count + 1 and count > 1:  # the pruned levels shown are evenly spaced (gaps differ by one at most)
        gaps = np.diff(chosen[1:])
        assert gaps.max() - gaps.min() <= 1, chosen


def test_pick_levels_keeps_the_wanted_order_and_drops_missing_levels() -> None:
    assert pick_levels([0, 1, 2, 3], wanted=[3, 0, 9]) == [3, 0]
    assert pick_levels([0, 1], wanted=[]) == []


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    """A study folder (config.json, replicate 0) with tiny networks at main's levels 0, 1 and random_reinit's level 1."""
    root = tmp_path_factory.mktemp("runs") / "smoke_0000abcd"
    root.mkdir()
    paths.run_config(root).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "preset": "smoke"}))
    saved = {}
    for seed, (level, branch) in enumerate([(0, "main"), (1, "main"), (1, "random_reinit")]):
        torch.manual_seed(seed)
        net = build_model("tiny")
        node = paths.level_dir(paths.replicate_dir(root, 0), level, branch)
        node.mkdir(parents=True)
        save_checkpoint(paths.model_file(node), net)
        saved[f"{level}/{branch}"] = {n: t.detach().clone() for n, t in net.state_dict().items()}
    return root, saved


def _same(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(t, state[n]) for n, t in model.state_dict().items())


def test_load_level_model_reads_the_chains_node_in_eval_mode(study) -> None:
    root, saved = study
    model = load_level_model(root, 1)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert _same(model, saved["1/main"])
    assert _same(load_level_model(paths.replicate_dir(root, 0), 1, "random_reinit"), saved["1/random_reinit"])
    assert _same(load_level_model(root, 0, "random_reinit"), saved["0/main"])  # a branch's level 0 is main's


def test_load_level_model_of_a_missing_level_names_the_file(study) -> None:
    root, _ = study
    with pytest.raises(Exception, match=r"level_2.*model\.pt"):
        load_level_model(root, 2)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny derain test set: two crops of photo ``a`` (one flat, one textured) and one of photo ``b``."""
    from PIL import Image

    root = tmp_path_factory.mktemp("data")
    subset = root / "test" / "derain" / "Rain100L"
    rng = np.random.default_rng(0)
    for name, spread in (("a-r0c0", 0.0), ("a-r0c1", 0.4), ("b-r0c0", 0.2)):
        clean = np.clip(0.5 + spread * (rng.random((48, 48, 3)) - 0.5), 0, 1)
        rainy = np.clip(clean + 0.3 * (rng.random((48, 48, 3)) > 0.9), 0, 1)
        for folder, suffix, image in (("target", "_gt", clean), ("input", "_rainy", rainy)):
            (subset / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(subset / folder / f"{name}{suffix}.png")
    return root


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)))


def test_gallery_samples_restore_each_image_with_every_model_and_score_the_panels(study, data: Path) -> None:
    root, _ = study
    models = {"dense": load_level_model(root, 0), "level 1": load_level_model(root, 1)}
    samples = gallery_samples(models, data, ["derain"], n_images=2)
    assert [s["task"] for s in samples] == ["derain", "derain"] and samples[0]["name"] != samples[1]["name"]
    for sample in samples:
        assert sample["convention"] == "upstream"
        assert [p["label"] for p in sample["panels"]] == ["degraded input", "dense", "level 1", "clean"]
        degraded, clean = sample["panels"][0]["image"], sample["panels"][-1]["image"]
        assert sample["panels"][-1]["psnr"] is None and degraded.shape == clean.shape and degraded.shape[2] == 3
        for panel in sample["panels"][:-1]:
            assert panel["image"].min() >= 0 and panel["image"].max() <= 1
            assert panel["psnr"] == pytest.approx(_psnr(panel["image"], clean), abs=1e-3), panel["label"]
        with torch.no_grad():
            expected = models["level 1"](torch.from_numpy(degraded).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        assert np.abs(sample["panels"][2]["image"] - expected).max() < 1e-5


def test_gallery_samples_per_photo_show_each_photos_most_textured_crop(study, data: Path) -> None:
    root, _ = study
    samples = gallery_samples({"dense": load_level_model(root, 0)}, data, ["derain"], n_images=None, per_photo=True)
    assert [s["name"] for s in samples] == ["Rain100L/a-r0c1_rainy", "Rain100L/b-r0c0_rainy"]
    assert [photo_of(s["name"]) for s in samples] == ["a", "b"]
    assert [s["name"] for s in gallery_samples({}, data, ["derain"], n_images=1, per_photo=True)] == ["Rain100L/a-r0c1_rainy"]
