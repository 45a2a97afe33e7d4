"""Peak memory of ``mirl restore`` on a 4096x4096 photo with the ``small`` preset, tiled, on the CPU.

Builds a 4096x4096 RGB PNG by upscaling a built-in corpus photo, writes a ``small`` checkpoint
(random weights: memory and time do not depend on the values), runs the real command in a child
process and reads the child's peak resident set size (``getrusage(RUSAGE_CHILDREN)``).

Usage:
    .venv/bin/python benchmarks/restore_memory.py [--size 4096] [--tile 512] [--overlap 32] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from mirl.data.corpus import corpus_photos, load_photo
    from mirl.data.imageio import write_image
    from mirl.models import build_model, save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        photo = corpus_photos("train")[0]
        big = np.asarray(Image.fromarray(load_photo(photo)).resize((args.size, args.size), Image.BICUBIC))
        image = tmp_path / f"{photo.name}_{args.size}.png"
        write_image(image, big)
        del big
        ckpt = tmp_path / f"{args.preset}.pt"
        save_checkpoint(ckpt, build_model(args.preset))
        cmd = [sys.executable, "-m", "mirl", "restore", str(ckpt), str(image), "--out", str(tmp_path / "out"),
               "--tile", str(args.tile), "--overlap", str(args.overlap), "--device", "cpu", "--no-progress"]
        print("command:", " ".join(cmd[1:]).replace(str(tmp_path), "$TMP"))
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # Linux: KiB
        out = Image.open(tmp_path / "out" / image.name)
        record = {
            "benchmark": "restore_memory", "preset": args.preset, "size": args.size, "tile": args.tile,
            "overlap": args.overlap, "device": "cpu", "seconds": round(seconds, 1), "peak_rss_mib": round(peak_mib, 1),
            "output_size": list(out.size), "photo": photo.name,
        }
    print(json.dumps(record, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
