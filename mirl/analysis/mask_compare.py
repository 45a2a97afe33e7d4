"""Compare sparsity masks: per block of PromptIR across a whole study, and per layer for two masks.

The overlap of two masks is their Jaccard index: |kept in A and B| / |kept in A or B| (1.0 when
both keep nothing). Beside it stands what independent random masks with the same kept counts
would give, pq / (p + q - pq) for densities p and q (:func:`random_jaccard`).

A study (notebook 04): :func:`scan_study` reads every mask once into per-tensor counts of each
node and of each compared pair (the ticket against each branch of its level, each level against
the next, each replicate against each other); :func:`block_overlap` sums them per block
(:func:`block_of`) and :func:`overlap_summary` averages over replicates.

Example:
    >>> import torch
    >>> jaccard(torch.tensor([True, True, False]), torch.tensor([True, False, True]))
    0.3333333333333333
    >>> scan = scan_study("runs/smoke_de4d1844")                              # doctest: +SKIP
    >>> summary = overlap_summary(block_overlap(scan.pairs), REPLICATE_PAIR)  # doctest: +SKIP
    >>> summary[summary.block == WHOLE][["level_b", "jaccard", "random_jaccard"]]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from mirl import paths
from mirl.paths import MAIN
from mirl.analysis.results import level_mask, levels, load_config, run_label, study_dir

PathLike = str | os.PathLike


def jaccard(a: Any, b: Any) -> float:
    """Jaccard index of two boolean masks of one tensor (1.0 when both keep nothing)."""
    a, b = a.bool(), b.bool()
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def mask_layer_table(mask_a: Mapping[str, Any], mask_b: Mapping[str, Any]) -> pd.DataFrame:
    """Per-layer comparison of two masks: density of each and their overlap (Jaccard index).

    Example:
        >>> import torch
        >>> a = {"w": torch.tensor([True, True, False, False])}
        >>> b = {"w": torch.tensor([True, False, True, False])}
        >>> mask_layer_table(a, b)[["density_a", "density_b", "jaccard"]].round(3).values.tolist()
        [[0.5, 0.5, 0.333]]
    """
    rows = []
    for name in mask_a:
        if name not in mask_b:
            continue
        a, b = mask_a[name].bool(), mask_b[name].bool()
        if a.shape != b.shape:
            raise ValueError(f"masks disagree on the shape of {name}: {tuple(a.shape)} vs {tuple(b.shape)}")
        rows.append({
            "tensor": name,
            "size": a.numel(),
            "density_a": float(a.float().mean()),
            "density_b": float(b.float().mean()),
            "jaccard": jaccard(a, b),
        })
    return pd.DataFrame(rows, columns=["tensor", "size", "density_a", "density_b", "jaccard"])


def mask_label(run_dir: PathLike, level: int, with_run: bool = False) -> str:
    """Label of one mask: ``level 3`` or, across runs, ``<run label> · level 3``."""
    return f"{run_label(run_dir)} · level {level}" if with_run else f"level {level}"


def mask_collection(run_dirs: Sequence[PathLike]) -> dict[str, dict[str, Any]]:
    """Every finished level's mask of one or more runs, in order: ``{label: mask}``.

    With one run labels are ``level k``; with several they start with the run's label.

    Example:
        >>> masks = mask_collection(["runs/smoke_de4d1844"])   # doctest: +SKIP
        >>> list(masks)                                         # doctest: +SKIP
        ['level 0', 'level 1', 'level 2']
    """
    with_run = len(run_dirs) > 1
    collection: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        for level in levels(run_dir):
            mask = level_mask(run_dir, level)
            if mask:
                collection[mask_label(run_dir, level, with_run)] = mask
    if not collection:
        raise FileNotFoundError(f"no mask in the finished levels of {[str(r) for r in run_dirs]}")
    return collection


def default_mask_pair(run_a: PathLike, run_b: PathLike, level_a: int | None = None, level_b: int | None = None) -> tuple[str, str]:
    """Labels (as in :func:`mask_collection`) of the two masks to compare by default.

    One run: A = ``level_a`` or the first pruned level, B = ``level_b`` or the last level.
    Two runs: A = run A at ``level_a`` or its last level, B = run B at ``level_b`` or its last.
    """
    two = Path(run_a) != Path(run_b)
    done_a, done_b = levels(run_a), levels(run_b)
    if not done_a or not done_b:
        raise FileNotFoundError("a run to compare has no finished level")
    if two:
        a = level_a if level_a is not None else done_a[-1]
    else:
        a = level_a if level_a is not None else (done_a[1] if len(done_a) > 2 else done_a[0])
    b = level_b if level_b is not None else done_b[-1]
    for lv, done, run in ((a, done_a, run_a), (b, done_b, run_b)):
        if lv not in done:
            raise ValueError(f"level {lv} is not a finished level of {run}; finished: {done}")
    return mask_label(run_a, a, two), mask_label(run_b, b, two)


# --------------------------------------------------------------------------- blocks of PromptIR
#
# The parameter names of :class:`mirl.models.promptir.PromptIR` start with the attribute of the
# module that holds them. A resampling convolution belongs to the level it feeds (``down1_2`` to
# encoder 2, ``down3_4`` to the latent stage, ``up4_3`` to decoder 3), as do the 1x1 convolutions
# that reduce a skip concatenation (``reduce_chan_level3``). The prompt generation blocks
# (``prompt1..3``, PGM in the paper) and the prompt interaction blocks (``noise_level1..3`` and
# ``reduce_noise_level1..3``, PIM) are blocks of their own; so are the six 1x1 convolutions that
# upstream defines but never calls (``PromptIR.unused_in_forward``).

BLOCKS: tuple[str, ...] = (
    "input", "encoder 1", "encoder 2", "encoder 3", "latent", "decoder 3", "decoder 2", "decoder 1",
    "refinement", "output", "prompt generation", "prompt interaction", "unused in forward",
)
WHOLE = "whole network"  # the block label of a total over every tensor

_MODULE_BLOCKS: dict[str, str] = {
    "patch_embed": "input",
    "encoder_level1": "encoder 1",
    "down1_2": "encoder 2", "encoder_level2": "encoder 2",
    "down2_3": "encoder 3", "encoder_level3": "encoder 3",
    "down3_4": "latent", "latent": "latent",
    "up4_3": "decoder 3", "reduce_chan_level3": "decoder 3", "decoder_level3": "decoder 3",
    "up3_2": "decoder 2", "reduce_chan_level2": "decoder 2", "decoder_level2": "decoder 2",
    "up2_1": "decoder 1", "decoder_level1": "decoder 1",
    "refinement": "refinement",
    "output": "output",
    **{f"prompt{k}": "prompt generation" for k in (1, 2, 3)},
    **{f"noise_level{k}": "prompt interaction" for k in (1, 2, 3)},
    **{f"reduce_noise_level{k}": "prompt interaction" for k in (1, 2, 3)},
    **{f"chnl_reduce{k}": "unused in forward" for k in (1, 2, 3)},
    **{f"reduce_noise_channel_{k}": "unused in forward" for k in (1, 2, 3)},
}


def block_of(name: str) -> str:
    """The block of PromptIR a parameter belongs to (one of :data:`BLOCKS`); a name outside
    PromptIR's gives its top-level module's name.

    Example:
        >>> [block_of(n) for n in ("prompt2.conv3x3.weight", "down1_2.body.0.weight", "latent.0.attn.qkv.weight",
        ...                        "noise_level3.ffn.dwconv.weight", "chnl_reduce1.weight", "head.weight")]
        ['prompt generation', 'encoder 2', 'latent', 'prompt interaction', 'unused in forward', 'head']
    """
    module = name.split(".", 1)[0]
    return _MODULE_BLOCKS.get(module, module)


def block_order(blocks: Iterable[str]) -> list[str]:
    """Distinct blocks in PromptIR's order (:data:`BLOCKS`), unknown ones after in their first order,
    the whole network last.

    Example:
        >>> block_order(["output", "head", "input", "whole network", "output"])
        ['input', 'output', 'head', 'whole network']
    """
    seen = list(dict.fromkeys(blocks))
    known = [b for b in BLOCKS if b in seen]
    return known + [b for b in seen if b not in BLOCKS and b != WHOLE] + ([WHOLE] if WHOLE in seen else [])


# --------------------------------------------------------------------------- counts of a study's masks

# Kinds of mask pairs a study holds (columns replicate_a/level_a/branch_a against replicate_b/...).
BRANCH_PAIR = "branch"        # main of (replicate r, level k) against a branch of (r, k)
NEXT_LEVEL_PAIR = "next level"  # main of (r, k) against main of (r, k + 1)
REPLICATE_PAIR = "replicate"  # main of (r, k) against main of (s, k), r < s

PAIR_KEYS: list[str] = ["kind", "replicate_a", "level_a", "branch_a", "replicate_b", "level_b", "branch_b"]


@dataclass(frozen=True)
class Node:
    """One mask of a study: a replicate, a level and a branch (``main``: the ticket)."""

    replicate: int
    level: int
    branch: str = MAIN

    def label(self) -> str:
        """``replicate 0 · level 2 · random pruning``.

        Example:
            >>> Node(0, 2, "main").label()
            'replicate 0 · level 2 · ticket'
        """
        from mirl.branches import branch_label

        return f"replicate {self.replicate} · level {self.level} · {branch_label(self.branch)}"


def pair_counts(mask_a: Mapping[str, Any], mask_b: Mapping[str, Any]) -> pd.DataFrame:
    """Per-tensor counts of two masks: tensor, block, size, kept_a, kept_b, both (kept in both).

    Tensors missing from ``mask_b`` are left out; a shape that differs is an error.

    Example:
        >>> import torch
        >>> a = {"latent.0.w": torch.tensor([True, True, False, False])}
        >>> b = {"latent.0.w": torch.tensor([True, False, True, False])}
        >>> pair_counts(a, b).to_dict("records")
        [{'tensor': 'latent.0.w', 'block': 'latent', 'size': 4, 'kept_a': 2, 'kept_b': 2, 'both': 1}]
    """
    rows = []
    for name, a in mask_a.items():
        if name not in mask_b:
            continue
        a, b = a.bool(), mask_b[name].bool()
        if a.shape != b.shape:
            raise ValueError(f"masks disagree on the shape of {name}: {tuple(a.shape)} vs {tuple(b.shape)}")
        rows.append((name, block_of(name), a.numel(), int(a.sum()), int(b.sum()), int((a & b).sum())))
    return pd.DataFrame(rows, columns=["tensor", "block", "size", "kept_a", "kept_b", "both"])


@dataclass
class MaskScan:
    """Every mask of a study, read once (:func:`scan_study`), as per-tensor counts.

    ``densities``: one row per node and tensor (replicate, level, branch, tensor, block, size, kept).
    ``pairs``: one row per compared pair of nodes and tensor (:data:`PAIR_KEYS`, tensor, block,
    size, kept_a, kept_b, both), for the kinds :data:`BRANCH_PAIR`, :data:`NEXT_LEVEL_PAIR`,
    :data:`REPLICATE_PAIR`. ``other_networks``: the branches that train another network than the
    ticket's (``dense_same_size``): their masks have no tensor in common with the ticket's to compare.
    """

    study: Path
    scope: str
    fraction: float
    nodes: list[Node]
    densities: pd.DataFrame
    pairs: pd.DataFrame
    other_networks: list[str] = field(default_factory=list)

    @property
    def replicates(self) -> list[int]:
        """Replicates with at least one mask."""
        return sorted({n.replicate for n in self.nodes})

    @property
    def levels(self) -> list[int]:
        """Levels of the ticket (main) with a mask in any replicate."""
        return sorted({n.level for n in self.nodes if n.branch == MAIN})

    @property
    def branches(self) -> list[str]:
        """Branches other than main that have a mask."""
        return sorted({n.branch for n in self.nodes if n.branch != MAIN})

    def node_path(self, node: Node) -> Path:
        """The mask file of a node."""
        return paths.mask_file(paths.level_dir(paths.replicate_dir(self.study, node.replicate), node.level, node.branch))

    def mask(self, node: Node) -> dict[str, Any]:
        """Load one node's mask (``{name: bool tensor}``)."""
        from mirl.pruning import load_mask

        if node not in self.nodes:
            raise KeyError(f"{self.study.name} has no mask for {node.label()}")
        return load_mask(self.node_path(node))


def _node_mask(replicate: Path, level: int, branch: str) -> dict[str, Any] | None:
    from mirl.pruning import load_mask

    node = paths.level_dir(replicate, level, branch)
    path = paths.mask_file(node)
    return load_mask(path) if paths.is_finished(node) and path.is_file() else None


def _same_network(mask_a: Mapping[str, Any], mask_b: Mapping[str, Any]) -> bool:
    """Whether two masks cover the same tensors with the same shapes (the same network)."""
    return mask_a.keys() == mask_b.keys() and all(tuple(mask_a[k].shape) == tuple(mask_b[k].shape) for k in mask_a)


def _density_rows(node: Node, mask: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return [(node.replicate, node.level, node.branch, name, block_of(name), m.numel(), int(m.sum())) for name, m in mask.items()]


def _pair_frame(kind: str, a: Node, b: Node, mask_a: Mapping[str, Any], mask_b: Mapping[str, Any]) -> pd.DataFrame:
    counts = pair_counts(mask_a, mask_b)
    keys = dict(kind=kind, replicate_a=a.replicate, level_a=a.level, branch_a=a.branch,
                replicate_b=b.replicate, level_b=b.level, branch_b=b.branch)
    return counts.assign(**keys)[PAIR_KEYS + list(counts.columns)]


def scan_study(run_dir: PathLike) -> MaskScan:
    """Read every finished node's mask of a study once and count, per tensor, what each mask keeps
    and what each compared pair keeps in common: the ticket against each branch of its level, each
    level against the next, each replicate against each other at the same level.

    At most two levels of masks are held in memory at once.

    Example:
        >>> scan = scan_study("runs/smoke_de4d1844")            # doctest: +SKIP
        >>> scan.replicates, scan.levels, scan.branches         # doctest: +SKIP
        ([0, 1], [0, 1, 2], ['random_prune', 'random_reinit'])
    """
    from itertools import combinations

    study = study_dir(run_dir)
    config = load_config(study)
    replicates = paths.replicate_numbers(study)
    all_levels = sorted({k for r in replicates for k in paths.level_numbers(paths.replicate_dir(study, r))})
    nodes: list[Node] = []
    densities: list[tuple[Any, ...]] = []
    pairs: list[pd.DataFrame] = []
    previous: dict[int, dict[str, Any]] = {}
    previous_level = -1
    other_networks: set[str] = set()
    for level in all_levels:
        current: dict[int, dict[str, Any]] = {}
        for r in replicates:
            replicate = paths.replicate_dir(study, r)
            main = _node_mask(replicate, level, MAIN)
            if main is None:
                continue
            current[r] = main
            node = Node(r, level, MAIN)
            nodes.append(node)
            densities += _density_rows(node, main)
            if r in previous:
                pairs.append(_pair_frame(NEXT_LEVEL_PAIR, Node(r, previous_level), node, previous[r], main))
            for branch in paths.branch_names(replicate, level):
                mask = _node_mask(replicate, level, branch) if branch != MAIN else None
                if mask is None:
                    continue
                if not _same_network(main, mask):
                    other_networks.add(branch)
                    continue
                other = Node(r, level, branch)
                nodes.append(other)
                densities += _density_rows(other, mask)
                pairs.append(_pair_frame(BRANCH_PAIR, node, other, main, mask))
        for r, s in combinations(sorted(current), 2):
            pairs.append(_pair_frame(REPLICATE_PAIR, Node(r, level), Node(s, level), current[r], current[s]))
        previous, previous_level = current, level
    if not nodes:
        raise FileNotFoundError(f"no finished level with a mask in {study}")
    density_table = pd.DataFrame(densities, columns=["replicate", "level", "branch", "tensor", "block", "size", "kept"])
    pair_columns = PAIR_KEYS + ["tensor", "block", "size", "kept_a", "kept_b", "both"]
    pair_table = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=pair_columns)
    return MaskScan(study=study, scope=str(config.get("scope", "unknown")), fraction=float(config.get("fraction", float("nan"))),
                    nodes=nodes, densities=density_table, pairs=pair_table, other_networks=sorted(other_networks))


# --------------------------------------------------------------------------- per block


def random_jaccard(p: float, q: float) -> float:
    """The Jaccard index expected of two independent random masks that keep fractions ``p`` and
    ``q`` of one tensor: pq / (p + q - pq) (expected overlap over expected union; 1.0 when both
    keep nothing).

    Example:
        >>> round(random_jaccard(0.5, 0.4), 4), random_jaccard(1.0, 0.3), random_jaccard(0.0, 0.0)
        (0.2857, 0.3, 1.0)
    """
    union = p + q - p * q
    return p * q / union if union else 1.0


def block_overlap(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per compared pair (:data:`PAIR_KEYS`) and block, plus the :data:`WHOLE` network: the summed
    counts and what they mean.

    Columns added to the keys and ``block``: size, kept_a, kept_b, both, density_a, density_b,
    jaccard (both / kept in either), random_jaccard (the same for random masks with each tensor's
    kept counts: per tensor the expected overlap kept_a * kept_b / size, summed over the block's
    tensors, over the expected union), survival (both / kept_a: of A's kept weights, the fraction B
    keeps) and revived (kept in B, not in A).

    Example:
        >>> t = pd.DataFrame({"kind": "replicate", "replicate_a": 0, "level_a": 1, "branch_a": "main", "replicate_b": 1,
        ...     "level_b": 1, "branch_b": "main", "tensor": ["latent.a", "latent.b"], "block": "latent",
        ...     "size": [100, 300], "kept_a": [50, 30], "kept_b": [40, 30], "both": [40, 3]})
        >>> row = block_overlap(t).iloc[0]    # both 43 of a union of 107; expected both 20 + 3 of 127
        >>> [round(float(row[c]), 4) for c in ("jaccard", "random_jaccard", "survival")]
        [0.4019, 0.1811, 0.5375]
    """
    keys = [k for k in PAIR_KEYS if k in pairs.columns]
    counts = ["size", "kept_a", "kept_b", "both", "expected_both"]
    table = pairs.assign(expected_both=pairs["kept_a"] * pairs["kept_b"] / pairs["size"].where(pairs["size"] > 0))
    table["expected_both"] = table["expected_both"].fillna(0.0)
    per_block = table.groupby(keys + ["block"], sort=False)[counts].sum().reset_index()
    whole = table.groupby(keys, sort=False)[counts].sum().reset_index().assign(block=WHOLE)
    out = pd.concat([per_block, whole], ignore_index=True)
    union = out["kept_a"] + out["kept_b"] - out["both"]
    expected_union = out["kept_a"] + out["kept_b"] - out["expected_both"]
    out["density_a"] = out["kept_a"] / out["size"]
    out["density_b"] = out["kept_b"] / out["size"]
    out["jaccard"] = (out["both"] / union.where(union > 0)).fillna(1.0)
    out["random_jaccard"] = (out["expected_both"] / expected_union.where(expected_union > 1e-12)).fillna(1.0)
    out["survival"] = out["both"] / out["kept_a"].where(out["kept_a"] > 0)
    out["revived"] = out["kept_b"] - out["both"]
    order = {b: i for i, b in enumerate(block_order(out["block"]))}
    return out.sort_values(keys + ["block"], key=lambda c: c.map(order) if c.name == "block" else c,
                           kind="stable").reset_index(drop=True)


def overlap_summary(overlap: pd.DataFrame, kind: str) -> pd.DataFrame:
    """One row per (level_a, level_b, branch_b, block) of one ``kind`` of :func:`block_overlap`
    rows: the mean over replicates (or replicate pairs) of jaccard, random_jaccard, survival,
    density_a and density_b, the lowest and highest jaccard (jaccard_low, jaccard_high), the
    revived weights summed, and n (pairs averaged).

    Example:
        >>> o = pd.DataFrame({"kind": "branch", "level_a": 1, "level_b": 1, "branch_b": "random_prune", "block": "latent",
        ...     "jaccard": [0.2, 0.4], "random_jaccard": [0.25, 0.25], "survival": 0.3, "density_a": 0.5,
        ...     "density_b": 0.5, "revived": 0})
        >>> overlap_summary(o, "branch")[["jaccard", "jaccard_low", "jaccard_high", "random_jaccard", "n"]].round(3).to_dict("records")
        [{'jaccard': 0.3, 'jaccard_low': 0.2, 'jaccard_high': 0.4, 'random_jaccard': 0.25, 'n': 2}]
    """
    rows = overlap[overlap["kind"] == kind]
    columns = ["level_a", "level_b", "branch_b", "block", "jaccard", "jaccard_low", "jaccard_high", "random_jaccard",
               "survival", "density_a", "density_b", "revived", "n"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby(["level_a", "level_b", "branch_b", "block"], sort=False)
    out = grouped.agg(jaccard=("jaccard", "mean"), jaccard_low=("jaccard", "min"), jaccard_high=("jaccard", "max"),
                      random_jaccard=("random_jaccard", "mean"), survival=("survival", "mean"),
                      density_a=("density_a", "mean"), density_b=("density_b", "mean"), revived=("revived", "sum"),
                      n=("jaccard", "size")).reset_index()
    return out[columns]


def block_densities(densities: pd.DataFrame, branch: str = MAIN, whole: bool = True) -> pd.DataFrame:
    """Fraction of each block's weights a branch keeps at each level, the mean over replicates:
    rows levels, columns blocks in :func:`block_order` (and the :data:`WHOLE` network last).

    Example:
        >>> d = pd.DataFrame({"replicate": [0, 0, 1, 1], "level": 1, "branch": "main", "tensor": ["output.weight", "latent.x"] * 2,
        ...                   "block": ["output", "latent"] * 2, "size": [10, 30] * 2, "kept": [5, 3, 5, 9]})
        >>> block_densities(d).round(3).values.tolist()
        [[0.2, 0.5, 0.275]]
    """
    rows = densities[densities["branch"] == branch]
    per_block = rows.groupby(["replicate", "level", "block"], sort=False)[["kept", "size"]].sum().reset_index()
    if whole:
        total = rows.groupby(["replicate", "level"], sort=False)[["kept", "size"]].sum().reset_index().assign(block=WHOLE)
        per_block = pd.concat([per_block, total], ignore_index=True)
    per_block["density"] = per_block["kept"] / per_block["size"]
    wide = per_block.pivot_table(index="level", columns="block", values="density", aggfunc="mean")
    return wide[block_order(per_block["block"])]


def node_block_densities(densities: pd.DataFrame, node: Node) -> pd.Series:
    """Fraction of each block's weights (and of the whole network's) that one node's mask keeps."""
    rows = densities[(densities["replicate"] == node.replicate) & (densities["level"] == node.level)
                     & (densities["branch"] == node.branch)]
    per_block = rows.groupby("block", sort=False)[["kept", "size"]].sum()
    per_block.loc[WHOLE] = rows[["kept", "size"]].sum()
    series = per_block["kept"] / per_block["size"]
    return series[block_order(series.index)]


def block_weights(densities: pd.DataFrame) -> pd.DataFrame:
    """The blocks of a study's masks: block, tensors (count), weights (prunable), modules (the
    top-level module names), in :func:`block_order`.

    Example:
        >>> d = pd.DataFrame({"replicate": 0, "level": 0, "branch": "main", "tensor": ["down1_2.body.0.weight",
        ...     "encoder_level2.0.attn.qkv.weight"], "block": "encoder 2", "size": [8, 16], "kept": [8, 16]})
        >>> block_weights(d).values.tolist()
        [['encoder 2', 2, 24, 'down1_2, encoder_level2']]
    """
    first = densities.drop_duplicates("tensor")
    rows = []
    for block in block_order(first["block"]):
        sub = first[first["block"] == block]
        modules = ", ".join(dict.fromkeys(t.split(".", 1)[0] for t in sub["tensor"]))
        rows.append((block, len(sub), int(sub["size"].sum()), modules))
    return pd.DataFrame(rows, columns=["block", "tensors", "weights", "modules"])


# --------------------------------------------------------------------------- one node against its reference


@dataclass(frozen=True)
class NodeComparison:
    """One mask of a study against its reference, per block (:func:`compare_node`).

    The reference of a branch is the ticket's mask of the same replicate and level, and
    ``overlap`` is their Jaccard index with ``expected`` its value for random masks of the same
    densities. The reference of the ticket at level k is its own mask at level k - 1, and
    ``overlap`` is the fraction of those kept weights that level k keeps (``expected`` is None:
    the ticket prunes only among weights still kept, so it has no random counterpart). The dense
    level has no reference.
    """

    node: Node
    density: pd.Series
    reference: Node | None = None
    reference_density: pd.Series | None = None
    overlap: pd.Series | None = None
    expected: pd.Series | None = None

    @property
    def overlap_label(self) -> str:
        """What ``overlap`` measures, in words."""
        if self.reference is None:
            return "no reference"
        if self.node.branch == MAIN:
            return f"kept of level {self.reference.level}'s kept weights (fraction)"
        return "Jaccard index with the ticket's mask"


def compare_node(scan: MaskScan, overlap: pd.DataFrame, node: Node) -> NodeComparison:
    """``node`` against its reference (see :class:`NodeComparison`), from a scan and its
    :func:`block_overlap` table.

    Example:
        >>> scan = scan_study("runs/smoke_de4d1844"); ov = block_overlap(scan.pairs)    # doctest: +SKIP
        >>> compare_node(scan, ov, Node(0, 2, "random_prune")).overlap["whole network"]  # doctest: +SKIP
        0.515
    """
    if node not in scan.nodes:
        raise KeyError(f"{scan.study.name} has no mask for {node.label()}")
    density = node_block_densities(scan.densities, node)
    if node.branch != MAIN:
        kind, reference = BRANCH_PAIR, Node(node.replicate, node.level, MAIN)
    else:
        earlier = [k for k in scan.levels if k < node.level and Node(node.replicate, k) in scan.nodes]
        if not earlier:
            return NodeComparison(node, density)
        kind, reference = NEXT_LEVEL_PAIR, Node(node.replicate, earlier[-1])
    rows = overlap[(overlap["kind"] == kind) & (overlap["replicate_b"] == node.replicate) & (overlap["level_b"] == node.level)
                   & (overlap["branch_b"] == node.branch) & (overlap["level_a"] == reference.level)].set_index("block")
    rows = rows.reindex(density.index)
    return NodeComparison(node, density, reference, node_block_densities(scan.densities, reference),
                          rows["jaccard"] if kind == BRANCH_PAIR else rows["survival"],
                          rows["random_jaccard"] if kind == BRANCH_PAIR else None)


def node_caption(comparison: NodeComparison) -> str:
    """One line of plain text on a node and its reference, numbers formatted (% with 1 decimal,
    Jaccard with 3).

    Example:
        >>> d = pd.Series({"latent": 0.5, WHOLE: 0.4})
        >>> c = NodeComparison(Node(1, 2, "random_prune"), d, Node(1, 2), d, d / 2, d / 4)
        >>> for part in node_caption(c).split(" · "): print(part)
        replicate 1
        level 2
        random pruning: 40.0% of prunable weights kept
        Jaccard with the ticket's mask 0.200 (random masks of these densities: 0.100)
    """
    text = f"{comparison.node.label()}: {comparison.density[WHOLE]:.1%} of prunable weights kept"
    if comparison.reference is None or comparison.overlap is None:
        return text + (" (dense)" if comparison.density[WHOLE] >= 1.0 else "")
    if comparison.expected is not None:
        return (text + f" · Jaccard with the ticket's mask {comparison.overlap[WHOLE]:.3f}"
                f" (random masks of these densities: {comparison.expected[WHOLE]:.3f})")
    return text + f" · keeps {comparison.overlap[WHOLE]:.1%} of the weights level {comparison.reference.level} kept"


def focus_level(scan: MaskScan, level: int | None = None) -> int:
    """The level a report focuses on: ``level`` when the ticket has a mask there, ``None``: its last.

    Example:
        >>> focus_level(scan_study("runs/smoke_de4d1844"))    # doctest: +SKIP
        2
    """
    if level is None:
        return scan.levels[-1]
    if level not in scan.levels:
        raise ValueError(f"level {level} has no ticket mask in {scan.study.name}; levels with one: {scan.levels}")
    return int(level)
