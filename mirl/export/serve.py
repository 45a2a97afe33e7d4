"""A static file server for web exports: localhost only by default, cross-origin isolated.

``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``
make the page cross-origin isolated, so onnxruntime-web may use SharedArrayBuffer and run on every
core; a host without them (``python -m http.server``, most static hosts) gets one thread.

It serves only regular files whose real path (symlinks resolved) lies inside the folder, and a
folder's ``index.html``; it lists no folder. It answers only requests whose ``Host`` is
``localhost``, ``127.0.0.1`` or ``[::1]`` (or the address it listens on) with its port, so a page
of another site that rebinds its DNS name to 127.0.0.1 cannot read the folder (403).

Example:
    >>> server = make_server("site", port=0)           # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever).start()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import http.server
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

# Python's table lacks these on some systems; modules need a JavaScript type, wasm its own.
MIME_TYPES: dict[str, str] = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                              ".json": "application/json", ".md": "text/plain; charset=utf-8", ".gz": "application/gzip"}


LOCAL_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS: tuple[str, ...] = ("", "0.0.0.0", "::")


class ExportRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Static files inside the folder only, to local Host names only, with the isolation headers,
    ``no-cache``, no folder listing and no request log on stderr."""

    isolation = True
    allowed_hosts: frozenset[str] = frozenset()  # "name:port" values of the Host header; set by make_server
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def send_head(self) -> Any:
        """Check the Host header and the file first, then serve it as the base class does."""
        if (self.headers.get("Host") or "").lower() not in self.allowed_hosts:
            self.send_error(HTTPStatus.FORBIDDEN, "mirl serve answers only to localhost on its port")
            return None
        path = self.translate_path(self.path)
        if "\0" in path:
            self.send_error(HTTPStatus.BAD_REQUEST, "a null byte in the path")
            return None
        if not self._served(path):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def _served(self, path: str) -> bool:
        """Whether ``path`` (or, for a folder, the index file the base class would send) is a
        regular file whose real path lies inside the served folder."""
        if os.path.isdir(path):
            index = next((os.path.join(path, n) for n in ("index.html", "index.htm") if os.path.isfile(os.path.join(path, n))), None)
            if index is None:
                return False  # no listing
            path = index
        try:
            real = Path(path).resolve()
            return real.is_file() and real.is_relative_to(Path(self.directory).resolve())
        except (OSError, ValueError):
            return False

    def list_directory(self, path: str | os.PathLike) -> None:
        """Never list a folder (``send_head`` refuses one without an index first)."""
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

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
    """A threading HTTP server for ``folder`` (not started: call ``serve_forever``); it answers
    to ``localhost``, ``127.0.0.1``, ``[::1]`` and ``host`` (unless a wildcard) on the bound port.
    Binding errors (a port in use, out of range) are raised as ``OSError`` / ``OverflowError``."""
    handler = type("Handler", (ExportRequestHandler,), {"isolation": isolation})
    server = http.server.ThreadingHTTPServer((host, port), functools.partial(handler, directory=os.fspath(folder)))
    server.daemon_threads = True
    bound = server.server_address[1]
    names = set(LOCAL_NAMES) | ({f"[{host}]" if ":" in host else host} if host not in WILDCARDS else set())
    handler.allowed_hosts = frozenset({f"{n.lower()}:{bound}" for n in names} | ({n.lower() for n in names} if bound == 80 else set()))
    return server


__all__ = ["ExportRequestHandler", "LOCAL_NAMES", "MIME_TYPES", "make_server"]
