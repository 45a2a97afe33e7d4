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
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import torch

from mirl.errors import MirlError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    A full disk is a :class:`MirlError` that names ``path`` (the temporary is removed, and any
    earlier ``path`` is left as it was).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        _raise_if_disk_full(exc, path)
        raise
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            _raise_if_disk_full(exc, path)
        raise


def _raise_if_disk_full(exc: OSError, path: Path) -> None:
    if exc.errno in DISK_FULL:
        raise MirlError(f"no space left on device while writing {path}; free some space and run the same command "
                        "again (a study resumes where it stopped)") from None


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


def read_json(path: str | os.PathLike, advice: str = "replace or remove it") -> Any:
    """The JSON value in ``path``. A missing file raises :class:`FileNotFoundError` (callers
    decide what absence means); an unreadable or invalid one is a :class:`MirlError` that names
    the file and gives ``advice``.

    Example:
        >>> path = os.path.join(tempfile.mkdtemp(), "broken.json")
        >>> _ = open(path, "w").write("{")
        >>> read_json(path, advice="run the level again")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        mirl.errors.MirlError: .../broken.json cannot be read (Expecting property name ...); run the level again
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise MirlError(f"{path} cannot be read ({str(exc)[:80]}); {advice}") from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (load it back with ``weights_only=True``).

    The file is serialised in memory first: written straight to a full disk, ``torch.save``
    fails with an opaque ``unexpected pos`` error; a plain write names the problem.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getbuffer())
