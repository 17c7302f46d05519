"""Shared pytest set-up. SDK retries are off so a failing Flywheel call fails fast."""

import os

os.environ.setdefault("FLYWHEEL_SDK_TOTAL_RETRIES", "0")

pytest_plugins = ["tests.support.fixtures"]
