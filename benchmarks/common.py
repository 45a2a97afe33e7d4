"""Timing helpers shared by the benchmarks: device choice, synchronisation, warm-up + median
timing, peak memory (CUDA allocator on GPU, sampled RSS on CPU), test photos and JSON output.

Example:
    >>> import torch
    >>> t = time_fn(lambda: torch.ones(4).sum(), torch.device("cpu"), warmup=1, iters=3)
    >>> sorted(t)
    ['iters', 'mean_ms', 'median_ms', 'min_ms']
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

GIB = float(1 << 30)

# Bundled scikit-image photos used when ``mirl.data.corpus`` is not available (read by path,
# never downloaded). Colour images only.
SKIMAGE_PHOTOS: tuple[str, ...] = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    from mirl.device import resolve_device

    return resolve_device(name)


def sync(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, warmup: int = 2, iters: int = 5) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``iters`` times; milliseconds per call.

    Each call is synchronised, so the numbers are wall-clock latencies of complete device work.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(max(1, iters)):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "iters": len(times),
    }


def _rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; falls back to ``ru_maxrss``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # pragma: no cover - non-Linux
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class PeakMemory:
    """Context manager measuring peak memory of a region.

    On CUDA: ``torch.cuda.max_memory_allocated`` after a reset (absolute, so it includes the
    weights and optimizer state allocated before the region). On CPU: RSS sampled every
    ``interval_s`` by a thread; ``peak_gib`` is the peak RSS *above* the RSS at entry (a
    process-wide ``ru_maxrss`` cannot separate two paths run in one process).
    """

    def __init__(self, device: torch.device, interval_s: float = 0.002) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._base = _rss_bytes()
            self._peak_rss = self._base
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak_rss = max(self._peak_rss, _rss_bytes())
            time.sleep(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self._peak_rss = max(self._peak_rss, _rss_bytes())
            self.peak_bytes = self._peak_rss - self._base

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB


def env_info(device: torch.device) -> dict[str, Any]:
    """Machine and library versions, recorded with every result."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_mem_gib=round(props.total_memory / GIB, 1), cuda=torch.version.cuda)
    return info


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_photos(max_images: int = 4, min_side: int = 0) -> list[np.ndarray]:
    """Test photos as float32 RGB arrays in [0, 1], shape (h, w, 3).

    Uses ``mirl.data.corpus`` (test split first) when it is importable and finds photos;
    otherwise reads the photos bundled with scikit-image by file path (no download).
    """
    photos: list[np.ndarray] = []
    try:
        from mirl.data.corpus import corpus_photos, load_photo

        for split in ("test", "train"):
            for photo in corpus_photos(split):
                try:
                    photos.append(_to_float(load_photo(photo)))
                except Exception:  # one unreadable photo must not stop a benchmark
                    continue
    except ImportError:  # the corpus module is optional here
        photos = []
    if not photos:
        import skimage
        from PIL import Image

        root = Path(skimage.__file__).parent / "data"
        for name in SKIMAGE_PHOTOS:
            path = root / name
            if path.exists():
                photos.append(_to_float(np.asarray(Image.open(path).convert("RGB"))))
    photos = [p for p in photos if min(p.shape[:2]) >= min_side]
    if not photos:
        raise RuntimeError("no test photos found (mirl.data.corpus and scikit-image's data folder)")
    return photos[:max_images]


def _to_float(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def write_json(path: str | os.PathLike | None, obj: Any) -> None:
    """Write ``obj`` as indented JSON (creating parent folders); no-op for ``None``."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, (torch.device, torch.dtype, Path)):
        return str(obj)
    raise TypeError(f"not JSON-able: {type(obj).__name__}")


def format_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """Plain-text table of ``rows`` (floats with 3 significant decimals)."""
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return "" if v is None else str(v)

    table = [cols] + [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_common_args(parser: Any) -> None:
    """``--device``, ``--seed`` and ``--json`` shared by every benchmark."""
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the result as JSON to this path")
