"""Atomic file writes: a result file is either complete or absent, never half-written.

Example:
    >>> import tempfile, os, json
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.json")
    >>> atomic_write_json(path, {"psnr": 30.1})
    >>> json.load(open(path))["psnr"]
    30.1
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that :func:`atomic_open` leaves when its process is killed
    mid-write (``.<name>.<random>.tmp``; SIGKILL leaves no chance to clean up), anywhere under
    ``folder``. Call it only while no other process writes there. Returns what was removed.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".metrics.json.x1y2.tmp").write_text("{")
        >>> [p.name for p in remove_stale_temporaries(folder)]
        ['.metrics.json.x1y2.tmp']
    """
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp")):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (load it back with ``weights_only=True``)."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
