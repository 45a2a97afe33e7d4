"""mirl.reports.index: report records read from a folder, the index page and index.json built from them."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mirl.errors import MirlError
from mirl.reports.index import build_index, format_number, load_records, render_index


def _report(out: Path, name: str, notebook: str, results: dict | None = None, figure: tuple[int, int] | None = None,
            **record: Any) -> Path:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"name": name, "notebook": notebook, "status": "ok", **record}))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))
    if figure is not None:
        Image.new("RGB", figure, (200, 30, 30)).save(folder / "main_figure.png")
    return folder


@pytest.mark.parametrize("value, text", [(-0.000123456, "-0.0001235"), (-12.345, "-12.35"), (1.0, "1.00"), (0.5, "0.5"),
                                         (1234.5, "1234.50"), (7, "7"), (None, "None"), ("n = 3", "n = 3")])
def test_format_number_keeps_four_digits_below_one_and_two_decimals_above(value: Any, text: str) -> None:
    assert format_number(value) == text


def test_records_are_sorted_by_notebook_then_name_and_carry_results_and_thumbnails(tmp_path: Path) -> None:
    _report(tmp_path, "b-gallery", "03", results={"headline": {"x": 1}})
    _report(tmp_path, "z-study", "01", figure=(900, 300))
    _report(tmp_path, "a-study", "01")
    _report(tmp_path, ".01_study.tmp-9", "01")  # a report being built
    (tmp_path / "loose.json").write_text("{}")
    records = load_records(tmp_path)
    assert [r["name"] for r in records] == ["a-study", "z-study", "b-gallery"]
    assert records[2]["results"] == {"headline": {"x": 1}} and "results" not in records[0]
    assert records[0]["thumbnail"] is None and records[2]["thumbnail"] is None
    url = records[1]["thumbnail"]
    assert url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as thumb:
        assert thumb.format == "JPEG" and thumb.width <= 360 and thumb.height <= 300
        assert thumb.width / thumb.height == pytest.approx(3.0, rel=0.02)  # the figure's shape is kept


@pytest.mark.parametrize("damaged", ["report.json", "results.json"])
def test_a_damaged_record_is_an_error_naming_it(tmp_path: Path, damaged: str) -> None:
    """Reports are written whole, so a damaged file is named, not left out of the index."""
    _report(tmp_path, "a-study", "01", results={"headline": {"x": 1}})
    (tmp_path / "a-study" / damaged).write_text("{not json")
    with pytest.raises(MirlError, match=rf"a-study/{damaged} cannot be read .*run `mirl report` again for a-study"):
        load_records(tmp_path)


def test_a_small_figure_is_not_enlarged(tmp_path: Path) -> None:
    _report(tmp_path, "r", "01", figure=(40, 20))
    url = load_records(tmp_path)[0]["thumbnail"]
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as thumb:
        assert thumb.size == (40, 20)


def test_the_page_escapes_record_text_but_not_the_trusted_study_link() -> None:
    records = [{"name": "n<1>", "title": "T & <b>", "html": "r.html?a=1&b=2", "status": "failed",
                "parameters": {"tasks": ["derain", "<x>"]}, "duration_s": 61.04,
                "results": {"headline": {"<gain>": 0.0123456}}, "error": "E" * 350, "thumbnail": None}]
    page = render_index(records, study_link='<p class="study"><a href="web-x/index.html">study</a></p>')
    assert '<p class="study"><a href="web-x/index.html">study</a></p>' in page
    assert '<a href="r.html?a=1&amp;b=2">T &amp; &lt;b&gt;</a>' in page and "<small>n&lt;1&gt;</small>" in page
    assert "tasks=[&#34;derain&#34;, &#34;&lt;x&gt;&#34;]" in page
    assert "&lt;gain&gt;: 0.01235" in page and "61.0 s" in page
    assert "E" * 300 in page and "E" * 301 not in page
    assert '<span class="failed">failed</span>' in page


def test_a_record_with_no_title_shows_its_name_and_no_link() -> None:
    page = render_index([{"name": "05_checkpoint", "status": "ok"}])
    assert "<td>05_checkpoint<br><small>05_checkpoint</small></td>" in page and "<a href" not in page


def test_rebuilding_replaces_a_rerun_reports_row_and_keeps_the_others(tmp_path: Path) -> None:
    _report(tmp_path, "01_study", "01", results={"headline": {"PSNR (dB)": 30.0}}, title="Study")
    _report(tmp_path, "02_curves", "02", title="Curves")
    build_index(tmp_path)
    (tmp_path / "01_study" / "results.json").write_text(json.dumps({"headline": {"PSNR (dB)": 31.5}}))
    index = build_index(tmp_path)
    page = index.read_text(encoding="utf-8")
    assert index == tmp_path / "index.html"
    assert page.count("<td>Study<br>") == 1 and "PSNR (dB): 31.50" in page and "30.00" not in page and "<td>Curves<br>" in page
    listed = json.loads((tmp_path / "index.json").read_text())
    assert [r["name"] for r in listed] == ["01_study", "02_curves"]
    assert listed[0]["results"]["headline"]["PSNR (dB)"] == 31.5 and all("thumbnail" not in r for r in listed)


def test_an_empty_folder_gets_an_index_with_no_rows(tmp_path: Path) -> None:
    page = build_index(tmp_path / "reports").read_text(encoding="utf-8")
    assert "<tbody>\n</tbody>" in page or "<tbody></tbody>" in page
    assert json.loads((tmp_path / "reports" / "index.json").read_text()) == []


def test_a_sub_folders_collection_is_linked_from_its_parents_index_with_its_headlines(tmp_path: Path) -> None:
    _report(tmp_path, "01_study", "01", title="Study")
    build_index(tmp_path)
    scaling = tmp_path / "scaling"
    _report(scaling, "06_scaling--grid", "06", results={"headline": {"tiny 1x: ticket - random re-init": "+0.46 [+0.06, +0.86]"}},
            title="Scaling <grid>", html="06_scaling--grid.html")
    build_index(scaling)  # rebuilds the parent's index, which now links it
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert '<a href="scaling/index.html">scaling/</a> (1 report)' in page
    assert '<a href="scaling/06_scaling--grid.html">Scaling &lt;grid&gt;</a>' in page
    assert "tiny 1x: ticket - random re-init: +0.46 [+0.06, +0.86]" in page and "<td>Study<br>" in page
    assert "Report collections" not in (scaling / "index.html").read_text(encoding="utf-8")  # no sub-folders of its own
    (scaling / "index.json").write_text("{not json")
    with pytest.raises(MirlError, match="scaling"):
        build_index(tmp_path)


def test_another_tools_index_is_neither_listed_nor_rewritten(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "notes").mkdir(parents=True)
    for folder in (site, site / "notes"):
        (folder / "index.json").write_text('{"not": "a list of reports"}')
        (folder / "index.html").write_text("<html><title>my site</title></html>")
    _report(site / "reports", "01_study", "01", title="Study")
    build_index(site / "reports")
    assert (site / "index.html").read_text() == "<html><title>my site</title></html>"  # a parent not ours is left alone
    page = build_index(site).read_text(encoding="utf-8")  # asked for: lists reports/, not the notes' index
    assert '<a href="reports/index.html">reports/</a>' in page and "notes/" not in page
    assert (site / "notes" / "index.html").read_text() == "<html><title>my site</title></html>"
