"""What a study's masks keep of each kind of tensor (convolutions by shape, linear layers,
normalisation scales, the rest), level by level: the check that layer-wise pruning spares the
norms and that global pruning empties no layer (docs/lottery.md, "Layer collapse").

Read from each node's ``sparsity_report.json`` (kept and total weights per prunable tensor); the
kind of a tensor comes from the study's network, built on the meta device (no weights, no memory).

Example:
    >>> table = kept_by_kind("runs/evidence_e320761e")          # doctest: +SKIP
    >>> table.query("level == 5")[["kind", "kept (%)", "fewest kept (%)"]]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Mapping

import pandas as pd
from torch import nn

from mirl import paths
from mirl.analysis.results import MAIN, load_config
from mirl.errors import MirlError
from mirl.fileio import read_json
from mirl.pruning.health import is_norm_scale

KINDS = ("3x3 convolution", "depthwise convolution", "1x1 convolution", "linear", "normalisation scale", "other")


def tensor_kind(name: str, module: nn.Module | None) -> str:
    """The kind of parameter ``name`` owned by ``module`` (one of :data:`KINDS`).

    Example:
        >>> tensor_kind("body.0.weight", nn.Conv2d(8, 8, 3, groups=8)), tensor_kind("norm1.body.weight", None)
        ('depthwise convolution', 'normalisation scale')
    """
    leaf = name.rsplit(".", 1)[-1]
    if is_norm_scale(name):
        return "normalisation scale"
    if leaf == "weight" and isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels:
            return "depthwise convolution"
        return "1x1 convolution" if module.kernel_size == (1, 1) else "3x3 convolution"
    if leaf == "weight" and isinstance(module, nn.Linear):
        return "linear"
    return "other"


def tensor_kinds(network: str | Mapping) -> dict[str, str]:
    """Every parameter of the study network ``network`` (a preset name or config) that its forward
    pass uses, and its kind (PromptIR declares a few weights it never uses: ``unused_in_forward``).

    Example:
        >>> kinds = tensor_kinds("tiny")
        >>> kinds["encoder_level1.0.norm1.body.weight"], kinds["patch_embed.proj.weight"]
        ('normalisation scale', '3x3 convolution')
    """
    import torch

    from mirl.models import build_model

    with torch.device("meta"):
        net = build_model(network)
    modules, unused = dict(net.named_modules()), set(getattr(net, "unused_in_forward", ()))
    return {name: tensor_kind(name, modules.get(name.rsplit(".", 1)[0])) for name, _ in net.named_parameters()
            if name not in unused}


def kept_by_kind(study: str | os.PathLike, branch: str = MAIN) -> pd.DataFrame:
    """Per level and kind: weights kept and their share of the prunable weights of that kind
    (summed over tensors, mean over replicates), the fewest any one tensor keeps (in %, over
    tensors and replicates), and how many tensors of that kind a replicate's mask empties (the
    most of any replicate: what ``mirl lottery`` warns about). Only levels every replicate
    finished; tensors the rule never prunes, and those the forward pass never uses, are not listed.

    Example:
        >>> kept_by_kind("runs/evidence_e320761e").columns.tolist()  # doctest: +SKIP
        ['level', 'kind', 'tensors', 'prunable', 'kept', 'kept (%)', 'fewest kept (%)', 'emptied']
    """
    kinds = tensor_kinds(load_config(study)["model"])
    replicates = [paths.replicate_dir(study, r) for r in paths.replicate_numbers(study)]
    if not replicates:
        raise MirlError(f"{study}: no replicate folders; is it a study folder (runs/<preset>_<hash>)?")
    done = [set(paths.level_numbers(rep, branch=branch)) for rep in replicates]
    rows = []
    for level in sorted(set.intersection(*done)):
        per_kind: dict[str, list[dict]] = {}
        for rep in replicates:
            report = read_json(paths.sparsity_file(paths.level_dir(rep, level, branch)), "train the node again")
            for name, counts in report["tensors"].items():
                if name in kinds:
                    per_kind.setdefault(kinds[name], []).append({"replicate": rep.name, **counts})
        for kind in KINDS:
            items = per_kind.get(kind)
            if not items:
                continue
            frame = pd.DataFrame(items)
            by_rep = frame.groupby("replicate")[["kept", "total"]].sum()
            emptied = frame[frame["kept"] == 0].groupby("replicate").size()
            rows.append({"level": level, "kind": kind, "tensors": int(len(frame) / len(replicates)),
                         "prunable": int(by_rep["total"].iloc[0]), "kept": round(float(by_rep["kept"].mean()), 1),
                         "kept (%)": round(float((by_rep["kept"] / by_rep["total"]).mean() * 100), 2),
                         "fewest kept (%)": round(float((frame["kept"] / frame["total"]).min() * 100), 2),
                         "emptied": int(emptied.max()) if len(emptied) else 0})
    return pd.DataFrame(rows, columns=["level", "kind", "tensors", "prunable", "kept", "kept (%)", "fewest kept (%)", "emptied"])
