"""``mirl export SOURCE --out OUT [--format sparse|lightning|onnx|web|narrow]``: take a ticket anywhere.

* ``sparse`` (default): only what survived pruning (packed bit mask + surviving values);
* ``lightning``: the published MIR-L checkpoint layout (``net.`` keys), paper preset only;
* ``onnx``: ONNX opset 18 with dynamic height and width (``--dtype float16`` halves the file);
* ``web``: a static folder whose page restores photos in the browser, offline (``mirl serve``);
* ``narrow``: a mirl checkpoint of the network with its dead channels removed (a ``refill``
  branch's physically smaller network), for ``mirl restore`` and ``mirl evaluate``.

A ``refill`` branch (whole channels removed) is exported narrowed by ``onnx`` and ``web`` too.

Every export gets a model card beside it (``OUT.md``).

Examples:
    $ mirl export runs/quickstart_1a2b3c4d/level_4 --out ticket.sparse.pt
    $ mirl export runs/paper_0badc0de/level_10 --format lightning --out mirl_ticket.ckpt
    $ mirl export runs/quickstart_1a2b3c4d/level_4 --format onnx --out ticket.onnx --dtype float16
    $ mirl export runs/quickstart_1a2b3c4d --format web --out site/ && mirl serve site/
    $ mirl export runs/quickstart_1a2b3c4d/replicate_0/level_2/refill --format narrow --out refill.pt
"""

from __future__ import annotations

import argparse

from mirl.commands import add_checkpoint_arguments

# literal copies (kept in sync by tests/export/test_formats.py) so that building the parser does not import torch
FORMATS = ("sparse", "lightning", "onnx", "web", "narrow")
DTYPES = ("float32", "float16", "bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("export a ticket: a compact sparse checkpoint (the default), the published Lightning checkpoint, "
                          "ONNX, or a web page that restores photos offline; a model card (OUT.md) beside each")
    parser.add_argument("source", help="a level folder (runs/<study>/replicate_<r>/level_<k>: its main; or .../level_<k>/<branch>), a replicate or study folder (its last finished level of main; a study: replicate 0) or a checkpoint")
    parser.add_argument("--out", required=True, help="output file (sparse, lightning, onnx, narrow) or folder (web), outside any study folder")
    parser.add_argument("--format", default="sparse", choices=FORMATS,
                        help="sparse (default): mirl's compact file; lightning: the published .ckpt layout (paper preset only); "
                             "onnx: ONNX with dynamic height/width; web: a static page that restores photos offline; "
                             "narrow: a checkpoint of the network with its dead channels removed (refill branches; onnx and "
                             "web narrow those too)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="storage type of the weights (sparse: any; onnx, web: float32 or float16; lightning: float32)")
    parser.add_argument("--mask", help="mask file (default: mask.pt in the level folder; else the non-zero weights)")
    parser.add_argument("--rule", default=None, choices=["upstream", "conv"],
                        help="prunable tensors in the densities (and the mask when it comes from non-zeros); default: the study's, else upstream")
    parser.add_argument("--impl", default="fast", choices=["fast", "reference"], help="implementation the ONNX graph is traced from (onnx, web)")
    parser.add_argument("--tile", type=int, default=256, help="web: default tile size of the page in px (default 256)")
    parser.add_argument("--overlap", type=int, default=32, help="web: tile overlap in px, under half of --tile (default 32, as mirl restore)")
    parser.add_argument("--no-examples", action="store_true", help="web: leave out the three degraded example photos")
    parser.add_argument("--onnx", metavar="FILE", help="web: build the page around this ONNX file, exported earlier from the "
                                                        "same SOURCE with --format onnx (skips the export; checked by one forward pass)")
    add_checkpoint_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mirl.export import export_ticket, load_ticket

    ticket = load_ticket(args.source, mask=args.mask, rule=args.rule, allow_pickle=args.allow_pickle, preset=args.model)
    result = export_ticket(ticket, args.format, args.out, dtype=args.dtype, impl=args.impl, tile=args.tile,
                           overlap=args.overlap, examples=not args.no_examples, onnx_file=args.onnx)
    for line in result.lines:
        print(line)
    return 0
