"""docs/extending.md runs: every ```python block, each on its own, in a folder whose runs/ holds a
small finished smoke study (main levels 0-1 and a random_prune branch). Other sections of the file
are run the same way: a snippet needs no more than that study."""

from __future__ import annotations

import re
import runpy
import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST, REPO

DOC = REPO / "docs" / "extending.md"
# a heading, a python block, or another fenced block (whose '#' lines are no headings)
PARTS = re.compile(r"^(#+ [^\n]*)$|^```python\n(.*?)^```|^```.*?^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[str, str]]:
    """``(section heading + index, code)`` of every ```python block of a Markdown text."""
    blocks, heading, seen = [], "top", {}
    for match in PARTS.finditer(text):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
            continue
        if match.group(2) is None:
            continue
        seen[heading] = seen.get(heading, 0) + 1
        blocks.append((f"{heading} {seen[heading]}", match.group(2)))
    return blocks


BLOCKS = python_blocks(DOC.read_text(encoding="utf-8"))


def test_the_snippet_finder_sees_every_block() -> None:
    text = "# A\n```python\nx = 1\n```\n## B\n```\n# not a heading\n```\n```python\ny = 2\n```\n```python\nz = 3\n```\n"
    assert python_blocks(text) == [("A 1", "x = 1\n"), ("B 1", "y = 2\n"), ("B 2", "z = 3\n")]
    assert len(BLOCKS) >= 5 and {"Writing a branch 1", "API cookbook 3"} <= {name for name, _ in BLOCKS}


@pytest.fixture(scope="module")
def finished_study(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mirl.study.lottery import run_study

    return run_study("smoke", {"data": str(demo_data), "rounds": 1, "branches": "random_prune", **FAST},
                     out=tmp_path_factory.mktemp("runs"))


@pytest.mark.parametrize("name, code", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_snippet_of_docs_extending_runs(name: str, code: str, finished_study: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(finished_study, tmp_path / "runs" / finished_study.name)
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
