"""Stale nodes: finished nodes made by other code than this mirl's, and what depends on them.

A finished node's ``done.json`` records the code version of its branch (main:
:data:`mirl.branches.MAIN_VERSION`) and its options (:func:`mirl.branches.node_code`; a record
without them was made by version 1 with the defaults). A node is stale when that record differs
from the code now, when a level of main it starts from (main's levels below its own; a branch
that reads main's trained level k, levels up to its own) is stale or not finished, or when main's
level k of a branch of level k is finished and stale (its mask was made by that code). ``mirl lottery`` refuses to
mix stale nodes into a study; ``--rerun-stale`` retrains them (:func:`remove_stale`).

Example:
    >>> stale_nodes("runs/smoke_de4d1844", [(0, 0, "main"), (0, 1, "main")])   # doctest: +SKIP
    {}
    >>> describe({(0, 1, "random_prune"): "random_prune version 1, now 2"})
    'replicate 0 level 1 random_prune (random_prune version 1, now 2)'
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from mirl import paths
from mirl.branches import node_code, trained_main_levels
from mirl.errors import MirlError
from mirl.fileio import read_json

Node = tuple[int, int, str]  # (replicate, level, branch folder)


def recorded_code(record: Mapping[str, Any]) -> dict[str, Any]:
    """The code version and options a node's record names (none recorded: version 1, no options).

    Example:
        >>> recorded_code({"version": 2, "options": {"scope": "global"}}), recorded_code({})
        ({'version': 2, 'options': {'scope': 'global'}}, {'version': 1, 'options': {}})
    """
    options = record.get("options")
    return {"version": record.get("version", 1), "options": dict(options) if isinstance(options, dict) else {}}


def code_change(branch: str, record: Mapping[str, Any]) -> str | None:
    """What differs between the code that made a node of ``branch`` (its record) and this mirl's.

    Example:
        >>> code_change("main", {"version": 1}) is None
        True
        >>> code_change("random_prune-scope_global", {"version": 1, "options": {"scope": "layerwise"}})
        "random_prune-scope_global options {'scope': 'layerwise'}, now {'scope': 'global'}"
    """
    try:
        now = node_code(branch)
    except MirlError as exc:
        return f"{branch} is not a branch of this mirl ({exc})"
    made = recorded_code(record)
    if made["version"] != now["version"]:
        return f"{branch} version {made['version']}, now {now['version']}"
    differs = {k: v for k, v in made["options"].items() if now["options"].get(k, object()) != v}
    if differs:
        return f"{branch} options {made['options']}, now {now['options']}"
    return None


def _own_change(node: Path, branch: str) -> str | None:
    try:
        record = read_json(paths.done_file(node), "remove it to train the node again")
    except (FileNotFoundError, MirlError):
        return None  # a damaged marker is named where it is read
    return code_change(branch, record) if isinstance(record, dict) else None


def node_stale(replicate: str | os.PathLike, level: int, branch: str) -> str | None:
    """Why one finished node is stale (its own record, or a stale or missing level of main it
    starts from), or ``None``.

    Example:
        >>> node_stale("runs/smoke_de4d1844/replicate_0", 2, "random_prune")   # doctest: +SKIP
        'main level 1 is stale (main version 1, now 2)'
    """
    own = _own_change(paths.level_dir(replicate, level, branch), branch)
    if own is not None:
        return own
    try:
        needed = trained_main_levels(branch, level)
    except MirlError:
        needed = level + 1
    for k in range(level + (branch != paths.MAIN)):  # a branch of level k reads main's mask of level k
        upstream = paths.level_dir(replicate, k)
        if not paths.is_finished(upstream):
            if k < needed:
                return f"main level {k} is not finished (it will be trained again)"
            continue
        change = _own_change(upstream, paths.MAIN)
        if change is not None:
            return f"main level {k} is stale ({change})"
    return None


def stale_nodes(run_dir: str | os.PathLike, nodes: Iterable[Node]) -> dict[Node, str]:
    """``{node: why}`` for every finished node of ``nodes`` that is stale.

    Example:
        >>> stale_nodes("runs/smoke_de4d1844", [(0, 0, "main")])   # doctest: +SKIP
        {}
    """
    out = {}
    for r, level, branch in nodes:
        replicate = paths.replicate_dir(run_dir, r)
        if paths.is_finished(paths.level_dir(replicate, level, branch)):
            why = node_stale(replicate, level, branch)
            if why is not None:
                out[(r, level, branch)] = why
    return out


def describe(stale: Mapping[Node, str], first: int = 3) -> str:
    """The first few stale nodes with their reasons, and how many more, in one line."""
    shown = [f"replicate {r} level {k} {b} ({why})" for (r, k, b), why in list(stale.items())[:first]]
    more = len(stale) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def stale_message(run_dir: str | os.PathLike, stale: Mapping[Node, str]) -> str:
    """The one line ``mirl lottery`` refuses a study with stale nodes in."""
    return (f"{run_dir}: {len(stale)} finished node(s) were made by other code or options than this mirl's: "
            f"{describe(stale)}; add --rerun-stale to train them (and what depends on them) again, "
            f"or delete those folders (`mirl status {run_dir}` lists them)")


def remove_stale(run_dir: str | os.PathLike, stale: Iterable[Node]) -> list[Path]:
    """Delete the folders of ``stale`` nodes (the caller holds the study's lock), and a replicate's
    rewind point when its dense level goes (it is a snapshot of that level's training)."""
    removed = []
    for r, level, branch in stale:
        replicate = paths.replicate_dir(run_dir, r)
        node = paths.level_dir(replicate, level, branch)
        if node.is_dir():
            shutil.rmtree(node)
            removed.append(node)
        if level == 0 and branch == paths.MAIN:
            paths.rewind_weights(replicate).unlink(missing_ok=True)
    return removed


__all__ = ["code_change", "describe", "node_stale", "recorded_code", "remove_stale", "stale_message", "stale_nodes"]
