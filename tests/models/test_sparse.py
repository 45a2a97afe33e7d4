"""The sparse file format (mirl.models.sparse): a round trip through `mirl export`, and its size
at the paper's density."""

from __future__ import annotations

import pytest
import torch

from mirl.models import build_model, load_checkpoint
from mirl.pruning import apply_mask, load_mask, magnitude_prune, masks_equal, one_shot_fraction
from mirl import paths
def test_sparse_export_round_trip(smoke_run, tmp_path):
    from mirl.cli import main

    level = paths.level_dir(paths.replicate_dir(smoke_run, 0), 2)
    out = tmp_path / "level2.sparse.pt"
    assert main(["export", str(level), "--out", str(out)]) == 0
    dense_model, _ = load_checkpoint(paths.model_file(level))
    sparse_model, meta = load_checkpoint(out)
    assert meta["format"] == "mirl.sparse" and meta["preset"] == "tiny"
    assert masks_equal(meta["mask"], load_mask(paths.mask_file(level)))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(sparse_model.eval()(x), dense_model.eval()(x))
    half = tmp_path / "half.pt"
    assert main(["export", str(level), "--out", str(half), "--dtype", "float16"]) == 0
    assert half.stat().st_size < out.stat().st_size < paths.model_file(level).stat().st_size


def test_sparse_export_size_at_ten_percent_density(tmp_path):
    """At 10% density over all trainable parameters (paper size) the file is <= ~15% of dense."""
    from mirl.models import save_checkpoint
    from mirl.pruning.rules import density_summary
    from mirl.models.sparse import export_sparse

    torch.manual_seed(0)
    model = build_model("paper")
    mask = magnitude_prune(model.state_dict(), None, one_shot_fraction(0.2, 15))
    apply_mask(model, mask)
    summary = density_summary(model.state_dict())
    assert summary["density_trainable"] == pytest.approx(0.10, abs=0.005)
    save_checkpoint(tmp_path / "dense.pt", model)
    size = export_sparse(tmp_path / "sparse.pt", model.state_dict(), mask, model.config.to_dict())
    ratio = size / (tmp_path / "dense.pt").stat().st_size
    assert ratio <= 0.15, f"sparse export is {ratio:.1%} of the dense checkpoint"


@pytest.mark.parametrize(("shape", "named"), [([2**20, 2**20], "records the shape [1048576, 1048576] (1,099,511,627,776 positions)"),
                                              ([-4, -4], "records the shape [-4, -4], not a list of whole numbers"),
                                              ("8x8", "records the shape '8x8'")], ids=["4TiB", "negative", "string"])
def test_a_recorded_sparse_shape_must_fit_the_bits_present(tmp_path, capsys, shape, named):
    """A 4 TiB shape recorded over a few bytes of bits is refused before anything is allocated."""
    from mirl.cli import main
    from mirl.models.sparse import export_sparse

    model = build_model("tiny")
    mask = {n: t != 0 for n, t in model.state_dict().items() if n.endswith("weight") and t.dim() == 4}
    export_sparse(tmp_path / "ok.pt", model.state_dict(), mask, model.config.to_dict())
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["sparse"]["output.weight"]["shape"] = shape
    torch.save(payload, tmp_path / "bad.pt")
    assert main(["info", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mirl info: error: {tmp_path / 'bad.pt'}: sparse tensor output.weight ") and err.count("\n") == 1
    assert named in err and "re-export it with `mirl export`" in err
