"""``mirl export``: the sparse file (default), the published Lightning checkpoint, ONNX, the model
card beside every export, and ``mirl serve``. The web page itself: tests/export/test_web.py.

One real smoke study (tiny network, default smoke settings) is run per session and shared with the
browser tests through :func:`smoke_level`; the ONNX export (about half a minute on 2 cores) runs once.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mirl import paths
from mirl.cli import main
from mirl.models import build_model, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow

_CACHE: dict[str, Any] = {}


def smoke_level(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last level (2) of the smoke study's ticket chain (tiny network, replicate 0, main),
    made once per session."""
    if "level" not in _CACHE:
        from mirl.study.lottery import run_study

        run = run_study("smoke", out=tmp_path_factory.mktemp("export_runs"), progress=False)
        _CACHE["level"] = paths.level_dir(paths.replicate_dir(run, 0), 2)
    return _CACHE["level"]


def _study(level: Path) -> Path:
    """The study folder holding a node folder (``<study>/replicate_<r>/level_<k>/<branch>``)."""
    study = paths.study_of(level)
    assert study is not None and study == level.parents[2]
    return study


def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mirl export LEVEL --format onnx`` of :func:`smoke_level`, made once per session."""
    if "onnx" not in _CACHE:
        out = tmp_path_factory.mktemp("onnx") / "ticket.onnx"
        assert main(["export", str(smoke_level(tmp_path_factory)), "--format", "onnx", "--out", str(out)]) == 0
        _CACHE["onnx"] = out
    return _CACHE["onnx"]


def _onnx_available() -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install -e '.[onnx]')")


@pytest.fixture(scope="session")
def level(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_level(tmp_path_factory)


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _onnx_available()
    return onnx_export(tmp_path_factory)


def _ticket_model(level: Path) -> nn.Module:
    """The level's network with its mask applied, as every export writes it."""
    from mirl.pruning.mask import apply_mask, load_mask

    model, _ = load_checkpoint(paths.model_file(level))
    apply_mask(model, load_mask(paths.mask_file(level)))
    return model.eval()


def test_cli_literals_match_the_library() -> None:
    from mirl.commands import export as command
    from mirl.export.formats import DTYPES_BY_FORMAT, FORMATS

    assert command.FORMATS == FORMATS
    assert set(command.DTYPES) == {d for dtypes in DTYPES_BY_FORMAT.values() for d in dtypes}


def test_setup_vendors_the_pinned_runtime_and_installs_the_extra() -> None:
    import re
    import tomllib

    from mirl.export.web import ORT_WEB_VERSION, vendor_dir
    from tests.conftest import REPO

    script = (REPO / "scripts" / "setup.sh").read_text()
    assert re.search(rf"^ORT_WEB_VERSION={re.escape(ORT_WEB_VERSION)}\b", script, re.M)
    assert "-e '.[test,onnx]'" in script and "npm pack" in script
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["onnx"]
    assert {re.split(r"[<>=]", r)[0] for r in extra} == {"onnx", "onnxscript", "onnxruntime"}
    vendored = vendor_dir() / "package.json"
    if vendored.is_file():
        assert json.loads(vendored.read_text())["version"] == ORT_WEB_VERSION, "stale onnxruntime-web: run make setup"


# --------------------------------------------------------------------------- sparse (default) + card


def test_sparse_stays_the_default_and_gets_a_card(level: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ticket.sparse.pt"
    assert main(["export", str(level), "--out", str(out)]) == 0
    model, meta = load_checkpoint(out)
    assert meta["format"] == "mirl.sparse" and meta["preset"] == "tiny"
    card = (tmp_path / "ticket.sparse.pt.md").read_text()
    assert "model card: " in capsys.readouterr().out
    run = _study(level)
    metrics = json.loads(paths.metrics_file(level).read_text())
    for needed in ("preset **tiny**", "implementation", "prunable weights (upstream rule)", "all trainable parameters",
                   f"{metrics['density_prunable']:.2%}", f"{metrics['density_trainable']:.2%}",
                   "convention `upstream`", "built-in demo corpus", f"{metrics['mean_psnr']:.2f}",
                   "degraded input PSNR (dB)", f"{next(iter(metrics['tasks'].values()))['input_psnr']:.2f}",
                   f"`{run.name}`", f"settings hash `{run.name.split('_')[-1]}`", "mask level: 2",
                   "### In mirl", "### In the published code", "### In onnxruntime", "load_checkpoint"):
        assert needed in card, f"the card lacks {needed!r}:\n{card}"


def test_run_folder_means_its_last_level(level: Path) -> None:
    """A study folder means replicate 0's last finished level of main; a replicate its own; a
    level folder its main node; a node folder itself."""
    from mirl.export import resolve_source

    for source in (_study(level), level.parents[1], level.parent, level):
        checkpoint, level_dir = resolve_source(source)
        assert level_dir == level and checkpoint == paths.model_file(level), source
    dense = paths.level_dir(level.parents[1], 0)
    assert resolve_source(dense.parent) == (paths.model_file(dense), dense)


def test_bad_sources_and_options_are_clear_errors(level: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["export", str(level), "--format", "onnx", "--dtype", "bfloat16", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "float32 or float16, not 'bfloat16'" in capsys.readouterr().err
    foreign = tmp_path / "my_photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    assert main(["export", str(level), "--format", "web", "--out", str(foreign)]) == 2
    assert "not an earlier web export" in capsys.readouterr().err
    assert (foreign / "holiday.jpg").read_bytes() == b"x"
    assert not any(tmp_path.glob("x.*"))


# --------------------------------------------------------------------------- the published format


class PublishedModel(nn.Module):
    """The shape of MIR-L's ``MIRLModel`` / PromptIR's ``PromptIRModel``: the network as ``.net``
    (the published operations) beside a parameter-free loss."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_model("paper", impl="reference")
        self.loss_fn = nn.L1Loss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_lightning_export_loads_the_published_way(tmp_path: Path, paper_recipe: dict, state_dict_spec: dict) -> None:
    from mirl.pruning.magnitude import magnitude_prune
    from mirl.pruning.mask import save_mask

    level = paths.level_dir(paths.replicate_dir(tmp_path / "study", 0), 3)  # no config.json: not in a study
    level.mkdir(parents=True)
    model = build_model("paper")
    model.load_state_dict(paper_recipe)
    mask = magnitude_prune(model.state_dict(), None, 0.5)
    save_checkpoint(paths.model_file(level), model)  # unmasked on purpose: the export zeroes what the mask prunes
    save_mask(paths.mask_file(level), mask)
    out = tmp_path / "mirl_ticket.ckpt"
    assert main(["export", str(level), "--format", "lightning", "--out", str(out)]) == 0

    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    assert {"epoch", "global_step", "pytorch-lightning_version", "state_dict"} <= set(checkpoint)
    published = {f"net.{key}": shape for key, shape in state_dict_spec["state_dict"]}
    assert {k: list(v.shape) for k, v in checkpoint["state_dict"].items()} == published
    name = "encoder_level1.0.ffn.project_in.weight"
    assert torch.all(checkpoint["state_dict"][f"net.{name}"][~mask[name]] == 0)
    assert torch.equal(checkpoint["state_dict"][f"net.{name}"][mask[name]], paper_recipe[name][mask[name]])

    published_model = PublishedModel()
    published_model.load_state_dict(checkpoint["state_dict"])  # strict, as MIR-L's test.py
    pruned = {k: v * mask[k] if k in mask else v for k, v in paper_recipe.items()}
    ours = build_model("paper").eval()
    ours.load_state_dict(pruned)
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(published_model.eval()(x), ours(x), atol=1e-4, rtol=1e-4)
    card = (tmp_path / "mirl_ticket.ckpt.md").read_text()
    assert "MIRLModel(opt)" in card and "`pytorch-lightning_version`" in card and "preset **paper**" in card
    again, meta = load_checkpoint(out)
    assert meta["format"] == "lightning" and meta["preset"] == "paper"


def test_lightning_export_refuses_other_presets(level: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tiny.ckpt"
    assert main(["export", str(level), "--format", "lightning", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "preset 'tiny'" in err and "'paper'" in err
    assert not out.exists() and not (tmp_path / "tiny.ckpt.md").exists()


# --------------------------------------------------------------------------- ONNX


def test_onnx_matches_torch_on_two_sizes(level: Path, onnx_file: Path) -> None:
    import onnx

    from mirl.export.onnx_model import inference_session

    proto = onnx.load(str(onnx_file))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    session = inference_session(onnx_file, threads=1)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["mirl.preset"] == "tiny" and meta["mirl.level"] == "2" and meta["mirl.run"] == _study(level).name
    model = _ticket_model(level)
    for h, w in ((64, 64), (40, 96)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4, (h, w, np.abs(got - expected).max())
    card = Path(str(onnx_file) + ".md").read_text()
    assert "onnxruntime" in card and "opset 18" in card and "`fast` implementation" in card


def test_onnx_float16_weights_halve_the_file(level: Path, onnx_file: Path) -> None:
    import onnx

    from mirl.export.onnx_model import inference_session, to_float16_weights

    half = to_float16_weights(onnx.load(str(onnx_file))).SerializeToString()
    assert len(half) < 0.6 * onnx_file.stat().st_size
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = _ticket_model(level)(x).numpy()
    got = inference_session(half, threads=1).run(None, {"image": x.numpy()})[0]
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-2


def test_web_page_refuses_an_onnx_file_of_another_ticket(level: Path, onnx_file: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    dense = paths.level_dir(level.parents[1], 0)  # same replicate, another level: another function
    assert main(["export", str(dense), "--format", "web", "--onnx", str(onnx_file), "--out", str(tmp_path / "site")]) == 2
    assert "does not compute this ticket's function" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_missing_onnx_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from mirl.errors import MirlError
    from mirl.export.onnx_model import require_onnx

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(MirlError, match=r"needs onnxscript; install the onnx extra: pip install -e '\.\[onnx\]'"):
        require_onnx()


# --------------------------------------------------------------------------- mirl report's page


def test_report_builds_the_study_page_once_and_links_it(level: Path, onnx_file: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``mirl report --preset smoke`` builds reports/web-<run name> for the smoke study's last level,
    links it from the index, and keeps it while the checkpoint is unchanged. The ONNX export itself
    is tested above; here it hands back that file, and counts the calls."""
    from mirl.export import onnx_model
    from mirl.export.study_page import study_web_page
    from mirl.reports.index import build_index

    calls = []
    monkeypatch.setattr(onnx_model, "onnx_bytes", lambda *a, **k: calls.append(1) or onnx_file.read_bytes())
    out = tmp_path / "reports"
    notes: list[str] = []
    runs = _study(level).parent
    page = out / f"web-{_study(level).name}"
    assert study_web_page(runs, "smoke", out, log=notes.append) == page
    record = json.loads((page / "ticket.json").read_text())
    assert record["provenance"]["run"] == _study(level).name and record["provenance"]["level"] == 2
    assert record["provenance"]["checkpoint"] == paths.model_file(level).relative_to(runs.parent).as_posix()
    assert (out / f"{page.name}.md").is_file() and (page / "model_card.md").is_file()
    index = build_index(out).read_text()
    assert f'href="{page.name}/index.html"' in index and "mirl serve" in index
    assert study_web_page(runs, "smoke", out, log=notes.append) == page
    assert len(calls) == 1 and "up to date" in notes[-1], notes
    assert study_web_page(tmp_path / "no_runs", "smoke", out, log=notes.append) is None
    assert "no smoke study" in notes[-1]


# --------------------------------------------------------------------------- mirl serve


def test_serve_sends_isolation_headers_and_module_types(tmp_path: Path) -> None:
    from mirl.export.serve import make_server

    (tmp_path / "a.mjs").write_text("export const x = 1;")
    (tmp_path / "b.wasm").write_bytes(b"\0asm")
    server = make_server(tmp_path, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{base}/a.mjs") as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(f"{base}/b.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm"
    finally:
        server.shutdown()
        server.server_close()
    assert main(["serve", str(tmp_path / "missing")]) == 2
