"""Benchmarks that time the ``fast`` path against the ``reference`` path in one process.

Each module has a ``main(argv) -> dict`` and runs with ``python -m benchmarks.<name>``;
``benchmarks.gpu_all`` runs every measurement for a GPU session in one go. See README.md.
"""
