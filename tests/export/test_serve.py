"""``mirl serve`` against hostile requests, as a real server (``python -m mirl serve --port 0``, a
separate process) answering real HTTP requests: only regular files inside its folder, no symlink
out of it, no folder listing, only local Host names on its port, no traceback on a null byte; a
port in use or out of range is a one-line error (issue 23, cases 2 and 17)."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from mirl.cli import main
from tests.conftest import subprocess_env

SECRET = "root:x:0:0 not for the browser"


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Path, int, subprocess.Popen]]:
    """A folder with traps, served by ``mirl serve`` on a free port: ``(folder, port, process)``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(SECRET)
    site = tmp_path / "site"
    (site / "plain").mkdir(parents=True)
    (site / "index.html").write_text("<p>the page</p>")
    (site / "plain" / "a.txt").write_text("a file in a folder without an index")
    (site / "trap").mkdir()
    (site / "trap" / "index.html").symlink_to(outside / "passwd")
    (site / "passwd").symlink_to(outside / "passwd")
    (site / "etc").symlink_to(outside)
    (site / "same.html").symlink_to(site / "index.html")  # a link that stays inside is fine
    process = subprocess.Popen([sys.executable, "-m", "mirl", "serve", str(site), "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        line = process.stdout.readline()
        match = re.search(r"http://localhost:(\d+)/", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        yield site, int(match.group(1)), process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _get(port: int, path: str, host: str | None = None, method: str = "GET") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": host if host is not None else f"localhost:{port}"})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_serve_sends_only_regular_files_inside_its_folder_to_local_hosts(served: tuple[Path, int, subprocess.Popen]) -> None:
    site, port, process = served
    assert _get(port, "/") == (200, "<p>the page</p>")
    assert _get(port, "/same.html") == (200, "<p>the page</p>")
    assert _get(port, "/plain/a.txt")[0] == 200
    for path in ("/passwd", "/etc/", "/etc/passwd", "/trap/", "/plain/", "/plain", "/../outside/passwd", "/%2e%2e/outside/passwd"):
        status, body = _get(port, path)
        assert status == 404 and SECRET not in body and "a.txt" not in body, (path, status, body)
    assert _get(port, "/passwd", method="HEAD")[0] == 404
    assert _get(port, "/index.html%00.png")[0] == 400
    assert _get(port, "/%ED%A0%80")[0] == 404  # an encoded lone surrogate: no file name at all
    for host in (f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert _get(port, "/", host=host)[0] == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"localhost:{port + 1}", "localhost", ""):
        status, body = _get(port, "/", host=host)
        assert status == 403 and "the page" not in body, host
    process.terminate()
    process.wait(timeout=10)
    err = process.stderr.read()
    assert "Traceback" not in err and "Error" not in err, err


def test_serve_on_a_port_in_use_or_out_of_range_is_one_line(served: tuple[Path, int, subprocess.Popen],
                                                            capsys: pytest.CaptureFixture) -> None:
    site, port, _ = served
    for argv, message in (([str(port)], f"cannot listen on 127.0.0.1 port {port} ({os.strerror(98)}); pass another --port"),
                          (["99999"], "--port 99999: a port is 0 to 65535 (0 picks a free one)"),
                          (["-1"], "--port -1: a port is 0 to 65535")):
        assert main(["serve", str(site), "--port", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mirl serve: error: ") and err.count("\n") == 1 and message in err, err
