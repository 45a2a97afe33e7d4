"""Study settings: every bad value is a one-line error before any folder is made."""

from __future__ import annotations

import pytest

from mirl.cli import main
from mirl.study.config import ConfigError, config_hash, study_preset


@pytest.mark.parametrize("key, value, message", [
    ("lr", "nan", "lr; it must be a finite number"),
    ("lr", "inf", "lr; it must be a finite number"),
    ("weight_decay", "nan", "weight_decay; it must be a finite number"),
    ("weight_decay", "-0.1", "weight_decay; it must be >= 0"),
    ("fraction", "nan", "fraction; it must be a finite number"),
    ("patch_size", "7", "patch_size; it must be a multiple of 8"),
    ("patch_size", "60", "e.g. 56"),
    ("seed", "-1", "seed; it must be >= 0"),
    ("max_test_side", "8", "max_test_side"),
])
def test_bad_values_are_refused(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        study_preset("smoke", {key: value})


def test_good_values_pass():
    cfg = study_preset("smoke", {"lr": "3e-4", "weight_decay": "0", "patch_size": "48", "seed": "7"})
    assert (cfg.lr, cfg.weight_decay, cfg.patch_size, cfg.seed) == (3e-4, 0.0, 48, 7)


@pytest.mark.parametrize("args", [
    ["--set", "lr=nan"], ["--set", "weight_decay=nan"], ["--set", "patch_size=7"], ["--seed", "-1"], ["--config", "CONFIG"],
])
def test_cli_refuses_bad_settings_without_leaving_a_folder(tmp_path, capsys, args):
    from PIL import Image

    png = tmp_path / "settings.png"
    Image.new("RGB", (4, 4)).save(png)
    out = tmp_path / "runs"
    args = [str(png) if a == "CONFIG" else a for a in args]
    assert main(["lottery", "--preset", "smoke", "--out", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists(), f"a refused command left {list(out.rglob('*'))}"


def test_every_setting_is_explained_where_it_is_declared(capsys):
    import dataclasses

    from mirl.branches import registry
    from mirl.study.config import HELP, StudyConfig, setting_help

    names = [f.name for f in dataclasses.fields(StudyConfig)]
    assert set(HELP) == set(names) and all(len(HELP[n]) > 15 for n in names)
    assert main(["lottery", "--preset", "smoke", "--list-settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    options = [(name, key, option) for name, branch in registry().items() for key, option in branch.options.items()]
    assert options, "no branch declares an option"
    assert len(lines) == len(names) + 1 + len(options)
    assert all(setting_help(n) in line for n, line in zip(names, lines))
    for (name, key, option), line in zip(options, lines[len(names) + 1:]):  # every branch's options, with default and help
        assert line.split()[0] == f"{name}.{key}" and repr(option.default) in line and option.help in line


def test_the_branches_help_comes_from_the_registry(monkeypatch):
    """Issue 34, part 3: the help text of ``branches`` was a fixed list that missed refill."""
    from mirl import branches
    from mirl.study.config import setting_help

    assert all(name in setting_help("branches") for name in branches.registry())

    class Extra(branches.Branch):
        name, label, changes = "extra_control", "extra", "nothing"

    found = {**branches.registry(), "extra_control": Extra()}
    monkeypatch.setattr(branches, "registry", lambda: found)
    assert "extra_control" in setting_help("branches")


def test_a_branch_with_options_is_its_own_variant_named_by_its_folder(capsys):
    """Issue 34, part 3: ``branches=[random_prune, {name: random_prune, scope: global}]``, open_lth-style."""
    both = study_preset("smoke", {"branches": "[random_prune, {name: random_prune, scope: global}]"})
    assert both.branches == ("random_prune", "random_prune-scope_global")
    # the folder name, a single mapping and a file's list of mappings give the same study; a default option is no variant
    assert study_preset("smoke", {"branches": "random_prune,random_prune-scope_global"}) == both
    assert study_preset("smoke", {"branches": "{name: random_prune, scope: global}"}).branches == ("random_prune-scope_global",)
    assert study_preset("smoke", {"branches": [{"name": "random_prune", "scope": "layerwise"}]}).branches == ("random_prune",)
    assert config_hash(both) == config_hash(study_preset("smoke"))  # branches grow a study in place
    assert main(["lottery", "--preset", "smoke", "--set", "branches=[{name: random_prune, scope: global}]", "--list-settings"]) == 0
    assert "'random_prune-scope_global'" in capsys.readouterr().out


@pytest.mark.parametrize("value, message", [
    ("[{name: random_prune, scope: everywhere}]", "bad value 'everywhere' for option scope of branch random_prune; valid: layerwise, global"),
    ("[{name: random_prune, scop: global}]", "branch 'random_prune' has no option 'scop'; its options: scope"),
    ("[{scope: global}]", "a branch with options needs its name"),
    ("random_prune-size_3", "'size_3' is not <option>_<value> of branch 'random_prune'"),
    ("[{name: random_reinit, scope: global}]", "branch 'random_reinit' has no option 'scope'; its options: none"),
    ("random_prune,random_prune-scope_layerwise", "give distinct names"),
])
def test_bad_branch_options_are_one_line(value, message, capsys):
    assert main(["lottery", "--preset", "smoke", "--set", f"branches={value}", "--list-settings"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl lottery: error: bad value") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("settings, message", [
    ({"rewind_steps": 5}, "rewind_steps=5 does nothing with reset=init"),
    ({"reset": "rewind"}, "reset=rewind needs rewind_steps > 0"),
    ({"reset": "rewind", "rewind_steps": 0}, "reset=rewind needs rewind_steps > 0"),
])
def test_settings_that_do_nothing_or_contradict_are_refused(settings, message):
    """Issue 34, part 2: ``rewind_steps=5`` with ``reset=init`` made a new study that trained the same thing."""
    with pytest.raises(ConfigError, match=message):
        study_preset("smoke", settings)
    assert study_preset("smoke", {"reset": "rewind", "rewind_steps": 2}).rewind_steps == 2


def test_run_hash_is_pinned():
    # A refactor must not silently rename existing runs: this literal is the smoke preset's hash.
    assert config_hash(study_preset("smoke")) == "de4d1844"  # layout 2 (the study tree); layout 1 was 49d0c140
    assert config_hash(study_preset("smoke", {"device": "cpu", "progress": False})) == "de4d1844"
    assert config_hash(study_preset("smoke", {"rounds": 3})) != "de4d1844"


def test_the_presets_keep_their_hashes_with_the_swappable_settings_at_their_defaults():
    """New checks and settings rename no study: optimizer, loss, schedule, pruner and the network
    registry at their defaults (the published AdamW, L1, warm-up + cosine, magnitude), branch
    options and versions (issue 34). Only a recipe change renames one (issue 31, below)."""
    pinned = {"paper": "6dfa7bac", "quickstart": "6bcc40d6", "smoke": "de4d1844", "evidence": "e320761e"}  # issue 31: layer-wise presets prune rule=conv; evidence resets all
    assert {p: config_hash(study_preset(p)) for p in pinned} == pinned
    published = {"optimizer": "adamw", "loss": "l1", "schedule": "warmup_cosine", "pruner": "magnitude"}
    assert {p: config_hash(study_preset(p, published)) for p in pinned} == pinned
    assert config_hash(study_preset("smoke", {"optimizer": "sgd"})) != pinned["smoke"]


def test_list_settings_shows_each_registrys_names(capsys):
    from mirl.study.config import registries

    assert main(["lottery", "--preset", "smoke", "--list-settings"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    for name, registry in registries().items():
        assert lines[name].endswith(f"[{', '.join(registry.names())}]"), lines[name]


def test_overrides_are_validated():
    with pytest.raises(ConfigError, match="valid settings: .*rounds"):
        study_preset("smoke", {"roundz": 3})
    with pytest.raises(ConfigError, match="valid: global, layerwise"):
        study_preset("smoke", {"scope": "channel"})
    with pytest.raises(ConfigError, match="expected int"):
        study_preset("smoke", {"rounds": "many"})
    with pytest.raises(Exception, match="unknown task"):
        study_preset("smoke", {"tasks": "denoise_25,deblur"})
    assert study_preset("smoke", {"tasks": "derain,jpeg"}).tasks == ("derain", "jpeg")


def test_cli_rejects_unknown_setting(capsys):
    from mirl.cli import main

    assert main(["lottery", "--preset", "smoke", "--set", "colour=red"]) == 2
    assert "valid settings" in capsys.readouterr().err


def test_replicates_do_not_change_the_run_hash():
    assert config_hash(study_preset("smoke", {"replicates": 3})) == config_hash(study_preset("smoke"))
    with pytest.raises(ConfigError, match=r"replicates; it must be in \[1, "):
        study_preset("smoke", {"replicates": 0})


def test_repeated_set_is_merged_and_values_are_kept_as_typed(capsys):
    """``--set`` given twice adds to the first (it replaced it), values keep their ``#`` and line
    breaks (only spaces around them go), and one setting given two values is refused."""
    data = "/photos #2\nnew "
    assert main(["lottery", "--preset", "smoke", "--set", "rounds=5", "--set", "scope=layerwise", f"data= {data}",
                 "--list-settings"]) == 0
    settings = {line.split()[0]: line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()}
    assert settings["rounds"].startswith("5 ") and settings["scope"].startswith("'layerwise' ")
    assert settings["data"].startswith(repr(data.strip(" ")))
    assert main(["lottery", "--preset", "smoke", "--set", "rounds=5", "--set", "rounds=3", "--list-settings"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "mirl lottery: error: rounds is set twice ('5' and '3'); give it once"


def test_list_settings_take_yaml_lists_as_mirl_report_does(capsys):
    """Issue 34, part 6: ``--set branches=[a,b]`` was refused while ``mirl report --set`` takes YAML lists."""
    assert main(["lottery", "--preset", "smoke", "--set", "branches=[random_reinit, stability]", "tasks=[derain]",
                 "stability_alphas=[0, 0.5, 1]", "--list-settings"]) == 0
    settings = {line.split()[0]: line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()}
    assert settings["branches"].startswith("['random_reinit', 'stability'] ")
    assert settings["tasks"].startswith("['derain'] ") and settings["stability_alphas"].startswith("[0.0, 0.5, 1.0] ")
    assert study_preset("smoke", {"branches": "[random_reinit]"}) == study_preset("smoke", {"branches": "random_reinit"})
    assert main(["lottery", "--preset", "smoke", "--set", "branches=[random_reinit", "--list-settings"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl lottery: error: --set branches='[random_reinit': not a YAML value") and err.count("\n") == 1


@pytest.mark.parametrize("name", ["rounds", "replicates"])
def test_settings_that_multiply_the_nodes_are_bounded(name: str, capsys) -> None:
    """rounds=100000 or replicates=100000 is refused in one line (it made the dry run hang), at
    the bound each setting declares."""
    from mirl.cli import main
    from mirl.study.config import StudyConfig
    import dataclasses

    bound = {f.name: f for f in dataclasses.fields(StudyConfig)}[name].metadata["limits"].at_most
    assert bound is not None and study_preset("smoke", {name: int(bound)})
    with pytest.raises(ConfigError, match=f"for {name}; it must be in \\[1, {bound:g}\\]|for {name}; it must be in \\[0, {bound:g}\\]"):
        study_preset("smoke", {name: int(bound) + 1})
    assert main(["lottery", "--preset", "smoke", "--set", f"{name}=100000", "--dry-run", "--no-timing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mirl lottery: error: bad value 100000 for {name}; it must be in") and err.count("\n") == 1, err


def test_the_evidence_controls_reset_every_tensor_and_the_paper_keeps_mirls_carry_over():
    """Issue 31: in the evidence study the ticket and every control restart prompts and
    temperatures too, so a control differs from the ticket in one thing; the paper keeps MIR-L's."""
    assert study_preset("evidence").reset_params == "all"
    assert study_preset("paper").reset_params == study_preset("quickstart").reset_params == "upstream"
