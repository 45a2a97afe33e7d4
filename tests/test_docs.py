"""docs/extending.md runs. The blocks before its registry sections run each on its own, in a folder
whose runs/ holds a small finished smoke study (main levels 0-1 and a random_prune branch). The
blocks of the registry sections (from REGISTRIES on) run in order in one namespace: a block that
starts with a ``# mirl/...py`` comment is a file's whole content and registers its item for the
blocks after it; the registries are left as they were."""

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


REGISTRIES = "What a researcher swaps: registries"  # this section and the ones after it share one namespace


def _split(blocks: list[tuple[str, str]], sections: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The blocks of the sections before :data:`REGISTRIES` (each on its own), and the code of the
    blocks from it on (in order)."""
    first = sections.index(REGISTRIES)
    later = set(sections[first:])
    return ([(n, c) for n, c in blocks if n.rsplit(" ", 1)[0] not in later],
            [c for n, c in blocks if n.rsplit(" ", 1)[0] in later])


_TEXT = DOC.read_text(encoding="utf-8")
BLOCKS, REGISTRY_BLOCKS = _split(python_blocks(_TEXT), re.findall(r"^#+ (.*?)\s*$", re.sub(r"^```.*?^```", "", _TEXT, flags=re.S | re.M), re.M))


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


def test_the_registry_sections_run_in_order_and_register_their_items() -> None:
    from mirl.study.config import registries, study_preset

    before = {kind: set(r.names()) for kind, r in registries().items()}
    files = [b.splitlines()[0][2:] for b in REGISTRY_BLOCKS if b.startswith("# mirl/")]
    assert len(files) >= 3 and all(f.endswith(".py") and not (REPO / f).exists() for f in files), files
    namespace: dict = {"__name__": "extending_docs"}
    try:
        for block in REGISTRY_BLOCKS:
            exec(compile(block, str(DOC), "exec"), namespace)
        added = {kind: set(r.names()) - before[kind] for kind, r in registries().items()}
        assert {k: v for k, v in added.items() if v} == {"pruner": {"movement"}, "model": {"tiny_long_prompts"},
                                                         "optimizer": {"adam"}, "schedule": {"step_decay"}}
        for kind, names in added.items():  # the settings take the new names, as --set does
            for name in names:
                assert getattr(study_preset("smoke", {kind: name}), kind) == name
    finally:
        for kind, registry in registries().items():
            for name in set(registry.names()) - before[kind]:
                registry.unregister(name)
