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
import shutil
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
def atomic_open(path: str | os.PathLike, mode: str = "w", *, exclusive: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    A full disk is a :class:`MirlError` that names ``path`` (the temporary is removed, and any
    earlier ``path`` is left as it was). ``exclusive``: never replace ``path``; when it exists by
    the time the file is complete (another process was first), raise ``FileExistsError`` and
    leave the other's file as it is.
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
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            _raise_if_disk_full(exc, path)
        raise


def _link_new(tmp: str, path: Path) -> None:
    """Give the complete ``tmp`` the name ``path`` unless that exists (``FileExistsError``): a
    hard link never replaces a file. Where the file system has no hard links, a plain rename
    after a check (two processes then race for a moment; the last one wins)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _tidy_leftovers(final: Path) -> None:
    """Remove what killed builds of ``final`` left: temporary folders of processes that are gone,
    and an old version set aside mid-swap (put back when ``final`` is missing)."""
    from glob import escape

    for leftover in sorted(final.parent.glob(f".{escape(final.name)}.*")):
        kind, _, rest = leftover.name[len(final.name) + 2:].partition("-")
        if kind == "old" and not final.exists():
            leftover.rename(final)
        elif kind == "old" or (kind == "tmp" and rest.split("-")[0].isdigit() and not pid_alive(int(rest.split("-")[0]))):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def build_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder aside (``.<name>.tmp-<pid>-<random>`` beside ``final``, with the usual
    permissions) and put it in place of ``final`` when the block ends well: an earlier ``final``
    stays whole until then, and a failed build leaves nothing. What killed builds left is
    cleaned up first.

    Example:
        >>> target = Path(tempfile.mkdtemp()) / "report"
        >>> with build_folder(target) as work:
        ...     _ = (work / "index.html").write_text("<p>done</p>")
        >>> sorted(p.name for p in target.parent.iterdir()), (target / "index.html").read_text()
        (['report'], '<p>done</p>')
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _tidy_leftovers(final)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-{os.getpid()}-"))
    work.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield work
        aside = None
        if final.exists():
            aside = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(aside)
        try:
            work.rename(final)
        except BaseException:
            if aside is not None:
                aside.rename(final)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


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


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, exclusive: bool = False) -> None:
    """``torch.save`` to ``path`` atomically (load it back with ``weights_only=True``);
    ``exclusive``: see :func:`atomic_open`.

    The file is serialised in memory first: written straight to a full disk, ``torch.save``
    fails with an opaque ``unexpected pos`` error; a plain write names the problem.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(path, "wb", exclusive=exclusive) as handle:
        handle.write(buffer.getbuffer())
