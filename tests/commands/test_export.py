"""``mirl export`` (mirl.commands.export) on plain tiny checkpoints: ``--mask``, ``--rule``,
``--format narrow`` and the option checks. Study folders and the ONNX/web formats: tests/export/."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mirl.cli import main
from mirl.models import build_model, load_checkpoint, save_checkpoint
from mirl.pruning.mask import save_mask


@pytest.fixture()
def dense(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A dense tiny checkpoint outside any study, and its network."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    save_checkpoint(tmp_path / "dense.pt", model)
    return tmp_path / "dense.pt", model


def _one_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("mirl export: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_given_mask_zeroes_exactly_its_pruned_weights(dense: tuple[Path, torch.nn.Module], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """``--mask FILE``: the sparse file holds that mask, zeros where it is False, the source's
    values elsewhere; the card names the mask file."""
    path, model = dense
    state = model.state_dict()
    mask = {n: torch.ones_like(t, dtype=torch.bool) for n, t in state.items() if "weight" in n}
    g = torch.Generator().manual_seed(1)
    for name in ("output.weight", "patch_embed.proj.weight"):
        mask[name] = torch.rand(state[name].shape, generator=g) < 0.3
    save_mask(tmp_path / "mine.pt", mask)
    out = tmp_path / "ticket.sparse.pt"
    assert main(["export", str(path), "--mask", str(tmp_path / "mine.pt"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: ")
    loaded, meta = load_checkpoint(out)
    assert meta["format"] == "mirl.sparse"
    got = loaded.state_dict()
    for name, keep in mask.items():
        assert torch.equal(meta["mask"][name].bool(), keep), name
        assert torch.equal(got[name], torch.where(keep, state[name], torch.zeros_like(state[name]))), name
    assert f"- mask: {tmp_path / 'mine.pt'}; pruned weights are stored as zeros" in (tmp_path / "ticket.sparse.pt.md").read_text()


def test_a_mask_of_another_network_is_refused_naming_it(dense: tuple[Path, torch.nn.Module], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    path, _ = dense
    small = {n: torch.ones_like(t, dtype=torch.bool) for n, t in build_model("small").state_dict().items() if "weight" in n}
    save_mask(tmp_path / "small_mask.pt", small)
    err = _one_error(["export", str(path), "--mask", str(tmp_path / "small_mask.pt"), "--out", str(tmp_path / "x.pt")], capsys)
    assert str(tmp_path / "small_mask.pt") in err and "does not fit the network" in err and "give the mask of this checkpoint" in err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.pt.md").exists()


def test_without_a_mask_the_rule_picks_the_tensors(dense: tuple[Path, torch.nn.Module], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """No mask file: the non-zero weights of the ``--rule``'s tensors; ``conv`` covers fewer than ``upstream``."""
    path, model = dense
    masks = {}
    for rule in ("upstream", "conv"):
        out = tmp_path / f"{rule}.sparse.pt"
        assert main(["export", str(path), "--rule", rule, "--out", str(out)]) == 0
        masks[rule] = load_checkpoint(out)[1]["mask"]
        assert f"the non-zero weights ({rule} prunable tensors)" in (tmp_path / f"{rule}.sparse.pt.md").read_text()
    capsys.readouterr()
    assert set(masks["upstream"]) == {n for n in model.state_dict() if "weight" in n}
    assert set(masks["conv"]) < set(masks["upstream"])
    assert all(bool(m.all()) for m in masks["conv"].values())  # a dense network: every weight survives


def test_narrow_export_removes_dead_channels_and_keeps_the_function(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--format narrow`` of a checkpoint with dead hidden channels: a smaller network, its
    parameter count as printed, computing what the masked network computes."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    with torch.no_grad():
        model.encoder_level1[0].ffn.project_out.weight[:, 3:] = 0  # hidden channels 3.. are dead
    save_checkpoint(tmp_path / "masked.pt", model)
    out = tmp_path / "narrow.pt"
    assert main(["export", str(tmp_path / "masked.pt"), "--format", "narrow", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    narrow, meta = load_checkpoint(out)
    stored = sum(p.numel() for p in narrow.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert stored < total and f"{stored:,} of {total:,} parameters stored" in printed
    assert meta.get("narrow") and (tmp_path / "narrow.pt.md").is_file()
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(narrow.eval()(x), model(x), atol=1e-5, rtol=1e-4)


def test_onnx_option_only_goes_with_web(dense: tuple[Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, _ = dense
    err = _one_error(["export", str(path), "--onnx", str(tmp_path / "t.onnx"), "--out", str(tmp_path / "x.pt")], capsys)
    assert "--onnx only applies to --format web" in err
    assert not (tmp_path / "x.pt").exists()


def test_out_is_required_and_formats_are_checked(dense: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture) -> None:
    path, _ = dense
    for argv, needle in ((["export", str(path)], "--out"), (["export", str(path), "--out", "x", "--format", "tflite"], "'tflite'")):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and needle in capsys.readouterr().err
