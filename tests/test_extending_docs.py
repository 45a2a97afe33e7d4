"""docs/extending.md: every Python block runs, in order, in one namespace; a block that starts
with a ``# mirl/...py`` comment is a file's whole content and registers its item for the blocks
after it. The registries are left as they were."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOC = REPO / "docs" / "extending.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_every_snippet_of_extending_runs_and_registers_its_item():
    from mirl.study.config import registries, study_preset

    before = {kind: set(r.names()) for kind, r in registries().items()}
    blocks = _blocks()
    files = [b.splitlines()[0][2:] for b in blocks if b.startswith("# mirl/")]
    assert len(files) >= 3 and all(f.endswith(".py") and not (REPO / f).exists() for f in files), files
    namespace: dict = {"__name__": "extending_docs"}
    try:
        for block in blocks:
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
