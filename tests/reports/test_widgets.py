"""mirl.reports.widgets: layer choice, the static explorer's serialised widget state, the kernel explorer's updates."""

from __future__ import annotations

import base64
import json
from typing import Any, Iterator

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from mirl.reports import viz, widgets


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _masks() -> dict[str, dict[str, torch.Tensor]]:
    """Three masks of a network with a 4-D kernel, a matrix and a vector, each level inside the previous."""
    g = torch.Generator().manual_seed(0)
    scores = {"conv.weight": torch.rand(8, 4, 3, 3, generator=g), "proj.weight": torch.rand(6, 5, generator=g),
              "norm.weight": torch.rand(8, generator=g)}
    return {f"level {k}": {n: s >= 1 - 0.7**k for n, s in scores.items()} for k in range(3)}


def test_shared_layers_keep_the_first_masks_order_and_drop_missing_ones() -> None:
    masks = {"a": {"z": 1, "y": 2, "x": 3}, "b": {"x": 1, "z": 2}, "c": {"z": 1, "x": 2, "w": 0}}
    assert widgets.shared_layers(masks) == ["z", "x"]
    assert widgets.shared_layers({}) == []


def test_pick_layers_takes_the_largest_matrices_in_network_order() -> None:
    masks = {"m": {"small.weight": torch.ones(2, 2), "vector.weight": torch.ones(500), "big.weight": torch.ones(9, 9),
                   "mid.weight": torch.ones(4, 4, 1, 1)}}
    assert widgets.pick_layers(masks) == ["small.weight", "big.weight", "mid.weight"]
    assert widgets.pick_layers(masks, max_layers=2) == ["big.weight", "mid.weight"]
    assert widgets.pick_layers({"m": {"v.weight": torch.ones(3), "u.weight": torch.ones(5)}}, max_layers=1) == ["u.weight"]


def _state(box: Any) -> dict[str, dict]:
    """The widget state a notebook stores (embed_data), through JSON, by model id."""
    from ipywidgets.embed import embed_data

    data = json.loads(json.dumps(embed_data(views=[box])))
    return data["manager_state"]["state"]


def _ref(value: str) -> str:
    assert value.startswith("IPY_MODEL_")
    return value[len("IPY_MODEL_"):]


def test_the_static_explorers_serialised_state_links_controls_to_prerendered_pages() -> None:
    masks = _masks()
    box = widgets.static_mask_explorer(masks, image_px=64)
    state = _state(box)
    root = state[box.model_id]["state"]
    assert root["_dom_classes"] == [widgets.STATIC_CLASS]
    slider_id, dropdown_id, outer_id, _legend = (_ref(c) for c in root["children"])
    slider, dropdown, outer = state[slider_id]["state"], state[dropdown_id]["state"], state[outer_id]["state"]
    assert slider["_options_labels"] == list(masks) and slider["index"] == 2
    assert dropdown["_options_labels"] == ["conv.weight", "proj.weight"] and outer["selected_index"] == 0  # no 1-D tensor
    links = {(_ref(s["state"]["source"][0]), _ref(s["state"]["target"][0]), s["state"]["target"][1])
             for s in state.values() if s["model_name"] == "LinkModel"}
    links = {link for link in links if slider_id in link or dropdown_id in link}  # the state holds every live widget
    inner_ids = [_ref(c) for c in outer["children"]]
    assert links == {(dropdown_id, outer_id, "selected_index")} | {(slider_id, i, "selected_index") for i in inner_ids}
    reference = masks["level 0"]
    for layer, inner_id in zip(["conv.weight", "proj.weight"], inner_ids):
        inner = state[inner_id]["state"]
        assert inner["selected_index"] == 2 and len(inner["children"]) == 3
        for label, page_id in zip(masks, inner["children"]):
            caption_id, image_id = state[_ref(page_id)]["state"]["children"]
            caption = state[_ref(caption_id)]["state"]["value"]
            mask = masks[label][layer]
            assert f"{float(mask.float().mean()):.1%} of weights kept" in caption and label in caption
            if label != "level 0":
                jaccard = int((mask & reference[layer]).sum()) / int((mask | reference[layer]).sum())
                assert f"Jaccard vs level 0: {jaccard:.3f}" in caption
            png = base64.b64decode(state[_ref(image_id)]["buffers"][0]["data"])
            assert png == viz.mask_png(mask, reference[layer] if label != "level 0" else mask, scale_to=64)


def test_the_static_explorer_compares_with_the_reference_given_and_needs_a_mask() -> None:
    masks = _masks()
    box = widgets.static_mask_explorer(masks, reference="level 2", layers=["proj.weight"])
    state = _state(box)
    captions = [s["state"]["value"] for s in state.values() if s["model_name"] == "HTMLModel"]
    assert sum("Jaccard vs level 2" in c for c in captions) == 2 and "A = level 2." in captions[-1]
    with pytest.raises(ValueError, match="at least one mask"):
        widgets.static_mask_explorer({})


def test_the_kernel_explorer_redraws_the_layer_and_recomputes_bars_only_for_a_new_pair() -> None:
    masks = _masks()
    ex = widgets.MaskExplorer(masks, image_px=64)
    assert ex.updates == 1 and widgets.KERNEL_CLASS in ex.widget._dom_classes
    assert (ex.a.value, ex.b.value, ex.layer.value) == ("level 0", "level 2", "conv.weight")
    assert ex.mask_image.value == viz.mask_png(masks["level 2"]["conv.weight"], masks["level 0"]["conv.weight"], scale_to=64)
    bars = ex.bars_image.value
    ex.layer.value = "proj.weight"
    assert ex.updates == 2 and "<b>proj.weight</b>" in ex.status.value and "update #2" in ex.status.value
    assert ex.mask_image.value == viz.mask_png(masks["level 2"]["proj.weight"], masks["level 0"]["proj.weight"], scale_to=64)
    assert ex.bars_image.value is bars  # same pair: the bar charts are not redrawn
    ex.a.value = "level 1"
    assert ex.updates == 3 and ex.bars_image.value != bars and "Jaccard vs level 1" in ex.status.value
    with pytest.raises(ValueError, match="at least one mask"):
        widgets.MaskExplorer({})


def test_fallback_png_shows_first_against_last_on_the_largest_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple] = []
    view = viz.mask_view
    monkeypatch.setattr(viz, "mask_view", lambda mask, ref, title, labels: shown.append((mask, ref, title, labels)) or view(mask, ref))
    masks = _masks()
    assert widgets.fallback_png(masks)[:4] == b"\x89PNG"
    mask, ref, title, labels = shown[0]
    assert title == "conv.weight: level 2 vs level 0" and labels == ("level 0", "level 2")
    assert torch.equal(mask, masks["level 2"]["conv.weight"]) and torch.equal(ref, masks["level 0"]["conv.weight"])


def test_short_labels_name_levels_along_a_chain_and_branches_across() -> None:
    from mirl.analysis.mask_compare import Node

    assert widgets._short_labels(Node(0, 2, "main"), Node(0, 1, "main")) == ("level 1", "level 2")
    assert widgets._short_labels(Node(0, 2, "random_prune"), Node(0, 2, "main")) == ("ticket", "random pruning")
    assert widgets._short_labels(Node(0, 0, "main"), None) == ("", "level 0")
    assert "branches start at level 1" in widgets._missing_text(1, 0, "one_shot")
    assert widgets._missing_text(1, 2, "one_shot") == "replicate 1 has no one-shot pruning mask at level 2"
