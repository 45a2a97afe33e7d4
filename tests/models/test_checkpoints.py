"""Checkpoint loading: Lightning .ckpt, plain state dicts, mirl files, and clear errors."""

from __future__ import annotations

import collections
import subprocess
import sys

import pytest
import torch

from mirl.cli import main
from mirl.models import CheckpointError, build_model, load_checkpoint, save_checkpoint
from mirl.models.config import ModelConfig


def _lightning_ckpt(state):
    return {
        "epoch": 119,
        "global_step": 12345,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": collections.OrderedDict((f"net.{k}", v) for k, v in state.items()),
        "optimizer_states": [],
        "lr_schedulers": [],
    }


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_lightning_checkpoint_round_trip_infers_preset(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    path = tmp_path / "mirl_allinone.ckpt"
    torch.save(_lightning_ckpt(model.state_dict()), path)
    loaded, meta = load_checkpoint(path)
    assert meta["format"] == "lightning" and meta["preset"] == name
    assert meta["metadata"]["epoch"] == 119
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x))


def test_paper_lightning_checkpoint(tmp_path, paper_recipe):
    path = tmp_path / "paper.ckpt"
    torch.save(_lightning_ckpt(paper_recipe), path)
    model, meta = load_checkpoint(path)
    assert meta["preset"] == "paper"
    assert torch.equal(model.state_dict()["output.weight"], paper_recipe["output.weight"])


def test_plain_and_ddp_state_dicts(tmp_path):
    model = build_model("tiny")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    for name in ("plain.pt", "ddp.pt"):
        loaded, meta = load_checkpoint(tmp_path / name)
        assert meta["format"] == "state_dict" and meta["preset"] == "tiny"
        assert torch.equal(loaded.state_dict()["patch_embed.proj.weight"], model.state_dict()["patch_embed.proj.weight"])


def test_mirl_checkpoint_records_custom_config(tmp_path):
    cfg = ModelConfig(dim=8, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1, heads=(1, 1, 2, 2),
                      prompt_dims=(8, 16, 40), prompt_sizes=(8, 8, 4))
    model = build_model(cfg)
    save_checkpoint(tmp_path / "custom.pt", model, metadata={"level": 2})
    loaded, meta = load_checkpoint(tmp_path / "custom.pt")
    assert meta["preset"] == "custom" and loaded.config == cfg and meta["metadata"] == {"level": 2}
    assert not list(tmp_path.glob("*.tmp")), "atomic save left a temporary file"


def test_truncated_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "cut.ckpt"
    save_checkpoint(path, build_model("tiny"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.ckpt: not a readable PyTorch checkpoint"):
        load_checkpoint(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cut.ckpt" in err and "Traceback" not in err


def test_non_checkpoint_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_checkpoint(path)
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a PromptIR checkpoint"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_wrong_shape_lists_keys_and_assumed_preset(tmp_path):
    state = build_model("tiny").state_dict()
    state["output.weight"] = torch.zeros(3, 7, 3, 3)
    del state["refinement.0.ffn.dwconv.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(_lightning_ckpt(state), tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "bad.ckpt")
    msg = str(info.value)
    assert "preset 'tiny' (the closest preset" in msg
    assert "output.weight [3, 7, 3, 3] (model [3, 16, 3, 3])" in msg
    assert "refinement.0.ffn.dwconv.weight" in msg and "extra.weight" in msg


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_arbitrary_pickle_refused_unless_allowed(tmp_path):
    state = build_model("tiny").state_dict()
    ckpt = _lightning_ckpt(state)
    ckpt["hyper_parameters"] = _Evil()
    torch.save(ckpt, tmp_path / "pickled.ckpt")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_checkpoint(tmp_path / "pickled.ckpt")
    model, meta = load_checkpoint(tmp_path / "pickled.ckpt", allow_pickle=True)
    assert meta["preset"] == "tiny"


def test_info_cli_reports_density(tmp_path):
    model = build_model("tiny")
    state = model.state_dict()
    state["output.weight"].zero_()
    save_checkpoint(tmp_path / "m.pt", model, state_dict=state)
    proc = subprocess.run([sys.executable, "-m", "mirl", "info", str(tmp_path / "m.pt"), "--json"],
                          capture_output=True, text=True, check=True)
    import json

    record = json.loads(proc.stdout)
    assert record["preset"] == "tiny"
    assert record["parameters"] == sum(v.numel() for v in state.values())
    expected_alive = sum(int((v != 0).sum()) for k, v in state.items() if "weight" in k)
    assert record["nonzero_prunable"] == expected_alive
    assert record["density_prunable"] < 1.0


# --- issue 13: nothing silently wrong ---------------------------------------------------------

def test_random_bytes_are_not_called_a_pickle(tmp_path, capsys):
    path = tmp_path / "noise.ckpt"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes())
    for extra in ([], ["--allow-pickle"]):
        assert main(["info", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert "noise.ckpt: not a PyTorch checkpoint" in err
        assert "unpickling" not in err and "allow-pickle" not in err, err


def test_damaged_pickle_with_allow_pickle_does_not_advise_allow_pickle(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"\x80\x04\x95garbage-after-the-protocol-byte")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, allow_pickle=True)
    assert "bad.pt: not a readable PyTorch checkpoint" in str(info.value)
    assert "allow_pickle" not in str(info.value) and "--allow-pickle" not in str(info.value)


def test_non_finite_weights_are_refused_by_name(tmp_path, capsys):
    model = build_model("tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["output.weight"].view(-1)[0] = float("nan")
    state["patch_embed.proj.weight"].view(-1)[:3] = float("inf")
    save_checkpoint(tmp_path / "nan.pt", model, state_dict=state)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "nan.pt")
    msg = str(info.value)
    assert "2 tensor(s) hold NaN or infinite values" in msg
    assert "output.weight (1 of 432)" in msg and "patch_embed.proj.weight (3 of" in msg
    for command in (["info"], ["export", "--out", str(tmp_path / "x.sparse.pt")]):
        assert main([command[0], str(tmp_path / "nan.pt"), *command[1:]]) == 2
        assert "NaN or infinite" in capsys.readouterr().err
    assert not (tmp_path / "x.sparse.pt").exists()


def test_incomplete_lightning_checkpoint_names_the_missing_keys(tmp_path, paper_recipe):
    """A published checkpoint missing 1/7 of its keys: compared with the closest preset (paper),
    the message names exactly the keys that are gone, and no mis-shaped ones."""
    keys = sorted(paper_recipe)
    dropped = keys[3::7]
    torch.save(_lightning_ckpt({k: v for k, v in paper_recipe.items() if k not in dropped}), tmp_path / "cut.ckpt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "cut.ckpt")
    msg = str(info.value)
    assert f"preset 'paper'" in msg and f"{len(dropped)} missing: {dropped[0]}, {dropped[1]}" in msg
    assert "wrong shape" not in msg and "unexpected" not in msg


def test_wrong_preset_advice_can_be_followed(tmp_path, capsys):
    """The message offers --model; `mirl info --model` exists and applies it; the old --preset names it."""
    save_checkpoint(tmp_path / "tiny.pt", build_model("tiny"))
    with pytest.raises(CheckpointError, match="--model paper|small|tiny"):
        load_checkpoint(tmp_path / "tiny.pt", config="small")
    assert main(["info", str(tmp_path / "tiny.pt"), "--model", "small"]) == 2
    assert "does not fit PromptIR preset 'small' (given)" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "tiny.pt"), "--model", "tiny"]) == 0
    with pytest.raises(SystemExit):
        main(["info", str(tmp_path / "tiny.pt"), "--preset", "tiny"])
    err = capsys.readouterr().err
    assert "--preset tiny names a study preset" in err and "--model tiny here" in err and len(err.strip().splitlines()) == 1


# ---- issue 33, case 1: a file's recorded network settings are as untrusted as its tensors -------------


def _with_config(tmp_path, change, narrow=False):
    """A real tiny (optionally narrowed) mirl checkpoint whose recorded config is then changed."""
    from mirl.models.narrow import plan_narrowing

    net = build_model("tiny")
    if narrow:  # narrow_model's steps, without its log line (a handler of an earlier main() may be gone)
        with torch.no_grad():
            net.encoder_level1[0].ffn.project_out.weight[:, 3:] = 0
        plan = plan_narrowing(net)
        state = plan.apply(net.state_dict())
        net = plan.build()
        net.load_state_dict(state)
    save_checkpoint(tmp_path / "good.pt", net)
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["config"] = change(payload["config"])
    torch.save(payload, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize(("change", "named"), [
    (lambda c: {**c, "heads": [0, 1, 2, 2]}, "heads[0] = 0"),           # ZeroDivisionError before
    (lambda c: {**c, "dim": -8}, "dim = -8"),                           # RuntimeError before
    (lambda c: {**c, "heads": [3, 1, 2, 2]}, "not divisible by 3 heads"),  # ValueError before
    (lambda c: {**c, "dim": 8192, "num_blocks": [8, 8, 8, 8]}, "dim = 8192"),  # terabytes before
    (lambda c: {**c, "num_blocks": [10**6, 1, 1, 1]}, "num_blocks[0] = 1000000"),
    (lambda c: {**c, "heads": "1122"}, "heads = '1122' is not a list of whole numbers"),
    (lambda c: {**c, "ffn_expansion_factor": float("nan")}, "ffn_expansion_factor = nan"),
    (lambda c: {**c, "bias": "no"}, "bias = 'no'"),
    (lambda c: ["dim", 8], "not a list"),
], ids=["heads0", "dim-8", "heads3", "dim8192", "blocks1e6", "heads-str", "ffn-nan", "bias-str", "config-list"])
@pytest.mark.parametrize("narrow", [False, True], ids=["full", "narrowed"])
def test_invalid_recorded_settings_are_one_line_errors_naming_the_file(tmp_path, capsys, change, named, narrow):
    bad = _with_config(tmp_path, change, narrow)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mirl info: error: {bad}: the network settings recorded in the file are invalid (") and err.count("\n") == 1
    assert named in err and "--model paper|small|tiny" in err


class _Recorder:
    """Wraps PromptIR in mirl.models.checkpoints: the device of every network it builds."""

    def __init__(self, monkeypatch):
        import mirl.models.checkpoints as checkpoints
        import mirl.models.narrow as narrow

        self.devices = []
        real = checkpoints.PromptIR

        def build(*args, **kwargs):
            net = real(*args, **kwargs)
            self.devices.append(next(net.parameters()).device.type)
            return net

        monkeypatch.setattr(checkpoints, "PromptIR", build)
        monkeypatch.setattr(narrow, "PromptIR", build)


def test_a_recorded_network_over_the_parameter_budget_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """dim 512 with the paper's blocks: every setting in range, 4.0 G parameters; counted on meta, never built."""
    from mirl.models.config import parameter_budget, parameter_count, preset

    big = {**preset("paper").to_dict(), "dim": 512}
    assert parameter_count(ModelConfig.from_dict(big)) > parameter_budget()
    bad = _with_config(tmp_path, lambda c: big)
    recorder = _Recorder(monkeypatch)
    with pytest.raises(CheckpointError, match=r"bad\.pt: its network settings \(dim 512, .*\) make a PromptIR of [\d,]+ "
                                              r"parameters, more than [\d,]+ \(4x the paper model\)"):
        load_checkpoint(bad)
    assert set(recorder.devices) <= {"meta"}


@pytest.mark.parametrize("narrow", [False, True], ids=["full", "narrowed"])
def test_recorded_shapes_are_checked_against_the_tensors_before_anything_is_built(tmp_path, monkeypatch, narrow):
    """A tiny file recording the paper settings (in budget): the mismatch is found on the meta
    device; no 35 M parameter network is allocated to find it."""
    from mirl.models.config import preset

    bad = _with_config(tmp_path, lambda c: preset("paper").to_dict(), narrow)
    recorder = _Recorder(monkeypatch)
    with pytest.raises(CheckpointError, match=r"bad\.pt: does not fit PromptIR preset 'paper' \(recorded in the file"):
        load_checkpoint(bad)
    assert recorder.devices and set(recorder.devices) == {"meta"}
    recorder.devices.clear()
    model, meta = load_checkpoint(tmp_path / "good.pt")  # a good file is still built for real
    assert recorder.devices[-1] == "cpu" and bool(meta.get("narrow")) == narrow
