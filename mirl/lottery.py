"""Iterative magnitude pruning with reset (lottery tickets), level by level, resumable.

Level 0 trains the dense network from the stored initial weights theta_0 (``init.pt``). Each
later level prunes ``fraction`` of the surviving weights of the previous level's trained network,
resets the survivors to theta_0 (or rewinds to theta_k, or re-draws them for the
``random_reinit`` control) and trains again with a fresh optimiser and schedule. Each level
lives in ``runs/<preset>_<hash>/level_<k>/``; a level with ``done.json`` is skipped on re-run, and
an interrupted level continues from its last periodic checkpoint.

Example:
    >>> run_dir = run_study("smoke", out="/tmp/mirl-runs", progress=False)  # doctest: +SKIP
    >>> sorted(p.name for p in run_dir.glob("level_*"))                    # doctest: +SKIP
    ['level_0', 'level_1', 'level_2']
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from mirl.config import StudyConfig, dense_identity, non_default, run_name, study_preset
from mirl.data.resolve import dataset_root, parse_repeats
from mirl.device import resolve_device
from mirl.distributed import DistInfo, broadcast_mask, init_distributed
from mirl.errors import MirlError
from mirl.fileio import atomic_write_json, remove_stale_temporaries
from mirl.models import build_model, load_checkpoint, save_checkpoint
from mirl.models.promptir import PromptIR
from mirl import paths
from mirl.paths import level_dir, runs_dir
from mirl.pruning.controls import one_shot_fraction, random_prune
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.mask import Mask, apply_mask, full_mask, load_mask, save_mask, write_sparsity_report
from mirl.runlock import RunLock
from mirl.train import TrainSettings, train_level

# The weights PromptIR defines but never calls (the network declares them).
UNUSED = PromptIR.unused_in_forward


def _trained_weights(run_dir: Path, level: int) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(paths.model_file(level_dir(run_dir, level)))
    return model.state_dict()


def compute_mask(cfg: StudyConfig, run_dir: Path, level: int, template: Mapping[str, torch.Tensor]) -> Mask:
    """The mask of ``level``: all ones at level 0, else pruned from the previous level."""
    if level == 0:
        return full_mask(template, cfg.rule, UNUSED)
    previous = load_mask(paths.mask_file(level_dir(run_dir, level - 1)))
    if cfg.control == "one_shot":
        return magnitude_prune(_trained_weights(run_dir, 0), None, one_shot_fraction(cfg.fraction, level), cfg.scope, cfg.rule, UNUSED)
    mask = magnitude_prune(_trained_weights(run_dir, level - 1), previous, cfg.fraction, cfg.scope, cfg.rule, UNUSED)
    if cfg.control == "random_prune":
        mask = random_prune(previous, mask, torch.Generator().manual_seed(cfg.seed * 7919 + level))
    return mask


def warn_collapse(level: int, empty: list[str], cfg: StudyConfig) -> None:
    """Say loudly when pruning removed whole layers that the forward pass uses."""
    if not empty:
        return
    import warnings

    what = "output.weight is empty: the network now returns its input unchanged. " if "output.weight" in empty else ""
    warnings.warn(
        f"level {level}: {len(empty)} layer(s) fully pruned ({', '.join(empty[:4])}{', ...' if len(empty) > 4 else ''}). "
        f"{what}Global magnitude pruning empties layers whose weights start small (large fan-in); "
        "scope=layerwise keeps every layer (see docs/lottery.md, 'Layer collapse').",
        stacklevel=2,
    )


def _is_reset(name: str, cfg: StudyConfig) -> bool:
    return cfg.reset_params == "all" or "weight" in name or "bias" in name


def starting_weights(cfg: StudyConfig, run_dir: Path, level: int, theta0: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """theta_0 (or theta_k, or a fresh draw) for the reset tensors; the rest from the previous level.

    Upstream resets only tensors named ``*weight*``/``*bias*``: prompts and attention
    temperatures carry their trained values into the next round (``reset_params=upstream``).
    """
    if level == 0:
        return dict(theta0)
    if cfg.control == "random_reinit":
        torch.manual_seed(cfg.seed * 7919 + 104729 * level)
        source = build_model(cfg.model).state_dict()
    elif cfg.reset == "rewind":
        source, _ = load_checkpoint(paths.rewind_weights(run_dir))
        source = source.state_dict()
    else:
        source = theta0
    previous = _trained_weights(run_dir, level - 1)
    return {n: (source[n] if _is_reset(n, cfg) else previous[n]).clone() for n in theta0}


def _evaluate(model: PromptIR, cfg: StudyConfig, data_root: Path, device: torch.device) -> dict[str, Any]:
    from mirl.evaluate import evaluate_model

    return evaluate_model(
        model, data_root, list(cfg.tasks), device=device, convention=cfg.convention,
        pad=cfg.test_pad, limit=cfg.eval_limit or None, progress=cfg.progress,
    )


def _level_metrics(level: int, report: Mapping[str, Any], scores: Mapping[str, Any], train: Mapping[str, Any]) -> dict[str, Any]:
    tasks = scores["tasks"]
    return {
        "level": level,
        "convention": scores["convention"],
        "test_crop": scores.get("test_crop"),
        "density_prunable": report["prunable"]["density"],
        "density_trainable": report["trainable"]["density"],
        "empty_tensors": report["empty_tensors"],
        "mean_psnr": sum(t["psnr"] for t in tasks.values()) / len(tasks),
        "mean_ssim": sum(t["ssim"] for t in tasks.values()) / len(tasks),
        "tasks": tasks,
        "train": dict(train),
    }


def run_replicates(
    preset: str = "quickstart",
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run (or resume) ``replicates`` independent studies, seeds ``seed .. seed + replicates - 1``,
    and return their run folders in seed order. Each replicate is a study of its own
    (:func:`run_study`): finished ones are reused, an interrupted one resumes.

    Example:
        >>> runs = run_replicates("smoke", {"replicates": 3}, progress=False)  # doctest: +SKIP
        >>> [json.load(open(r / "config.json"))["seed"] for r in runs]       # doctest: +SKIP
        [0, 1, 2]
    """
    values = dict(overrides or {})
    cfg = study_preset(preset, {**values, "progress": progress}, config_file)
    return [run_study(preset, {**values, "seed": cfg.seed + r}, config_file, out=out, progress=progress)
            for r in range(cfg.replicates)]


def run_study(
    preset: str = "quickstart",
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) a study and return its run directory ``<out>/<preset>_<hash>``.

    Example:
        >>> run_study("smoke", {"rounds": 1, "control": "random_reinit"}, progress=False)  # doctest: +SKIP
    """
    values = dict(overrides or {})
    values.setdefault("progress", progress)
    cfg = study_preset(preset, values, config_file)
    dist = init_distributed()
    device = resolve_device(cfg.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    run_dir = Path(out).expanduser() if out is not None else runs_dir()
    run_dir = run_dir / run_name(preset, cfg)
    record = {"name": run_dir.name, "preset": preset, "non_default": non_default(cfg), **cfg.to_dict()}
    _decided_by_main(dist, device, lambda: _check_same_config(run_dir, record) or 0)
    # Everything that can refuse the run is checked before the run folder is created.
    if dist.is_main:  # makes the built-in data set on first use
        dataset_root(cfg.data, cfg.max_test_side, build=True, progress=cfg.progress)
    dist.barrier()
    data_root = dataset_root(cfg.data, cfg.max_test_side, build=False)
    from mirl.data.datasets import TrainDataset

    train_set = TrainDataset(data_root, list(cfg.tasks), patch_size=cfg.patch_size, repeats=parse_repeats(cfg.repeats), seed=cfg.seed)
    lock = RunLock(run_dir)

    def start() -> int:
        """1: the run is finished (nothing to write); 0: locked and ready to write."""
        if _is_finished(run_dir, cfg):
            _tidy_finished(run_dir)
            return 1
        lock.acquire()
        try:
            _check_same_config(run_dir, record)  # another process may have started it meanwhile
            remove_stale_temporaries(run_dir)  # a killed run may have died inside an atomic write
            atomic_write_json(paths.run_config(run_dir), record)
        except BaseException:
            lock.release()
            raise
        return 0

    if _decided_by_main(dist, device, start) == 1:
        return run_dir
    try:
        _run_levels(cfg, run_dir, dist, device, data_root, train_set)
    finally:
        lock.release()
    return run_dir


def _run_levels(cfg: StudyConfig, run_dir: Path, dist: DistInfo, device: torch.device, data_root: Path, train_set: Any) -> None:
    """Train, prune and evaluate every level that is not done yet (rank 0 holds the run's lock)."""
    theta0 = _initial_weights(cfg, run_dir, dist)

    if dist.is_main:
        reuse_dense_level(cfg, run_dir)
    dist.barrier()
    for level in range(cfg.rounds + 1):
        ldir = level_dir(run_dir, level)
        if paths.is_finished(ldir):
            continue
        started = time.perf_counter()
        mask_path = paths.mask_file(ldir)
        if mask_path.exists():  # an interrupted level: its mask was saved before training began
            mask = load_mask(mask_path)
        else:
            mask = compute_mask(cfg, run_dir, level, theta0) if dist.is_main else full_mask(theta0, cfg.rule, UNUSED)
            mask = broadcast_mask(mask, dist, device)
            if dist.is_main:
                save_mask(mask_path, mask)
        report = None
        if dist.is_main:
            report = write_sparsity_report(paths.sparsity_file(ldir), mask, theta0, UNUSED, level=level, rule=cfg.rule, scope=cfg.scope, control=cfg.control)
            warn_collapse(level, report["empty_tensors"], cfg)
        net = build_model(cfg.model, impl=cfg.impl)
        net.load_state_dict(starting_weights(cfg, run_dir, level, theta0))
        apply_mask(net, mask)
        net.to(device)
        model: torch.nn.Module = net
        if dist.enabled:
            # The six convolutions upstream defines but never calls get no gradient (AdamW skips
            # them either way); DDP needs them marked as such.
            params = dict(net.named_parameters())
            for name in UNUSED:
                params[name].requires_grad_(False)
            model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        on_step = _rewind_hook(cfg, run_dir, dist) if level == 0 else None
        summary = train_level(model, mask, train_set, TrainSettings.from_study(cfg), ldir, device, level=level, dist=dist,
                              on_step=on_step)
        if dist.is_main:
            net.eval()
            save_checkpoint(paths.model_file(ldir), net, metadata={"run": run_dir.name, "level": level, "density_prunable": report["prunable"]["density"]})
            scores = _evaluate(net, cfg, data_root, device)
            summary["level_seconds"] = round(time.perf_counter() - started, 2)
            atomic_write_json(paths.metrics_file(ldir), _level_metrics(level, report, scores, summary))
            paths.train_state_file(ldir).unlink(missing_ok=True)
            atomic_write_json(paths.done_file(ldir), {"level": level, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        dist.barrier()


def reuse_dense_level(cfg: StudyConfig, run_dir: Path) -> Path | None:
    """Copy a finished level 0 from a sibling run that differs only in pruning settings.

    Level 0 (dense training from theta_0) does not depend on ``rounds``, ``fraction``,
    ``scope``, ``control`` or ``reset_params``, so comparing e.g. global pruning with the
    random re-initialisation control trains the dense network once. The copy is atomic and
    ``level_0/reused.json`` names its source. Returns the source run, or ``None``.
    """
    import json
    import shutil
    import tempfile

    target = level_dir(run_dir, 0)
    if target.exists() or cfg.reset == "rewind":
        return None
    wanted = dense_identity(cfg)
    for sibling in sorted(Path(run_dir).parent.glob("*/" + paths.run_config(".").name)):
        source = sibling.parent
        if source == Path(run_dir) or not paths.is_finished(level_dir(source, 0)) or not paths.init_weights(source).exists():
            continue
        try:
            other = study_preset("paper", {k: v for k, v in json.loads(sibling.read_text())["non_default"].items()})
        except (MirlError, KeyError, ValueError, TypeError):
            continue
        if dense_identity(other) != wanted:
            continue
        tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".level_0."))
        try:
            for name in paths.LEVEL_RESULT_FILES:
                shutil.copy2(level_dir(source, 0) / name, tmp / name)
            atomic_write_json(paths.reused_file(tmp), {"source": source.name, "reason": "same dense settings"})
            shutil.copy2(paths.done_file(level_dir(source, 0)), paths.done_file(tmp))
            if not paths.init_weights(run_dir).exists():
                shutil.copy2(paths.init_weights(source), paths.init_weights(run_dir))
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return source
    return None


def _check_same_config(run_dir: Path, record: Mapping[str, Any]) -> None:
    existing = paths.run_config(run_dir)
    if not existing.exists():
        return
    try:
        old = json.loads(existing.read_text())
    except (OSError, ValueError) as exc:
        raise MirlError(f"{existing} cannot be read ({exc}); remove {run_dir} to start the run again") from None
    if not isinstance(old, dict) or old.get("non_default") != record["non_default"]:
        raise MirlError(f"{existing} holds a different configuration; remove {run_dir} or change the settings")


def _is_finished(run_dir: Path, cfg: StudyConfig) -> bool:
    """Every level is done and ``config.json`` is there: reading the run needs no write.

    (``config.json`` keeps the settings the run was made with; call :func:`_check_same_config` first.)
    """
    return paths.is_run_dir(run_dir) and all(paths.is_finished(level_dir(run_dir, level)) for level in range(cfg.rounds + 1))


def _tidy_finished(run_dir: Path) -> None:
    """Remove what killed atomic writes left in a finished run, when the folder is writable and
    free; otherwise leave it (the results are complete, and reading writes nothing)."""
    if not any(p.is_file() for p in run_dir.rglob(".*.tmp")):
        return
    try:
        with RunLock(run_dir):
            remove_stale_temporaries(run_dir)
    except MirlError:
        pass


def _decided_by_main(dist: DistInfo, device: torch.device, decide: Callable[[], int]) -> int:
    """Run ``decide`` on rank 0 and give its answer to every rank; an error there stops them all."""
    if not dist.enabled:
        return decide()
    answer, error = -1, None
    if dist.is_main:
        try:
            answer = decide()
        except MirlError as exc:
            error = exc
    shared = torch.tensor([answer], dtype=torch.int64, device=device)
    torch.distributed.broadcast(shared, src=0)
    if error is not None:
        raise error
    if int(shared) < 0:
        raise MirlError("rank 0 stopped with an error (see its message); this rank stops too")
    return int(shared)


def _initial_weights(cfg: StudyConfig, run_dir: Path, dist: DistInfo) -> dict[str, torch.Tensor]:
    """theta_0, drawn once from ``cfg.seed`` and stored as ``init.pt`` (a mirl checkpoint)."""
    path = paths.init_weights(run_dir)
    if not path.exists():
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, impl=cfg.impl)
        if dist.is_main:
            save_checkpoint(path, model, metadata={"run": run_dir.name, "theta": 0})
        dist.barrier()
        return model.state_dict()
    model, _ = load_checkpoint(path)
    return model.state_dict()


def _rewind_hook(cfg: StudyConfig, run_dir: Path, dist: DistInfo):
    """Snapshot theta_k (``rewind.pt``) after ``rewind_steps`` steps of the dense level."""
    if cfg.reset != "rewind" or not dist.is_main:
        return None
    path = paths.rewind_weights(run_dir)
    if cfg.rewind_steps == 0 and not path.exists():
        model, _ = load_checkpoint(paths.init_weights(run_dir))
        save_checkpoint(path, model, metadata={"theta": 0})

    def hook(step: int, net: torch.nn.Module) -> None:
        if step == cfg.rewind_steps and not path.exists():
            save_checkpoint(path, net, metadata={"theta": step})  # type: ignore[arg-type]

    return hook
