"""What an export starts from: a ticket (pruned network), its mask and where it came from.

``SOURCE`` of ``mirl export`` is a node folder (``runs/<study>/replicate_<r>/level_<k>/main`` or
a branch), a level folder (its ``main``), a replicate or study folder (the last finished level of
main; a study: replicate 0), or any checkpoint that :func:`mirl.models.load_checkpoint` reads.
When the checkpoint sits in a node folder of a study, the study's settings and the level's
metrics are picked up for the model card.

Example:
    >>> ticket = load_ticket("runs/quickstart_1a2b3c4d/replicate_0/level_2")  # doctest: +SKIP
    >>> ticket.preset, round(ticket.densities["density_prunable"], 3)  # doctest: +SKIP
    ('small', 0.062)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mirl import paths
from mirl.errors import MirlError
from mirl.fileio import read_json



@dataclass
class Ticket:
    """A network ready to export, with the facts its model card reports.

    ``mask_source`` says where the mask came from (``mask.pt``, a given file, the sparse
    export, or the non-zero weights); the network's pruned weights are zeros.
    """

    model: Any  # mirl.models.PromptIR, kept untyped so this module imports without torch models
    meta: dict[str, Any]
    checkpoint: Path
    mask: dict[str, torch.Tensor]
    mask_source: str
    rule: str = "upstream"
    level: int | None = None
    run_dir: Path | None = None
    run_config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    densities: dict[str, Any] = field(default_factory=dict)
    narrow: bool = False  # ONNX, web and narrow exports remove dead channels (a refill branch, or narrowed already)

    @property
    def preset(self) -> str:
        """The network preset (``paper``, ``small``, ``tiny``) or ``custom``."""
        return str(self.meta["preset"])

    @property
    def run_name(self) -> str | None:
        """``<preset>_<hash>`` of the study run, when the source lies in a run folder."""
        return self.run_dir.name if self.run_dir is not None else None

    @property
    def settings_hash(self) -> str | None:
        """The hash of the run's settings (the part of its name after the last ``_``)."""
        name = self.run_name
        return name.rsplit("_", 1)[1] if name and "_" in name else None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's weights on the CPU, pruned weights set to exactly zero."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        for name, keep in self.mask.items():
            if name in state:
                state[name] = state[name] * keep.to(state[name].dtype)
        return state


def _read_json(path: Path, advice: str) -> dict[str, Any] | None:
    """The JSON in ``path``, or None when there is no such file (an unreadable one is an error)."""
    try:
        return read_json(path, advice=advice)
    except FileNotFoundError:
        return None


def _last_finished_node(replicate: Path) -> Path:
    levels = paths.level_numbers(replicate)
    if not levels:
        raise MirlError(f"{replicate}: no finished level yet; finish one with `mirl lottery` or give a checkpoint")
    node = paths.level_dir(replicate, levels[-1])
    if not paths.model_file(node).is_file():
        raise MirlError(f"{node}: the level is marked done but {paths.model_file(node).name} is missing; remove "
                        f"{paths.done_file(node)} and run the study again, or give another level")
    return node


def resolve_source(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """``(checkpoint file, node folder or None)`` for what ``source`` means: a checkpoint file; a
    node folder (``level_<k>/main`` or a branch); a level folder (its ``main``); a replicate
    (its last finished level of main); a study folder (replicate 0's).

    Example:
        >>> resolve_source("runs/quickstart_1a2b3c4d")          # doctest: +SKIP
        (PosixPath('runs/quickstart_1a2b3c4d/replicate_0/level_2/main/model.pt'), PosixPath('runs/.../level_2/main'))
    """
    path = Path(source)
    hint = "give a level folder (runs/<study>/replicate_<r>/level_<k>[/<branch>]), a study folder or a checkpoint"
    if not path.exists():
        raise MirlError(f"{path}: no such file or folder; {hint}")
    if path.is_file():
        return path, (path.parent if paths.node_of(path.parent) is not None else None)
    if paths.level_number(path) is not None and (path / paths.MAIN).is_dir():
        path = path / paths.MAIN
    if paths.model_file(path).is_file():
        return paths.model_file(path), path
    if paths.node_of(path) is not None and paths.is_finished(path):
        raise MirlError(f"{path}: the level is marked done but {paths.model_file(path).name} is missing; remove "
                        f"{paths.done_file(path)} and run the study again, or give another level")
    if paths.replicate_number(path) is not None:
        node = _last_finished_node(path)
        return paths.model_file(node), node
    if paths.is_run_dir(path):
        if paths.old_layout(path) and not paths.replicate_numbers(path):
            raise MirlError(f"{path}: a study of an older mirl layout (flat level_<k> folders); give one of its level "
                            "folders, or recreate the study with `mirl lottery`")
        node = _last_finished_node(paths.replicate_dir(path, 0))
        return paths.model_file(node), node
    raise MirlError(f"{path}: a folder without model.pt; {hint}")


def load_ticket(
    source: str | os.PathLike,
    mask: str | os.PathLike | None = None,
    rule: str | None = None,
    allow_pickle: bool = False,
    preset: str | None = None,
) -> Ticket:
    """Load ``source`` for export: the network (CPU, eval mode), its mask and its provenance.

    The mask is ``mask`` if given, else ``mask.pt`` of the level folder, else the sparse
    export's own, else the non-zero weights of the ``rule``'s prunable tensors. ``rule`` (which
    tensors count as prunable in the densities) defaults to the study's own, else ``upstream``.

    Example:
        >>> ticket = load_ticket("runs/smoke_abc/level_2")   # doctest: +SKIP
    """
    from mirl.models import load_checkpoint
    from mirl.pruning.mask import load_mask
    from mirl.pruning.rules import RULES, density_summary, prunable_names

    checkpoint, level_dir = resolve_source(source)
    model, meta = load_checkpoint(checkpoint, allow_pickle=allow_pickle, config=preset)
    model.eval()
    state = model.state_dict()
    if mask is not None:
        found, how = load_mask(mask), str(mask)
    elif level_dir is not None and Path(source).is_dir() and paths.mask_file(level_dir).is_file():
        found, how = load_mask(paths.mask_file(level_dir)), f"{level_dir.parent.name}/{level_dir.name}/{paths.mask_file(level_dir).name}"
    elif "mask" in meta:
        found, how = dict(meta.pop("mask")), "the sparse export's mask"
    else:
        found = {n: state[n] != 0 for n in prunable_names(state, rule or "upstream", model.unused_in_forward)}
        how = f"the non-zero weights ({rule or 'upstream'} prunable tensors)"
    wrong = sorted(n for n, m in found.items() if n not in state or tuple(m.shape) != tuple(state[n].shape))
    if wrong:
        raise MirlError(f"{mask or checkpoint}: the mask does not fit the network ({len(wrong)} tensors, e.g. {wrong[:3]}); give the mask of this checkpoint")
    ticket = Ticket(model=model, meta=meta, checkpoint=checkpoint, mask={n: m.cpu().bool() for n, m in found.items()},
                    mask_source=how, rule=rule or "upstream")
    model.load_state_dict(ticket.state_dict())  # pruned weights are zeros in every export
    if level_dir is not None:
        ticket.level = paths.level_number(level_dir.parent)
        ticket.metrics = _read_json(paths.metrics_file(level_dir), "run the level again, or remove the file to export without scores")
        study = paths.study_of(level_dir)
        if study is not None:
            ticket.run_dir = study
            ticket.run_config = _read_json(paths.run_config(study), "restore the study's config.json (it names the data and settings)")
    recorded = (ticket.run_config or {}).get("rule")
    if rule is None and recorded in RULES:  # the densities count what the study pruned (issue 31: layer-wise prunes conv only)
        ticket.rule = recorded
    ticket.densities = density_summary(model.state_dict(), ticket.rule, model.unused_in_forward)
    if ticket.level is None and isinstance(meta.get("metadata", {}).get("level"), int):
        ticket.level = int(meta["metadata"]["level"])
    ticket.narrow = structured_ticket(model, meta, ticket.metrics)
    return ticket


STRUCTURED_BRANCHES: tuple[str, ...] = ("refill", "refill_scratch")  # branches whose masks remove whole channels


def structured_ticket(model: Any, meta: dict[str, Any], metrics: dict[str, Any] | None) -> bool:
    """Whether exports narrow the network: it is narrowed already, or its checkpoint or level
    scores say it is a branch whose mask removes whole channels (``refill``, ``refill_scratch``).

    Example:
        >>> structured_ticket(object(), {"metadata": {"branch": "refill"}}, None)
        True
    """
    if getattr(model, "narrow_widths", None) is not None:
        return True
    branches = {(meta.get("metadata") or {}).get("branch"), (metrics or {}).get("branch")}
    return any(b in STRUCTURED_BRANCHES for b in branches)


__all__ = ["STRUCTURED_BRANCHES", "Ticket", "load_ticket", "resolve_source", "structured_ticket"]
