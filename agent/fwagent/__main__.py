"""python -m fwagent."""

import sys

from fwagent.cli import main

sys.exit(main())
