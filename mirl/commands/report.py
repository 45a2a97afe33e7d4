"""``mirl report``: execute the study notebooks with papermill and publish offline HTML reports.

Reports read finished studies; they never train (a missing study is refused with the
``mirl lottery`` command that makes it).

Examples:
    $ mirl report runs/smoke_24da834f                 # every notebook on that study, and its web page
    $ mirl report smoke_24da834f --no-web             # by name (or hash) under runs/; no web page
    $ mirl report --preset quickstart                 # the preset's study with its default settings
    $ mirl report --preset smoke --notebooks 02 04    # a subset
    $ mirl report --params docs/examples/batch.yaml   # one report per parameter set
    $ mirl report --index-only                        # rebuild reports/index.html
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", nargs="?", default=None, metavar="RUN",
                        help="the finished study every notebook reads: a folder, or its name or hash under --runs")
    parser.add_argument("--preset", default=None,
                        help="instead of RUN: the preset's study with its default settings (smoke, quickstart, paper)")
    parser.add_argument("--no-web", dest="web", action="store_false", help="do not build the study's offline web page")
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="YAML/JSON file with a list of parameter sets (or defaults + sets): one report per set")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="one notebook parameter (YAML value), repeatable; applied to every set")
    parser.add_argument("--out", default="reports", help="reports folder (default: reports)")
    parser.add_argument("--runs", default=None, help="folder of study runs (default: runs/ of the project)")
    parser.add_argument("--data", default=None, help="folder of datasets (default: datasets/ of the project)")
    parser.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                        help="notebooks to run, by stem or number (default: all)")
    parser.add_argument("--notebooks-dir", default=None, help="folder holding the notebooks (default: notebooks/)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="notebooks to run at once (default: one per free core, each kernel on its share of their threads)")
    parser.add_argument("--index-only", action="store_true", help="only rebuild index.html from existing reports")


def _parse_sets(items: list[str]) -> dict:
    """``--set`` items as notebook parameters (YAML values; nothing YAML would drop or turn into a
    date); a parameter given twice with two values is refused."""
    from mirl.reports.runner import ReportError
    from mirl.study.yamlio import parse_yaml_value

    parsed = {}
    for item in items:
        if "=" not in item:
            raise ReportError(f"--set expects KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        value = parse_yaml_value(key, text, ReportError)
        if parsed.get(key, value) != value:
            raise ReportError(f"--set {key} is given twice ({parsed[key]!r} and {value!r}); give it once")
        parsed[key] = value
    return parsed


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirl.reports import runner
    from mirl.reports.index import build_index
    from mirl.study.config import check_preset

    if args.index_only:
        print(build_index(args.out).resolve())
        return 0
    if args.preset is not None:
        check_preset(args.preset)
    if args.jobs is not None and args.jobs < 1:
        raise runner.ReportError(f"--jobs must be at least 1, got {args.jobs}")
    extra = _parse_sets(args.sets)
    sets = runner.load_param_sets(args.params) if args.params else [{}]
    sets = [{**s, **extra} for s in sets]
    records = runner.run_reports(
        preset=args.preset, param_sets=sets, notebooks=args.notebooks, out=args.out,
        runs_dir=args.runs, data_dir=args.data, notebooks_path=args.notebooks_dir, kernel_name=args.kernel,
        study=args.study, web=args.web, workers=args.jobs,
    )
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        print(f"mirl report: {r['name']} failed: {r['error']}")
    print(f"Reports: {(Path(args.out) / 'index.html').resolve()}")
    return 1 if failed else 0
