"""``python -m liploc_ros.cli ...``: the ``liploc`` command without its console script (what
``torchrun -m liploc_ros.cli train ...`` runs in every process)."""

import sys

from liploc_ros.cli import main

sys.exit(main())
