"""The web page's compact weights (mirl/export/compact.py, mirl/templates/web/weights.js).

The ticket is the quickstart's last level made without training: the ``tiny`` network, seeded,
pruned one-shot by magnitude to 2 rounds of 70% (9% of the prunable weights left), saved as a
checkpoint outside any study; its ONNX file is exported once for the module.

1. As sent (the gzipped files the browser fetches, as recorded in ticket.json and the model card),
   its compact page's model is under 0.45x the same network stored dense (the page before the
   compact weights; about 0.39x for the study's real ticket, see docs/benchmarks.md).
2. The weights inflate (numpy, and the page's own weights.js in Node) to exactly the float16
   rounding of the original, zeros exactly where they were, float32 when asked or when the probe
   says float16 moves the output too much.
3. In Chromium the compact page restores a photo within one 8-bit level of ``mirl restore``.
4. Nothing from the folder is trusted (issue 33): ticket.json's fields are checked alike by the
   page's check.js and by Python; weights damaged after the export fail their SHA-256 in the page
   and in ``page_onnx``; NaN, clipped, one-colour or unchanged output is refused, never "Done".
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from mirl.errors import MirlError

pytestmark = [pytest.mark.slow]
TEMPLATES = Path(__file__).resolve().parents[2] / "mirl" / "templates" / "web"


def _tools_or_skip() -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    from mirl.export.web import runtime_missing, vendor_dir

    if runtime_missing():
        pytest.skip(f"onnxruntime-web is not vendored in {vendor_dir()} (make setup fetches it from npm)")


@pytest.fixture(scope="module")
def ticket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The 9% ticket: its checkpoint, its ONNX file, and its page built compact and dense."""
    _tools_or_skip()
    import torch

    from mirl.cli import main
    from mirl.export import load_ticket
    from mirl.export.formats import web_info
    from mirl.export.web import build_web_folder
    from mirl.models import build_model
    from mirl.models.checkpoints import save_checkpoint
    from mirl.pruning.controls import one_shot_fraction
    from mirl.pruning.magnitude import magnitude_prune
    from mirl.pruning.mask import apply_mask

    root = tmp_path_factory.mktemp("compact")
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    apply_mask(model, magnitude_prune(model.state_dict(), None, one_shot_fraction(0.7, 2), scope="layerwise"))
    checkpoint = root / "ticket.pt"
    save_checkpoint(checkpoint, model)
    onnx_file = root / "ticket.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(onnx_file)]) == 0
    compact = root / "site"
    assert main(["export", str(checkpoint), "--format", "web", "--onnx", str(onnx_file), "--out", str(compact)]) == 0
    dense = root / "dense"
    build_web_folder(dense, onnx_file.read_bytes(), web_info(load_ticket(checkpoint), "float32", "fast", 256, 32),
                     examples=False, compact=False)
    yield {"checkpoint": checkpoint, "onnx": onnx_file, "compact": compact, "dense": dense, "root": root}


def _record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "ticket.json").read_text())


def test_the_compact_page_is_smaller_as_sent(ticket: dict[str, Any]) -> None:
    from mirl.export.web import WEIGHTS_FILE

    compact, dense = _record(ticket["compact"]), _record(ticket["dense"])
    assert compact["density"]["prunable"] == pytest.approx(0.09, abs=0.005)
    model = compact["model"]
    # the bytes as sent are the gzipped files the page fetches (a server sends .gz files as they are)
    on_disk = sum((ticket["compact"] / name).stat().st_size for name in ("model.onnx.gz", WEIGHTS_FILE))
    assert model["sent_bytes"] == on_disk == model["gzip_bytes"] + model["weights"]["gzip_bytes"]
    assert WEIGHTS_FILE in compact["files"] and WEIGHTS_FILE not in dense["files"]
    assert dense["model"]["sent_bytes"] == (ticket["dense"] / "model.onnx.gz").stat().st_size
    # the same network stored dense: what the page sent before, recorded beside the compact bytes
    assert model["dense"]["sent_bytes"] == dense["model"]["sent_bytes"]
    ratio = model["sent_bytes"] / dense["model"]["sent_bytes"]
    assert ratio < 0.45, f"compact {model['sent_bytes']:,} bytes as sent against {dense['model']['sent_bytes']:,} dense ({ratio:.2f}x)"
    weights = model["weights"]
    assert weights["values"] == "float16" and 0 < weights["probe_max_difference"] < 0.5 / 255
    assert weights["masked"] > 50 and weights["kept"] < 0.2 * weights["positions"]
    card = (ticket["compact"] / "model_card.md").read_text()
    assert f"**{model['sent_bytes']:,} bytes as sent**" in card and f"{dense['model']['sent_bytes']:,} bytes as sent for the same network stored dense" in card
    assert "page_onnx" in card and "float16" in card


def _initializers(data: bytes) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in onnx.load_from_string(data).graph.initializer}


def test_weights_inflate_to_the_float16_rounding_of_the_ticket(ticket: dict[str, Any]) -> None:
    from mirl.export.compact import MIN_ELEMENTS, page_onnx

    original = _initializers(ticket["onnx"].read_bytes())
    inflated = _initializers(page_onnx(ticket["compact"]))
    assert inflated.keys() == original.keys()
    rounded = 0
    for name, before in original.items():
        after = inflated[name]
        assert after.dtype == before.dtype and after.shape == before.shape, name
        if before.dtype != np.float32 or before.size < MIN_ELEMENTS:
            assert np.array_equal(after, before), name  # shapes, scalars, eps: untouched
            continue
        assert np.array_equal(after == 0, before == 0), name  # pruned positions stay exact zeros
        assert np.array_equal(after, before.astype(np.float16).astype(np.float32)), name
        rounded += 1
    weights = _record(ticket["compact"])["model"]["weights"]
    assert weights["float32_tensors"] == 0 and rounded == weights["tensors"] > 50


def test_float32_values_when_asked_or_when_float16_moves_the_output(ticket: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    from mirl.export.compact import assemble, compact_model, inflate

    data = ticket["onnx"].read_bytes()
    exact = compact_model(data, values="float32")
    assert exact.values == "float32" and exact.probe_max_difference == 0.0
    # a tolerance no float16 rounding meets: the export falls back to float32 and says so
    fallback = compact_model(data, tolerance=0.0)
    assert fallback.values == "float32" and fallback.blob == exact.blob
    assert "keeps float32 values" in caplog.text
    original = _initializers(data)
    for name, after in _initializers(assemble(exact.graph, inflate(exact.blob)[1])).items():
        assert np.array_equal(after, original[name]), name
    float16 = compact_model(data)
    assert len(gzip.compress(float16.blob, 9)) < 0.7 * len(gzip.compress(exact.blob, 9))


def test_float16_exports_stay_bit_exact(ticket: dict[str, Any]) -> None:
    """``--dtype float16``: the graph's float16 initialisers are stored as they are."""
    import onnx

    from mirl.export.compact import assemble, compact_model, inflate
    from mirl.export.onnx_model import to_float16_weights

    half = to_float16_weights(onnx.load_from_string(ticket["onnx"].read_bytes())).SerializeToString()
    packed = compact_model(half)
    assert packed.values == "float16" and packed.probe_max_difference == 0.0
    original = _initializers(half)
    for name, after in _initializers(assemble(packed.graph, inflate(packed.blob)[1])).items():
        # equal values (a pruned weight stored as -0.0 comes back as +0.0: the same products)
        assert after.dtype == original[name].dtype and np.array_equal(after, original[name]), name


def test_a_hand_made_blob_and_damaged_ones() -> None:
    """The format by hand: one float32 tensor of 16 values, positions 0, 2 and 8 kept (bitmask
    0b101, 0b1), their float16 values as byte planes (low bytes, then high bytes)."""
    from mirl.export.compact import inflate

    header = json.dumps({"format": "mirl.web.weights", "version": 1, "external": "model.weights", "external_bytes": 64,
                         "counts": {"mask_bytes": 2, "float16": 3, "float32": 0}, "tensors": [[0, 16, "float32", "float16", 1]]}).encode()
    values = np.array([1.0, -2.0, 0.5], "<f2").view(np.uint8).reshape(3, 2)
    blob = b"MIRLWT01" + len(header).to_bytes(4, "little") + header + bytes([0b101, 0b1]) + values[:, 0].tobytes() + values[:, 1].tobytes()
    expected = np.zeros(16, np.float32)
    expected[[0, 2, 8]] = [1.0, -2.0, 0.5]
    assert np.array_equal(np.frombuffer(inflate(blob)[1], "<f4"), expected)
    with pytest.raises(MirlError, match="not a mirl weights blob .*re-export the page"):
        inflate(b"PK\x03\x04 something else")
    with pytest.raises(MirlError, match=f"has {len(blob) - 1:,} bytes, its header describes {len(blob):,}; it is damaged"):
        inflate(blob[:-1])
    with pytest.raises(MirlError, match="version 2: this mirl reads mirl.web.weights version 1"):
        newer = header.replace(b'"version": 1', b'"version": 2')
        inflate(b"MIRLWT01" + len(newer).to_bytes(4, "little") + newer)


def _node_digest(blob_gz: Path) -> dict[str, Any]:
    node = shutil.which("node") or pytest.skip("Node.js is not installed")
    script = f"""
        import {{ readFileSync }} from "node:fs";
        import {{ gunzipSync }} from "node:zlib";
        import {{ createHash }} from "node:crypto";
        import {{ inflate }} from "{(TEMPLATES / 'weights.js').as_posix()}";
        const out = inflate(new Uint8Array(gunzipSync(readFileSync({json.dumps(str(blob_gz))}))));
        console.log(JSON.stringify({{ sha256: createHash("sha256").update(out.data).digest("hex"), bytes: out.data.length,
                                      tensors: out.tensors, values: out.values }}));
    """
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_pages_inflater_matches_numpy(ticket: dict[str, Any], tmp_path: Path) -> None:
    """weights.js (run in Node) rebuilds byte for byte the buffer that :func:`inflate` rebuilds,
    for float16 values of float32 tensors, float32 values, and float16 tensors."""
    import onnx

    from mirl.export.compact import compact_model, inflate
    from mirl.export.onnx_model import to_float16_weights

    data = ticket["onnx"].read_bytes()
    blobs = {"page": gzip.decompress((ticket["compact"] / "weights.bin.gz").read_bytes()),
             "float32": compact_model(data, values="float32").blob,
             "float16 graph": compact_model(to_float16_weights(onnx.load_from_string(data)).SerializeToString()).blob}
    for what, blob in blobs.items():
        (tmp_path / "w.bin.gz").write_bytes(gzip.compress(blob))
        header, expected = inflate(blob)
        got = _node_digest(tmp_path / "w.bin.gz")
        assert got["bytes"] == len(expected) and got["tensors"] == len(header["tensors"]), what
        assert got["sha256"] == hashlib.sha256(expected).hexdigest(), what


@pytest.mark.browser
def test_the_compact_page_restores_like_mirl_restore(browser: Any, ticket: dict[str, Any], tmp_path: Path) -> None:
    """In Chromium (Playwright, /usr/bin/chromium): the compact page loads, shows its bytes as sent
    beside the dense ones, and restores a 300x150 photo (2 tiles of 192 px) within one 8-bit level
    of ``mirl restore`` with the same tiling."""
    from mirl.cli import main
    from tests.export.web_page import max_level_difference, noisy_photo, restore_in_page

    photo = noisy_photo(tmp_path / "photo.png")
    page = restore_in_page(browser, ticket["compact"], photo, tmp_path / "page.png")
    assert page["errors"] == [] and page["tiles"] == 2
    assert page["kind"] == "a lottery ticket found by mirl", page["kind"]  # unstructured: nothing narrowed
    record = _record(ticket["compact"])["model"]["weights"]
    assert page["weights"]["bytes"] == record["external_bytes"] and page["weights"]["tensors"] == record["tensors"]
    assert "as sent" in page["facts"] and "stored dense" in page["facts"] and "bitmask" in page["facts"], page["facts"]
    assert main(["restore", str(ticket["checkpoint"]), str(photo), "--out", str(tmp_path / "cli"), "--tile", "192",
                 "--overlap", "32", "--device", "cpu", "--no-progress"]) == 0
    difference = max_level_difference(tmp_path / "page.png", tmp_path / "cli" / "photo.png")
    assert difference <= 1, f"the compact page and mirl restore differ by up to {difference} levels"


# ---- nothing trusted that came from a file (issue 33): ticket.json's fields, the weights' SHA-256, the output

# (dotted field of ticket.json, a value the page must refuse)
BAD_FIELDS: tuple[tuple[str, Any], ...] = (
    ("tiling.overlap", -8), ("tiling.overlap", 128), ("tiling.tile", 100), ("tiling.tile", "256"), ("tiling.tile", 0),
    ("model.weights.sha256", None), ("model.sha256", "not a digest"), ("parameters", -1), ("density.prunable", 1.5),
    ("model.file", "../../secret.onnx.gz"), ("model.weights.file", "other.bin.gz"), ("runtime.wasm", "http://elsewhere/ort.wasm"),
    ("model.sent_bytes", 1), ("version", 2), ("examples", [{"file": "http://elsewhere/x.png", "label": "x"}]),
    ("metrics", "good"), ("provenance.level", -1), ("model.weights.tensors", 2.5),
)


def _edited(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    import copy

    edited = copy.deepcopy(record)
    *parents, last = path.split(".")
    target = edited
    for key in parents:
        target = target[key]
    target[last] = value
    return edited


def _node_ticket_problems(records: list[Any], tmp_path: Path) -> list[str]:
    node = shutil.which("node") or pytest.skip("Node.js is not installed")
    (tmp_path / "records.json").write_text(json.dumps(records))
    script = f"""
        import {{ readFileSync }} from "node:fs";
        import {{ ticketProblem }} from "{(TEMPLATES / 'check.js').as_posix()}";
        const records = JSON.parse(readFileSync({json.dumps(str(tmp_path / 'records.json'))}, "utf8"));
        console.log(JSON.stringify(records.map(ticketProblem)));
    """
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_page_and_python_check_ticket_json_alike(ticket: dict[str, Any], tmp_path: Path) -> None:
    """The export's ticket.json passes both checks (the page's check.js in Node, and
    mirl.export.web.record_problem); each bad field gets the same one-line refusal from both."""
    from mirl.export.web import record_problem

    record = _record(ticket["compact"])
    assert record["model"]["weights"]["sha256"] == hashlib.sha256(gzip.decompress((ticket["compact"] / "weights.bin.gz").read_bytes())).hexdigest()
    assert record["model"]["sha256"] == hashlib.sha256(gzip.decompress((ticket["compact"] / "model.onnx.gz").read_bytes())).hexdigest()
    records = [record, _record(ticket["dense"]), *(_edited(record, path, value) for path, value in BAD_FIELDS)]
    in_page = _node_ticket_problems(records, tmp_path)
    in_python = [record_problem(r) for r in records]
    assert in_page[:2] == in_python[:2] == ["", ""], (in_page[:2], in_python[:2])
    for (path, value), page, python in zip(BAD_FIELDS, in_page[2:], in_python[2:]):
        assert page and page == python, (path, value, page, python)
        assert page.startswith("ticket.json: ") and (path.split(".")[0] in page), (path, page)
    assert "tiling.overlap is -8, it must be a whole number of 0 or more" in in_page[2]


def test_the_pages_sha256_matches_hashlib(tmp_path: Path) -> None:
    """check.js's own SHA-256 (for pages served where crypto.subtle is absent) against hashlib, on
    lengths around the 64-byte blocks and on a weights-sized buffer."""
    node = shutil.which("node") or pytest.skip("Node.js is not installed")
    lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 300_001]
    script = f"""
        import {{ sha256Plain }} from "{(TEMPLATES / 'check.js').as_posix()}";
        const out = {json.dumps(lengths)}.map((n) => sha256Plain(Uint8Array.from({{ length: n }}, (_, i) => (i * 31 + 7) & 255)));
        console.log(JSON.stringify(out));
    """
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = [hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(n))).hexdigest() for n in lengths]
    assert json.loads(result.stdout) == expected


def test_page_onnx_refuses_a_damaged_export(ticket: dict[str, Any], tmp_path: Path) -> None:
    """mirl.export.compact.page_onnx (the page's network, rebuilt in Python) checks ticket.json and
    the weights' SHA-256 as the page does."""
    from mirl.export.compact import page_onnx
    from tests.export.web_page import DAMAGE, damaged_site, edit_ticket

    for kind in DAMAGE:
        site = damaged_site(ticket["compact"], tmp_path / kind, kind)
        with pytest.raises(MirlError, match=r"weights.bin.gz: does not match the size and SHA-256 that ticket.json records: it is "
                                            r"damaged or was replaced after the export; re-export the page"):
            page_onnx(site)
    shutil.copytree(ticket["compact"], tmp_path / "overlap")
    edit_ticket(tmp_path / "overlap", "tiling.overlap", -8)
    with pytest.raises(MirlError, match=r"ticket.json: tiling.overlap is -8, it must be a whole number of 0 or more; re-export"):
        page_onnx(tmp_path / "overlap")


@pytest.mark.browser
def test_the_page_refuses_damaged_weights_and_a_bad_ticket(browser: Any, ticket: dict[str, Any], tmp_path: Path) -> None:
    """In Chromium, never "Done" from weights the export did not write or from a bad ticket.json:

    * weights changed after the export (1% NaN, random finite values, zeros): the SHA-256 check
      stops the page before the model runs;
    * the same weights with their SHA-256 recorded (an export of a broken network): NaN output is
      refused as ``mirl restore`` refuses it, random weights (output clipped to 0 or 255) and zero
      weights (the photo unchanged) are refused after the restoration;
    * ``tiling.overlap = -8``: ticket.json is refused (it gave black seams)."""
    import threading

    from mirl.export.serve import make_server
    from tests.export.web_page import DAMAGE, damaged_site, edit_ticket, noisy_photo, page_outcome

    root = tmp_path / "sites"
    root.mkdir()
    expected: dict[str, tuple[str, str]] = {}
    for kind in DAMAGE:
        damaged_site(ticket["compact"], root / f"changed-{kind}", kind)
        expected[f"changed-{kind}"] = ("error", "weights.bin.gz does not match the SHA-256 that ticket.json records")
        damaged_site(ticket["compact"], root / f"rehashed-{kind}", kind, rehash=True)
    expected["rehashed-nan"] = ("error-restore", "the network's output holds NaN or infinite values")
    expected["rehashed-random"] = ("error-restore", "are clipped to 0 or 255")
    expected["rehashed-zeros"] = ("error-restore", "the network returned the photo unchanged to the last 8-bit level")
    shutil.copytree(ticket["compact"], root / "overlap")
    edit_ticket(root / "overlap", "tiling.overlap", -8)
    expected["overlap"] = ("error", "ticket.json: tiling.overlap is -8, it must be a whole number of 0 or more")
    photo = noisy_photo(tmp_path / "photo.png", width=96, height=64)
    server = make_server(root, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        seen = {case: page_outcome(page, f"http://127.0.0.1:{server.server_address[1]}/{case}/", photo) for case in expected}
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    for case, (state, words) in expected.items():
        got = seen[case]
        assert got["state"] == state and words in got["message"], (case, got)
        assert "re-export the page with mirl export --format web" in got["message"], (case, got)
        assert not got["download"] and not got["result"] and not got["status"].startswith("Done"), (case, got)
