"""Flywheel gears of this project; each sub-package is one gear, run by ``fwgear run``."""
