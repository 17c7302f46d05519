"""``python -m fwlite`` is ``fwlite``."""

import sys

from fwlite.cli import main

sys.exit(main())
