"""mirl.export.ticket: what an export starts from, on hand-made study folders (no training).

``make_study`` and ``make_node`` are shared with tests/export/test_card.py and test_study_page.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pytest
import torch

from mirl import paths
from mirl.errors import MirlError
from mirl.export.ticket import Ticket, load_ticket, resolve_source, structured_ticket
from mirl.models import build_model, save_checkpoint
from mirl.models.narrow import narrow_model
from mirl.pruning.mask import full_mask, save_mask

HASH = "deadbeef"
DROPPED = "encoder_level1.0.ffn.project_out.weight"  # the tensor the hand-made masks prune entirely


def make_study(root: Path, config: Mapping[str, Any] | None = None, name: str = f"smoke_{HASH}") -> Path:
    """A study folder (``config.json`` only) under ``root``."""
    study = root / name
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"data": "builtin", **(config or {})}))
    return study


def make_node(node: Path, model: torch.nn.Module | None = None, mask: Mapping[str, torch.Tensor] | None = None,
              metrics: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
              done: bool = True) -> Path:
    """A node folder with model.pt (and mask.pt, metrics.json, done.json when asked)."""
    node.mkdir(parents=True, exist_ok=True)
    save_checkpoint(paths.model_file(node), model if model is not None else build_model("tiny"), metadata=metadata)
    if mask is not None:
        save_mask(paths.mask_file(node), mask)
    if metrics is not None:
        paths.metrics_file(node).write_text(json.dumps(metrics))
    if done:
        paths.done_file(node).write_text("{}")
    return node


def dropping_mask(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every prunable weight kept except the whole of :data:`DROPPED`."""
    mask = full_mask(model.state_dict(), "upstream", model.unused_in_forward)
    mask[DROPPED] = torch.zeros_like(mask[DROPPED])
    return mask


@pytest.fixture()
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("tiny")


def test_level_folder_ticket_uses_its_mask_and_provenance(net: torch.nn.Module, tmp_path: Path) -> None:
    """A level folder: mask.pt applied (zeros), densities counted, level, run and metrics read."""
    study = make_study(tmp_path, {"max_test_side": 64})
    metrics = {"mean_psnr": 20.5, "mean_ssim": 0.5}
    node = make_node(paths.level_dir(paths.replicate_dir(study, 0), 3), net, dropping_mask(net), metrics)
    ticket = load_ticket(node.parent)
    assert ticket.checkpoint == paths.model_file(node)
    assert ticket.mask_source == "level_3/main/mask.pt"
    assert ticket.level == 3 and ticket.run_name == study.name and ticket.settings_hash == HASH
    assert ticket.metrics == metrics and ticket.run_config == {"data": "builtin", "max_test_side": 64}
    assert not ticket.narrow
    state = ticket.state_dict()
    assert int(torch.count_nonzero(state[DROPPED])) == 0
    assert int(torch.count_nonzero(ticket.model.state_dict()[DROPPED])) == 0  # the network itself is masked
    prunable = sum(t.numel() for n, t in net.state_dict().items() if "weight" in n)
    dropped = net.state_dict()[DROPPED].numel()
    assert ticket.densities["prunable"] == prunable
    assert ticket.densities["nonzero_prunable"] == prunable - dropped
    assert ticket.densities["density_prunable"] == pytest.approx((prunable - dropped) / prunable)


def test_checkpoint_outside_a_study_uses_its_nonzero_weights(net: torch.nn.Module, tmp_path: Path) -> None:
    """A bare checkpoint: mask = its non-zero weights, level from its metadata, no run."""
    with torch.no_grad():
        net.get_parameter(DROPPED).zero_()
    path = tmp_path / "ticket.pt"
    save_checkpoint(path, net, metadata={"level": 5})
    ticket = load_ticket(path)
    assert ticket.mask_source == "the non-zero weights (upstream prunable tensors)"
    assert not bool(ticket.mask[DROPPED].any()) and bool(ticket.mask["patch_embed.proj.weight"].all())
    assert ticket.level == 5 and ticket.run_name is None and ticket.settings_hash is None
    assert ticket.metrics is None and ticket.run_config is None


def test_a_given_mask_file_wins_and_is_named(net: torch.nn.Module, tmp_path: Path) -> None:
    """``mask=`` replaces the level's mask.pt; the ticket says which file it used."""
    study = make_study(tmp_path)
    node = make_node(paths.level_dir(paths.replicate_dir(study, 0), 1), net, full_mask(net.state_dict()))
    given = tmp_path / "other_mask.pt"
    save_mask(given, dropping_mask(net))
    ticket = load_ticket(node, mask=given)
    assert ticket.mask_source == str(given)
    assert int(torch.count_nonzero(ticket.state_dict()[DROPPED])) == 0


def test_a_mask_of_another_network_is_refused_naming_the_file(net: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "ticket.pt"
    save_checkpoint(path, net)
    small = build_model("small")
    wrong = tmp_path / "small_mask.pt"
    save_mask(wrong, full_mask(small.state_dict()))
    with pytest.raises(MirlError, match=r"small_mask\.pt: the mask does not fit the network .*give the mask of this checkpoint"):
        load_ticket(path, mask=wrong)


@pytest.mark.parametrize("damaged", ["metrics", "config"])
def test_corrupt_json_is_an_error_naming_the_file(net: torch.nn.Module, tmp_path: Path, damaged: str) -> None:
    """A damaged metrics.json or config.json stops the export, naming the file and what to do."""
    study = make_study(tmp_path)
    node = make_node(paths.level_dir(paths.replicate_dir(study, 0), 1), net, metrics={"mean_psnr": 1.0})
    bad = paths.metrics_file(node) if damaged == "metrics" else paths.run_config(study)
    bad.write_text('{"mean_psnr": ')
    with pytest.raises(MirlError) as info:
        load_ticket(node)
    message = str(info.value)
    advice = "remove the file" if damaged == "metrics" else "restore the study's config.json"
    assert str(bad) in message and "cannot be read" in message and advice in message, message


def test_a_node_without_metrics_still_loads(net: torch.nn.Module, tmp_path: Path) -> None:
    study = make_study(tmp_path)
    node = make_node(paths.level_dir(paths.replicate_dir(study, 0), 2), net)
    ticket = load_ticket(node)
    assert ticket.metrics is None and ticket.level == 2 and ticket.run_name == study.name


def test_bad_folders_are_named_with_what_to_give(tmp_path: Path) -> None:
    """Folders that hold no ticket: each error names the folder and says what to give instead."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MirlError, match=rf"{empty}: a folder without model\.pt; give a level folder"):
        resolve_source(empty)
    study = make_study(tmp_path)
    replicate = paths.replicate_dir(study, 0)
    make_node(paths.level_dir(replicate, 0), done=False)  # started, not finished
    with pytest.raises(MirlError, match=rf"{replicate}: no finished level yet; finish one with `mirl lottery`"):
        resolve_source(study)
    old = make_study(tmp_path, name="smoke_0ld1ay0t")
    (old / "level_0").mkdir()
    with pytest.raises(MirlError, match=rf"{old}: a study of an older mirl layout .*give one of its level folders"):
        resolve_source(old)


def test_unfinished_levels_are_skipped_for_the_last_finished_one(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    replicate = paths.replicate_dir(study, 0)
    finished = make_node(paths.level_dir(replicate, 1))
    make_node(paths.level_dir(replicate, 2), done=False)
    assert resolve_source(study) == (paths.model_file(finished), finished)
    assert resolve_source(paths.model_file(finished)) == (paths.model_file(finished), finished)


def test_refill_tickets_are_structured(net: torch.nn.Module, tmp_path: Path) -> None:
    """A refill node (said by its checkpoint or by its scores) and a narrowed network are narrowed on export."""
    study = make_study(tmp_path)
    level = paths.level_dir(paths.replicate_dir(study, 0), 1).parent
    by_meta = make_node(level / "refill", net, metadata={"branch": "refill"})
    by_metrics = make_node(level / "other", net, metrics={"branch": "refill"})
    main = make_node(level / paths.MAIN, net, metadata={"branch": "main"}, metrics={"branch": "main"})
    assert load_ticket(by_meta).narrow and load_ticket(by_metrics).narrow
    assert not load_ticket(main).narrow
    with torch.no_grad():
        net.get_parameter(DROPPED)[:, 2:] = 0
    assert structured_ticket(narrow_model(net), {}, None)
    assert not structured_ticket(net, {"metadata": {"branch": "random_reinit"}}, {"branch": "rewind"})


def test_settings_hash_needs_an_underscore(net: torch.nn.Module) -> None:
    ticket = Ticket(model=net, meta={"preset": "tiny"}, checkpoint=Path("x.pt"), mask={}, mask_source="-",
                    run_dir=Path("runs/plainname"))
    assert ticket.run_name == "plainname" and ticket.settings_hash is None and ticket.preset == "tiny"


@pytest.mark.parametrize("recorded, asked, expected", [("conv", None, "conv"), ("upstream", None, "upstream"),
                                                       ("conv", "upstream", "upstream"), (None, None, "upstream")])
def test_densities_count_what_the_study_pruned(tmp_path: Path, recorded: str | None, asked: str | None, expected: str) -> None:
    """A layer-wise study prunes only convolution and linear weights (rule conv, issue 31); its export
    said "10.1% of the prunable weights (upstream rule)", counting the norms it never pruned. The
    ticket now counts under the study's recorded rule unless one is asked for."""
    from mirl.pruning.rules import density_summary

    study = make_study(tmp_path, {"rule": recorded} if recorded else {})
    model = build_model("tiny")
    node = make_node(paths.level_dir(paths.replicate_dir(study, 0), 1), model, mask=full_mask(model.state_dict(), "upstream"))
    ticket = load_ticket(node, rule=asked)
    assert ticket.rule == expected
    assert ticket.densities == density_summary(ticket.model.state_dict(), expected, ticket.model.unused_in_forward)
