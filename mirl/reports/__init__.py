"""Publishing: the notebooks' runner (papermill, ``runner``), what the notebooks call
(``notebook_io``), tables, figures (``viz``), widgets, the gallery's menus, the self-contained
HTML export (``html``) and the reports' index (``index``).

Example:
    >>> from mirl.reports.runner import run_reports
    >>> run_reports(preset="quickstart")        # doctest: +SKIP
"""

__all__ = ["gallery_view", "html", "index", "notebook_io", "runner", "tables", "viz", "widgets"]
