"""One module per `mirl` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``."""
