"""Browser tests (Playwright driving Debian's /usr/bin/chromium; never ``playwright install``).

1. The exported reports: open ``index.html`` from disk with every network request blocked,
   follow the link to the mask explorer, move its slider, and check the shown mask image changes
   (browser-side widgets, no kernel).
2. A real JupyterLab: open the mask explorer notebook (smoke parameters), run all cells, move the
   kernel explorer's slider and check that a kernel callback updated the view.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import browser_or_skip
from tests.reports.test_notebooks import smoke_reports

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return smoke_reports(tmp_path_factory)


_VISIBLE_IMAGES = """(sel) => [...document.querySelectorAll(sel + ' img')]
    .filter(i => i.offsetParent !== null).map(i => i.src)"""
_VISIBLE_TEXT = """(sel) => [...document.querySelectorAll(sel + ' .widget-html-content')]
    .filter(e => e.offsetParent !== null).map(e => e.textContent).join(' | ')"""


def test_static_report_slider_switches_mask_image(browser: Any, smoke: dict[str, Any]) -> None:
    from mirl.reports.html import widget_renderer_path

    if widget_renderer_path() is None:
        pytest.skip("mirl/_vendor/embed.js missing (setup fetches it from npm): the report has no widget renderer")
    page = browser.new_page()
    external: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    page.route("**/*", guard)
    page.goto((smoke["reports"] / "index.html").as_uri())
    page.click("text=Mask explorer")
    page.wait_for_url("**/04_mask_explorer*.html")
    sel = ".mirl-static-explorer"
    handle = page.locator(f"{sel} .widget-slider .noUi-handle").first
    handle.wait_for(state="visible", timeout=30_000)
    page.wait_for_function(f"() => document.querySelectorAll('{sel} img').length > 0", timeout=30_000)
    before_src = page.evaluate(_VISIBLE_IMAGES, sel)
    before_text = page.evaluate(_VISIBLE_TEXT, sel)
    assert len(before_src) == 1, before_src
    handle.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"(b) => ({_VISIBLE_IMAGES})('{sel}')[0] !== b", arg=before_src[0], timeout=10_000)
    after_src = page.evaluate(_VISIBLE_IMAGES, sel)
    after_text = page.evaluate(_VISIBLE_TEXT, sel)
    assert after_src != before_src
    assert before_text != after_text and "level 1" in after_text, (before_text, after_text)
    assert external == [], f"the reports tried to fetch {external}"
    page.close()


def test_names_holding_html_run_no_script_in_reports(browser: Any, tmp_path: Path) -> None:
    """A checkpoint and a data folder named with HTML (issue 23): ``mirl report --notebooks 05``
    shows both names as text in the report and the index; in Chromium no dialog fires and no
    injected element exists (the checkpoint's name used to close a Markdown code span)."""
    import torch

    from mirl.cli import main
    from mirl.data.make_dataset import make_dataset
    from mirl.models import build_model

    checkpoint = tmp_path / "x`<img src=x onerror=alert(1)>`.pt"
    torch.save(build_model("tiny").state_dict(), checkpoint)
    data = tmp_path / "d<img src=x onerror=alert(2)>"
    make_dataset(data, seed=0, max_test_side=64, progress=False)
    out = tmp_path / "reports"
    assert main(["report", "--notebooks", "05", "--set", f"checkpoint={checkpoint}", "--set", f"data_root={data}",
                 "--set", "tasks=[derain]", "--set", "limit=1", "--set", "n_images=1", "--out", str(out),
                 "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "datasets")]) == 0
    [report] = out.glob("05_any_checkpoint*.html")
    for html in (report, out / "index.html"):
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(html.as_uri())
        page.wait_for_timeout(1000)  # a broken <img> fires its onerror within milliseconds
        text = page.inner_text("body")
        assert dialogs == [], f"{html.name}: a script ran: {dialogs}"
        assert page.locator("img[onerror]").count() == 0, f"{html.name}: an injected element exists"
        assert checkpoint.name in text and data.name in text, f"{html.name} does not show the names as text"
        page.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyterlab(tmp_path: Path, smoke: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A real JupyterLab server rooted in ``tmp_path`` holding the mask explorer notebook with
    smoke parameters injected (as papermill would, without executing it)."""
    browser_or_skip()
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from mirl.reports.runner import notebooks_dir

    root = tmp_path / "lab"
    root.mkdir()
    nb = load_notebook_node(str(notebooks_dir() / "04_mask_explorer.ipynb"))
    nb = parameterize_notebook(nb, {"preset": "smoke", "runs_dir": str(smoke["runs"]), "output_dir": str(tmp_path / "out")})
    nbformat.write(nb, root / "explorer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        path = tmp_path / var.lower()
        path.mkdir()
        env[var] = str(path)
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab did not start; log: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield {"url": f"{base}/lab/tree/explorer.ipynb?token={token}", "log": tmp_path / "jupyterlab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_jupyterlab_kernel_callback_updates_view(browser: Any, jupyterlab: dict[str, Any]) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(jupyterlab["url"])
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }", timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    sel = ".mirl-kernel-explorer"
    status = page.locator(f"{sel} .mirl-status")
    status.wait_for(state="attached", timeout=120_000)
    page.wait_for_function("(s) => { const e = document.querySelector(s + ' .mirl-status');"
                           " return e && e.textContent.includes('update #'); }", arg=sel, timeout=30_000)
    before_text = status.text_content()
    before_src = page.evaluate(_VISIBLE_IMAGES, sel)
    handle = page.locator(f"{sel} .widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"(b) => document.querySelector('{sel} .mirl-status').textContent !== b",
                           arg=before_text, timeout=30_000)
    after_text = status.text_content()
    assert "(kernel)" in after_text and after_text != before_text
    assert "level 1" in after_text, after_text  # B moved from level 2 to level 1
    page.wait_for_function(f"(b) => ({_VISIBLE_IMAGES})('{sel}')[0] !== b", arg=before_src[0], timeout=30_000)
    page.close()
