"""``mirl info`` (mirl.commands.info): the text and JSON reports of a checkpoint's size and density."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mirl.cli import main
from mirl.models import build_model, save_checkpoint


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny checkpoint with every other element of each weight set to zero, and its state dict."""
    torch.manual_seed(0)
    model = build_model("tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name, tensor in state.items():
        if "weight" in name:
            tensor.view(-1)[::2] = 0
    path = tmp_path_factory.mktemp("info") / "pruned.pt"
    save_checkpoint(path, model, state_dict=state)
    return path, state


def _text(out: str) -> dict[str, str]:
    """``mirl info``'s text lines as label -> value (labels are the first 20 characters)."""
    return {line[:20].strip(): line[20:].strip() for line in out.splitlines()}


def test_text_report_counts_what_the_state_dict_holds(pruned: tuple[Path, dict[str, torch.Tensor]],
                                                       capsys: pytest.CaptureFixture) -> None:
    path, state = pruned
    assert main(["info", str(path)]) == 0
    shown = _text(capsys.readouterr().out)
    total = sum(t.numel() for t in state.values())
    prunable = sum(t.numel() for n, t in state.items() if "weight" in n)  # the upstream rule: every *weight*
    alive = sum(int((t != 0).sum()) for n, t in state.items() if "weight" in n)
    assert shown["checkpoint"] == f"{path}  (mirl.checkpoint)"
    assert shown["preset"] == "tiny"
    assert shown["parameters"] == f"{total:,}"
    assert shown["prunable (upstream)"] == f"{prunable:,}"
    assert shown["non-zero prunable"] == f"{alive:,}"
    assert shown["density (prunable)"] == f"{alive / prunable:.2%}"
    assert shown["density (trainable)"].startswith(f"{(alive + total - prunable) / total:.2%} ")


@pytest.mark.parametrize("rule", ["upstream", "conv"])
def test_text_and_json_agree(pruned: tuple[Path, dict[str, torch.Tensor]], rule: str, capsys: pytest.CaptureFixture) -> None:
    """Both outputs of one checkpoint and rule give the same figures; conv counts fewer prunable weights."""
    path, state = pruned
    assert main(["info", str(path), "--rule", rule, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert main(["info", str(path), "--rule", rule]) == 0
    shown = _text(capsys.readouterr().out)
    assert (record["rule"], record["preset"], record["narrowed"], record["checkpoint"]) == (rule, "tiny", False, str(path))
    assert shown[f"prunable ({rule:8s})".strip()] == f"{record['prunable']:,}"
    assert shown["non-zero prunable"] == f"{record['nonzero_prunable']:,}"
    assert shown["density (prunable)"] == f"{record['density_prunable']:.2%}"
    assert record["nonzero_all"] == sum(int((t != 0).sum()) for t in state.values())
    upstream = sum(t.numel() for n, t in state.items() if "weight" in n)
    assert (record["prunable"] == upstream) == (rule == "upstream")
    assert record["prunable"] <= upstream


def test_a_narrowed_checkpoint_is_said_to_be_narrowed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``mirl export --format narrow`` output: info notes the narrowing and counts the smaller network."""
    model = build_model("tiny")
    with torch.no_grad():
        model.encoder_level1[0].ffn.project_out.weight[:, 3:] = 0  # hidden channels 3.. are dead
    save_checkpoint(tmp_path / "masked.pt", model)
    assert main(["export", str(tmp_path / "masked.pt"), "--format", "narrow", "--out", str(tmp_path / "narrow.pt")]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "narrow.pt"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["narrowed"] is True
    assert record["parameters"] < sum(t.numel() for t in model.state_dict().values())
    assert main(["info", str(tmp_path / "narrow.pt")]) == 0
    assert "(narrowed: dead channels removed" in _text(capsys.readouterr().out)["preset"]


def test_a_missing_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(tmp_path / "nothere.pt")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"mirl info: error: {tmp_path / 'nothere.pt'}: no such checkpoint file\n"


def test_an_unknown_rule_is_refused_by_argparse(pruned: tuple[Path, dict[str, torch.Tensor]], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["info", str(pruned[0]), "--rule", "all"])
    assert info.value.code == 2 and "'all'" in capsys.readouterr().err


def test_a_node_or_level_folder_reads_its_model(pruned: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    """Issue 34, part 6: ``mirl info runs/<study>/replicate_0/level_1/main`` said "no such checkpoint
    file" (docs/lottery.md: every command accepts a node folder)."""
    import shutil

    from mirl import paths

    path, _ = pruned
    node = paths.level_dir(paths.replicate_dir(tmp_path / "smoke_0123abcd", 0), 1)
    node.mkdir(parents=True)
    shutil.copy(path, paths.model_file(node))
    assert main(["info", str(path), "--json"]) == 0
    expected = {k: v for k, v in json.loads(capsys.readouterr().out).items() if k != "checkpoint"}
    for folder in (node, node.parent):
        assert main(["info", str(folder), "--json"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert {k: v for k, v in record.items() if k != "checkpoint"} == expected
