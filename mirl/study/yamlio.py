"""YAML (and JSON, which is YAML) typed by a user: files (``--config``, ``--params``) and ``--set``
values. Nothing is changed silently: dates stay text (``2024-01-01`` is a folder name here), a
``#`` comment or a line break that YAML would drop is refused, and every problem is a one-line
:class:`~mirl.errors.MirlError` naming the file or value and saying what to do.

Example:
    >>> parse_yaml_value("data_root", "2024-01-01"), parse_yaml_value("tasks", "[derain, dehaze]")
    ('2024-01-01', ['derain', 'dehaze'])
    >>> parse_yaml_value("checkpoint", "/photos #2")
    Traceback (most recent call last):
    mirl.errors.MirlError: --set checkpoint='/photos #2': YAML reads ' #' as the start of a comment and drops what follows; quote text that holds it, e.g. --set 'checkpoint="..."', or leave the comment out
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any, Iterator

import yaml

from mirl.errors import MirlError

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PLAIN = (str, int, float, bool, type(None))


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without implicit dates (notebook parameters and settings are JSON values)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that keeps dates as text.

    Example:
        >>> load_yaml("{day: 2024-01-01, n: 3}")
        {'day': '2024-01-01', 'n': 3}
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def _problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def read_yaml_file(path: str | os.PathLike, flag: str, expects: str, error: type[MirlError] = MirlError) -> Any:
    """Parse a YAML or JSON file; a missing, binary or malformed file is an ``error`` naming it
    and saying that ``flag`` expects ``expects``."""
    path = Path(path)
    advice = f"{flag} expects {expects}"
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror}); {advice}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file; {advice}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML/JSON ({_problem(exc)}); {advice}") from None


def _leaves(value: Any) -> Iterator[Any]:
    """Every key and scalar of a parsed YAML value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def check_json_values(value: Any, where: str, error: type[MirlError] = MirlError) -> None:
    """Refuse what YAML can build but JSON (a notebook parameter, ``report.json``) cannot hold:
    ``!!binary``, ``!!set``, ``!!timestamp``."""
    bad = next((leaf for leaf in _leaves(value) if not isinstance(leaf, _PLAIN)), None)
    if bad is not None:
        kind = "date" if isinstance(bad, datetime.date) else {bytes: "binary"}.get(type(bad), type(bad).__name__)
        raise error(f"{where}: YAML reads a {kind} ({bad!r}), which is not a parameter value; use text, numbers, "
                    "true/false, lists and mappings (quote text)")


def parse_yaml_value(key: str, text: str, error: type[MirlError] = MirlError) -> Any:
    """The value of ``--set KEY=TEXT`` read as YAML; refused when YAML would drop part of it."""
    where = f"--set {key}={text!r}"
    try:
        value = load_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not a YAML value ({_problem(exc)}); quote text, e.g. --set '{key}=\"...\"'") from None
    kept = "".join(leaf for leaf in _leaves(value) if isinstance(leaf, str))
    if text.count("#") > kept.count("#"):
        raise error(f"{where}: YAML reads ' #' as the start of a comment and drops what follows; quote text that "
                    f"holds it, e.g. --set '{key}=\"...\"', or leave the comment out")
    if text.count("\n") > kept.count("\n"):
        raise error(f"{where}: YAML would join its lines into one; write each line break as \\n inside double quotes, "
                    f"e.g. --set '{key}=\"line 1\\nline 2\"'")
    check_json_values(value, where, error)
    return value


__all__ = ["check_json_values", "load_yaml", "parse_yaml_value", "read_yaml_file"]
