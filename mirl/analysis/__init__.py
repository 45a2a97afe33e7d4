"""Reading finished runs: their scores and masks (``results``), intervals and verdicts
(``stats``, ``evidence``), masks compared (``mask_compare``) and gallery pictures (``gallery``).
Nothing here trains: a missing run is an error that says which command makes it.

Example:
    >>> from mirl.analysis.results import list_runs
"""

__all__ = ["evidence", "gallery", "mask_compare", "results", "stats"]
