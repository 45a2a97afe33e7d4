"""A static file server for web exports: localhost only by default, cross-origin isolated.

``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``
make the page cross-origin isolated, so onnxruntime-web may use SharedArrayBuffer and run on every
core; a host without them (``python -m http.server``, most static hosts) gets one thread.

Example:
    >>> server = make_server("site", port=0)           # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever).start()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import http.server
import os
from typing import Any

# Python's table lacks these on some systems; modules need a JavaScript type, wasm its own.
MIME_TYPES: dict[str, str] = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                              ".json": "application/json", ".md": "text/plain; charset=utf-8", ".gz": "application/gzip"}


class ExportRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the isolation headers, ``no-cache`` and no request log on stderr."""

    isolation = True
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self) -> None:
        if self.isolation:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def make_server(folder: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                isolation: bool = True) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server for ``folder`` (not started: call ``serve_forever``)."""
    handler = type("Handler", (ExportRequestHandler,), {"isolation": isolation})
    server = http.server.ThreadingHTTPServer((host, port), functools.partial(handler, directory=os.fspath(folder)))
    server.daemon_threads = True
    return server


__all__ = ["ExportRequestHandler", "MIME_TYPES", "make_server"]
