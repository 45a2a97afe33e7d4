"""mirl.reports.html: a tiny executed notebook exported to one self-contained page; the offline check."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mirl.reports import html
from mirl.reports.html import TEMPLATE_NAME, export_html, external_references, templates_dir

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def _notebook(path: Path, widgets: bool = False) -> Path:
    """An executed notebook: a title, a printed line, an image and an HTML table."""
    nb = new_notebook(cells=[
        new_markdown_cell("# Tiny report\n\nSome *text* and $x^2$."),
        new_code_cell("print('psnr')", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text="PSNR 31.42 dB\n")]),
        new_code_cell("fig", execution_count=2, outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]),
        new_code_cell("table", execution_count=3,
                      outputs=[new_output("execute_result", execution_count=3, data={"text/html": "<table><tr><td>cell-7</td></tr></table>"})]),
    ])
    if widgets:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2, "version_minor": 0}}
    nbformat.write(nb, str(path))
    return path


def _script_sources(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"'\s>]+)", page, re.I) + re.findall(r"\.src\s*=\s*'([^']*)'", page)


def test_the_templates_ship_with_the_package() -> None:
    folder = templates_dir()
    assert (folder / TEMPLATE_NAME / "index.html.j2").is_file() and (folder / "report_index.html.j2").is_file()


def test_a_tiny_notebook_exports_to_one_offline_page_with_its_outputs(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "tiny.ipynb")
    page_path = export_html(notebook, tmp_path / "out" / "nested" / "tiny.html", header="preset=<smoke> & rounds=2")
    assert page_path == tmp_path / "out" / "nested" / "tiny.html"
    page = page_path.read_text(encoding="utf-8")
    assert external_references(page) == [], external_references(page)[:5]
    assert all(src.startswith("data:") for src in _script_sources(page)), _script_sources(page)
    assert not re.search(r"require\.js|mathjax|fonts\.googleapis", page, re.I)
    for text in ("Tiny report", "PSNR 31.42 dB", "cell-7", f"data:image/png;base64,{PNG}"):
        assert text in page, text
    assert "preset=&lt;smoke&gt; &amp; rounds=2" in page and "<smoke>" not in page  # the header is escaped
    assert 'class="jp-Notebook mirl-hide-code"' in page and "Show code" in page  # code hidden, with a button
    styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", page, re.S | re.I))
    assert styles and "/*" not in styles  # comments (crediting https:// sources) are stripped
    assert not list(page_path.parent.glob(".*")), "a temporary file was left beside the page"


def test_without_a_vendored_renderer_a_widget_notebook_loads_no_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html, "widget_renderer_path", lambda: None)
    monkeypatch.setattr(html, "_EXPORTER_CACHE", {})
    page = export_html(_notebook(tmp_path / "w.ipynb", widgets=True), tmp_path / "w.html").read_text(encoding="utf-8")
    assert "document.createElement('script')" not in page and external_references(page) == []


def test_a_vendored_renderer_is_included_as_a_data_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = tmp_path / "_vendor"
    vendor.mkdir()
    source = "window.mirlRendererLoaded = 'https-free';\n"
    (vendor / "embed.js").write_text(source)
    monkeypatch.setattr(html, "widget_renderer_path", lambda: vendor / "embed.js")
    monkeypatch.setattr(html, "_EXPORTER_CACHE", {})
    page = export_html(_notebook(tmp_path / "w.ipynb", widgets=True), tmp_path / "w.html").read_text(encoding="utf-8")
    loaded = [s for s in _script_sources(page) if "javascript" in s]
    assert len(loaded) == 1 and loaded[0].startswith("data:")
    assert base64.b64decode(loaded[0].split(",", 1)[1]).decode() == source
    assert external_references(page) == []


@pytest.mark.parametrize("text, found", [
    ('<button formaction="//evil.example/x">', True),
    ("<a HREF = '//cdn.example/x'>", True),
    ('<div style="background:url( //cdn.example/b.png)">', True),
    ('<a href="http://www.w3.org.evil.example/x">', True),  # only the w3.org namespace itself is a name
    ('<script>new WebSocket("wss://x.example")</script>', True),
    ('<a href="/local/x.html">local</a><a href="#top">top</a>', False),
    ('<img src="data:image/png;base64,AAAA"><svg xmlns="http://www.w3.org/2000/svg"></svg>', False),
])
def test_external_references_finds_addresses_in_attributes_css_and_scripts(text: str, found: bool) -> None:
    assert bool(external_references(text)) is found


def test_a_protocol_relative_srcset_is_an_external_reference() -> None:
    """Browsers fetch srcset candidates like src."""
    assert external_references('<img srcset="//cdn.example/a.png 2x">')
