"""What ``mirl export`` refuses to write, on a tiny checkpoint and a synthetic study folder (no
training, no ONNX export): nothing inside a study, nothing of the user's in a web folder, no page
tiling that plans millions of tiles (issue 23, cases 11, 15 and 16)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mirl import paths
from mirl.cli import main
from mirl.errors import MirlError
from mirl.models import build_model, save_checkpoint

WEB_TEMPLATES = Path(__file__).resolve().parents[2] / "mirl" / "templates" / "web"


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """A tiny checkpoint outside any study."""
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, build_model("tiny"))
    return path


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl export: error: ") and err.count("\n") == 1, err
    return err


def test_an_export_never_writes_inside_a_study(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tmp_path / "runs" / "smoke_de4d1844"
    paths.run_config(study).parent.mkdir(parents=True)
    paths.run_config(study).write_text("{}")
    replicate = paths.replicate_dir(study, 0)
    model = paths.model_file(paths.level_dir(replicate, 1))
    init = paths.init_weights(replicate)
    model.parent.mkdir(parents=True)
    for path in (model, init):
        shutil.copyfile(tiny, path)
    before = {path: path.read_bytes() for path in (model, init)}
    (tmp_path / "link").symlink_to(replicate)
    for extra, out in ([[], model], [["--format", "onnx"], init], [["--format", "web"], study / "site"],
                       [[], tmp_path / "link" / "ticket.pt"]):
        err = _error(["export", str(tiny), *extra, "--out", str(out)], capsys)
        assert f"--out {out} is inside the study folder {study}: an export never writes into a study" in err
    assert {path: path.read_bytes() for path in before} == before
    assert sorted(p.name for p in study.rglob("*") if p.is_file()) == ["config.json", "init.pt", "model.pt"]  # no card either
    assert main(["export", str(tiny), "--out", str(tmp_path / "ticket.pt")]) == 0  # beside the study is fine


def _runtime_or_skip() -> None:
    from mirl.export.web import runtime_missing, vendor_dir

    if runtime_missing():
        pytest.skip(f"onnxruntime-web is not vendored in {vendor_dir()} (make setup fetches it from npm)")


def test_a_re_export_keeps_or_refuses_what_the_user_added(tmp_path: Path) -> None:
    """A web folder lists what it wrote in ticket.json (``files``); a re-export replaces only such a
    folder, and refuses one holding the user's files, naming them, before any work."""
    _runtime_or_skip()
    from mirl.export.web import TICKET_FILE, build_web_folder, check_target

    site = tmp_path / "site"
    record = build_web_folder(site, b"not really onnx", {}, examples=True, compact=False)
    written = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert record["files"] == written and "examples/noisy.png" in written
    build_web_folder(site, b"again", {}, examples=False, compact=False)  # only its own files: replaced, examples gone
    assert not (site / "examples").exists()
    (site / "my_photos").mkdir()
    (site / "my_photos" / "holiday.jpg").write_bytes(b"mine")
    (site / "notes.txt").write_text("mine")
    (site / "ort" / "patched.mjs").write_text("mine")
    with pytest.raises(MirlError, match=r"site: holds files that the earlier web export did not write "
                                        r"\(my_photos/, notes.txt, ort/patched.mjs\); .*move them out, or give another folder"):
        check_target(site)
    with pytest.raises(MirlError, match="did not write"):
        build_web_folder(site, b"third", {}, examples=False, compact=False)
    assert (site / "my_photos" / "holiday.jpg").read_bytes() == b"mine" and (site / "notes.txt").read_text() == "mine"
    # an export made before the list: its layout is the manifest
    ticket = json.loads((site / TICKET_FILE).read_text())
    del ticket["files"]
    (site / TICKET_FILE).write_text(json.dumps(ticket))
    with pytest.raises(MirlError, match=r"\(my_photos/, notes.txt, ort/patched.mjs\)"):
        check_target(site)
    for path in (site / "my_photos" / "holiday.jpg", site / "my_photos", site / "notes.txt", site / "ort" / "patched.mjs"):
        path.rmdir() if path.is_dir() else path.unlink()
    build_web_folder(site, b"fourth", {}, examples=False, compact=False)
    assert (site / "model.onnx.gz").is_file()


def test_web_tiling_that_plans_millions_of_tiles_is_refused(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for tile, overlap in ((64, 63), (64, 32), (60, 8), (0, 0), (64, -1)):
        err = _error(["export", str(tiny), "--format", "web", "--tile", str(tile), "--overlap", str(overlap),
                      "--out", str(tmp_path / "site")], capsys)
        assert f"--overlap from 0 to under half of --tile; got tile={tile}, overlap={overlap}" in err
    assert not (tmp_path / "site").exists()


def test_the_page_warns_above_a_sane_tile_count() -> None:
    """The page's planner (restore.js, run in Node): 2000x1500 at 256/32 is 63 tiles and no warning;
    at 64/63 it is 2.8 M tiles and a warning; tile choices stay above twice the overlap; an overlap
    as large as the tile throws instead of looping forever."""
    node = shutil.which("node") or pytest.skip("Node.js is not installed")
    script = f"""
        import {{ MAX_TILES, plan, tileChoices, tileStarts, tilingWarning }} from "{(WEB_TEMPLATES / 'restore.js').as_posix()}";
        let threw = "";
        try {{ tileStarts(100, 16, 16); }} catch (e) {{ threw = e.message; }}
        const sane = plan(1500, 2000, 256, 32), silly = plan(1500, 2000, 64, 63);
        console.log(JSON.stringify({{ max: MAX_TILES, sane: sane.count, saneWarning: tilingWarning(sane, 256), silly: silly.count,
                                      sillyWarning: tilingWarning(silly, 64), choices: tileChoices(256, 100), threw }}));
    """
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(result.stdout)
    assert got["max"] == 1000 and got["sane"] == 63 and got["saneWarning"] == ""
    assert got["silly"] == 2_783_469 and got["sillyWarning"].startswith("This photo needs 2783469 tiles of 64 px, which may take hours")
    assert got["choices"] == [256, 384, 512] and "must be smaller than the tile" in got["threw"]
    app = (WEB_TEMPLATES / "app.js").read_text()
    assert "tilingWarning(p, tile)" in app and "tileChoices(t.tiling.tile, t.tiling.overlap)" in app


def _identity_onnx() -> bytes:
    """An ONNX graph that returns its input (``image`` -> ``restored``): a page without a network."""
    pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    from onnx import TensorProto, helper

    dims = [1, 3, "height", "width"]
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["restored"])], "identity",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("restored", TensorProto.FLOAT, dims)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10).SerializeToString()


@pytest.mark.browser
def test_the_page_asks_before_thousands_of_tiles(browser: Any, tiny: Path, tmp_path: Path) -> None:
    """In Chromium: a page exported with tiles of 64 px (overlap 8) and a 1800x1800 photo (1,024
    tiles) shows the warning and restores nothing; 512 px tiles restore it at once; the same photo
    at 64 px again is restored anyway."""
    from tests.conftest import browser_or_skip

    browser_or_skip()
    _runtime_or_skip()
    from mirl.data.imageio import write_image
    from mirl.export import load_ticket
    from mirl.export.formats import web_info
    from mirl.export.serve import make_server
    from mirl.export.web import build_web_folder

    site = tmp_path / "site"
    build_web_folder(site, _identity_onnx(), web_info(load_ticket(tiny), "float32", "fast", 64, 8), examples=False)
    photo = tmp_path / "flat.png"
    write_image(photo, np.full((1800, 1800, 3), 90, np.uint8))
    server = make_server(site, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=60_000)
        assert page.evaluate("document.body.dataset.state") == "ready", page.text_content("#message")
        assert page.eval_on_selector_all("#tile option", "os => os.map(o => o.value)") == ["64", "128", "192", "256", "384", "512", "0"]
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => document.body.dataset.state === 'tiles-warning'", timeout=60_000)
        assert page.text_content("#message").startswith("This photo needs 1024 tiles of 64 px, which may take hours")
        page.select_option("#tile", "512")
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => ['done', 'error-restore'].includes(document.body.dataset.state)", timeout=60_000)
        assert page.evaluate("window.mirlWeb.page.last.tiles") == 16
        page.select_option("#tile", "64")
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => document.body.dataset.state === 'restoring'", timeout=60_000)
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_a_finished_level_without_its_model_is_named_not_skipped(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 23, case 8: a level marked done whose model.pt is gone stops `export` and `evaluate`
    with the missing file named; neither falls back to the level before it."""
    study = tmp_path / "runs" / "smoke_de4d1844"
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "name": study.name, "preset": "smoke"}))
    replicate = paths.replicate_dir(study, 0)
    for level in (0, 1, 2):
        node = paths.level_dir(replicate, level)
        node.mkdir(parents=True)
        shutil.copyfile(tiny, paths.model_file(node))
        paths.done_file(node).write_text("{}")
    lost = paths.model_file(paths.level_dir(replicate, 2))
    lost.unlink()
    for source in (study, replicate, paths.level_dir(replicate, 2)):
        err = _error(["export", str(source), "--out", str(tmp_path / "ticket.pt")], capsys)
        assert f"the level is marked done but {lost.name} is missing" in err and str(lost.parent) in err, err
    assert not (tmp_path / "ticket.pt").exists()
    assert main(["evaluate", str(study), "--data", str(tmp_path / "no_data"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{lost.parent}: the level is marked done but {lost.name} is missing" in err, err


# ---- issue 33, case 5: exports of narrowed files, and every export read back before it is reported -------


def _narrowed_file(path: Path, config: Any = "tiny") -> tuple[Any, Path]:
    """A narrowed network made by the library's own narrowing (narrow_model's steps without its log
    line) from a tiny network with dead FFN and query channels, saved as `mirl export --format narrow` does."""
    import torch

    from mirl.models.narrow import plan_narrowing

    net = build_model(config)
    with torch.no_grad():
        net.encoder_level1[0].ffn.project_out.weight[:, 3:] = 0
        net.latent[0].attn.project_out.weight[:, :40] = 0
    plan = plan_narrowing(net)
    state = plan.apply(net.state_dict())
    small = plan.build()
    small.load_state_dict(state)
    save_checkpoint(path, small.eval())
    return small, path


def test_a_narrowed_file_exports_as_a_sparse_file_that_loads_narrowed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`mirl export refill.narrow.pt --out t.sparse.pt`: the sparse file records the widths, so
    `mirl info` and load_checkpoint read it back as the same narrowed network (before: 'with the wrong shape')."""
    import torch

    from mirl.models import load_checkpoint

    small, narrowed = _narrowed_file(tmp_path / "refill.narrow.pt")
    out = tmp_path / "t.sparse.pt"
    assert main(["export", str(narrowed), "--out", str(out)]) == 0
    assert main(["info", str(out)]) == 0 and "(narrowed: dead channels removed" in capsys.readouterr().out
    model, meta = load_checkpoint(out)
    assert meta["format"] == "mirl.sparse" and meta["narrow"] == small.narrow_widths == model.narrow_widths
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), small(x))


def test_a_narrowed_paper_network_is_not_published_as_a_lightning_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The published .ckpt has no narrowed widths: MIR-L would refuse its tensors. One line, nothing written."""
    _, narrowed = _narrowed_file(tmp_path / "paper.narrow.pt", "paper")
    out = tmp_path / "mirl_ticket.ckpt"
    err = _error(["export", str(narrowed), "--format", "lightning", "--out", str(out)], capsys)
    assert f"{narrowed}: a narrowed network (dead channels removed) cannot be written as a Lightning checkpoint" in err
    assert "--format narrow, sparse or onnx" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper.narrow.pt"]


def _broken_writers(kind: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Writers with a bug: a sparse file without the narrowed widths (the bug of case 5), a narrowed
    checkpoint cut short, an ONNX graph that returns its input. Returns the export's extra arguments."""
    import mirl.export.onnx_model as onnx_model
    import mirl.models
    import mirl.models.sparse as sparse

    if kind == "sparse":
        real = sparse.export_sparse
        monkeypatch.setattr(sparse, "export_sparse", lambda path, *args: real(path, *args[:5]))
    elif kind == "narrow":
        real_save = mirl.models.save_checkpoint

        def cut(path: Any, *args: Any, **kwargs: Any) -> None:
            real_save(path, *args, **kwargs)
            Path(path).write_bytes(Path(path).read_bytes()[:5000])

        monkeypatch.setattr(mirl.models, "save_checkpoint", cut)
    else:
        pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
        identity = _identity_onnx()
        monkeypatch.setattr(onnx_model, "export_onnx", lambda path, *a, **k: Path(path).write_bytes(identity))
    return ["--format", kind]


@pytest.mark.parametrize("kind", ["sparse", "narrow", "onnx"])
def test_an_export_that_does_not_load_back_is_not_written(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    """Each export is read back by its own loader (load_checkpoint; onnxruntime on a test input)
    before it is reported: a bad one is one line, the earlier file at --out stays, no temporary is left."""
    _, narrowed = _narrowed_file(tmp_path / "refill.narrow.pt")
    out = tmp_path / "out" / "ticket.bin"
    out.parent.mkdir()
    out.write_bytes(b"an earlier export")
    extra = _broken_writers(kind, monkeypatch)
    err = _error(["export", str(narrowed), *extra, "--out", str(out)], capsys)
    assert f"{out}: the export does not load back, so it was not written (" in err and "please report it" in err
    assert out.read_bytes() == b"an earlier export" and sorted(p.name for p in out.parent.iterdir()) == ["ticket.bin"]


def test_a_web_page_whose_network_does_not_load_back_is_removed(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """The page's network, assembled as the page does (graph + compact weights), must compute the
    ticket's function; a page that would restore nothing (here: an identity graph) is removed."""
    _runtime_or_skip()
    import mirl.export.compact as compact

    identity = _identity_onnx()
    monkeypatch.setattr(compact, "page_onnx", lambda folder: identity)
    site = tmp_path / "site"
    err = _error(["export", str(tiny), "--format", "web", "--no-examples", "--out", str(site)], capsys)
    assert f"{site}: the web export does not load back, so it was not written (" in err and "another function" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]


def test_a_failing_page_check_leaves_an_earlier_export_as_it_was(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    """The page's network is checked in the folder built beside ``--out``: an earlier export there
    is not replaced by a page that fails the check (it was replaced, then removed)."""
    _runtime_or_skip()
    import mirl.export.compact as compact

    site = tmp_path / "site"
    assert main(["export", str(tiny), "--format", "web", "--no-examples", "--out", str(site)]) == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    monkeypatch.setattr(compact, "page_onnx", lambda folder: _identity_onnx())
    err = _error(["export", str(tiny), "--format", "web", "--no-examples", "--out", str(site)], capsys)
    assert "the web export does not load back, so it was not written" in err
    assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # card site.md too
