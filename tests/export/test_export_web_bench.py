"""The deployment benchmark's bookkeeping (benchmarks/export_web.py): which row is the dense
baseline, and the gain over the degraded input that each real row carries."""

from __future__ import annotations

import doctest

import pytest

from benchmarks import export_web


def test_examples_in_docstrings_run() -> None:
    failures, tried = doctest.testmod(export_web, optionflags=doctest.ELLIPSIS)
    assert tried >= 2 and failures == 0


def test_dense_network_of_the_tickets_size_is_compared_with_the_full_dense_one() -> None:
    rows = [
        {"case": "tiny-dense-same-size", "preset": "tiny", "density_prunable": 1.0, "macs": 3, "torch_cpu_ms": 4.0, "model_sent_kb": 2.0},
        {"case": "tiny-dense", "preset": "tiny", "density_prunable": 1.0, "macs": 12, "torch_cpu_ms": 8.0,
         "model_sent_kb": 8.0, "stored_dense_sent_kb": 10.0},
    ]
    export_web.against_dense(rows)
    small, full = rows
    assert small["macs_vs_dense"] == 0.25 and small["torch_cpu_ms_vs_dense"] == 2.0
    assert small["model_sent_vs_dense_stored"] == 0.2
    assert "macs_vs_dense" not in full  # the baseline is not compared with itself


def test_gain_is_the_mean_over_tasks_of_restored_minus_input() -> None:
    metrics = {"tasks": {"derain": {"psnr": 30.0, "input_psnr": 27.0, "images": 20},
                         "dehaze": {"psnr": 20.0, "input_psnr": 21.0, "images": 10}}}
    assert export_web.gain_over_input(metrics) == (1.0, 30)
    assert export_web.gain_over_input(None) == (None, 0)


def test_study_only_case_without_a_study_says_what_to_give() -> None:
    with pytest.raises(SystemExit, match="--study DIR with a finished dense_same_size branch"):
        export_web._ticket("tiny-dense-same-size", None)
