"""A study's data fingerprint: which files it trains and tests on, so that a study resumed or
reported after its data folder changed is refused instead of mixing two data sets.

Training files are recorded by relative path and size (cheap on large sets), test files by
relative path and SHA-256 of their bytes (the scores rest on them).

Example:
    >>> old = {"train": {"a.png": 10}, "test": {"b.png": "ab12"}}
    >>> new = {"train": {"a.png": 11}, "test": {"b.png": "ab12", "c.png": "cd34"}}
    >>> fingerprint_changes(old, new)
    ['train/a.png (changed)', 'test/c.png (added)']
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence


def _files(root: Path, split: str, tasks: Sequence[str]) -> list[Path]:
    from .datasets import discover

    found: set[Path] = set()
    for task in tasks:
        samples, _ = discover(root, split, task, skip_bad=True)
        for s in samples:
            found.add(s.clean)
            if s.degraded is not None:
                found.add(s.degraded)
    return sorted(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(root: str | os.PathLike, tasks: Sequence[str]) -> dict[str, Any]:
    """``{"train": {relative path: bytes}, "test": {relative path: sha256}}`` of the files that
    ``tasks`` use under ``root`` (:func:`mirl.data.datasets.discover`)."""
    from . import expand_tasks

    base = Path(root)
    names = expand_tasks(list(tasks))
    rel = lambda p: p.relative_to(base).as_posix()  # noqa: E731
    return {"train": {rel(p): p.stat().st_size for p in _files(base, "train", names)},
            "test": {rel(p): _sha256(p) for p in _files(base, "test", names)}}


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints: ``split/file (added|removed|changed)``, in order."""
    changes = []
    for split in ("train", "test"):
        before, after = dict(old.get(split) or {}), dict(new.get(split) or {})
        for name in sorted(set(before) | set(after)):
            shown = name if name.startswith(f"{split}/") else f"{split}/{name}"  # data_fingerprint's paths start with it
            if name not in before:
                changes.append(f"{shown} (added)")
            elif name not in after:
                changes.append(f"{shown} (removed)")
            elif before[name] != after[name]:
                changes.append(f"{shown} (changed)")
    return changes
