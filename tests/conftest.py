"""Shared pytest set-up.

SDK retries are off so a failing Flywheel call fails fast. pynetdicom installs its own
``storescu``/``storescp``/``movescu`` scripts into the virtual environment's bin; the
tests' peers are dcmtk's, so that directory goes to the end of PATH (an activated venv
would otherwise put pynetdicom's apps in their place).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("FLYWHEEL_SDK_TOTAL_RETRIES", "0")

_venv_bin = str(Path(sys.prefix) / "bin")
_path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != _venv_bin]
os.environ["PATH"] = os.pathsep.join([*_path, _venv_bin])

pytest_plugins = ["tests.support.fixtures"]
