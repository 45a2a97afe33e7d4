"""The generic name -> item registry (mirl.models.registry): the decorator, the error that lists
the valid names, and discovery of one file per item in a package."""

from __future__ import annotations

import pytest

from mirl.errors import MirlError
from mirl.models.registry import Registry


def test_the_decorator_registers_and_returns_the_item_unchanged():
    shapes = Registry("shape")

    @shapes.register("square", capturable=False)
    def square(side: float) -> float:
        """Area of a square."""
        return side * side

    assert square(3) == 9 and shapes.get("square") is square
    entry = shapes.entry("square")
    assert (entry.name, entry.capturable, entry.summary) == ("square", False, "Area of a square.")
    assert "square" in shapes and list(shapes) == ["square"]
    shapes.unregister("square")
    assert shapes.names() == ()


def test_an_unknown_name_lists_the_valid_ones_and_a_name_is_taken_once():
    shapes = Registry("shape")
    shapes.register("circle")(lambda r: 3.14 * r * r)
    shapes.register("square")(lambda s: s * s)
    with pytest.raises(MirlError, match=r"^unknown shape 'triangle'; valid: circle, square$"):
        shapes.get("triangle")
    with pytest.raises(MirlError, match="'circle' is registered twice"):
        shapes.register("circle")(lambda r: r)


def test_a_package_registry_imports_every_module_of_its_package_on_first_use():
    from mirl.study.losses import losses

    assert {"l1", "mse", "charbonnier"} <= set(losses.names())
    assert losses.entry("l1").item.__module__ == "mirl.study.losses.l1"
