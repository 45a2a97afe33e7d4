"""AdamW (Loshchilov & Hutter 2019), the published optimizer: :func:`mirl.study.step.make_adamw`.

Example:
    >>> from mirl.study.optimizers import optimizers
    >>> optimizers.entry("adamw").capturable
    True
"""

from __future__ import annotations

from mirl.study.optimizers import optimizers
from mirl.study.step import make_adamw

optimizers.register("adamw")(make_adamw)
