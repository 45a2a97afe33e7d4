"""``mirl serve DIR``: serve a web export (or any folder) on localhost, as a static host would.

It differs from ``python -m http.server`` in two headers, ``Cross-Origin-Opener-Policy:
same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``: they make the page
cross-origin isolated, which lets onnxruntime-web run on every CPU core (threads need
SharedArrayBuffer). Files are sent with ``Cache-Control: no-cache``, so a re-export shows at once.
Only regular files inside the folder are served (no listing, no symlink out of it), and only to
requests for ``localhost`` on its port (see :mod:`mirl.export.serve`).

Example:
    $ mirl serve site/ --port 8000
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="the folder to serve (a `mirl export --format web` output)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only); requests must name localhost or this address")
    parser.add_argument("--no-isolation", action="store_true", help="leave out the cross-origin isolation headers (one thread, as most static hosts)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirl.errors import MirlError
    from mirl.export.serve import make_server

    folder = Path(args.folder)
    if folder.is_file():
        raise MirlError(f"{folder} is a file; give the folder that holds the page (its index.html), e.g. {folder.parent}")
    if not folder.is_dir():
        raise MirlError(f"{folder}: no such folder; build one with `mirl export SOURCE --format web --out {folder}`")
    if not (folder / "index.html").is_file():
        print(f"note: {folder} has no index.html; its files are served by name only (folders are never listed)")
    if not 0 <= args.port <= 65535:
        raise MirlError(f"--port {args.port}: a port is 0 to 65535 (0 picks a free one)")
    try:
        server = make_server(folder, args.host, args.port, isolation=not args.no_isolation)
    except OSError as exc:
        raise MirlError(f"cannot listen on {args.host} port {args.port} ({exc.strerror or exc}); pass another --port, "
                        "or --port 0 for a free one") from None
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0", "::") else host  # a Host the server answers to
    print(f"serving {folder.resolve()} at http://{shown}:{port}/  (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
