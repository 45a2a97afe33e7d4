"""``mirl serve DIR``: serve a web export (or any folder) on localhost, as a static host would.

It differs from ``python -m http.server`` in two headers, ``Cross-Origin-Opener-Policy:
same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``: they make the page
cross-origin isolated, which lets onnxruntime-web run on every CPU core (threads need
SharedArrayBuffer). Files are sent with ``Cache-Control: no-cache``, so a re-export shows at once.

Example:
    $ mirl serve site/ --port 8000
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="the folder to serve (a `mirl export --format web` output)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--no-isolation", action="store_true", help="leave out the cross-origin isolation headers (one thread, as most static hosts)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirl.errors import MirlError
    from mirl.export.serve import make_server

    folder = Path(args.folder)
    if not folder.is_dir():
        raise MirlError(f"{folder}: no such folder; build one with `mirl export SOURCE --format web --out {folder}`")
    if not (folder / "index.html").is_file():
        print(f"note: {folder} has no index.html; serving its files anyway")
    server = make_server(folder, args.host, args.port, isolation=not args.no_isolation)
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    print(f"serving {folder.resolve()} at http://{shown}:{port}/  (Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
