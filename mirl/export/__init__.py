"""Take a ticket anywhere: mirl's sparse file, the published Lightning checkpoint, ONNX, and a
static web page that restores photos offline; a model card beside each.

Names load on first use, so ``import mirl.export.study_page`` (used by the reports index) does
not import torch; onnx, onnxscript and onnxruntime load only for the ONNX and web exports.

Example:
    >>> from mirl.export import export_ticket, load_ticket                       # doctest: +SKIP
    >>> ticket = load_ticket("runs/quickstart_1a2b3c4d/level_4")                  # doctest: +SKIP
    >>> export_ticket(ticket, "web", "site").lines[0]                             # doctest: +SKIP
    'wrote site/: ...'
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE: dict[str, str] = {
    "DTYPES_BY_FORMAT": "formats",
    "ExportResult": "formats",
    "FORMATS": "formats",
    "export_ticket": "formats",
    "card_path": "card",
    "model_card": "card",
    "write_card": "card",
    "export_lightning": "lightning",
    "lightning_payload": "lightning",
    "Ticket": "ticket",
    "load_ticket": "ticket",
    "resolve_source": "ticket",
    "make_server": "serve",
    "study_web_page": "study_page",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mirl.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return __all__
