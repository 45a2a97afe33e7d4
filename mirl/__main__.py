"""``python -m mirl`` runs the command line (also under ``torchrun``)."""

import sys

from mirl.cli import main

sys.exit(main())
