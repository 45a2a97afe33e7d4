"""Typed study configuration, presets, ``--set key=value`` overrides and run names.

A run's name is ``<preset>_<hash>``, where the hash covers the settings that differ from the
dataclass defaults (after open_lth): a changed setting never reuses old results, and adding a
new setting with a default does not rename existing runs. Settings that do not change results
(device, workers, progress bars, checkpoint interval) are not hashed.

Example:
    >>> cfg = study_preset("smoke", {"rounds": "3", "scope": "layerwise"})
    >>> cfg.rounds, cfg.scope
    (3, 'layerwise')
    >>> run_name("smoke", cfg).startswith("smoke_")
    True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from mirl.errors import MirlError


class ConfigError(MirlError):
    """A bad setting name or value."""


PATCH_MULTIPLE = 8  # PromptIR downsamples three times (pixel_unshuffle by 2 each)

Check = Callable[[Any], "str | None"]  # a value -> what is wrong with it (None: nothing)


@dataclass(frozen=True)
class Limits:
    """The range a number setting must lie in, declared beside it; ``example`` completes the message.

    Example:
        >>> Limits(above=0, below=1, example="0.2").problem(1.5)
        'it must be in (0, 1), e.g. 0.2'
        >>> Limits(at_least=0).problem(-1), Limits(at_least=0).problem(3)
        ('it must be >= 0', None)
    """

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    example: str = ""

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value`` (``None``: it is in range)."""
        low, low_open = (self.above, True) if self.above is not None else (self.at_least, False)
        high, high_open = (self.below, True) if self.below is not None else (self.at_most, False)
        if (low is None or value > low or (value == low and not low_open)) and \
           (high is None or value < high or (value == high and not high_open)):
            return None
        show = lambda x: f"{x:g}"  # noqa: E731
        if low is not None and high is not None:
            text = f"it must be in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
        elif low is not None:
            text = f"it must be {'>' if low_open else '>='} {show(low)}"
        else:
            text = f"it must be {'<' if high_open else '<='} {show(high)}"
        return text + (f", e.g. {self.example}" if self.example else "")


def _setting(default: Any, help: str, limits: Limits | None = None, check: Check | None = None) -> Any:
    """A study setting: its default, its meaning (``--list-settings`` shows both), its range and
    any further check, declared together."""
    return dataclasses.field(default=default, metadata={"help": help, "limits": limits, "check": check})


def _multiple_of_patch(value: int) -> str | None:
    if value % PATCH_MULTIPLE:
        return (f"it must be a multiple of {PATCH_MULTIPLE} (the network halves it three times), "
                f"e.g. {max(PATCH_MULTIPLE, value - value % PATCH_MULTIPLE)}")
    return None


def _test_side(value: int) -> str | None:
    return "0 (full size) or at least 16 (test images are cropped to a multiple of 16)" if 0 < value < 16 else None


def _repeats(value: str) -> str | None:
    from mirl.data.resolve import parse_repeats

    try:
        parse_repeats(value)
    except MirlError as exc:
        return str(exc)
    return None


def _branches(value: tuple[str, ...]) -> str | None:
    from mirl.branches import get_branch, registry

    try:
        folders = [get_branch(b).folder for b in value]
    except MirlError as exc:
        return f"{exc}; give distinct names from: {', '.join(registry())}, or none"
    if folders != list(value) or len(set(value)) != len(value):
        return f"give distinct names from: {', '.join(registry())}, or none"
    return None


def _branch_folders(raw: Any) -> tuple[str, ...]:
    """``branches`` as node folder names: each item a name, a folder name with options
    (``random_prune-scope_global``) or a mapping ``{name: random_prune, scope: global}``."""
    from mirl.branches import branch_variant

    if isinstance(raw, str) and raw.strip().startswith("{"):
        raw = [_yaml_value("branches", raw)]
    items = raw.split(",") if isinstance(raw, str) else [raw] if isinstance(raw, Mapping) else list(raw)
    try:
        return tuple(branch_variant(v if isinstance(v, Mapping) else str(v).strip()).folder
                     for v in items if isinstance(v, Mapping) or str(v).strip())
    except MirlError as exc:
        raise ConfigError(f"bad value {raw!r} for branches; {exc}") from None


def _alphas(value: tuple[float, ...]) -> str | None:
    if any(not 0.0 <= a <= 1.0 for a in value) or 0.0 not in value or 1.0 not in value or list(value) != sorted(set(value)):
        return "increasing points in [0, 1] that include 0 and 1, e.g. 0,0.25,0.5,0.75,1"
    return None


def _batch_nodes(value: str) -> str | None:
    if value == "auto" or (value.isdigit() and int(value) >= 1):
        return None
    return "'auto' or a whole number of nodes >= 1, e.g. 3 (1: every node alone)"


def _tasks(value: tuple[str, ...]) -> str | None:
    from mirl.data import expand_tasks

    if not value:
        return "give at least one task, e.g. tasks=denoise_25,derain"
    expand_tasks(list(value))  # raises with the valid task names
    return None


NON_NEGATIVE, POSITIVE_COUNT = Limits(at_least=0), Limits(at_least=1)
AUTO = "auto"  # the rule setting that follows the scope (effective_rule)


def effective_rule(rule: str, scope: str) -> str:
    """The prunable rule a study uses (:mod:`mirl.pruning.rules`): ``auto`` is ``conv`` under
    ``layerwise`` scope (a threshold per tensor would cut the same share of every LayerNorm scale,
    so only convolution and linear weights are ranked, as open_lth does) and ``upstream`` (MIR-L's
    rule) under ``global`` scope; any other rule is itself.

    Example:
        >>> effective_rule("auto", "layerwise"), effective_rule("auto", "global"), effective_rule("upstream", "layerwise")
        ('conv', 'upstream', 'upstream')
    """
    if rule != AUTO:
        return rule
    return "conv" if scope == "layerwise" else "upstream"


@dataclass
class StudyConfig:
    """Everything that defines an iterative-pruning study. Defaults are the published settings."""

    # network
    model: str = _setting("paper", "network, from mirl/models/networks/: 'paper' (the published PromptIR, 35.6M parameters), or our smaller 'small'/'tiny'")
    impl: str = _setting("fast", "'fast' (same maths, less memory and time) or 'reference' (the published operations)")
    # data
    data: str = _setting("builtin", "'builtin' (the demo corpus, made on first use) or a folder in the published layout")
    tasks: tuple[str, ...] = _setting(("all_in_one",), "tasks to train and test, or aliases: all_in_one (5 tasks), denoise; e.g. denoise_25,derain", check=_tasks)
    repeats: str = _setting("published", "'published' (denoise x3, derain x120, dehaze x1), 'demo' (balanced for the built-in corpus), or task=factor,...", check=_repeats)
    patch_size: int = _setting(64, "side of the square training crops in px (a multiple of 8)", POSITIVE_COUNT, _multiple_of_patch)
    max_test_side: int = _setting(0, "crop built-in test photos into tiles of at most this many px per side (0 = full size)", NON_NEGATIVE, _test_side)
    # training (per level)
    batch_size: int = _setting(8, "training crops per step (per process under torchrun)", POSITIVE_COUNT)
    epochs: int = _setting(120, "training epochs per level; every level trains from its reset weights", POSITIVE_COUNT)
    warmup_epochs: int = _setting(15, "epochs of linear learning-rate warm-up before the cosine decay", NON_NEGATIVE)
    steps_per_epoch: int = _setting(0, "training steps per epoch (0 = one pass over the training set)", NON_NEGATIVE)
    steps_scale: int = _setting(1, "training budget: every level trains this many times its epochs (warm-up scaled alike, so the "
                                "schedule keeps its shape), e.g. 4", Limits(at_least=1, at_most=1000, example="4"))
    lr: float = _setting(2e-4, "peak learning rate of the optimizer", Limits(above=0))
    weight_decay: float = _setting(0.01, "weight decay of the optimizer", NON_NEGATIVE)
    optimizer: str = _setting("adamw", "optimizer of every level, from mirl/study/optimizers/ (adamw: the published one)")
    loss: str = _setting("l1", "training loss, from mirl/study/losses/ (l1: the published one)")
    schedule: str = _setting("warmup_cosine", "learning-rate schedule per epoch, from mirl/study/schedules/ (warmup_cosine: the published one)")
    amp: str = _setting("auto", "training precision on CUDA: 'auto' or 'bf16' (bf16 autocast), 'fp32'; the CPU always trains in fp32")
    # pruning
    rounds: int = _setting(15, "pruning rounds after the dense level 0 (levels 1..rounds); at most 100 (0.8^100 leaves no weight of the paper network)",
                           Limits(at_least=0, at_most=100, example="15"))
    pruner: str = _setting("magnitude", "how main picks the weights it prunes each round, from mirl/study/pruners/ (magnitude: the published rule)")
    fraction: float = _setting(0.2, "fraction of the surviving prunable weights removed per round, in (0, 1)", Limits(above=0, below=1, example="0.2"))
    scope: str = _setting("global", "'global' (one ranking over every prunable tensor) or 'layerwise' (one per tensor; keeps every layer alive)")
    rule: str = _setting("auto", "prunable tensors: 'auto' (conv under scope=layerwise, upstream under global), 'upstream' (every *weight*, as published) "
                         "or 'conv' (convolution and linear weights the forward uses; never a norm scale, bias or prompt)")
    reset: str = _setting("init", "where survivors restart: 'init' (theta_0, the paper) or 'rewind' (theta_k after rewind_steps)")
    rewind_steps: int = _setting(0, "with reset=rewind: rewind to the weights after this many steps of the dense level", NON_NEGATIVE)
    reset_params: str = _setting("upstream", "'upstream' resets only tensors named *weight*/*bias* to theta_0 (prompts and temperatures keep training), 'all' resets everything")
    # evaluation
    eval_limit: int = _setting(0, "test images per task (0 = all)", NON_NEGATIVE)
    convention: str = _setting("upstream", "metric convention: 'upstream' (RGB, as MIR-L/PromptIR) or 'y' (BT.601 luma, as BasicSR)")
    test_pad: bool = _setting(False, "reflect-pad test images to a multiple of 16 and score all pixels, instead of the published centre crop")
    seed: int = _setting(0, "seed of replicate 0 (replicate r: seed + r): its theta_0 and training data order; branches derive theirs from it", NON_NEGATIVE)
    # not part of the study's identity: a study grows replicates and branches in place
    replicates: int = _setting(1, "replicates of the study, seeds seed, seed+1, ... (folders replicate_0, replicate_1, ...; finished ones are reused); at most 1000",
                               Limits(at_least=1, at_most=1000, example="3"))
    branches: tuple[str, ...] = _setting((), "branches of every pruned level of the ticket, by name or as {name: ..., <option>: value} (docs/lottery.md; the names: mirl.branches.registry())", check=_branches)
    stability_alphas: tuple[float, ...] = _setting(tuple(i / 8 for i in range(9)), "points of the linear path the stability branch scores (must hold 0 and 1)", check=_alphas)
    val_curve_images: int = _setting(2, "validation images per task scored at 8 evenly spaced steps of the dense level 0 (its "
                                     "val_curve in metrics.json; 0 = none)", NON_NEGATIVE)
    stability_eval_limit: int = _setting(0, "test crops per photo (each task) for the stability branch's path, the same for every photo (0 = every test image; names without a photo: every image)", NON_NEGATIVE)
    device: str = _setting("auto", "'auto' (CUDA when present), 'cpu' or 'cuda'")
    num_workers: int = _setting(0, "data-loader worker processes (batches do not depend on it)", NON_NEGATIVE)
    checkpoint_every: int = _setting(100, "steps between the periodic checkpoints an interrupted level resumes from", POSITIVE_COUNT)
    progress: bool = _setting(True, "progress bars with throughput")
    cuda_graph: str = _setting("auto", "'auto' replays each training step as one CUDA graph on a single GPU; 'off' runs it eagerly")
    compile: str = _setting("none", "'regional' compiles each transformer block with torch.compile (minutes of warm-up per process; not yet measured on a GPU)")
    compile_memory_budget: float = _setting(1.0, "with compile=regional: the fraction (0, 1] of its default activations the compiler may keep; less recomputes more in backward", Limits(above=0, at_most=1, example="0.7"))
    batch_nodes: str = _setting("auto", "nodes of one level and shape trained as one network (stacked weights, torch.func.vmap): a number, or 'auto' "
                                "(1 on the CPU, where it does not pay; on a GPU, measured when the study starts); equal to serial within float rounding", check=_batch_nodes)

    def __post_init__(self) -> None:
        # rule=auto is resolved at once, so a study records (and hashes) the rule it prunes with:
        # the paper's global scope keeps upstream (its hash is unchanged), layer-wise scope prunes conv.
            self.rule = effective_rule(self.rule, self.scope)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


NOT_HASHED = frozenset({"replicates", "branches", "stability_alphas", "stability_eval_limit", "val_curve_images", "device", "num_workers", "checkpoint_every", "progress", "cuda_graph", "compile",
                        "compile_memory_budget", "batch_nodes"})
# Settings that only act from level 1 on: runs that differ only in these share the dense level 0.
PRUNING_ONLY = frozenset({"rounds", "fraction", "scope", "reset_params", "pruner"})

# Allowed values of the string settings the study itself defines.
_STUDY_CHOICES: dict[str, tuple[str, ...]] = {
    "amp": ("auto", "bf16", "fp32"),
    "reset": ("init", "rewind"),
    "reset_params": ("upstream", "all"),
    "cuda_graph": ("auto", "off"),
    "compile": ("none", "regional"),  # the study's subset of mirl.study.step.COMPILE_MODES
}


def choices() -> dict[str, tuple[str, ...]]:
    """Allowed values of every string setting (tasks are checked against :mod:`mirl.data`).

    Values that another module owns come from it (imported on first use: they need torch); the
    network, optimizer, loss, schedule and pruner are the names their registries hold now.

    Example:
        >>> choices()["scope"], choices()["optimizer"][0]
        (('global', 'layerwise'), 'adamw')
    """
    return {**_fixed_choices(), **{name: registry.names() for name, registry in registries().items()}}


def registries() -> dict[str, Any]:
    """The registry (:class:`mirl.models.registry.Registry`) behind each swappable setting.

    Example:
        >>> sorted(registries())
        ['loss', 'model', 'optimizer', 'pruner', 'schedule']
    """
    from mirl.models.networks import networks
    from mirl.study.losses import losses
    from mirl.study.optimizers import optimizers
    from mirl.study.pruners import pruners
    from mirl.study.schedules import schedules

    return {"model": networks, "optimizer": optimizers, "loss": losses, "schedule": schedules, "pruner": pruners}


@functools.cache
def _fixed_choices() -> dict[str, tuple[str, ...]]:
    from mirl.device import DEVICE_CHOICES
    from mirl.scoring.metrics import CONVENTIONS
    from mirl.models import IMPLS
    from mirl.pruning.magnitude import SCOPES
    from mirl.pruning.rules import RULES

    return {"impl": IMPLS, "scope": SCOPES, "rule": (AUTO, *RULES),
            "convention": tuple(CONVENTIONS), "device": DEVICE_CHOICES, **_STUDY_CHOICES}


# The meaning of every setting, from its declaration.
_FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}
HELP: dict[str, str] = {name: f.metadata["help"] for name, f in _FIELDS.items()}


def setting_help(name: str) -> str:
    """The meaning of a setting; the ``branches`` help lists the branches of the registry.

    Example:
        >>> "random_prune" in setting_help("branches"), setting_help("rounds") == HELP["rounds"]
        (True, True)
    """
    if name == "branches":
        from mirl.branches import branches_help

        return branches_help()
    return HELP.get(name, "")

STUDY_PRESETS: dict[str, dict[str, Any]] = {
    # The published reference run (GPU): 15 rounds of 20%, 120 epochs each, batch 8, 64x64 patches.
    "paper": {},
    # CPU demo study on the built-in corpus: about 80 s a level on 2 cores, every task restored.
    # Layer-wise scope: global pruning empties the output convolution (measured on small) below ~20%
    # density (docs/lottery.md, "Layer collapse"); add scope=global to see it happen.
    # Chosen on a validation copy of the corpus (mirl make-dataset --seed 1: the test photos with other
    # degradation draws, so not a true validation set), dense level, 3 seeds; re-checked on the val
    # photos (chelsea, flower) in docs/benchmarks.md. Choose on val/, never on test/.
    "quickstart": {
        "model": "tiny",  # a 64 px step takes 0.52x a 48 px step of small; in equal time small (200 steps) gave derain +0.7 dB, tiny (375) +2.2
        "scope": "layerwise",
        # Samples per epoch: denoise 29% (9 photos x 4 per sigma), derain 57% (27 x 8), dehaze 14%
        # (27 x 2). With a third each ("demo") the network learns dehazing's "darken what is bright
        # and flat" first and applies it to every input: derain -3.1 dB, a white sky -30 dB.
        "repeats": "denoise=4,derain=8,dehaze=2",  # derain -0.2 -> +0.9 dB, mean +2.9 -> +3.4 (400 steps)
        "patch_size": 64,  # streaks are 15-35 px long: 48 px patches (460 steps, same time) gave derain +1.4 dB, 64 px +1.7
        "rounds": 2,  # 3 levels, 2 more for notebook 02's random re-init branch, 2 for refill: make study in about 18 minutes
        # refill: the structured ticket that the reports' web page runs narrowed (faster than the dense network)
        "branches": ("random_reinit", "refill"),
        "fraction": 0.7,  # 9% of the prunable weights (about 14% of all trainable ones) left at level 2
        "epochs": 25,
        "warmup_epochs": 1,  # no warm-up (the published warm-up trains its first epoch at LR 0): mean gain +3.9 vs +3.1 dB over 3 seeds
        "steps_per_epoch": 15,  # 375 steps of batch 8, about 75 s on 2 cores; loss still falls, but the level budget is spent
        "lr": 3e-3,  # 4e-3: +3.85 vs +3.69 dB mean gain at seed 0, +2.1 vs +2.5 at seed 1 (with the warm-up)
        "max_test_side": 224,  # 20 test crops per task (a 3 x 2 grid per photo, 2 for china); 128 px crops can be all sky
        "checkpoint_every": 25,
    },
    # Seconds, for tests and for trying the machinery.
    "smoke": {
        "model": "tiny",
        "repeats": "demo",
        "tasks": ("denoise_25", "derain"),
        "patch_size": 32,
        "batch_size": 2,
        "rounds": 2,
        "epochs": 2,
        "warmup_epochs": 1,
        "steps_per_epoch": 3,
        "lr": 1e-3,
        "max_test_side": 64,
        "eval_limit": 1,
        "stability_eval_limit": 1,  # one crop of every test photo on the stability path
        "checkpoint_every": 2,
    },
}
# The evidence study (make evidence, docs/findings.md): the quickstart recipe pruned 5 rounds of
# 50% down to 3.1% of the prunable weights (<= 3.5%, the published endpoint 0.8^15), 3 replicates
# (seeds 0-2), each level with the field's controls and the stability branch: 3 x (6 main + 5 x 3
# branches + 1 dense stability) = 66 trainings of about 90 s on 2 quiet cores, the stability path
# on 2 test crops of every test photo per task (seed 0's dense level is the quickstart's, reused when it exists).
# reset_params=all: every level of the ticket and of every control restarts every tensor, prompts and
# temperatures included, so that a control differs from the ticket in one thing only (under MIR-L's
# carry-over, random re-init would train fresh weights with prompts fitted to the ticket's;
# docs/lottery.md, "Controls that differ in one thing"). The paper preset keeps MIR-L's carry-over.
STUDY_PRESETS["evidence"] = {**STUDY_PRESETS["quickstart"], "rounds": 5, "fraction": 0.5, "replicates": 3, "reset_params": "all",
                             "branches": ("random_reinit", "random_prune", "stability"), "stability_eval_limit": 2}
# The scaling grid (issue 32; make scaling, docs/lottery.md "The scaling grid"): the ticket,
# random re-init and a dense network of the same size at about 30% and 10% of the trainable
# parameters: 2 rounds of 77%, layer-wise, leave 28.1% and 11.5% of tiny's trainable parameters
# (small: 29.9%, 13.8%; paper: 28.7%, 12.3%: small and paper keep more never-pruned parameters; tests/analysis/test_scaling.py computes them), so
# branches run only at those two levels. The quickstart recipe at 10 epochs (150 steps per node)
# so that tiny 1x, tiny 4x (--set steps_scale=4) and small 1x (--set model=small), 3 seeds each,
# fit 2 hours on 2 cores (measured times in the Makefile; with 2 seeds the intervals have df = 1,
# t = 12.7, and resolved nothing). reset_params=all as in evidence.
STUDY_PRESETS["scaling"] = {**STUDY_PRESETS["quickstart"], "rounds": 2, "fraction": 0.77, "replicates": 3, "reset_params": "all",
                            "epochs": 10, "branches": ("random_reinit", "dense_same_size")}
# The same grid on a GPU with the published budget per round (120 epochs of the published data,
# batch 8, 64x64): small width here, paper width with --set model=paper (make scaling-gpu prints both bills).
STUDY_PRESETS["scaling-gpu"] = {"model": "small", "scope": "layerwise", "rounds": 2, "fraction": 0.77, "replicates": 2,
                                "reset_params": "all", "branches": ("random_reinit", "dense_same_size")}


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(StudyConfig)


def parse_value(name: str, raw: Any) -> Any:
    """Convert and validate one setting; errors list the valid names or values."""
    types = _field_types()
    if name in RETIRED:
        raise ConfigError(RETIRED[name])
    if name not in types:
        raise ConfigError(f"unknown setting {name!r}; valid settings: {', '.join(sorted(types))}")
    kind = types[name]
    if name == "branches" and raw in ("none", ""):
        raw = ()
    if kind in (tuple[str, ...], tuple[float, ...]) and isinstance(raw, str) and raw.strip().startswith("["):
        raw = _yaml_list(name, raw)
    try:
        if name == "branches":
            value: Any = _branch_folders(raw)
        elif kind is bool:
            if isinstance(raw, bool):
                value = raw
            elif str(raw).lower() in ("1", "true", "yes", "on"):
                value = True
            elif str(raw).lower() in ("0", "false", "no", "off"):
                value = False
            else:
                raise ValueError
        elif kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value = int(raw)
        elif kind is float:
            value = float(raw)
        elif kind == tuple[str, ...]:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            value = tuple(str(v).strip() for v in items if str(v).strip())
        elif kind == tuple[float, ...]:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            value = tuple(float(v) for v in items if str(v).strip())
        else:
            value = str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"bad value {raw!r} for {name}: expected {getattr(kind, '__name__', str(kind))}") from None
    _validate(name, value)
    return value


def _yaml_value(name: str, text: str) -> Any:
    from mirl.study.yamlio import parse_yaml_value

    return parse_yaml_value(name, text, ConfigError)


def _yaml_list(name: str, text: str) -> list[Any]:
    """``--set branches=[a, b]``: a YAML list, as ``mirl report --set`` reads lists."""
    value = _yaml_value(name, text)
    if not isinstance(value, list):
        raise ConfigError(f"bad value {text!r} for {name}: expected a list, e.g. [a, b], or a,b")
    return value


# Settings an older mirl had, with what replaces them.
RETIRED: dict[str, str] = {
    "control": "the control= setting is gone: controls are branches of the ticket's own levels now; "
               "use --set branches=random_reinit,random_prune (docs/lottery.md)",
}

def _validate(name: str, value: Any) -> None:
    """Refuse a value outside its declared choices, range or check, naming the setting."""
    allowed = choices().get(name)
    if allowed is not None and value not in allowed:
        raise ConfigError(f"bad value {value!r} for {name}; valid: {', '.join(allowed)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"bad value {value!r} for {name}; it must be a finite number")
    declared = _FIELDS[name].metadata
    problem = declared["limits"].problem(value) if declared["limits"] is not None else None
    if problem is None and declared["check"] is not None:
        problem = declared["check"](value)
    if problem is not None:
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        raise ConfigError(f"bad value {shown!r} for {name}; {problem}")


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["rounds=3", "scope=layerwise"]`` -> ``{"rounds": "3", "scope": "layerwise"}``.

    Values are kept as typed (``#`` and line breaks included; only spaces and tabs around them
    go); a setting given twice with two values is refused.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not key=value, e.g. --set rounds=3 fraction=0.2")
        key, value = (part.strip(" \t") for part in pair.split("=", 1))
        if out.get(key, value) != value:
            raise ConfigError(f"{key} is set twice ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read settings from a YAML or JSON mapping."""
    from mirl.study.yamlio import read_yaml_file

    data = read_yaml_file(path, "--config", "a YAML or JSON file of setting: value", ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value")
    return data


def check_preset(preset: str) -> None:
    """Refuse a name that is not a study preset, listing the valid ones.

    Example:
        >>> check_preset("smoek")
        Traceback (most recent call last):
        mirl.study.config.ConfigError: unknown preset 'smoek'; valid: paper, quickstart, smoke, evidence, scaling, scaling-gpu
    """
    if preset not in STUDY_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(STUDY_PRESETS)}")


def study_preset(
    preset: str = "quickstart",
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
) -> StudyConfig:
    """Resolve a preset, then a config file, then ``overrides`` (later wins) into a config."""
    check_preset(preset)
    values: dict[str, Any] = dict(STUDY_PRESETS[preset])
    if config_file is not None:
        values.update(load_config_file(config_file))
    values.update(overrides or {})
    parsed = {k: parse_value(k, v) for k, v in values.items()}
    cfg = StudyConfig(**parsed)
    check_together(cfg)
    return cfg


def check_together(cfg: StudyConfig) -> None:
    """Refuse settings that do nothing under the others (they would still make a new study), or
    that contradict each other, in one line.

    Example:
        >>> check_together(StudyConfig(rewind_steps=5))
        Traceback (most recent call last):
        mirl.study.config.ConfigError: rewind_steps=5 does nothing with reset=init (the survivors restart from theta_0); set reset=rewind to rewind, or leave rewind_steps out
    """
    if cfg.reset == "init" and cfg.rewind_steps != 0:
        raise ConfigError(f"rewind_steps={cfg.rewind_steps} does nothing with reset=init (the survivors restart from theta_0); "
                          "set reset=rewind to rewind, or leave rewind_steps out")
    if cfg.reset == "rewind" and cfg.rewind_steps == 0:
        raise ConfigError("reset=rewind needs rewind_steps > 0 (rewinding to step 0 is reset=init), e.g. rewind_steps=100")


# Settings of how a run goes, not of what it computes: a command that remakes a study leaves them out.
RUN_ONLY = ("device", "num_workers", "progress", "checkpoint_every", "cuda_graph", "compile", "compile_memory_budget", "batch_nodes")


def lottery_command(preset: str, cfg: StudyConfig, out: str | os.PathLike | None = None, *extra: str) -> str:
    """The ``mirl lottery`` command that makes (or grows) the study of ``cfg``: the preset, every
    setting that differs from it (the replicates and branches included; not a rule its scope
    implies, nor :data:`RUN_ONLY`), ``--out`` and ``extra`` words.

    Example:
        >>> lottery_command("smoke", study_preset("smoke", {"rounds": 3, "branches": "random_reinit"}), "/tmp/runs")
        'mirl lottery --preset smoke --set rounds=3 branches=random_reinit --out /tmp/runs'
    """
    import shlex

    base = study_preset(preset).to_dict()
    follows_scope = cfg.rule == effective_rule(AUTO, cfg.scope)  # rule=auto gives it: no need to say it
    sets = [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in cfg.to_dict().items()
            if v != base[k] and k not in RUN_ONLY and not (k == "rule" and follows_scope)]
    words = ["mirl", "lottery", "--preset", preset] + (["--set", *sets] if sets else [])
    words += ["--out", str(out)] if out is not None else []
    return " ".join(shlex.quote(w) for w in [*words, *extra])


def recorded_config(record: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> StudyConfig:
    """The settings of a study from its ``config.json`` record (``non_default``, then ``extra``).

    The record's ``rule`` is kept as it ran: a study recorded before ``rule=auto`` with
    ``scope=layerwise`` and no rule of its own pruned with ``upstream`` (the default then).

    Example:
        >>> recorded_config({"non_default": {"scope": "layerwise"}, "rule": "upstream"}).rule
        'upstream'
        >>> recorded_config({"non_default": {"scope": "layerwise", "rule": "conv"}, "rule": "conv"}).rule
        'conv'
    """
    values = {**dict(record["non_default"]), **dict(extra or {})}
    values.setdefault("rule", record.get("rule", "upstream"))
    return study_preset("paper", values)


def non_default(cfg: StudyConfig) -> dict[str, Any]:
    """Settings that differ from the dataclass defaults and define the run's identity."""
    defaults = StudyConfig().to_dict()
    return {k: v for k, v in cfg.to_dict().items() if k not in NOT_HASHED and v != defaults[k]}


def dense_identity(cfg: StudyConfig) -> dict[str, Any]:
    """The settings that determine level 0 (dense training from theta_0)."""
    return {k: v for k, v in non_default(cfg).items() if k not in PRUNING_ONLY}


def config_hash(cfg: StudyConfig) -> str:
    """First 8 hex digits of the SHA-256 of the sorted non-default settings and the layout version
    (so a study of another folder layout never shares a name with one of this layout)."""
    from mirl.paths import LAYOUT_VERSION

    identity = {**non_default(cfg), "layout": LAYOUT_VERSION}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_name(preset: str, cfg: StudyConfig) -> str:
    """``<preset>_<hash>``: the folder name of a run under ``runs/``."""
    return f"{preset}_{config_hash(cfg)}"


__all__ = [
    "choices",
    "registries",
    "ConfigError",
    "STUDY_PRESETS",
    "check_preset",
    "check_together",
    "effective_rule",
    "setting_help",
    "StudyConfig",
    "config_hash",
    "load_config_file",
    "non_default",
    "parse_assignments",
    "parse_value",
    "lottery_command",
    "recorded_config",
    "run_name",
    "study_preset",
]
