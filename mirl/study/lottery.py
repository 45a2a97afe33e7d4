"""Iterative magnitude pruning with reset (lottery tickets) as one study tree, resumable.

A study folder (:mod:`mirl.paths`) holds one replicate per seed. In each replicate, level 0 of
the ``main`` chain trains the dense network from theta_0 (``init.pt``); main's level k prunes
``fraction`` of the weights that survived its level k-1, resets the survivors to theta_0 and trains
again with a fresh optimiser and schedule (or rewinds them to theta_t and resumes training at step t,
:mod:`mirl.study.rewind`). The branches of
level k (:mod:`mirl.branches`: ``random_reinit``, ``random_prune``, ``one_shot``, ``stability``)
start from main's saved mask and starting weights of that level and differ from it in one thing.

Every node (one level of main, or one branch of one level) lives in
``replicate_<r>/level_<k>/<branch>/``; a node with ``done.json`` is skipped on re-run, and an
interrupted one continues from its last periodic checkpoint.

Example:
    >>> study = run_study("smoke", {"branches": "random_reinit"}, out="/tmp/mirl-runs", progress=False)  # doctest: +SKIP
    >>> sorted(p.name for p in (study / "replicate_0" / "level_2").iterdir())                          # doctest: +SKIP
    ['main', 'random_reinit']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from mirl import paths
from mirl.branches import Branch, BranchContext, branch_seed, get_branch, node_code, trained_main_levels
from mirl.study.config import StudyConfig, config_hash, dense_identity, non_default, recorded_config, run_name, study_preset
from mirl.data.resolve import dataset_root, parse_repeats
from mirl.device import resolve_device
from mirl.study.distributed import DistInfo, broadcast_mask, init_distributed
from mirl.errors import MirlError
from mirl.fileio import atomic_write_json, build_folder, read_json, remove_stale_temporaries
from mirl.models import load_checkpoint, save_checkpoint
from mirl.models.networks import build_network
from mirl.models.promptir import PromptIR
from mirl.paths import MAIN, level_dir, replicate_dir, runs_dir
from mirl.pruning.mask import Mask, apply_mask, full_mask, load_mask, save_mask, write_sparsity_report
from mirl.pruning.health import norm_scale_warning, rule_warning
from mirl.pruning.reset import reset_weights
from mirl.runlock import RunLock
from mirl.study.log import TENSORBOARD_DIR, ScalarLog, run_log
from mirl.study.rewind import rewind_start, snapshot_hook
from mirl.study.stale import code_change, remove_stale, stale_message, stale_nodes
from mirl.study.batched import Member, batch_groups, can_batch, resolve_batch_nodes, train_levels_batched
from mirl.study.train import TrainSettings, train_level
from mirl.study.val_curve import FILE as VAL_CURVE_FILE, ValCurve, chain

# The weights PromptIR defines but never calls (the network declares them).
UNUSED = PromptIR.unused_in_forward

Node = tuple[int, int, str]  # (replicate, level, branch)

log = logging.getLogger(__name__)


@dataclass
class _Study:
    """One study being run: its settings, folder, process group, device and data."""

    cfg: StudyConfig
    run_dir: Path
    hash: str
    dist: DistInfo
    device: torch.device
    data_root: Path
    train_set: Any

    @property
    def name(self) -> str:
        return self.run_dir.name


def _trained_weights(replicate: Path, level: int, branch: str = MAIN) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(paths.model_file(level_dir(replicate, level, branch)))
    return model.state_dict()


def main_mask(cfg: StudyConfig, replicate: Path, level: int, template: Mapping[str, torch.Tensor],
              dataset: Any = None, device: torch.device | None = None) -> Mask:
    """Main's mask at ``level``: all ones at level 0, else pruned from main's level - 1 by the
    study's ``pruner`` (:mod:`mirl.study.pruners`; ``template`` is theta_0, ``dataset`` the
    training set a gradient-based rule reads)."""
    full = full_mask(template, cfg.rule, UNUSED)
    if level == 0:
        return full
    from mirl.study.pruners import PruneContext, prune_main

    previous = load_mask(paths.mask_file(level_dir(replicate, level - 1)), expected=full)
    ctx = PruneContext(cfg=cfg, level=level, previous=previous, trained=_trained_weights(replicate, level - 1),
                       start=main_starting_weights(cfg, replicate, level, template), unused=frozenset(UNUSED),
                       dataset=dataset, seed=replicate_seed(cfg, paths.replicate_number(replicate) or 0),
                       device=device or torch.device("cpu"))
    return prune_main(cfg.pruner, ctx)


def level_mask(study: _Study, r: int, level: int, theta0: Mapping[str, torch.Tensor]) -> Mask:
    """Main's mask at ``level``, made once: read from main's level folder when it is there (saved
    by main, or by a branch of that level that started first), else pruned (:func:`main_mask`)
    and saved there, never over another process's (the first file wins and every process uses it).

    Example:
        >>> mask = level_mask(study, 0, 1, theta0)   # doctest: +SKIP
    """
    cfg, dist = study.cfg, study.dist
    replicate = replicate_dir(study.run_dir, r)
    path, full = paths.mask_file(level_dir(replicate, level)), full_mask(theta0, cfg.rule, UNUSED)
    mask = full
    if dist.is_main:
        if not path.exists():
            previous = level_dir(replicate, level - 1)
            if level > 0 and not paths.is_finished(previous):
                raise MirlError(f"{path.parent}: main's mask of level {level} is pruned from its trained level {level - 1}, "
                                f"which {previous} does not hold yet; run main's levels first")
            _save_once(path, main_mask(cfg, replicate, level, theta0, study.train_set, study.device))
        mask = load_mask(path, expected=full)
    return broadcast_mask(mask, dist, study.device)


def _save_once(path: Path, mask: Mask) -> None:
    """Save ``mask`` at ``path`` unless another process saved one there first (then that one stays)."""
    for _attempt in range(3):
        try:
            save_mask(path, mask, exclusive=True)
        except FileExistsError:
            return
        except FileNotFoundError:
            continue  # a job starting main's level removed the temporary as a dead one's: write it again
        return


def main_starting_weights(cfg: StudyConfig, replicate: Path, level: int, theta0: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Main's start at ``level``: theta_0 (or theta_k with ``reset=rewind``) for the reset tensors,
    main's trained level - 1 for the rest (:mod:`mirl.pruning.reset`)."""
    if level == 0:
        return {n: t.clone() for n, t in theta0.items()}
    if cfg.reset == "rewind":
        source = load_checkpoint(paths.rewind_weights(replicate))[0].state_dict()
    else:
        source = dict(theta0)
    return reset_weights(source, _trained_weights(replicate, level - 1), cfg.reset_params)


def warn_collapse(level: int, empty: list[str], cfg: StudyConfig) -> None:
    """Say loudly when pruning removed whole layers that the forward pass uses."""
    if not empty:
        return
    what = "output.weight is empty: the network now returns its input unchanged. " if "output.weight" in empty else ""
    warnings.warn(
        f"level {level}: {len(empty)} layer(s) fully pruned ({', '.join(empty[:4])}{', ...' if len(empty) > 4 else ''}). "
        f"{what}Global magnitude pruning empties layers whose weights start small (large fan-in); "
        "scope=layerwise keeps every layer (see docs/lottery.md, 'Layer collapse').",
        stacklevel=2,
    )


def _evaluate(net: torch.nn.Module, study: _Study, limit: int | Callable[[Sequence[str]], Sequence[int]] = 0,
              known: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Score ``net`` on the study's test images: the first ``limit`` (0: eval_limit's) or those a
    selection picks. ``known``: scores on every test image by weights fingerprint; a network among
    them is not restored again, its scores are read off (the linear path's ends)."""
    from mirl.scoring.evaluate import EvalSettings, evaluate_model, subset_results

    cfg = study.cfg
    select = limit if callable(limit) else None
    first = None if select is not None else (limit or cfg.eval_limit) or None
    full = known.get(weights_fingerprint(net.state_dict())) if known else None
    if full is not None:
        return subset_results(full, first, select)
    settings = EvalSettings(convention=cfg.convention, pad=cfg.test_pad, select=select, limit=first)
    return evaluate_model(net, study.data_root, list(cfg.tasks), settings, device=study.device, progress=cfg.progress)


def _known_scores(study: _Study, ready: "_ReadyNode", weights: str, scores: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Scores on every test image by weights fingerprint, for what a branch scores after training:
    the node's own, and main's of the same level when it is finished (none when ``eval_limit``
    leaves images out)."""
    if study.cfg.eval_limit:
        return {}
    known = {weights: scores}
    main = level_dir(replicate_dir(study.run_dir, ready.r), ready.level)
    if paths.is_finished(main):
        done, metrics = _read_node_json(paths.done_file(main), "done marker"), _read_node_json(paths.metrics_file(main), "scores")
        if isinstance(done.get("weights"), str) and isinstance(metrics.get("tasks"), dict):
            known[done["weights"]] = {"convention": metrics.get("convention"), "tasks": metrics["tasks"]}
    return known


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


def study_nodes(cfg: StudyConfig) -> list[Node]:
    """Every node of a study, in the order they run: per replicate and level, main, then its branches.

    Example:
        >>> study_nodes(study_preset("smoke", {"rounds": 1, "branches": "stability,random_reinit"}))
        [(0, 0, 'main'), (0, 0, 'stability'), (0, 1, 'main'), (0, 1, 'stability'), (0, 1, 'random_reinit')]
    """
    return [(r, level, name) for r in range(cfg.replicates) for level in range(cfg.rounds + 1)
            for name in (MAIN, *cfg.branches) if name == MAIN or get_branch(name).runs_at(level)]


def run_study(
    preset: str = "quickstart",
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    nodes: Iterable[Node] | None = None,
    shared: bool = False,
    rerun_stale: bool = False,
    note: str | None = None,
) -> Path:
    """Run (or resume) a study, every replicate and branch, and return its folder ``<out>/<preset>_<hash>``.

    ``nodes`` runs only those ``(replicate, level, branch)`` nodes (what they start from must be
    finished); a node's files do not depend on the order nodes run in. ``shared``: other
    processes run other nodes of the same study at the same time (the jobs of
    :mod:`mirl.study.launch`): the study is locked only while its files are set up, each node while it runs.
    A study holding stale nodes (:mod:`mirl.study.stale`) is refused, naming them; ``rerun_stale``
    deletes them first, so that they (and only they) are trained again. ``note`` (e.g. how the
    command chose processes and threads) is logged, and written to ``log.txt``, once the study runs.

    Example:
        >>> run_study("smoke", {"replicates": 2, "branches": "random_reinit,stability"}, progress=False)  # doctest: +SKIP
    """
    values = dict(overrides or {})
    values.setdefault("progress", progress)
    cfg = study_preset(preset, values, config_file)
    dist = init_distributed()
    device = resolve_device(cfg.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    run_dir = (Path(out).expanduser() if out is not None else runs_dir()) / run_name(preset, cfg)
    record = {"format": paths.LAYOUT_VERSION, "name": run_dir.name, "preset": preset, "hash": config_hash(cfg),
              "non_default": non_default(cfg), **cfg.to_dict()}
    _decided_by_main(dist, device, lambda: _check_same_config(run_dir, record) or 0)
    # Everything that can refuse the run is checked before the study folder is created.
    if dist.is_main:  # makes the built-in data set on first use
        dataset_root(cfg.data, cfg.max_test_side, build=True, progress=cfg.progress)
    dist.barrier()
    data_root = dataset_root(cfg.data, cfg.max_test_side, build=False)
    fingerprint = _decided_fingerprint(dist, device, run_dir, data_root, cfg)
    from mirl.data.datasets import TrainDataset

    train_set = TrainDataset(data_root, list(cfg.tasks), patch_size=cfg.patch_size, repeats=parse_repeats(cfg.repeats), seed=cfg.seed)
    study = _Study(cfg, run_dir, record["hash"], dist, device, data_root, train_set)
    wanted = list(nodes) if nodes is not None else study_nodes(cfg)
    lock = RunLock(run_dir)

    def start() -> int:
        """1: every wanted node is finished (nothing to write); 0: locked and ready to write."""
        stale = stale_nodes(run_dir, study_nodes(cfg)) if paths.is_run_dir(run_dir) else {}
        if stale and not rerun_stale:
            raise MirlError(stale_message(run_dir, stale))
        if not stale and paths.is_run_dir(run_dir) and all(_finished_node(study, *node) for node in wanted):
            if not shared:
                _tidy_finished(run_dir)
            return 1
        lock.acquire(wait=120.0 if shared else 0.0)
        try:
            _check_same_config(run_dir, record)  # another process may have started it meanwhile
            if not shared:  # a killed run may have died inside an atomic write (shared: each node cleans its own)
                _remove_dead_temporaries(run_dir)
            if stale:
                gone = stale_nodes(run_dir, study_nodes(cfg))  # as found under the lock
                log.warning("%s: training %d stale node(s) again: %s", run_dir.name, len(gone), ", ".join(map(str, gone)))
                remove_stale(run_dir, gone)
            atomic_write_json(paths.run_config(run_dir), record)
            if not paths.data_fingerprint(run_dir).exists():
                atomic_write_json(paths.data_fingerprint(run_dir), fingerprint)
        except BaseException:
            lock.release()
            raise
        if shared:
            lock.release()  # from here on, each node is locked while it runs
        return 0

    if _decided_by_main(dist, device, start) == 1:
        return run_dir
    try:
        with run_log(run_dir) if dist.is_main else contextlib.nullcontext():
            on = f"cpu, {torch.get_num_threads()} thread(s)" if device.type == "cpu" else str(device)
            if wanted:
                log.info("%s: %d node(s) to run or check on %s (settings hash %s)", run_dir.name, len(wanted), on, study.hash)
            else:  # the setup before a job graph runs the nodes (mirl.study.launch.StudySpec.run)
                log.info("%s: study folder ready (settings hash %s); its nodes run as jobs", run_dir.name, study.hash)
            if note:
                log.info("%s: %s", run_dir.name, note)
            flagged = rule_warning(cfg.rule, cfg.scope)
            if flagged:
                log.warning("%s: %s", run_dir.name, flagged)
            batch, why = resolve_batch_nodes(cfg, device) if len(wanted) > 1 and not dist.enabled else (1, "")
            if batch > 1:
                log.info("%s: %s", run_dir.name, why)
            theta = {}
            for group in batch_groups(wanted, batch):
                for r in sorted({r for r, _, _ in group} - set(theta)):
                    # theta_0 and the reused dense level are the replicate's: written once, under the study's lock
                    with lock.acquire(wait=120.0) if shared and dist.is_main else contextlib.nullcontext():
                        theta[r] = _initial_weights(study, r)
                        if dist.is_main:
                            reuse_dense_level(study, r)
                        dist.barrier()
                # a finished node is not touched (not even by a lock file)
                todo = [n for n in group if not _decided_by_main(dist, device, lambda n=n: int(_finished_node(study, *n)))]
                # Each node has its own lock too, so that jobs running other nodes of this study (shared)
                # and a plain run of it never write one node at once; a requeued job may find its old
                # process still exiting, hence the short wait.
                with contextlib.ExitStack() as held:
                    for r, level, branch in todo if dist.is_main else ():
                        node_lock = RunLock(level_dir(replicate_dir(run_dir, r), level, branch))
                        held.enter_context(node_lock.acquire(wait=30.0 if shared else 0.0))
                        if shared:
                            remove_stale_temporaries(node_lock.run_dir)
                    _run_nodes(study, todo, theta)
    finally:
        lock.release()
    return run_dir


def replicate_seed(cfg: StudyConfig, replicate: int) -> int:
    """The seed of replicate ``r``: ``seed + r`` (its theta_0 and main's data order)."""
    return cfg.seed + int(replicate)


def node_identity(cfg: StudyConfig, replicate: int, level: int, branch: str) -> dict[str, Any]:
    """What a node's ``done.json``, ``metrics.json`` and ``train_state.pt`` record of its place: replicate,
    level, branch and seed (main: the replicate's; a branch: :func:`mirl.branches.branch_seed`).

    Example:
        >>> node_identity(study_preset("smoke"), 1, 0, "main")
        {'replicate': 1, 'level': 0, 'branch': 'main', 'seed': 1}
    """
    seed = replicate_seed(cfg, replicate)
    return {"replicate": int(replicate), "level": int(level), "branch": branch,
            "seed": seed if branch == MAIN else branch_seed(seed, level, branch)}


def weights_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A short hash of a network's weights (names, shapes, values), recorded in ``metrics.json`` so
    that readers can tell two replicates holding the same trained network (a copied folder).

    Example:
        >>> weights_fingerprint({"w": torch.zeros(2)}) == weights_fingerprint({"w": torch.zeros(2)}) != weights_fingerprint({"w": torch.ones(2)})
        True
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_identity(node: Path, record: Mapping[str, Any], wanted: Mapping[str, Any], file: Path) -> None:
    """Refuse a finished node whose record (``file``) names another place, or none."""
    keys = [k for k in wanted if k != "seed" or "seed" in record or file.name != paths.done_file(".").name]
    missing = [k for k in keys if k not in record]
    if missing:
        raise MirlError(f"{file} does not record which node it belongs to (no {', '.join(missing)}: written by an older mirl, "
                        f"or copied in); delete the folder {node} to run this node again")
    different = [f"{k} {record[k]!r} (here: {wanted[k]!r})" for k in keys if record[k] != wanted[k]]
    if different:
        raise MirlError(f"{file} belongs to another node: it records {', '.join(different)}; these are another node's files "
                        f"copied here: delete the folder {node} to run this node again")


def _finished_node(study: _Study, r: int, level: int, branch: str) -> bool:
    """Whether a node is done; a done node that is not this study's, or is incomplete, is an error."""
    node = level_dir(replicate_dir(study.run_dir, r), level, branch)
    if not paths.is_finished(node):
        return False
    done = _read_node_json(paths.done_file(node), "done marker")
    if done.get("hash") != study.hash:
        raise MirlError(f"{node}: these results were written by study {done.get('study', 'unknown')!r} (settings hash "
                        f"{done.get('hash', 'none')}), not by {study.name}; move the folder {study.run_dir} away "
                        "(it holds another study's files) and run again")
    for file in (paths.model_file(node), paths.mask_file(node)):
        if not file.is_file():
            raise MirlError(f"{node}: the level is marked done but {file.name} is missing; remove {paths.done_file(node)} "
                            "to train the level again")
    metrics = _read_node_json(paths.metrics_file(node), "scores")
    wanted = node_identity(study.cfg, r, level, branch)
    _check_identity(node, done, wanted, paths.done_file(node))  # a done.json written before it held the seed has none; metrics.json always had it
    _check_identity(node, metrics, wanted, paths.metrics_file(node))
    if branch != MAIN and not get_branch(branch).is_current(study.cfg, metrics):
        raise MirlError(f"{node}: scored with other {branch} settings than these (see its metrics.json); remove the "
                        "folder to redo it, or use the settings it was made with")
    return True


def _read_node_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = read_json(path, advice=f"it is the {what} of a finished level: remove {paths.done_file(path.parent)} to train "
                                      "and score the level again")
    except FileNotFoundError:
        data = None
    if not isinstance(data, dict):
        raise MirlError(f"{path}: the {what} of a finished level is {'missing' if data is None else 'not a JSON object'}; "
                        f"remove {paths.done_file(path.parent)} to train and score the level again")
    return data


def branch_context(cfg: StudyConfig, replicate: Path, level: int, branch: str,
                   theta0: Mapping[str, torch.Tensor]) -> BranchContext:
    """What ``branch`` of ``level`` starts from: main's saved mask and starting weights of that
    level (saved once main's level - 1 is trained, :func:`level_mask`), the replicate's seed and
    the branch's own seed."""
    node, main = level_dir(replicate, level, branch), level_dir(replicate, level)
    if trained_main_levels(branch, level) > level and not paths.is_finished(main):
        raise MirlError(f"{node}: the branch reads main's trained level {level}, which {main} does not hold yet; "
                        "run main's levels first")
    if not paths.mask_file(main).is_file():
        raise MirlError(f"{node}: a branch starts from main's mask of level {level}, which {main} does not hold yet; "
                        f"run main's levels up to {level - 1} first")
    rep_seed = replicate_seed(cfg, paths.replicate_number(replicate) or 0)
    return BranchContext(cfg=cfg, replicate=replicate, replicate_seed=rep_seed, level=level,
                         seed=branch_seed(rep_seed, level, branch), theta0=theta0,
                         main_mask=load_mask(paths.mask_file(level_dir(replicate, level)), expected=full_mask(theta0, cfg.rule, UNUSED)),
                         main_start=main_starting_weights(cfg, replicate, level, theta0), unused=frozenset(UNUSED))


@dataclass
class _ReadyNode:
    """A node set up to train: its network (masked, on the device, at its starting weights), mask,
    own copy of the training set and settings, hooks and what it records once trained."""

    r: int
    level: int
    branch: str
    node: Path
    rule: Branch | None
    ctx: BranchContext | None
    net: torch.nn.Module
    model: torch.nn.Module  # net, or its DDP wrapper
    mask: Mask
    report: dict[str, Any] | None
    dataset: Any
    settings: TrainSettings
    on_step: Callable[..., None] | None
    curve: ValCurve | None
    identity: dict[str, Any]
    start: dict[str, Any] | None  # a rewind point (mirl.study.rewind), None: step 0
    started: float


def _prepare_node(study: _Study, r: int, level: int, branch: str, theta0: Mapping[str, torch.Tensor]) -> _ReadyNode | None:
    """Set up one node to train (its mask saved first), or ``None`` when it is finished."""
    cfg, dist, device = study.cfg, study.dist, study.device
    replicate = replicate_dir(study.run_dir, r)
    node = level_dir(replicate, level, branch)
    if _decided_by_main(dist, device, lambda: int(_finished_node(study, r, level, branch))):
        return None
    started = time.perf_counter()
    if dist.is_main:
        log.info("replicate %d, level %d, %s: training in %s", r, level, branch, node)
    rep_seed = replicate_seed(cfg, r)
    rule: Branch | None = None if branch == MAIN else get_branch(branch)
    if rule is not None and level > 0:
        level_mask(study, r, level, theta0)  # main's mask of this level, saved by main or by the first branch to start
    ctx = branch_context(cfg, replicate, level, branch, theta0) if rule is not None else None
    other = rule.network_config(ctx) if rule is not None else None  # another network (dense_same_size)
    start = rule.starting_weights(ctx) if other is not None else None
    template = start if start is not None else theta0  # the shapes of the network that trains
    mask_path = paths.mask_file(node)
    if rule is None:
        mask = level_mask(study, r, level, theta0)
    elif mask_path.exists():  # an interrupted node: its mask was saved before training began
        mask = load_mask(mask_path, expected=full_mask(template, cfg.rule, UNUSED))
    else:
        mask = full_mask(template, cfg.rule, UNUSED) if other is not None or not dist.is_main else rule.mask(ctx)
        mask = broadcast_mask(mask, dist, device)
        if dist.is_main:
            save_mask(mask_path, mask)
    report = None
    if dist.is_main:
        report = write_sparsity_report(paths.sparsity_file(node), mask, template, UNUSED, level=level, rule=cfg.rule,
                                       scope=cfg.scope, branch=branch)
        warn_collapse(level, report["empty_tensors"], cfg)
        cut_norms = norm_scale_warning(report)
        if cut_norms:
            log.warning("replicate %d, level %d, %s: %s", r, level, branch, cut_norms)
    net = build_network(cfg.model, cfg.impl) if other is None else PromptIR(other, impl=cfg.impl)
    if start is None:
        start = main_starting_weights(cfg, replicate, level, theta0) if rule is None else rule.starting_weights(ctx)
    net.load_state_dict(start)
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
    data_seed = rep_seed if rule is None else rule.data_seed(ctx)
    dataset = copy.copy(study.train_set)  # its own seed and epoch: nodes trained as one each draw their own data
    dataset.seed = data_seed
    settings = dataclasses.replace(TrainSettings.from_study(cfg), seed=data_seed)
    on_step = snapshot_hook(cfg, replicate, dist) if (level == 0 and rule is None) else None
    curve = _val_curve(study, node, settings, net) if (level == 0 and rule is None and dist.is_main) else None
    return _ReadyNode(r, level, branch, node, rule, ctx, net, model, mask, report, dataset, settings, chain(on_step, curve),
                      curve, node_identity(cfg, r, level, branch),
                      None if rule is not None and rule.scratch else rewind_start(cfg, replicate, level, device), started)


def _train_alone(study: _Study, ready: _ReadyNode) -> dict[str, Any]:
    """Train one node on its own (resuming from its ``train_state.pt``); its training summary."""
    return train_level(ready.model, ready.mask, ready.dataset, ready.settings, ready.node, study.device, level=ready.level,
                       dist=study.dist, on_step=ready.on_step, node=ready.identity, start=ready.start)


def _train_together(study: _Study, group: Sequence[_ReadyNode]) -> list[dict[str, Any]]:
    """Train nodes of one level and shape as one network (:mod:`mirl.study.batched`); their summaries."""
    names = ", ".join(f"r{g.r} {g.branch}" for g in group)
    log.info("level %d: %d nodes trained as one (%s)", group[0].level, len(group), names)
    members = [Member(g.net, g.mask, g.dataset, g.settings, g.node, g.identity) for g in group]
    return train_levels_batched(members, study.device, group[0].level)


def _finish_node(study: _Study, ready: _ReadyNode, summary: dict[str, Any]) -> None:
    """Save, score and record a trained node (``done.json`` last)."""
    dist, net, node = study.dist, ready.net, ready.node
    r, level, branch, rule = ready.r, ready.level, ready.branch, ready.rule
    if dist.is_main:
        net.eval()
        save_checkpoint(paths.model_file(node), net, metadata={"run": study.name, "replicate": r, "level": level,
                                                               "branch": branch, "density_prunable": ready.report["prunable"]["density"]})
        scores = _evaluate(net, study)
        weights = weights_fingerprint(net.state_dict())
        known = _known_scores(study, ready, weights, scores) if rule is not None else {}
        extra = rule.after_training(ready.ctx, net, lambda n, limit: _evaluate(n, study, limit, known)) if rule is not None else {}
        summary["level_seconds"] = round(time.perf_counter() - ready.started, 2)
        _log_scores(node, f"replicate {r}, level {level}, {branch}", scores, summary)
        record = {"study": study.name, "hash": study.hash, **ready.identity, **node_code(branch),
                  "weights": weights}
        curve = ready.curve
        atomic_write_json(paths.metrics_file(node), {**_level_metrics(level, ready.report, scores, summary), **record,
                                                      "data_seed": ready.settings.seed, **extra,
                                                      **({"val_curve": curve.result()} if curve is not None and not curve.failed else {})})
        paths.train_state_file(node).unlink(missing_ok=True)
        (node / VAL_CURVE_FILE).unlink(missing_ok=True)
        atomic_write_json(paths.done_file(node), {**record, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    dist.barrier()


def _run_nodes(study: _Study, nodes: Sequence[Node], theta: Mapping[int, Mapping[str, torch.Tensor]]) -> None:
    """Train, save and score ``nodes`` (none waits for another) unless finished: those that can
    train together and have networks of one shape as one network, the others alone."""
    readies = [ready for ready in (_prepare_node(study, r, level, branch, theta[r]) for r, level, branch in nodes) if ready]
    alone: list[_ReadyNode] = readies if len(readies) < 2 else []
    together: dict[tuple, list[_ReadyNode]] = {}
    for ready in readies if len(readies) > 1 else ():
        why = can_batch(ready.settings, ready.node, ready.on_step is not None, ready.start, study.dist)
        if why is None:
            shapes = tuple((n, tuple(t.shape)) for n, t in ready.net.state_dict().items())
            together.setdefault(shapes, []).append(ready)
        else:
            alone.append(ready)
            log.info("replicate %d, level %d, %s trains alone: %s", ready.r, ready.level, ready.branch, why)
    for group in together.values():
        if len(group) == 1:
            alone += group
            continue
        for ready, summary in zip(group, _train_together(study, group)):
            _finish_node(study, ready, summary)
    for ready in alone:
        _finish_node(study, ready, _train_alone(study, ready))


def _val_curve(study: _Study, node: Path, settings: TrainSettings, net: torch.nn.Module) -> ValCurve | None:
    """The dense level's validation curve (:mod:`mirl.study.val_curve`), step 0 scored; ``None`` with ``val_curve_images=0``."""
    from mirl.scoring.evaluate import EvalSettings, evaluate_model
    from mirl.study.train import epoch_batches

    cfg = study.cfg
    if cfg.val_curve_images == 0:
        return None
    per_epoch = len(epoch_batches(len(study.train_set), settings.batch_size, settings.seed, 0, 0, study.dist, settings.steps_per_epoch))
    evaluate = EvalSettings(convention=cfg.convention, pad=cfg.test_pad, limit=cfg.val_curve_images, split="val")
    curve = ValCurve(node, lambda n: evaluate_model(n, study.data_root, list(cfg.tasks), evaluate, device=study.device, progress=False),
                     total_steps=per_epoch * settings.epochs)
    curve.start(net)
    return curve


def _log_scores(node: Path, what: str, scores: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    """The node's test PSNR per task as TensorBoard scalars at its last step, and one log line."""
    tasks = scores["tasks"]
    gains = {t: v["psnr"] - v["input_psnr"] for t, v in tasks.items()}
    scalars = ScalarLog(node, "test")
    scalars.add({**{f"test/psnr/{t}": v["psnr"] for t, v in tasks.items()},
                 **{f"test/gain_over_input/{t}": g for t, g in gains.items()}}, step=int(summary["steps"]))
    scalars.close()
    log.info("%s: done in %.0f s; test PSNR %s", what, summary["level_seconds"],
             ", ".join(f"{t} {v['psnr']:.2f} dB ({gains[t]:+.2f} over the input)" for t, v in tasks.items()))


def reuse_dense_level(study: _Study, r: int) -> Path | None:
    """Copy a finished dense level 0 (main) from a sibling study's replicate with the same dense
    settings and the same seed.

    Level 0 does not depend on ``rounds``, ``fraction``, ``scope`` or ``reset_params``, nor on
    the branches (a sibling that recorded other data files is passed over), so e.g. the quickstart and the evidence study train seed 0's dense network once.
    The copy is atomic and ``reused.json`` names its source; a sibling whose files are damaged is
    passed over with a warning. Returns the source replicate folder, or ``None``.
    """
    cfg = study.cfg
    replicate = replicate_dir(study.run_dir, r)
    target = level_dir(replicate, 0)
    if target.exists() or cfg.reset == "rewind":
        return None
    wanted = (_without_seed(dense_identity(cfg)), replicate_seed(cfg, r))
    for sibling in sorted(study.run_dir.parent.glob("*/" + paths.run_config(".").name)):
        source_study = sibling.parent
        if source_study == study.run_dir:
            continue
        try:
            record = json.loads(sibling.read_text())
            if record.get("format") != paths.LAYOUT_VERSION:
                continue
            other = recorded_config(record)
        except (MirlError, KeyError, ValueError, TypeError, OSError):
            continue
        if not _same_data(study.run_dir, source_study):
            continue  # trained on other files (e.g. the built-in corpus before its val split)
        for rr in paths.replicate_numbers(source_study):
            source = replicate_dir(source_study, rr)
            if (_without_seed(dense_identity(other)), replicate_seed(other, rr)) != wanted:
                continue
            if not paths.is_finished(level_dir(source, 0)) or not paths.init_weights(source).is_file():
                continue
            try:
                made = read_json(paths.done_file(level_dir(source, 0)))
            except (OSError, MirlError):
                continue
            if not isinstance(made, dict) or code_change(MAIN, made) is not None:
                continue  # made by another version of main: stale there too
            try:
                _copy_dense_level(study, source, replicate)
            except (OSError, ValueError, MirlError) as exc:
                warnings.warn(f"not reusing the dense level of {source}: {exc}", stacklevel=2)
                continue
            return source
    return None


def _same_data(run_dir: Path, other: Path) -> bool:
    """Whether two studies recorded the same data fingerprint (``data.json``)."""
    try:
        return json.loads(paths.data_fingerprint(run_dir).read_text()) == json.loads(paths.data_fingerprint(other).read_text())
    except (OSError, ValueError):
        return False


def _without_seed(identity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in identity.items() if k != "seed"}


def _copy_dense_level(study: _Study, source: Path, replicate: Path) -> None:
    """Copy ``source``'s level 0 main (and theta_0) into ``replicate``, atomically."""
    target = level_dir(replicate, 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    origin = level_dir(source, 0)
    metrics = json.loads(paths.metrics_file(origin).read_text())
    if not isinstance(metrics, dict):
        raise ValueError(f"{paths.metrics_file(origin)} is not a JSON object")
    with build_folder(target) as tmp:
        for name in paths.LEVEL_RESULT_FILES:
            shutil.copy2(origin / name, tmp / name)
        if (origin / TENSORBOARD_DIR).is_dir():  # its curves, for TensorBoard
            shutil.copytree(origin / TENSORBOARD_DIR, tmp / TENSORBOARD_DIR)
        load_checkpoint(tmp / paths.model_file(".").name)  # a damaged file is refused here, not later
        identity = {"study": study.name, "hash": study.hash,
                    **node_identity(study.cfg, paths.replicate_number(replicate) or 0, 0, MAIN), **node_code(MAIN)}
        atomic_write_json(paths.metrics_file(tmp), {**metrics, **identity, "reused_from": str(source)})
        atomic_write_json(paths.reused_file(tmp), {"source": str(source), "reason": "same dense settings and seed"})
        atomic_write_json(paths.done_file(tmp), {**identity, "reused_from": str(source), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        init = paths.init_weights(replicate)
        if not init.exists():
            part = init.with_name(f".{init.name}.tmp")
            shutil.copy2(paths.init_weights(source), part)
            os.replace(part, init)


def _check_same_config(run_dir: Path, record: Mapping[str, Any]) -> None:
    existing = paths.run_config(run_dir)
    if not existing.exists():
        if run_dir.is_dir() and (paths.replicate_numbers(run_dir) or paths.old_layout(run_dir)):
            raise MirlError(f"{run_dir} holds results but no {existing.name}: it may be another study's folder under this "
                            f"name; move it away, or restore its {existing.name}")
        return
    try:
        old = json.loads(existing.read_text())
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        expected = existing.with_name(existing.name + ".expected")
        try:
            atomic_write_json(expected, record)
            how = f"if {run_dir} holds this study, restore the file with `mv {expected} {existing}` (it is what this command would write)"
        except (OSError, MirlError):
            how = f"if {run_dir} holds this study, restore the file (`mirl lottery ... --list-settings` shows its settings)"
        raise MirlError(f"{existing} cannot be read ({str(exc)[:80]}); {how}; the finished levels are kept") from None
    if old.get("format") != paths.LAYOUT_VERSION:
        raise MirlError(f"{run_dir} is a study of an older mirl layout (flat level_<k> folders); recreate it in the study "
                        f"tree with `mirl lottery --preset {record['preset']} --out <new folder>`")
    if old.get("non_default") != record["non_default"]:
        raise MirlError(f"{existing} holds a different configuration; remove {run_dir} or change the settings")


def _decided_fingerprint(dist: DistInfo, device: torch.device, run_dir: Path, data_root: Path, cfg: StudyConfig) -> dict[str, Any]:
    """The data's fingerprint; refused (on every rank) when it differs from the one the study recorded."""
    from mirl.data.fingerprint import data_fingerprint, fingerprint_changes

    found = data_fingerprint(data_root, list(cfg.tasks))

    def check() -> int:
        recorded = paths.data_fingerprint(run_dir)
        if recorded.is_file():
            try:
                old = json.loads(recorded.read_text())
            except (OSError, ValueError) as exc:
                raise MirlError(f"{recorded} cannot be read ({str(exc)[:80]}); remove it to record the data as it is now") from None
            changes = fingerprint_changes(old, found)
            if changes:
                raise MirlError(f"{run_dir}: its data folder {data_root} changed since the study began ({len(changes)} "
                                f"file(s): {', '.join(changes[:4])}{', ...' if len(changes) > 4 else ''}); put the data back, "
                                "or run the study in a new --out folder")
        return 0

    _decided_by_main(dist, device, check)
    return found


def _tidy_finished(run_dir: Path) -> None:
    """Remove what killed atomic writes left in a finished study, when the folder is writable and
    free; otherwise leave it (the results are complete, and reading writes nothing)."""
    if not any(p.is_file() for p in run_dir.rglob(".*.tmp")):
        return
    try:
        with RunLock(run_dir):
            _remove_dead_temporaries(run_dir)
    except MirlError:
        pass


def _remove_dead_temporaries(run_dir: Path) -> list[Path]:
    """Remove what killed atomic writes left in a study whose lock the caller holds: those outside
    the node folders, and those of each node whose own lock is free (its writer is gone); a node
    that another process holds (a job of ``--launcher``) is writing them now and is left alone."""
    by_node: dict[Path | None, list[Path]] = {}
    for path in run_dir.rglob(".*.tmp"):
        if path.is_file():
            node = next((p for p in path.parents if paths.node_of(p) is not None and p.is_relative_to(run_dir)), None)
            by_node.setdefault(node, []).append(path)
    removed = []
    for node, files in by_node.items():
        try:
            with RunLock(node) if node is not None else contextlib.nullcontext():
                for path in files:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        except MirlError as exc:
            log.info("not removing the temporaries of %s: %s", node, exc)
    return removed


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


def _initial_weights(study: _Study, r: int) -> dict[str, torch.Tensor]:
    """theta_0 of replicate ``r``, drawn once from its seed and stored as ``init.pt``."""
    path = paths.init_weights(replicate_dir(study.run_dir, r))
    if not path.exists():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(replicate_seed(study.cfg, r))
            model = build_network(study.cfg.model, study.cfg.impl)
        if study.dist.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, model, metadata={"run": study.name, "replicate": r, "theta": 0})
        study.dist.barrier()
        return model.state_dict()
    model, _ = load_checkpoint(path)
    return model.state_dict()


def replicate_dirs(run_dir: str | os.PathLike, replicates: int | None = None) -> list[Path]:
    """The replicate folders of a study, in seed order (the first ``replicates``, or all present).

    Example:
        >>> [p.name for p in replicate_dirs("runs/smoke_de4d1844", 2)]   # doctest: +SKIP
        ['replicate_0', 'replicate_1']
    """
    numbers = range(replicates) if replicates is not None else paths.replicate_numbers(run_dir)
    return [replicate_dir(run_dir, r) for r in numbers]


__all__ = ["branch_context", "main_mask", "main_starting_weights", "node_identity", "replicate_dirs", "replicate_seed",
           "reuse_dense_level", "run_study", "study_nodes", "weights_fingerprint"]
