"""The refill branch (a structured ticket, IMP-Refill) and the narrowed network it exports: whole
channels, main's weight count, paired keys and values, narrowed == masked, ONNX within one 8-bit
level, and the narrowed checkpoint through load_checkpoint, mirl restore and mirl evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mirl import paths
from mirl.branches import get_branch
from mirl.branches.refill import refill_mask
from mirl.cli import main
from mirl.study.config import study_preset
from mirl.errors import MirlError
from mirl.study.lottery import branch_context, run_study
from mirl.models import CheckpointError, build_model, count_parameters, load_checkpoint, save_checkpoint
from mirl.models.narrow import ChannelUnit, build_narrow_model, channel_units, narrow_model, plan_narrowing
from mirl.pruning import apply_mask, load_mask, magnitude_prune
from mirl.pruning.mask import full_mask
from tests.conftest import FAST


def _main_mask(net: torch.nn.Module, fraction: float = 0.91) -> dict[str, torch.Tensor]:
    """A layer-wise magnitude mask of ``net``'s weights, as main's level would be."""
    weights = net.state_dict()
    full = full_mask(weights, "upstream", net.unused_in_forward)
    return magnitude_prune(weights, full, fraction, "layerwise", "upstream", net.unused_in_forward)


def _channel_state(unit: ChannelUnit, mask: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(channels, elements)`` of the unit's masked slots."""
    return torch.cat([s.take(mask[s.tensor]) for s in unit.slots if s.tensor in mask], dim=1)


@pytest.fixture(scope="module")
def refilled() -> tuple[torch.nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = build_model("tiny").eval()
    main_mask = _main_mask(net)
    return net, main_mask, refill_mask(main_mask, net.state_dict(), net.config)


def test_refill_removes_whole_channels_and_keeps_mains_count(refilled) -> None:
    net, main_mask, mask = refilled
    units = channel_units(net.config)
    assert {u.kind for u in units} == {"hidden", "query", "keyvalue", "upsample"}
    for unit in units:
        kept = _channel_state(unit, mask)
        whole = kept.all(1) | ~kept.any(1)
        assert bool(whole.all()), f"{unit.name}: channels {(~whole).nonzero().flatten().tolist()} are partly kept"
        per_head = kept.all(1).view(unit.heads, unit.per_head).sum(1)
        assert bool((per_head == per_head[0]).all()) and int(per_head[0]) >= 1, unit.name
    main_total, refill_total = (sum(int(m.sum()) for m in x.values()) for x in (main_mask, mask))
    assert abs(refill_total - main_total) <= 0.06 * main_total, (refill_total, main_total)
    assert sum(int(m.sum()) for m in mask.values()) != main_total or not all(torch.equal(mask[n], main_mask[n]) for n in mask)


def test_keys_and_values_stay_paired_and_the_stream_keeps_mains_mask(refilled) -> None:
    net, main_mask, mask = refilled
    d = net.encoder_level3[0].attn.qkv.in_channels
    qkv = mask["encoder_level3.0.attn.qkv.weight"].flatten(1)
    k_rows, v_rows = qkv[d:2 * d].all(1), qkv[2 * d:].all(1)
    assert torch.equal(k_rows, v_rows) and 0 < int(k_rows.sum()) < d
    # a query channel goes with its output column of project_out
    out_cols = mask["encoder_level3.0.attn.project_out.weight"].flatten(2).all(2).all(0)
    assert torch.equal(qkv[:d].all(1), out_cols)
    # the FFN's gate halves go together
    p_in = mask["latent.0.ffn.project_in.weight"].flatten(1).all(1)
    assert torch.equal(p_in[: p_in.numel() // 2], p_in[p_in.numel() // 2:])
    # residual-stream tensors and reduce_chan's skip columns keep main's unstructured mask
    for name in ("patch_embed.proj.weight", "down1_2.body.0.weight", "output.weight", "latent.0.norm1.body.weight"):
        assert torch.equal(mask[name], main_mask[name]), name
    n_up = net.up4_3.body[0].out_channels // 4
    assert torch.equal(mask["reduce_chan_level3.weight"][:, n_up:], main_mask["reduce_chan_level3.weight"][:, n_up:])


def test_the_kept_channels_are_those_main_keeps_most_weight_in(refilled) -> None:
    net, main_mask, mask = refilled
    weights = net.state_dict()
    for unit in channel_units(net.config)[:6]:
        slots = [s for s in unit.slots if s.tensor in main_mask]
        score = sum((s.take(weights[s.tensor]).abs() * s.take(main_mask[s.tensor])).sum(1) for s in slots)
        kept = _channel_state(unit, mask).all(1)
        for head in range(unit.heads):
            part = slice(head * unit.per_head, (head + 1) * unit.per_head)
            s, k = score[part], kept[part]
            if bool((~k).any()):
                assert float(s[k].min()) >= float(s[~k].max()), unit.name


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_the_narrowed_network_computes_the_masked_network(refilled, impl: str) -> None:
    net, _, mask = refilled
    masked = build_model("tiny", impl=impl).eval()
    masked.load_state_dict(net.state_dict())
    apply_mask(masked, mask)
    small = narrow_model(masked)
    assert count_parameters(small) < 0.4 * count_parameters(masked)
    assert small.narrow_widths["encoder_level1.0.ffn.hidden"] < masked.encoder_level1[0].ffn.project_out.in_channels
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = masked(x), small(x)
        assert float((got - expected).abs().max()) < 1e-5
        # the removed key/value pairs still count in the softmax: without that term the attention differs
        attn, full = small.latent[0].attn, masked.latent[0].attn
        h = torch.randn(1, full.qkv.in_channels, 8, 8, generator=torch.Generator().manual_seed(2))
        assert attn.nulls > 0 and float((attn(h) - full(h)).abs().max()) < 1e-5
        attn.nulls = 0
        assert float((attn(h) - full(h)).abs().max()) > 1e-3


def test_dead_channels_are_found_however_they_are_zero() -> None:
    """A channel is dead when its consumer column is zero, or for the gated FFN either producer row."""
    torch.manual_seed(0)
    net = build_model("tiny").eval()
    with torch.no_grad():
        ffn = net.encoder_level2[0].ffn
        h = ffn.project_out.in_channels
        ffn.project_out.weight[:, 0] = 0
        ffn.project_in.weight[h + 1] = 0  # the gate half of channel 1
        ffn.dwconv.weight[2] = 0          # the activation half of channel 2
        attn = net.encoder_level2[0].attn
        d = attn.qkv.in_channels
        attn.qkv.weight[d + 3] = 0        # key 3 alone: not dead (its value still mixes in)
        attn.qkv.weight[d + 4] = 0
        attn.qkv_dwconv.weight[2 * d + 4] = 0  # key 4 and value 4: dead
    plan = plan_narrowing(net)
    assert plan.widths["encoder_level2.0.ffn.hidden"] == h - 3
    assert 3 in plan.keep["encoder_level2.0.attn.keyvalue"] and 4 not in plan.keep["encoder_level2.0.attn.keyvalue"]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert float((narrow_model(net)(x) - net(x)).abs().max()) < 1e-5


# ---- the branch in a study, its export and its narrowed checkpoint -------------------------------


SETTINGS = {"rounds": 2, "fraction": 0.7, "scope": "layerwise", "branches": "refill"}


@pytest.fixture(scope="module")
def study(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's command: smoke, rounds=2, fraction=0.7, layer-wise, branches=refill."""
    return run_study("smoke", {"data": str(demo_data), **SETTINGS, **FAST}, out=tmp_path_factory.mktemp("refill"))


def test_the_branch_runs_at_every_pruned_level(study: Path) -> None:
    replicate = paths.replicate_dir(study, 0)
    assert paths.branch_names(replicate, 0) == ["main"]
    cfg = study_preset("smoke", {"data": "unused", **SETTINGS})
    theta0 = load_checkpoint(paths.init_weights(replicate))[0].state_dict()
    for level in (1, 2):
        node = paths.level_dir(replicate, level, "refill")
        assert paths.is_finished(node), node
        mask, main_mask = load_mask(paths.mask_file(node)), load_mask(paths.mask_file(paths.level_dir(replicate, level)))
        main_kept, kept = sum(int(m.sum()) for m in main_mask.values()), sum(int(m.sum()) for m in mask.values())
        assert abs(kept - main_kept) <= 0.1 * main_kept, (level, kept, main_kept)
        model, meta = load_checkpoint(paths.model_file(node))
        assert meta["metadata"]["branch"] == "refill"
        state = model.state_dict()
        assert all(int(torch.count_nonzero(state[n][~m])) == 0 for n, m in mask.items())
        for unit in channel_units(model.config):
            kept_channels = _channel_state(unit, mask)
            assert bool((kept_channels.all(1) | ~kept_channels.any(1)).all()), (level, unit.name)
        metrics = json.loads(paths.metrics_file(node).read_text())
        assert metrics["branch"] == "refill" and metrics["data_seed"] == cfg.seed  # main's data order
        summary = metrics["refill"]
        assert summary["parameters_narrowed"] < summary["parameters"] and summary["channels_kept"] < summary["channels"]
        # it trained from main's starting weights (the default start), masked by its own mask
        ctx = branch_context(cfg, replicate, level, "refill", theta0)
        start = get_branch("refill").starting_weights(ctx)
        assert all(torch.equal(start[n], ctx.main_start[n]) for n in start)


def _refill_node(study: Path) -> Path:
    return paths.level_dir(paths.replicate_dir(study, 0), 2, "refill")


def _masked(node: Path) -> torch.nn.Module:
    model, _ = load_checkpoint(paths.model_file(node))
    apply_mask(model, load_mask(paths.mask_file(node)))
    return model.eval()


def _levels(y: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(y, 0, 1) * 255).astype(np.int16)


@pytest.mark.slow
def test_onnx_export_is_the_narrowed_graph_within_one_8bit_level(study: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from mirl.export.onnx_model import inference_session

    node = _refill_node(study)
    out = tmp_path / "refill.onnx"
    assert main(["export", str(node), "--format", "onnx", "--out", str(out)]) == 0
    graph = onnx.load(str(out))
    stored = sum(int(np.prod(t.dims)) for t in graph.graph.initializer)
    masked = _masked(node)
    assert stored < 0.5 * count_parameters(masked)  # the tensors are narrowed, not masked
    assert {p.key: p.value for p in graph.metadata_props}.get("mirl.narrowed")
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = masked(x).numpy()
    got = inference_session(out, threads=1).run(None, {"image": x.numpy()})[0]
    assert float(np.abs(got - expected).max()) < 1e-4
    assert int(np.abs(_levels(got) - _levels(expected)).max()) <= 1


@pytest.mark.slow
def test_narrow_checkpoint_round_trip_restore_and_evaluate(study: Path, demo_data: Path, tmp_path: Path) -> None:
    node = _refill_node(study)
    out = tmp_path / "refill.pt"
    assert main(["export", str(node), "--format", "narrow", "--out", str(out)]) == 0
    raw = torch.load(out, weights_only=True)  # plain tensors and ints only
    assert raw["narrow"] and all(isinstance(v, int) for v in raw["narrow"].values())
    model, meta = load_checkpoint(out)
    masked = _masked(node)
    assert meta["narrow"] == model.narrow_widths and count_parameters(model) < 0.5 * count_parameters(masked)
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert float((model.eval()(x) - masked(x)).abs().max()) < 1e-5
    # saved again, loaded again: the same network
    again = tmp_path / "again.pt"
    save_checkpoint(again, model)
    reloaded, _ = load_checkpoint(again)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    # mirl restore with the narrowed file and with the branch's own checkpoint: within one 8-bit level
    photos = sorted((demo_data / "test").rglob("*.png"))[:2]
    assert photos
    for name, source in (("narrow", out), ("masked", paths.model_file(node))):
        assert main(["restore", str(source), *map(str, photos), "--out", str(tmp_path / name), "--no-progress"]) == 0
    from PIL import Image

    pairs = [(a, tmp_path / "masked" / a.relative_to(tmp_path / "narrow")) for a in (tmp_path / "narrow").rglob("*.png")]
    assert len(pairs) == len(photos)
    for a, b in pairs:
        diff = np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(b), np.int16))
        assert int(diff.max()) <= 1, a.name
    assert main(["evaluate", str(out), "--data", str(demo_data), "--tasks", "denoise_25", "--limit", "1", "--no-progress",
                 "--out", str(tmp_path / "scores")]) == 0


def test_damaged_widths_are_refused_naming_the_file(tmp_path: Path) -> None:
    net = build_model("tiny")
    with torch.no_grad():
        net.encoder_level1[0].ffn.project_out.weight[:, 2:] = 0
    small = narrow_model(net)
    path = tmp_path / "narrow.pt"
    save_checkpoint(path, small)
    payload = torch.load(path, weights_only=True)
    payload["narrow"]["encoder_level1.0.ffn.hidden"] = 999
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"narrow\.pt.*encoder_level1\.0\.ffn\.hidden = 999"):
        load_checkpoint(path)
    payload["narrow"] = {"no_such.unit": 1}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="no internal dimension"):
        load_checkpoint(path)
    with pytest.raises(MirlError, match="narrowed already"):
        plan_narrowing(small)
    assert build_narrow_model(net.config, small.narrow_widths).encoder_level1[0].ffn.project_out.in_channels == 2


def test_refill_refuses_a_network_with_biases() -> None:
    from dataclasses import replace

    net = build_model(replace(build_model("tiny").config, bias=True))
    with pytest.raises(MirlError, match="bias-free"):
        refill_mask(_main_mask(net), net.state_dict(), net.config)


@pytest.mark.slow
@pytest.mark.browser
def test_the_refill_page_is_narrowed_faster_and_restores_like_mirl_restore(browser, study: Path, tmp_path: Path) -> None:
    """``mirl export <refill> --format web``: the page's graph is the narrowed one, its ticket.json
    and its facts show the speed against the dense network measured at export, and in Chromium it
    restores a photo within one 8-bit level of ``mirl restore`` of the branch's own checkpoint."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from tests.export.web_page import max_level_difference, noisy_photo, restore_in_page

    node, site = _refill_node(study), tmp_path / "site"
    assert main(["export", str(node), "--format", "web", "--out", str(site)]) == 0
    record = json.loads((site / "ticket.json").read_text())
    speed = record["speed"]
    assert speed["macs"] < 0.5 * speed["dense_macs"]  # whole channels removed: fewer operations, not zeros
    assert speed["ms"] > 0 and speed["dense_ms"] > 0 and abs(speed["speedup"] - speed["dense_ms"] / speed["ms"]) < 0.05
    assert record["title"].endswith("level 2 refill")
    import gzip

    import onnx

    graph = onnx.load_from_string(gzip.decompress((site / record["model"]["file"]).read_bytes()))
    assert "LayerNormalization" not in {n.op_type for n in graph.graph.node}  # the page's graph: the norm as reductions
    photo = noisy_photo(tmp_path / "photo.png")
    page = restore_in_page(browser, site, photo, tmp_path / "page.png")
    assert page["errors"] == [] and page["tiles"] == 2
    assert "dense network" in page["facts"] and "faster" in page["facts"], page["facts"]
    assert "whole channels" in page["kind"], page["kind"]
    assert main(["restore", str(paths.model_file(node)), str(photo), "--out", str(tmp_path / "cli"), "--tile", "192",
                 "--overlap", "32", "--device", "cpu", "--no-progress"]) == 0
    difference = max_level_difference(tmp_path / "page.png", tmp_path / "cli" / "photo.png")
    assert difference <= 1, f"the refill page and mirl restore differ by up to {difference} levels"
