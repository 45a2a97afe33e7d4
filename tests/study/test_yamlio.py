"""mirl.study.yamlio: YAML/JSON files and ``--set`` values read without silent changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirl.errors import MirlError
from mirl.study.yamlio import check_json_values, load_yaml, parse_yaml_value, read_yaml_file


class _Custom(MirlError):
    """An error type a caller passes in."""


SETTINGS: dict[str, Any] = {"preset": "smoke", "rounds": 3, "fraction": 0.2, "amp": False, "device": None,
                            "data": "runs/2024-01-01", "day": "2024-01-01", "stamp": "2024-01-01 10:00:00",
                            "tasks": ["derain", "denoise_25"], "nested": {"alphas": [0.0, 0.5, 1.0], "name": "a #1"}}


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_a_written_file_reads_back_equal_with_dates_kept_as_text(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"settings.{suffix}"
    path.write_text(yaml.safe_dump(SETTINGS) if suffix == "yaml" else json.dumps(SETTINGS, indent=1))
    assert read_yaml_file(path, "--config", "settings") == SETTINGS


def test_load_yaml_keeps_dates_and_timestamps_as_the_text_typed() -> None:
    text = "d: 2024-01-01\nt: 2024-01-01 10:00:00\nn: 3\nx: 1.5e-3\nb: true\nz: null\nq: '2024-01-01'"
    assert load_yaml(text) == {"d": "2024-01-01", "t": "2024-01-01 10:00:00", "n": 3, "x": 1.5e-3, "b": True, "z": None,
                               "q": "2024-01-01"}
    assert yaml.safe_load("d: 2024-01-01")["d"] != "2024-01-01"  # what the plain loader would have done


@pytest.mark.parametrize("text, line", [
    ("a: 1\nb: 2\n  c: 3\n", 3),
    ('{"a": 1,\n "b": 2\n "c": 3}\n', 3),
    ("a: 1\nb:\n\t- 2\n", 3),
])
def test_a_malformed_file_is_refused_naming_the_file_and_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad settings.yaml"
    path.write_text(text)
    with pytest.raises(MirlError) as info:
        read_yaml_file(path, "--config", "a YAML or JSON file of setting: value")
    message = str(info.value)
    assert message.startswith(f"{path}: not valid YAML/JSON (line {line}: ")
    assert message.endswith("--config expects a YAML or JSON file of setting: value") and "\n" not in message


def test_a_missing_or_binary_file_is_refused_with_the_callers_error_type(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(_Custom, match=rf"^{missing}: cannot read it \(No such file or directory\); --params expects sets$"):
        read_yaml_file(missing, "--params", "sets", _Custom)
    binary = tmp_path / "photo.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(_Custom, match=rf"^{binary}: not a text file; --params expects sets$"):
        read_yaml_file(binary, "--params", "sets", _Custom)
    with pytest.raises(_Custom, match="cannot read it"):
        read_yaml_file(tmp_path, "--params", "sets", _Custom)  # a folder


@pytest.mark.parametrize("text, kind", [("!!set {a, b}", "set"), ("{!!binary aGk=: 1}", "binary"),
                                        ("[1, [x, !!timestamp 2024-01-01]]", "date"), ("{a: {b: !!binary aGk=}}", "binary")])
def test_values_json_cannot_hold_are_refused_naming_where(text: str, kind: str) -> None:
    with pytest.raises(_Custom, match=rf"^params\.yaml: set 2: YAML reads a {kind} \(.*\), which is not a parameter value; use text"):
        check_json_values(load_yaml(text), "params.yaml: set 2", _Custom)


def test_json_values_pass_the_check() -> None:
    check_json_values(SETTINGS, "settings")
    check_json_values(load_yaml("[1, 2.5, true, null, text, {k: [v]}]"), "settings")


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.5", 0.5), ("true", True), ("null", None), ("2024-01-01", "2024-01-01"),
    ('"a #b"', "a #b"), ("a#b", "a#b"), ('"x\\ny"', "x\ny"), ("{k: [1, 2]}", {"k": [1, 2]}),
])
def test_set_values_are_read_as_yaml_without_loss(text: str, value: Any) -> None:
    assert parse_yaml_value("key", text) == value


def test_a_set_value_that_is_not_yaml_names_the_key_and_says_to_quote(tmp_path: Path) -> None:
    with pytest.raises(_Custom) as info:
        parse_yaml_value("tasks", "[derain, dehaze", _Custom)
    message = str(info.value)
    assert message.startswith("--set tasks='[derain, dehaze': not a YAML value (line 1: ")
    assert "quote text, e.g. --set 'tasks=\"...\"'" in message


def test_a_set_value_with_a_dropped_comment_or_joined_lines_is_refused() -> None:
    with pytest.raises(_Custom, match=r"^--set limit='3 # images': YAML reads ' #' as the start of a comment"):
        parse_yaml_value("limit", "3 # images", _Custom)
    with pytest.raises(_Custom, match=r"^--set title='one\\ntwo': YAML would join its lines into one"):
        parse_yaml_value("title", "one\ntwo", _Custom)
    with pytest.raises(_Custom, match=r"YAML reads a set"):
        parse_yaml_value("tasks", "!!set {a}", _Custom)
