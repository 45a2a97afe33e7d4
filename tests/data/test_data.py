"""mirl.data (the package's __init__): task names, aliases, sigmas, and the lazily imported exports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import mirl.data as data
from mirl.data import ALL_IN_ONE, DEMO_REPEATS, PUBLISHED_REPEATS, TASK_ALIASES, TASKS, TaskError, expand_tasks, task_sigma
from mirl.errors import MirlError
from tests.conftest import REPO, subprocess_env


def test_expand_tasks_parses_a_comma_or_space_separated_string() -> None:
    assert expand_tasks("derain, jpeg  dehaze,,") == ["derain", "jpeg", "dehaze"]
    assert expand_tasks("denoise") == list(TASK_ALIASES["denoise"])


def test_expand_tasks_drops_repeats_across_aliases_keeping_first_order() -> None:
    assert expand_tasks(["derain", "all_in_one", "denoise_25"]) == ["derain", *[t for t in ALL_IN_ONE if t != "derain"]]
    assert expand_tasks(["denoise_50", "denoise"]) == ["denoise_50", "denoise_15", "denoise_25"]


def test_expand_tasks_unknown_or_empty_lists_the_valid_names() -> None:
    for bad in (["denoise_30"], ["derain", "Derain"]):
        with pytest.raises(TaskError, match=rf"unknown task {bad[-1]!r}; valid: .*jpeg.*all_in_one, denoise"):
            expand_tasks(bad)
    with pytest.raises(TaskError, match="no task given; valid: denoise_15"):
        expand_tasks(" , ")
    assert issubclass(TaskError, ValueError) and issubclass(TaskError, MirlError)


def test_task_sigma_reads_the_denoise_level() -> None:
    sigmas = {t: task_sigma(t) for t in TASKS}
    assert {t: s for t, s in sigmas.items() if s is not None} == {"denoise_15": 15, "denoise_25": 25, "denoise_50": 50}
    assert all(isinstance(s, int) for s in sigmas.values() if s is not None)


def test_tables_cover_every_task_and_aliases_name_known_tasks() -> None:
    assert set(PUBLISHED_REPEATS) == set(DEMO_REPEATS) == set(TASKS)
    assert set(ALL_IN_ONE) < set(TASKS) and "jpeg" not in ALL_IN_ONE
    assert all(set(v) <= set(TASKS) for v in TASK_ALIASES.values())


@pytest.mark.parametrize("name", sorted(data._LAZY))
def test_lazy_exports_are_the_submodules_objects(name: str) -> None:
    module = importlib.import_module(f"mirl.data.{data._LAZY[name]}")
    assert getattr(data, name) is getattr(module, name)
    assert name in data.__all__


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'mirl.data' has no attribute 'no_such_thing'"):
        data.no_such_thing  # noqa: B018


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, mirl.data; mirl.data.expand_tasks('denoise'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
