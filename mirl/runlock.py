"""One writer per run folder: :class:`RunLock`, an exclusive ``flock`` on ``<run>/.mirl.lock``.

The OS drops the lock when its holder exits, kill -9 included, so a lock is never stale. The lock
file names its holder (pid, host, since when), so a second command can say who holds the run.

Example:
    >>> import tempfile
    >>> with RunLock(Path(tempfile.mkdtemp()) / "smoke_de4d1844") as lock:
    ...     lock.path.name
    '.mirl.lock'
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

from mirl.errors import MirlError
from mirl.fileio import DISK_FULL

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against a second writer
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".mirl.lock"


class HeldError(MirlError):
    """Another process holds the lock."""


_READ_ONLY_ERRNOS = tuple(getattr(errno, name) for name in ("EACCES", "EPERM", "EROFS") if hasattr(errno, name))
_NO_LOCKS_ERRNOS = tuple(getattr(errno, name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP") if hasattr(errno, name))


def _open_lock_file(path: Path) -> int:
    """Open (or make) the lock file; never through a symbolic link, whose target the holder's
    record would overwrite."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise MirlError(f"{path} is a symbolic link; mirl writes its lock there and does not follow links: "
                            "remove it and run again") from None
        raise


def _make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first (none are left
    behind when it fails)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    created: list[Path] = []
    try:
        for path in missing:
            try:
                path.mkdir()
            except FileExistsError:
                continue
            created.append(path)
    except OSError:
        _remove_empty(created)
        raise
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (outermost first) from the innermost out, stopping at one not empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            break


class RunLock:
    """One writer per run folder: an exclusive ``flock`` on ``<run>/.mirl.lock``.

    The OS drops the lock when its holder exits, kill -9 included, so it is never stale. The file
    names the holder (pid, host) and is removed on release, with any folders :meth:`acquire`
    created that are still empty. Without ``fcntl`` (Windows) only the folder is created.

    Example:
        >>> import tempfile
        >>> with RunLock(Path(tempfile.mkdtemp()) / "smoke_de4d1844") as lock:
        ...     lock.path.name
        '.mirl.lock'
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []

    def acquire(self, wait: float = 0.0) -> "RunLock":
        """Take the lock, or raise :class:`MirlError` naming the holder or the read-only folder;
        with ``wait`` > 0, retry a held lock for up to that many seconds first."""
        if self._fd is not None:
            return self
        deadline = time.monotonic() + wait
        while wait > 0:
            try:
                return self.acquire()
            except HeldError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            self._created = _make_dirs(self.run_dir)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise MirlError(f"no space left on device while creating {self.run_dir}; free some space and run "
                                "the same command again") from None
            raise MirlError(f"cannot create {self.run_dir} ({exc.strerror}); pass --out a writable folder") from None
        try:
            self._fd = self._lock()
        except OSError as exc:
            self._remove_created()
            if exc.errno in _READ_ONLY_ERRNOS:
                raise MirlError(f"{self.run_dir} is read-only ({exc.strerror}) and this run still has to write there "
                                "(it is not finished); copy it somewhere writable and pass its parent folder as --out") from None
            if exc.errno in DISK_FULL:
                raise MirlError(f"no space left on device while writing {self.path}; free some space and run the "
                                "same command again (a study resumes where it stopped)") from None
            raise MirlError(f"cannot write {self.path} ({exc.strerror})") from None
        except BaseException:
            self._remove_created()
            raise
        return self

    def _lock(self) -> int:
        while True:
            fd = _open_lock_file(self.path)
            if fcntl is None:
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise HeldError(f"{self.run_dir} is in use by another mirl process ({holder}); wait for it to finish "
                                "or stop it, then run again (a stopped run resumes where it was)") from None
            except OSError as exc:
                if exc.errno not in _NO_LOCKS_ERRNOS:
                    os.close(fd)
                    raise
                import warnings

                warnings.warn(f"{self.run_dir}: this file system does not support locks ({exc.strerror}); "
                              "make sure only one mirl process runs this study at a time", stacklevel=3)
                return fd
            try:  # the previous holder may have removed the file between our open and flock
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if os.environ.get("SLURM_JOB_ID"):  # a job killed on another host leaves the file; the scheduler knows it ended
            info["slurm_job"] = os.environ["SLURM_JOB_ID"]
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode())
            return f"pid {info['pid']} on {info['host']}, since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "it is just starting"

    def release(self) -> None:
        """Drop the lock (no-op when not held) and remove the lock file."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: a waiting opener sees a new file and retries
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        _remove_empty(self._created)
        self._created = []

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(run_dir: str | os.PathLike) -> dict | None:
    """Who holds ``run_dir``'s lock (``{"pid", "host", "since", "slurm_job"}``; the SLURM job id,
    when the holder ran in one, else ``None``), read from its lock file without touching the lock;
    ``None`` when free, or when the holder was a process of this host that is gone (a lock file left
    by a killed process). A holder on another host cannot be checked here: ask its scheduler.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with RunLock(folder):
        ...     lock_holder(folder)["pid"] == os.getpid()
        True
        >>> lock_holder(folder) is None
        True
    """
    from mirl.fileio import pid_alive

    try:
        info = json.loads(_read_lock_file(Path(run_dir) / LOCK_FILE))
        pid, host = int(info["pid"]), str(info["host"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return {"pid": None, "host": None, "since": None, "slurm_job": None}  # being written: a holder is just starting
    if host == socket.gethostname() and not pid_alive(pid):
        return None
    job = info.get("slurm_job")
    return {"pid": pid, "host": host, "since": info.get("since"),
            "slurm_job": str(job) if isinstance(job, (str, int)) and not isinstance(job, bool) and str(job).strip() else None}


def _read_lock_file(path: Path) -> str:
    """The lock file's text, read without following a link or waiting on a FIFO (neither is a lock
    file mirl made: :class:`ValueError`)."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a plain file")
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


__all__ = ["LOCK_FILE", "HeldError", "RunLock", "lock_holder"]
