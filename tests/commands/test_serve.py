"""``mirl serve`` (mirl.commands.serve) in-process: the address it prints is the one it serves on,
``--no-isolation`` reaches the server, Ctrl+C stops it cleanly, and a folder without a page gets a
note. The server is real (port 0) and answers one request, then a simulated Ctrl+C ends it.
Hostile requests against a server process: tests/export/test_serve.py."""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mirl.cli import main


@pytest.fixture()
def one_request(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Make ``mirl serve``'s server answer one GET of ``/index.html`` on its own address, then
    raise KeyboardInterrupt (Ctrl+C). Fills ``{'server', 'headers', 'body', 'closed'}``."""
    from mirl.export import serve

    seen: dict[str, Any] = {}
    real = serve.make_server

    def make_server(*args: Any, **kwargs: Any) -> Any:
        server = real(*args, **kwargs)
        seen["server"] = server
        port = server.server_address[1]

        def fetch() -> None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/index.html", headers={"Host": f"localhost:{port}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    seen["headers"], seen["body"] = dict(response.headers), response.read().decode()
            except Exception as exc:  # noqa: BLE001 - reported by the test
                seen["error"] = exc

        def serve_once() -> None:
            client = threading.Thread(target=fetch)
            client.start()
            server.handle_request()
            client.join(timeout=10)
            raise KeyboardInterrupt

        close = server.server_close

        def server_close() -> None:
            seen["closed"] = True
            close()

        server.serve_forever, server.server_close = serve_once, server_close
        return server

    monkeypatch.setattr(serve, "make_server", make_server)
    return seen


def _site(tmp_path: Path, page: bool = True) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    if page:
        (site / "index.html").write_text("<p>ticket page</p>")
    return site


@pytest.mark.parametrize("isolation", [True, False])
def test_the_printed_address_serves_the_folder(isolation: bool, tmp_path: Path, one_request: dict[str, Any],
                                               capsys: pytest.CaptureFixture) -> None:
    site = _site(tmp_path)
    assert main(["serve", str(site), "--port", "0", *([] if isolation else ["--no-isolation"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    match = re.fullmatch(rf"serving {re.escape(str(site.resolve()))} at http://localhost:(\d+)/  \(Ctrl\+C stops\)", lines[0])
    assert match and int(match.group(1)) == one_request["server"].server_address[1] != 0
    assert lines[1:] == ["stopped"]
    assert "error" not in one_request and one_request["body"] == "<p>ticket page</p>"
    assert ("Cross-Origin-Opener-Policy" in one_request["headers"]) == isolation
    assert one_request["closed"] is True


def test_a_folder_without_a_page_gets_a_note(tmp_path: Path, one_request: dict[str, Any],
                                             capsys: pytest.CaptureFixture) -> None:
    site = _site(tmp_path, page=False)
    assert main(["serve", str(site), "--port", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"note: {site} has no index.html; its files are served by name only (folders are never listed)"
    assert lines[1].startswith("serving ") and lines[-1] == "stopped"


def test_a_file_is_not_a_folder_to_serve(tmp_path: Path, one_request: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    """A file (say, the ONNX export) instead of the web folder: one line saying how to build one; no server."""
    onnx = tmp_path / "ticket.onnx"
    onnx.write_bytes(b"onnx")
    assert main(["serve", str(onnx)]) == 2
    assert capsys.readouterr().err == (f"mirl serve: error: {onnx} is a file; give the folder that holds the page "
                                       f"(its index.html), e.g. {tmp_path}\n")
    assert "server" not in one_request


def test_a_port_that_is_not_a_number_is_an_argparse_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", str(tmp_path), "--port", "http"])
    assert info.value.code == 2 and "'http'" in capsys.readouterr().err
