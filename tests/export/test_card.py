"""mirl.export.card: the model card's text, derived from a ticket on a hand-made study folder.

tests/export/test_formats.py checks the card of a real smoke study (densities, demo corpus,
provenance, headings); here: the score table's arithmetic, other data sets and conventions,
a ticket with no study, and the loading sections of each format.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch

from mirl import paths
from mirl.export.card import card_path, metrics_summary, model_card, sha256, write_card
from mirl.export.ticket import Ticket, load_ticket
from mirl.models import build_model, save_checkpoint
from tests.export.test_ticket import dropping_mask, make_node, make_study

METRICS: dict[str, Any] = {
    "mean_psnr": 27.0, "mean_ssim": 0.81234, "convention": "y", "test_crop": "center 64 px",
    "tasks": {"denoise_25": {"psnr": 28.5, "ssim": 0.9, "images": 3, "input_psnr": 20.25},
              "derain": {"psnr": 25.5, "ssim": 0.72468, "input_psnr": 26.75}},
}


@pytest.fixture(scope="module")
def ticket(tmp_path_factory: pytest.TempPathFactory) -> Ticket:
    """Level 2 of a study on a user's data set, with a ``y``-convention score table."""
    torch.manual_seed(0)
    net = build_model("tiny")
    study = make_study(tmp_path_factory.mktemp("card"), {"data": "/data/promptir", "max_test_side": 128,
                                                         "non_default": {"rounds": 3, "fraction": 0.5}})
    node = make_node(paths.level_dir(paths.replicate_dir(study, 0), 2), net, dropping_mask(net), METRICS)
    return load_ticket(node)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Ticket:
    """A checkpoint outside any study, no scores."""
    path = tmp_path_factory.mktemp("bare") / "net.pt"
    save_checkpoint(path, build_model("tiny"))
    return load_ticket(path)


def test_card_path_appends_md() -> None:
    assert card_path("exports/ticket.onnx") == Path("exports/ticket.onnx.md")
    assert card_path("out/site/") == Path("out/site.md")
    assert card_path(Path("/a/b.ckpt")) == Path("/a/b.ckpt.md")


def test_sha256_matches_hashlib_across_blocks(tmp_path: Path) -> None:
    """A file over the 1 MiB read block hashes as hashlib does in one piece."""
    data = bytes(range(256)) * 5000
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256(path) == hashlib.sha256(data).hexdigest()


def test_metrics_summary_averages_the_inputs_and_names_the_data(ticket: Ticket) -> None:
    from mirl.scoring.metrics import CONVENTIONS

    s = metrics_summary(ticket)
    assert s is not None
    assert s["mean_input_psnr"] == pytest.approx((20.25 + 26.75) / 2)
    assert s["convention"] == "y" and s["convention_text"] == CONVENTIONS["y"]
    assert s["data"] == "/data/promptir" and s["demo_corpus"] is False
    assert s["max_test_side"] == 128 and s["test_crop"] == "center 64 px"
    assert s["tasks"]["derain"]["images"] is None and s["tasks"]["denoise_25"]["images"] == 3


def test_metrics_summary_is_none_without_scores(ticket: Ticket, bare: Ticket) -> None:
    assert metrics_summary(bare) is None
    partial = Ticket(model=ticket.model, meta=ticket.meta, checkpoint=ticket.checkpoint, mask={}, mask_source="-",
                     metrics={"tasks": {}})  # no mean_psnr: not a level's scores
    assert metrics_summary(partial) is None


def test_score_table_rows_carry_the_gain_over_the_input(ticket: Ticket) -> None:
    card = model_card(ticket, "sparse", "out/ticket.pt")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in card.splitlines() if line.startswith("| ") and not line.startswith("| task")}
    assert rows["denoise_25"] == ["28.50", "20.25", "+8.25", "0.9000", "3"]
    assert rows["derain"] == ["25.50", "26.75", "-1.25", "0.7247", "?"]
    assert rows["**mean**"] == ["**27.00**", "23.50", "**+3.50**", "**0.8123**", ""]


def test_card_names_the_data_set_convention_and_settings(ticket: Ticket) -> None:
    card = model_card(ticket, "sparse", "out/ticket.pt")
    assert card.startswith(f"# Model card: smoke_deadbeef level 2 (tiny)\n")
    assert "Measured by `mirl lottery` on data set `/data/promptir`." in card
    assert "built-in demo corpus" not in card
    assert "Metric convention `y`: BT.601 Y channel" in card
    assert "test images: center 64 px; test photos cropped to at most 128 px a side." in card
    assert "- settings that differ from the published ones: rounds=3, fraction=0.5" in card
    assert "- mask: level_2/main/mask.pt; pruned weights are stored as zeros" in card
    assert "(not the published architecture)" in card
    assert "Not possible: the published code builds only the `paper` architecture, and this network is preset `tiny`." in card


def test_a_ticket_without_a_study_says_what_is_unknown(bare: Ticket) -> None:
    card = model_card(bare, "sparse", "net.sparse.pt")
    assert card.startswith("# Model card: net.pt (tiny)\n")
    assert "No scores recorded" in card and "`mirl evaluate`" in card
    assert "- study run: unknown (the source is not inside a mirl run folder)" in card
    assert "- mask level: unknown" in card
    assert "settings that differ" not in card


def test_details_are_listed_except_the_internal_ones(ticket: Ticket) -> None:
    details = {"dtype": "float16", "size": "12 kB", "implementation": "`fast` implementation", "compact": True,
               "lightning_keys": ["epoch"]}
    card = model_card(ticket, "onnx", "t.onnx", details)
    file_section = card.split("## File")[1].split("## Network")[0]
    assert file_section.split() == ["-", "dtype:", "float16", "-", "size:", "12", "kB"]
    assert "- implementation: `fast` implementation" in card


def test_loading_sections_follow_the_format(ticket: Ticket) -> None:
    """sparse: mirl restore of the file; onnx: an ort session on the file; web: the browser and the compact blob."""
    sparse = model_card(ticket, "sparse", "dir/t.sparse.pt")
    assert 'load_checkpoint("t.sparse.pt")' in sparse and "`mirl restore t.sparse.pt photo.jpg" in sparse
    assert f"`mirl export {ticket.checkpoint} --format onnx --out ticket.onnx`" in sparse
    assert "### In a browser" not in sparse
    onnx = model_card(ticket, "onnx", "dir/t.onnx")
    assert f'load_checkpoint("{ticket.checkpoint}")' in onnx and 'ort.InferenceSession("t.onnx"' in onnx
    assert "File: t.onnx." in onnx and "float16 for the download" not in onnx
    web = model_card(ticket, "web", "dir/site", {"compact": True})
    assert "### In a browser" in web and "`cd site && python -m http.server 8000`, or `mirl serve site`" in web
    assert "site/weights.bin.gz" in web and "page_onnx('site')" in web
    plain_web = model_card(ticket, "web", "dir/site", {"compact": False})
    assert "File: site/model.onnx.gz (gunzip it first)." in plain_web and "weights.bin.gz" not in plain_web


def test_lightning_card_lists_the_keys_with_their_values(ticket: Ticket) -> None:
    from mirl.export.lightning import LIGHTNING_VERSION

    paper = Ticket(model=ticket.model, meta={**ticket.meta, "preset": "paper"}, checkpoint=ticket.checkpoint,
                   mask=ticket.mask, mask_source=ticket.mask_source, densities=ticket.densities)
    card = model_card(paper, "lightning", "x/ticket.ckpt",
                      {"lightning_keys": ["state_dict", "epoch", "pytorch-lightning_version"]})
    assert (f"The file holds only `state_dict`, `epoch` (0), `pytorch-lightning_version` ('{LIGHTNING_VERSION}'):"
            in card)
    assert 'torch.load("ticket.ckpt", map_location="cpu")' in card and "(the published architecture)" in card
    assert "- study run: unknown" in card and "# Model card: model.pt (paper)" in card
    sparse_paper = model_card(paper, "sparse", "t.pt")
    assert f"Convert it first: `mirl export {ticket.checkpoint} --format lightning --out ticket.ckpt`" in sparse_paper


def test_write_card_writes_beside_the_export(ticket: Ticket, tmp_path: Path) -> None:
    export = tmp_path / "ticket.onnx"
    written = write_card(ticket, "onnx", export, {"dtype": "float32"})
    assert written == tmp_path / "ticket.onnx.md"
    text = written.read_text()
    assert text.startswith("# Model card: smoke_deadbeef level 2 (tiny)") and "- dtype: float32" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ticket.onnx.md"]  # no temporary file left
