"""What a run leaves for the people watching it: the ``mirl`` loggers' output (the terminal, at the
CLI's ``-v``/``-q`` level, and ``log.txt`` in the study folder) and TensorBoard scalars in each
node's folder (``tensorboard --logdir runs/``).

Library modules log through ``logging.getLogger(__name__)``; only the CLI decides where it goes.

Example:
    >>> import logging, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with run_log(folder):
    ...     logging.getLogger("mirl.example").info("level 1 done")
    >>> "level 1 done" in (folder / "log.txt").read_text()
    True
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

ROOT_LOGGER = "mirl"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TENSORBOARD_DIR = "tensorboard"


def configure_cli_logging(verbosity: int = 0) -> None:
    """Show the ``mirl`` loggers on stderr: only warnings with ``-q`` (``verbosity`` < 0), progress
    notes by default, debug detail with ``-v``. Python warnings go the same way.

    Example:
        >>> configure_cli_logging(-1); logging.getLogger(ROOT_LOGGER).handlers[-1].level == logging.WARNING
        True
    """
    root = logging.getLogger(ROOT_LOGGER)
    for old in [h for h in root.handlers if getattr(h, "_mirl_cli", False)]:
        root.removeHandler(old)
        logging.getLogger("py.warnings").removeHandler(old)
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if verbosity <= 0 else LOG_FORMAT))
    handler._mirl_cli = True  # type: ignore[attr-defined]
    root.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)  # the handlers filter, so log.txt gets notes under -q
    root.addHandler(handler)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)


@contextlib.contextmanager
def run_log(folder: str | os.PathLike) -> Iterator[Path]:
    """Append what the ``mirl`` loggers say meanwhile (notes and warnings), and Python warnings,
    to ``<folder>/log.txt``, whatever the terminal shows.

    Example:
        >>> with run_log(tempfile.mkdtemp()) as path:  # doctest: +SKIP
        ...     run_the_study()
    """
    path = Path(folder) / "log.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = _open_log_file(path)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger(ROOT_LOGGER)
    old_level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show_and_log(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
            record = logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, f"{category.__name__}: {message}", None, None)
            handler.handle(record)
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show_and_log
        try:
            yield path
        finally:
            root.removeHandler(handler)
            handler.close()
            stream.close()
            root.setLevel(old_level)


def _open_log_file(path: Path) -> Any:
    """``path`` opened for appending, or a :class:`MirlError` when it is a symbolic link (the notes
    would land in the link's target) or not a plain file (a FIFO would block the run)."""
    import stat

    from mirl.errors import MirlError

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if path.is_symlink():
            raise MirlError(f"{path} is a symbolic link; mirl appends the study's log there and does not follow links: "
                            "remove it (the next run starts a new log.txt)") from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise MirlError(f"{path} is not a plain file; remove it (the next run starts a new log.txt)") from None
        raise MirlError(f"cannot append to {path} ({exc.strerror}); make it writable or remove it") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise MirlError(f"{path} is not a plain file; remove it (the next run starts a new log.txt)")
    return os.fdopen(fd, "a", encoding="utf-8")


class ScalarLog:
    """TensorBoard scalars of one node, in ``<node>/tensorboard/<part>/`` (``train``: per step;
    ``test``: the scores at the end); a no-op when ``enabled`` is false (other ranks of a
    distributed run). Resuming with ``purge_step`` drops the earlier file's events from that step on.

    One writer per part and process: TensorBoard reads a folder's event files in name order, and
    names start with the creation second, so a second writer in the same second could sort first.

    Example:
        >>> import tempfile
        >>> log = ScalarLog(Path(tempfile.mkdtemp()), "train")
        >>> log.add({"train/loss": 0.1, "train/lr": 2e-4}, step=1); log.close()
        >>> [p.name.split(".")[0] for p in log.folder.iterdir()], log.folder.name
        (['events'], 'train')
    """

    def __init__(self, node: Path, part: str, enabled: bool = True, purge_step: int | None = None) -> None:
        self.folder = Path(node) / TENSORBOARD_DIR / part
        self._writer: Any = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step or None)

    def add(self, values: Mapping[str, float], step: int) -> None:
        """Record ``values`` (tag -> number) at ``step``; a full disk is a one-line :class:`MirlError`."""
        if self._writer is not None:
            with self._disk_full_is_one_line():
                for tag, value in values.items():
                    self._writer.add_scalar(tag, float(value), global_step=step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with self._disk_full_is_one_line():
                writer.close()

    @contextlib.contextmanager
    def _disk_full_is_one_line(self) -> Iterator[None]:
        from mirl.errors import MirlError
        from mirl.fileio import DISK_FULL

        try:
            yield
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            raise MirlError(f"no space left on device while writing the TensorBoard events in {self.folder}; this node is not "
                            "marked done: free some space and run the same command again (a study resumes where it stopped)") from None
